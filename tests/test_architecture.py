"""seproc's modules import downward only: no import circle, no upward import.

The layer order below is the one in docs/ARCHITECTURE.md: a module may import only
modules that come before it. Every import counts, also one inside a function (a lazy
import is still a dependency). A new module must be placed in the list, which is a
decision about what it may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "seproc"

#: Bottom to top. Keep in step with docs/ARCHITECTURE.md.
LAYERS = [
    "seproc.errors",
    "seproc._interface",
    "seproc._version",
    "seproc._kernels",
    "seproc._simd",
    "seproc._fftw",
    "seproc._validation",
    "seproc.stft",
    "seproc.features",
    "seproc.resample",
    "seproc.highband",
    "seproc.pitch",
    "seproc._onnx_proto",
    "seproc._one_frame",
    "seproc._blas_net",
    "seproc._hop",
    "seproc.model",
    "seproc.denoiser",
    "seproc._jack_latency",
    "seproc.live",
    "seproc._files",
    "seproc.api",
    "seproc.batch",
    "seproc.cli",
    "seproc.integrations",
    "seproc.integrations.pedalboard",
    "seproc",
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The seproc modules that ``path`` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from seproc import api`` imports the module seproc.api;
            # ``from seproc import Denoiser`` imports the package, seproc/__init__.py.
            names = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in known
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == "seproc")
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, set(found)) - {name} for name, path in found.items()}


def test_relative_imports_are_not_used():
    """The check below reads absolute imports only; keep it that way."""
    for path in modules().values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level]
        assert relative == [], f"{path} uses a relative import"


def test_every_module_has_a_layer():
    assert sorted(modules()) == sorted(LAYERS)


@pytest.mark.parametrize("module", LAYERS)
def test_a_module_imports_only_modules_below_it(module):
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = sorted(name for name in graph()[module] if rank[name] >= rank[module])
    assert upward == [], f"{module} imports {upward}, which are not below it in LAYERS"


def test_there_is_no_import_circle():
    edges = graph()
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(edges[name]):
            if state.get(target) == "open":
                cycle = [*path[path.index(target) :], target]
                pytest.fail(f"import circle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])


def test_the_check_sees_a_circle_and_an_upward_import(tmp_path):
    """The parser finds lazy and ``from seproc import x`` imports (a check that can fail)."""
    source = tmp_path / "m.py"
    source.write_text(
        "from seproc import api\n"
        "def f():\n"
        "    from seproc.cli import main\n"
        "    import seproc.batch\n"
    )
    known = {"seproc.api", "seproc.cli", "seproc.batch"}
    assert imports_of(source, known) == {"seproc.api", "seproc.cli", "seproc.batch"}


def test_private_helpers_are_imported_only_from_their_own_module():
    """No module reaches into another module's ``_private`` names (``from x import _y``).

    Private *modules* (``seproc._files``, ``seproc._kernels``) are meant to be imported;
    a private name inside a module is that module's business.
    """
    known = set(modules())
    offenders = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("seproc"):
                offenders += [
                    f"{name}: from {node.module} import {alias.name}"
                    for alias in node.names
                    if alias.name.startswith("_")
                    and not alias.name.startswith("__")
                    and f"{node.module}.{alias.name}" not in known
                ]
    assert offenders == []

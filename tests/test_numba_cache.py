"""numba's cache goes to a per-user folder, never into the installed package (issue 22).

Each case runs in a fresh interpreter: numba picks a kernel's cache folder when
``seproc._kernels`` is imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numba
import pytest

import seproc
from seproc import _kernels

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(seproc.__file__).resolve().parent

BUILD_WHEEL = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]

PROBE = """
import json, numba, numpy as np
from seproc import _kernels
kernel = _kernels.all_finite
result = bool(kernel(np.zeros((1, 4))))
print(json.dumps({
    "cache": type(kernel._cache).__name__,
    "cache_path": getattr(kernel._cache, "cache_path", None),
    "numba_cache_dir": numba.config.CACHE_DIR,
    "result": result,
}))
"""


def probe(**env: str | None) -> dict:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")
    }
    environ.update({k: v for k, v in env.items() if v is not None})
    environ["PYTHONPATH"] = str(REPO)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=environ, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def index_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.nbi"))


def test_cache_goes_to_the_per_user_folder(tmp_path):
    report = probe(XDG_CACHE_HOME=str(tmp_path))
    expected = tmp_path / "seproc" / "numba"
    assert report["result"] is True
    assert Path(report["cache_path"]).is_relative_to(expected)
    assert not Path(report["cache_path"]).is_relative_to(PACKAGE)
    assert [p.name.split("-")[0] for p in index_files(expected)] == ["_kernels.all_finite"]
    assert report["numba_cache_dir"] == ""  # numba's own setting is left as it was


def test_numba_cache_dir_wins_and_is_left_as_set(tmp_path):
    chosen = tmp_path / "chosen"
    report = probe(XDG_CACHE_HOME=str(tmp_path / "xdg"), NUMBA_CACHE_DIR=str(chosen))
    assert Path(report["cache_path"]).is_relative_to(chosen)
    assert report["numba_cache_dir"] == str(chosen)
    assert index_files(chosen) and not (tmp_path / "xdg" / "seproc").exists()


def test_unwritable_cache_folder_compiles_in_memory(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    report = probe(XDG_CACHE_HOME=str(blocker))  # mkdir under a file fails, even for root
    assert report == {
        "cache": "NullCache",
        "cache_path": None,
        "numba_cache_dir": "",
        "result": True,
    }


def test_import_leaves_numba_config_alone():
    assert numba.config.CACHE_DIR == os.environ.get("NUMBA_CACHE_DIR", "")


@pytest.mark.skipif(not _kernels._CACHE, reason="no writable cache folder: nothing is cached")
def test_every_kernel_caches_in_the_per_user_folder():
    """Each kernel is made by ``_kernels._njit``; a bare ``numba.njit(cache=True)`` caches
    in ``__pycache__`` beside the installed package (two full-band kernels once did)."""
    from seproc import _blas_net, _fftw, _hop, _simd

    kernels = {
        f"{module.__name__}.{name}": kernel
        for module in (_kernels, _blas_net, _simd, _fftw, _hop)
        for name, kernel in vars(module).items()
        if isinstance(kernel, numba.core.registry.CPUDispatcher)
    }
    assert {
        "seproc._kernels.frame_windowed",
        "seproc._kernels.ring_copy",
        "seproc._kernels.apply_fullband_gain",
        "seproc._kernels.delay_line",
        "seproc._blas_net.blas_run",
        "seproc._simd.decimate_registers",
        "seproc._fftw.execute_rows",
        "seproc._hop.full_band_chunk",
        "seproc._hop.model_rate_chunk",
    } <= set(kernels)
    for name, kernel in kernels.items():
        assert Path(kernel._cache.cache_path).is_relative_to(_kernels.cache_dir()), name


@pytest.mark.slow
def test_pip_install_run_uninstall_leaves_no_seproc_folder(tmp_path):
    """The README's wheel install, one denoise from elsewhere, uninstall: nothing left behind."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    # seproc's dependencies from this interpreter's site-packages, appended to the venv's
    # path (a .pth line adds a folder without running its .pth files, so this
    # interpreter's own editable seproc stays out).
    outer = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    (site / "_outer_site.pth").write_text("".join(f"{folder}\n" for folder in sorted(outer)))
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    # Build with this interpreter's setuptools and wheel (a bare venv may lack wheel),
    # install the wheel into the venv.
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*BUILD_WHEEL, "-w", str(wheels), str(REPO)],
        check=True,
    )
    (wheel,) = wheels.glob("seproc-*.whl")
    subprocess.run([*pip, "install", "--no-deps", str(wheel)], check=True, env=environ)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    imported = subprocess.run(
        [str(python), "-c", "import seproc; print(seproc.__file__)"],
        cwd=outside,
        env=environ,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert Path(imported).parent == site / "seproc"
    subprocess.run(
        [
            str(python),
            "-m",
            "seproc.cli",
            "denoise",
            str(REPO / "examples" / "noisy_speech.wav"),
            "clean.wav",
            "--quiet",
        ],
        check=True,
        cwd=outside,
        env=environ,
    )
    installed = site / "seproc"
    assert (outside / "clean.wav").is_file()
    assert installed.is_dir()
    assert not list(installed.rglob("*.nbi")) and not list(installed.rglob("*.nbc"))
    assert index_files(tmp_path / "cache" / "seproc" / "numba")

    subprocess.run([*pip, "uninstall", "-y", "seproc"], check=True, env=environ)

    assert not installed.exists(), sorted(str(p) for p in installed.rglob("*"))

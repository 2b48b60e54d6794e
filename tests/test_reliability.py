"""Reliability of the library itself: numba caching on read-only installs, warm-up,
property tests of ``Denoiser.process``, bad blocks, denormals and threads.

File input and the command line are in tests/test_cli_files.py, broken model files in
tests/test_model_files.py, the reduced soak in tests/test_soak.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# numba caching: a fresh cache folder, and a read-only install
# ---------------------------------------------------------------------------

PROBE = """
import json
import numpy as np
import seproc
from seproc import _kernels
finite = _kernels.all_finite(np.zeros((1, 8), np.float32))
stats = _kernels.all_finite.stats
print(json.dumps({
    "file": seproc.__file__,
    "finite": bool(finite),
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
}))
"""


def run_probe(site: Path, cache_dir: Path | None, home: Path) -> subprocess.CompletedProcess:
    """Import seproc from ``site`` in a fresh interpreter and call one cached kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        # numba's last resort is a user-wide cache under $XDG_CACHE_HOME or ~/.cache.
        HOME=str(home),
        XDG_CACHE_HOME=str(home),
    )
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def probe_result(completed: subprocess.CompletedProcess) -> dict:
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def read_only_install(tmp_path):
    """A copy of the package that nothing can write to, and a HOME nothing can write to.

    Tests usually run as root, and root ignores file modes; so besides ``chmod -R a-w``
    the copy gets a *file* named ``__pycache__`` (where numba's in-tree cache would go),
    and HOME points below a regular file, which makes every cache folder numba tries
    impossible to create, for root too.
    """
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "seproc", site / "seproc", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    for folder in [site / "seproc", *(p for p in (site / "seproc").rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("")
    before = sorted((str(p), p.stat().st_size) for p in site.rglob("*"))
    for path in [*site.rglob("*"), site]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield site, blocker
    for path in [site, *site.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    after = sorted((str(p), p.stat().st_size) for p in site.rglob("*"))
    assert after == before, "the read-only install was modified"


def test_a_fresh_numba_cache_dir_is_filled_then_reused(tmp_path):
    cache = tmp_path / "numba-cache"
    first = probe_result(run_probe(REPO, cache, REPO))
    assert first["finite"] and first["misses"] == 1 and first["hits"] == 0
    assert list(cache.rglob("_kernels.all_finite-*.nbi")), sorted(cache.rglob("*"))
    second = probe_result(run_probe(REPO, cache, REPO))
    assert second["finite"] and second["hits"] == 1 and second["misses"] == 0


def test_a_read_only_install_imports_with_numba_cache_dir_set(read_only_install, tmp_path):
    site, blocker = read_only_install
    cache = tmp_path / "numba-cache"
    result = probe_result(run_probe(site, cache, blocker))
    assert Path(result["file"]).is_relative_to(site)
    assert result["finite"] and result["misses"] == 1
    assert list(cache.rglob("_kernels.all_finite-*.nbi"))


def test_a_read_only_install_imports_without_any_writable_cache(read_only_install):
    """Nothing writable and no NUMBA_CACHE_DIR (or one that is a file): kernels compile
    in memory instead of failing at import (numba raises "cannot cache function"; librosa
    issue 1156)."""
    site, blocker = read_only_install
    for cache_dir in (None, blocker):
        result = probe_result(run_probe(site, cache_dir, blocker))
        assert result["finite"] and result["hits"] == 0

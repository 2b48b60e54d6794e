"""Folder walk, temporary files and the manifest under hostile conditions (issue 23).

FIFOs, link loops, broken links, non-UTF-8 and very long names, SIGTERM/SIGHUP and
stale temporary files, unreadable files and folders, --skip-existing on a truncated
output, a link planted where the manifest's temporary file goes, and onnxruntime's
telemetry files. Runs that could hang (a FIFO) run in a child process with a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seproc.cli import main
from seproc.denoiser import Denoiser
from tests.model_factory import bypass_model

REPO = Path(__file__).resolve().parent.parent
RATE = 16000


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return bypass_model(tmp_path_factory.mktemp("files-model") / "bypass.onnx")


def write_tone(path: Path, frames: int = 4000) -> None:
    t = np.arange(frames) / RATE
    sf.write(native(path), 0.3 * np.sin(2 * np.pi * 440 * t), RATE)


def native(path: Path) -> bytes:
    return os.fsencode(path)


def run_cli(*args: object) -> tuple[int, list[str]]:
    """Run ``seproc`` in this process; return its exit status and its stderr lines."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in args])
    return status, stderr.getvalue().splitlines()


def run_cli_child(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``seproc`` in a child process that is killed after ``timeout`` seconds."""
    return subprocess.run(
        [sys.executable, "-m", "seproc.cli", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- item 5: FIFOs and symbolic link loops ---------------------------------------------------


def test_a_fifo_in_the_folder_is_skipped_on_one_line_never_opened(tmp_path, model):
    """Both engines used to hang forever opening it (here the child would time out)."""
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "good.wav")
    os.mkfifo(tmp_path / "in" / "pipe.wav")
    result = run_cli_child("denoise", tmp_path / "in", tmp_path / "out", "--model", model, "-q")
    assert result.returncode == 0, result.stderr
    fifo = tmp_path / "in" / "pipe.wav"
    assert f"seproc: {fifo}: skipped, a FIFO (named pipe), not a regular file" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]


def test_a_fifo_as_the_input_says_so(tmp_path, model):
    os.mkfifo(tmp_path / "pipe.wav")
    result = run_cli_child("denoise", tmp_path / "pipe.wav", tmp_path / "out.wav")
    assert result.returncode == 2
    assert "is a FIFO (named pipe), not a regular file" in result.stderr
    assert "does not exist" not in result.stderr


def test_a_symlink_loop_is_skipped_and_the_rest_is_denoised(tmp_path, model):
    """It used to end the run with a RuntimeError traceback before any file was done."""
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "good.wav")
    os.symlink("loop-b.wav", tmp_path / "in" / "loop-a.wav")
    os.symlink("loop-a.wav", tmp_path / "in" / "loop-b.wav")
    status, lines = run_cli("denoise", tmp_path / "in", tmp_path / "out", "--model", model, "-q")
    assert status == 0, lines
    assert f"seproc: {tmp_path / 'in' / 'loop-a.wav'}: skipped, symbolic link loop" in lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]


# -- item 6: names that are not UTF-8 ---------------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_denoised_under_the_same_bytes(tmp_path, model):
    """Locally it gave "unexpected UnicodeEncodeError (please report this)"."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    name = os.fsdecode(b"caf\xe9-latin1.wav")
    write_tone(inputs / name)
    status, lines = run_cli("denoise", inputs, tmp_path / "out", "--model", model, "-q")
    assert (status, lines) == (0, [])
    assert os.listdir(os.fsencode(tmp_path / "out")) == [b"caf\xe9-latin1.wav"]
    assert sf.info(native(tmp_path / "out" / name)).frames == 4000


def test_ray_wire_encoding_round_trips_any_file_name():
    from seproc.batch import _from_wire, _to_wire

    for raw in (b"caf\xe9.wav", "naïve/日本.wav".encode(), b"plain.wav", b"\xff\xfe"):
        name = os.fsdecode(raw)
        wired = _to_wire(name)
        wired.encode("utf-8")  # what Arrow needs: no surrogates
        assert os.fsencode(_from_wire(wired)) == raw


# -- item 7: long names -----------------------------------------------------------------------


def test_a_file_name_of_250_characters_is_denoised(tmp_path, model):
    """The temporary name added ~17 characters and failed with "File name too long"."""
    name = "n" * 246 + ".wav"
    write_tone(tmp_path / name)
    (tmp_path / "out").mkdir()
    status, lines = run_cli("denoise", tmp_path / name, tmp_path / "out", "--model", model)
    assert status == 0 and len(lines) == 1  # only the run's summary line, no failure
    assert lines[0].startswith("seproc: 1 of 1 files denoised, 0 failed;")
    assert sorted(os.listdir(tmp_path / "out")) == [name]


# -- item 8: SIGTERM, SIGHUP, and what SIGKILL leaves ------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_mid_file_leave_no_temporary_file(tmp_path, model, monkeypatch, signum):
    write_tone(tmp_path / "in.wav", 16000)
    calls = []
    process = Denoiser.process

    def signalled(self, block, out=None):
        if any(p.name.endswith(".partial") for p in tmp_path.iterdir()):  # mid-file
            calls.append(block.shape[-1])
            if len(calls) == 3:
                os.kill(os.getpid(), signum)
        return process(self, block, out)

    monkeypatch.setattr(Denoiser, "process", signalled)
    previous = signal.getsignal(signum)
    status, lines = run_cli(
        "denoise", tmp_path / "in.wav", tmp_path / "out.wav", "--model", model,
        "--block-size", "1000", "-q",
    )  # fmt: skip
    assert (status, lines) == (128 + signum, [f"seproc: interrupted by {signum.name}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]
    assert len(calls) == 3
    assert signal.getsignal(signum) is previous  # the CLI restores the handler


def test_a_run_removes_stale_temporary_files_of_its_outputs_only(tmp_path, model):
    """A SIGKILLed run leaves .NAME.XXXXXXXX.partial files that no later run removed."""
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "a.wav")
    out = tmp_path / "out"
    out.mkdir()
    stale = [".a.wav.k3x9_q2z.partial", ".a.wav.try1.partial"]
    kept = [".ab.wav.k3x9_q2z.partial", ".a.wav.partial", ".a.wav.x-y.partial", "notes.partial"]
    for name in stale + kept:
        (out / name).write_bytes(b"x" * 100)
    status, lines = run_cli("denoise", tmp_path / "in", out, "--model", model, "-q")
    assert (status, lines) == (0, [])
    assert sorted(os.listdir(out)) == sorted(["a.wav", *kept])


# -- item 9: say which path and why -------------------------------------------------------------


def test_a_broken_link_is_named_with_its_cause(tmp_path, model):
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "good.wav")
    os.symlink("gone.wav", tmp_path / "in" / "dead.wav")
    status, lines = run_cli("denoise", tmp_path / "in", tmp_path / "out", "--model", model, "-q")
    assert status == 0
    assert lines == [
        f"seproc: {tmp_path / 'in' / 'dead.wav'}: skipped, broken symbolic link "
        "(its target does not exist)"
    ]
    status, lines = run_cli("denoise", tmp_path / "in" / "dead.wav", tmp_path / "x.wav")
    assert status == 2
    assert "is a broken symbolic link (its target gone.wav does not exist)" in lines[0]


def deny(monkeypatch, function_name: str, denied: Path) -> None:
    """Make ``os.<function_name>`` fail with EACCES on ``denied`` (root ignores modes)."""
    original = getattr(os, function_name)

    def refusing(path, *args, **kwargs):
        if os.fspath(path) == os.fspath(denied):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(os, function_name, refusing)


def test_an_unreadable_file_says_permission_denied(tmp_path, model, monkeypatch):
    """libsndfile's own words were "System error."."""
    write_tone(tmp_path / "locked.wav")
    deny(monkeypatch, "open", tmp_path / "locked.wav")
    status, lines = run_cli("denoise", tmp_path / "locked.wav", tmp_path / "out.wav", "-q")
    assert status == 1
    assert lines[0] == f"seproc: failed: Cannot read {tmp_path / 'locked.wav'}: permission denied."


def test_an_unreadable_folder_says_permission_denied(tmp_path, model, monkeypatch):
    """It used to say "Found no audio file"."""
    (tmp_path / "in" / "locked").mkdir(parents=True)
    write_tone(tmp_path / "in" / "locked" / "a.wav")
    deny(monkeypatch, "scandir", tmp_path / "in" / "locked")
    status, lines = run_cli("denoise", tmp_path / "in", tmp_path / "out", "--model", model)
    assert status == 2
    assert lines[0] == (
        f"seproc: {tmp_path / 'in' / 'locked'}: skipped, cannot read folder: permission denied"
    )
    assert "1 entries skipped (see above)" in lines[1]
    deny(monkeypatch, "scandir", tmp_path / "in")
    status, lines = run_cli("denoise", tmp_path / "in", tmp_path / "out", "--model", model)
    assert (status, lines) == (
        2,
        [f"seproc: error: Cannot read input folder {tmp_path / 'in'}: permission denied."],
    )


# -- item 11: --skip-existing verifies ------------------------------------------------------------


def test_skip_existing_redoes_a_truncated_output(tmp_path, model):
    (tmp_path / "in").mkdir()
    write_tone(tmp_path / "in" / "a.wav", 8000)
    write_tone(tmp_path / "in" / "b.wav", 8000)
    out = tmp_path / "out"
    assert run_cli("denoise", tmp_path / "in", out, "--model", model, "-q") == (0, [])
    whole = (out / "a.wav").read_bytes()
    (out / "a.wav").write_bytes(whole[: len(whole) // 2])
    status, lines = run_cli("denoise", tmp_path / "in", out, "--model", model, "--skip-existing")
    assert status == 0
    assert lines[0] == (
        "seproc: skipping 1 existing outputs, verified (readable, same rate, channels and "
        "length as the input); 1 existing outputs failed the check and are redone."
    )
    assert (out / "a.wav").read_bytes() == whole


# -- item 10: the manifest's temporary file ---------------------------------------------


def test_a_link_planted_at_the_manifest_temporary_name_is_not_followed(tmp_path):
    """``ln -s /tmp/victim out/.seproc-manifest.csv.partial`` made a run overwrite the victim
    and turned the manifest into a link to it."""
    from seproc.batch import MANIFEST_NAME, _Journal, _write_manifest, read_manifest
    from seproc.errors import SeprocError

    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(victim, out / f".{MANIFEST_NAME}.partial")
    row = {"input": os.fsdecode(b"caf\xe9.wav"), "status": "ok"}
    _write_manifest(out / MANIFEST_NAME, [row])
    assert victim.read_text() == "precious\n"
    assert not (out / MANIFEST_NAME).is_symlink()
    assert read_manifest(out / MANIFEST_NAME)[0]["input"] == row["input"]
    (out / MANIFEST_NAME).unlink()
    os.symlink(victim, out / MANIFEST_NAME)
    with pytest.raises(SeprocError, match=r"Cannot write the manifest .* symbolic link"):
        _Journal(out / MANIFEST_NAME).__enter__()
    assert victim.read_text() == "precious\n"


# -- item 12: at least once, said so ------------------------------------------------------------


def test_docs_promise_at_least_once_not_exactly_once():
    """A resumed run redid 3 files that a killed driver had not recorded; the README said a
    killed run "loses only the files in flight". Outputs are atomic and identical, so
    at-least-once is fine, and the docs must say it (and no longer the stronger claim)."""
    readme = " ".join((REPO / "README.md").read_text().split())
    reliability = " ".join((REPO / "docs" / "RELIABILITY.md").read_text().split())
    for text in (readme, reliability):
        assert "at least once**, not exactly once" in text
    assert "loses only the files in flight" not in readme


# -- items 5-7 on the Ray engine ---------------------------------------------------------


def test_the_ray_engine_skips_a_fifo_and_handles_odd_and_long_names(tmp_path, model):
    """A FIFO hung the Ray engine too, and a non-UTF-8 name aborted the whole run (the
    manifest kept only its header). Runs in a child process with a timeout."""
    pytest.importorskip("ray")
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    odd = os.fsdecode(b"caf\xe9.wav")
    long_name = "n" * 246 + ".wav"
    for name in ("good.wav", odd, long_name):
        write_tone(inputs / name)
    os.mkfifo(inputs / "pipe.wav")
    result = run_cli_child(
        "denoise", inputs, out, "--model", model, "--engine", "ray", "--num-workers", "1",
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pipe.wav: skipped, a FIFO (named pipe), not a regular file" in result.stderr
    from seproc.batch import MANIFEST_NAME, read_manifest

    rows = read_manifest(out / MANIFEST_NAME)
    assert sorted((row["input"], row["status"]) for row in rows) == sorted(
        [(odd, "ok"), ("good.wav", "ok"), (long_name, "ok")]
    )
    assert sorted(os.listdir(os.fsencode(out))) == sorted(
        [os.fsencode(n) for n in (odd, "good.wav", long_name, MANIFEST_NAME)]
    )


# -- item 13: onnxruntime's telemetry files and warnings --------------------------------------


@pytest.fixture(scope="module")
def numba_cache():
    """The test run's own numba cache, outside the child's HOME: the child reuses the
    kernels the tests before it compiled (a cold compile in a cache of its own took
    40-60 s of the default test run)."""
    from seproc._kernels import cache_dir

    return cache_dir()


@pytest.mark.parametrize("home_kind", ["writable", "unwritable"])
def test_onnxruntime_writes_nothing_into_home_and_the_cli_stderr_stays_clean(
    tmp_path, model, numba_cache, home_kind
):
    """onnxruntime 1.32 wrote ~/.cache/Microsoft/DeveloperTools/.onnxruntime/* on every
    session, and printed a yellow warning into the CLI's stderr with an unwritable HOME."""
    home = tmp_path / "home"
    if home_kind == "writable":
        home.mkdir()
    else:
        (tmp_path / "file").write_text("a regular file: nothing can be created below it\n")
        home = tmp_path / "file" / "home"
    write_tone(tmp_path / "in.wav")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORT_", "XDG_"))}
    env.update(HOME=str(home), NUMBA_CACHE_DIR=str(numba_cache))
    result = subprocess.run(
        [sys.executable, "-m", "seproc.cli", "denoise", str(tmp_path / "in.wav"),
         str(tmp_path / "out.wav"), "-q"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    if home_kind == "writable":
        assert list(home.rglob("*")) == []

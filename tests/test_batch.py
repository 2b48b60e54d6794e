"""The Ray engine (seproc.batch) against the local engine (api.process_file), on real Ray.

One local Ray instance of 2 CPUs serves the whole module (starting Ray costs seconds).
References: outputs written by ``seproc.api.process_file`` in this process, checksums
by ``hashlib``, audio properties read back by ``soundfile``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seproc import api, batch
from seproc.errors import ModelError, ParameterError, SeprocError
from tests.model_factory import make_model

ray = pytest.importorskip("ray")

pytestmark = [
    # Ray 2.60 warns about its own deprecated settings when it builds a DataContext.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context"),
]

CORRUPT = ("corrupt.wav", "empty.wav")


def _signal(rng: np.random.Generator, frames: int, channels: int, sample_rate: int) -> np.ndarray:
    time_s = np.arange(frames) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 220.0 * time_s)
    noise = rng.normal(0.0, 0.05, (frames, channels))
    return (tone[:, None] + noise).astype(np.float32)


def _write_corpus(root: Path) -> None:
    """30 audio inputs: mono/stereo, 16/22.05/44.1/48 kHz, PCM/FLOAT/FLAC, 2 broken."""
    rng = np.random.default_rng(12)
    layout = (
        [("mono16k", 16000, 1, "WAV", "PCM_16")] * 12
        + [("stereo16k", 16000, 2, "WAV", "PCM_16")] * 5
        + [("mono48k", 48000, 1, "WAV", "PCM_24")] * 4
        + [("stereo48k", 48000, 2, "WAV", "PCM_16")] * 3
        + [("sub/deeper/flac22k", 22050, 1, "FLAC", "PCM_16")] * 2
        + [("float44k", 44100, 1, "WAV", "FLOAT")]
    )
    for index, (stem, sample_rate, channels, file_format, subtype) in enumerate(layout):
        extension = ".flac" if file_format == "FLAC" else ".wav"
        path = root / f"{stem}_{index:02d}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = int(sample_rate * rng.uniform(0.05, 0.4)) + index  # odd lengths too
        audio = _signal(rng, frames, channels, sample_rate)
        sf.write(path, audio, sample_rate, subtype=subtype, format=file_format)
    sf.write(root / "zero_frames.wav", np.zeros((0, 1), np.float32), 16000, subtype="PCM_16")
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.txt").write_text("not audio: never listed\n")
    (root / ".hidden.wav").write_bytes(b"hidden: never listed")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _audio_inputs(root: Path) -> list[str]:
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix in (".wav", ".flac") and not path.name.startswith(".")
    )


def _partials(root: Path) -> list[Path]:
    return sorted(root.rglob("*.partial"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Inputs, a model, and the local engine's outputs (api.process_file, one per file)."""
    base = tmp_path_factory.mktemp("batch")
    in_dir, ref_dir = base / "in", base / "reference"
    _write_corpus(in_dir)
    model = make_model(base / "model.onnx", scale=0.01)  # stateful: a missed reset shows
    reference: dict[str, str | None] = {}  # input -> output sha256, or None if it failed
    errors: dict[str, str] = {}
    for name in _audio_inputs(in_dir):
        dst = ref_dir / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = api.process_file((in_dir / name).resolve(), dst, model=model)
        except SeprocError as error:
            reference[name], errors[name] = None, str(error).splitlines()[0]
        else:
            reference[name] = result.output_sha256
    input_sha256 = {name: _sha256(in_dir / name) for name in _audio_inputs(in_dir)}
    return {
        "in": in_dir,
        "model": model,
        "reference": reference,
        "ref_dir": ref_dir,
        "errors": errors,
        "input_sha256": input_sha256,
        "input_tree": sorted(in_dir.rglob("*")),
    }


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray instance of 2 CPUs for the module; the engine joins it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def first_run(corpus: dict, ray_session, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("first") / "out"
    summary = batch.denoise_corpus(corpus["in"], out, model=corpus["model"], num_workers=2)
    return {"out": out, "summary": summary, "rows": batch.read_manifest(summary.manifest)}


def _assert_rerun_finishes_every_file_once(corpus: dict, out: Path, done_first: set) -> None:
    """Rerun on ``out``: what the first run finished is skipped, the rest done, no partials."""
    summary = batch.denoise_corpus(corpus["in"], out, model=corpus["model"])
    rows = batch.read_manifest(summary.manifest)
    assert sorted(row["input"] for row in rows) == sorted(corpus["reference"])
    done_second = {row["input"] for row in rows if row["status"] == "ok"}
    skipped = {row["input"] for row in rows if row["status"] == "skipped"}
    expected_ok = {name for name, sha in corpus["reference"].items() if sha is not None}
    assert skipped == done_first
    assert done_second.isdisjoint(done_first)
    assert done_second | done_first == expected_ok
    assert _partials(out) == []
    _assert_outputs_match_reference(corpus, out)


def _assert_outputs_match_reference(corpus: dict, out: Path) -> None:
    for name, expected in corpus["reference"].items():
        if expected is None:
            assert not (out / name).exists(), name
        else:
            assert (out / name).read_bytes() == (corpus["ref_dir"] / name).read_bytes(), name


def test_corpus_layout_is_what_the_issue_asks(corpus: dict) -> None:
    names = corpus["reference"]
    assert len(names) == 30
    infos = {name: sf.info(str(corpus["in"] / name)) for name in names if name not in CORRUPT}
    assert sum(info.channels == 2 for info in infos.values()) == 8
    assert sum(info.samplerate == 48000 for info in infos.values()) == 7
    assert infos["zero_frames.wav"].frames == 0
    assert {name for name, sha in names.items() if sha is None} == set(CORRUPT)


def test_without_ray_the_error_says_what_to_install(
    corpus: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # runs before this module starts Ray; None in sys.modules makes `import ray` fail
    in_dir = _small_folder(corpus, tmp_path / "in", ["mono16k_07.wav"])
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SeprocError, match=r"needs Ray: pip install 'seproc\[ray\]'"):
        batch.denoise_corpus(in_dir, tmp_path / "out", model=corpus["model"])
    assert not (tmp_path / "out" / "mono16k_07.wav").exists()


def test_outputs_are_byte_identical_to_the_local_engine(corpus: dict, first_run: dict) -> None:
    _assert_outputs_match_reference(corpus, first_run["out"])


def test_outputs_keep_rate_channels_and_subtype(corpus: dict, first_run: dict) -> None:
    for name, expected in corpus["reference"].items():
        if expected is None:
            continue
        source, output = sf.info(str(corpus["in"] / name)), sf.info(str(first_run["out"] / name))
        assert (output.samplerate, output.channels, output.subtype, output.frames) == (
            source.samplerate,
            source.channels,
            source.subtype,
            source.frames,
        ), name


def test_manifest_has_one_row_per_input_with_status_and_checksums(
    corpus: dict, first_run: dict
) -> None:
    rows = first_run["rows"]
    assert sorted(row["input"] for row in rows) == sorted(corpus["reference"])
    assert [row["output"] for row in rows] == [row["input"] for row in rows]
    for row in rows:
        name = row["input"]
        assert row["input_sha256"] == corpus["input_sha256"][name], name
        if corpus["reference"][name] is None:
            assert row["status"] == "failed"
            assert row["error"] == corpus["errors"][name]
            assert row["error"].startswith(f"Cannot read {corpus['in'].resolve() / name}")
            continue
        info = sf.info(str(corpus["in"] / name))
        assert row["status"] == "ok" and row["error"] == ""
        assert row["output_sha256"] == _sha256(first_run["out"] / name)
        assert row["output_sha256"] == corpus["reference"][name]
        assert (int(row["sample_rate"]), int(row["channels"])) == (info.samplerate, info.channels)
        assert float(row["duration_s"]) == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        processing_s = float(row["processing_s"])
        assert processing_s > 0
        if info.frames:
            assert float(row["real_time_factor"]) == pytest.approx(
                processing_s / float(row["duration_s"]), rel=1e-4
            )
        assert row["worker"].rsplit(":", 1)[1].isdigit()


def test_summary_counts_failures_and_exit_code_is_nonzero(corpus: dict, first_run: dict) -> None:
    summary = first_run["summary"]
    assert (summary.files_ok, summary.files_failed, summary.files_skipped) == (28, 2, 0)
    assert summary.exit_code == 1
    total_s = sum(float(row["duration_s"] or 0) for row in first_run["rows"])
    assert summary.audio_s == pytest.approx(total_s)
    assert summary.audio_hours_per_wall_hour == pytest.approx(summary.audio_s / summary.wall_s)
    assert summary.line().startswith("seproc: 28 ok, 2 failed, 0 skipped; ")


def test_inputs_are_unchanged_and_nothing_partial_is_left(corpus: dict, first_run: dict) -> None:
    after = {name: _sha256(corpus["in"] / name) for name in corpus["input_sha256"]}
    assert after == corpus["input_sha256"]
    assert sorted(corpus["in"].rglob("*")) == corpus["input_tree"]  # nothing added there
    assert _partials(first_run["out"]) == []
    assert not (first_run["out"] / "notes.txt").exists()
    assert not (first_run["out"] / ".hidden.wav").exists()


def test_rerun_skips_verified_outputs_and_redoes_the_rest(
    corpus: dict, first_run: dict, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shutil.copytree(first_run["out"], out)  # the manifest's paths are relative: it moves too
    (out / "mono16k_00.wav").write_bytes(b"tampered")
    (out / "stereo16k_12.wav").unlink()
    untouched = out / "mono48k_17.wav"
    mtime_ns = untouched.stat().st_mtime_ns
    summary = batch.denoise_corpus(corpus["in"], out, model=corpus["model"])
    rows = {row["input"]: row for row in batch.read_manifest(summary.manifest)}
    assert len(rows) == 30
    redone = {name for name, row in rows.items() if row["status"] == "ok"}
    assert redone == {"mono16k_00.wav", "stereo16k_12.wav"}
    assert {name for name, row in rows.items() if row["status"] == "failed"} == set(CORRUPT)
    assert (summary.files_ok, summary.files_skipped, summary.files_failed) == (2, 26, 2)
    skipped = rows["mono48k_17.wav"]
    assert skipped["status"] == "skipped"
    first = {row["input"]: row for row in first_run["rows"]}["mono48k_17.wav"]
    assert skipped["duration_s"] == first["duration_s"]
    assert skipped["output_sha256"] == first["output_sha256"]
    assert untouched.stat().st_mtime_ns == mtime_ns  # not rewritten
    _assert_outputs_match_reference(corpus, out)


def test_driver_stopped_part_way_then_rerun_processes_each_file_once(
    corpus: dict, ray_session, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt, match="stopped after 10 files"):
        batch.denoise_corpus(corpus["in"], out, model=corpus["model"], _stop_after_files=10)
    journal = batch.read_manifest(out / batch.MANIFEST_NAME)
    assert len(journal) == 10  # each finished file was recorded as it finished
    done_first = {row["input"] for row in journal if row["status"] == "ok"}
    # what a worker killed mid-write leaves behind; the rerun must remove it
    stale = out / ".mono16k_05.wav.k1ll3d.partial"
    stale.write_bytes(b"half a file")

    _assert_rerun_finishes_every_file_once(corpus, out, done_first)


def _small_folder(corpus: dict, root: Path, names: list[str]) -> Path:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(corpus["in"] / name, root / name)
    return root


def test_worker_killed_mid_file_is_retried_and_leaves_no_partial(
    corpus: dict, ray_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["mono16k_01.wav", "stereo16k_13.wav", "mono48k_18.wav", "stereo48k_22.wav"]
    in_dir = _small_folder(corpus, tmp_path / "in", names)
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("SEPROC_BATCH_KILL_WORKER_ON", f"stereo16k_13.wav={marker}")
    summary = batch.denoise_corpus(in_dir, tmp_path / "out", model=corpus["model"])
    assert marker.exists()  # the worker did die on that file
    rows = {row["input"]: row for row in batch.read_manifest(summary.manifest)}
    assert {name: row["status"] for name, row in rows.items()} == dict.fromkeys(names, "ok")
    assert summary.exit_code == 0
    for name in names:
        assert (tmp_path / "out" / name).read_bytes() == (corpus["ref_dir"] / name).read_bytes()
    assert _partials(tmp_path / "out") == []


def test_file_that_kills_every_worker_is_reported_failed(
    corpus: dict, ray_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One actor: the files listed after the killer wait in it each time it dies."""
    killer, innocent = "mono16k_02.wav", ["mono48k_19.wav", "stereo16k_14.wav"]
    in_dir = _small_folder(corpus, tmp_path / "in", [killer, *innocent])
    monkeypatch.setenv("SEPROC_BATCH_KILL_WORKER_ON", killer)
    summary = batch.denoise_corpus(in_dir, tmp_path / "out", model=corpus["model"], num_workers=1)
    rows = {row["input"]: row for row in batch.read_manifest(summary.manifest)}
    assert rows[killer]["status"] == "failed"
    assert rows[killer]["error"].startswith("no result from Ray after 4 tries")
    for name in innocent:  # not blamed for the deaths they were queued behind
        assert rows[name]["status"] == "ok", rows[name]["error"]
        assert (tmp_path / "out" / name).read_bytes() == (corpus["ref_dir"] / name).read_bytes()
    assert summary.exit_code == 1
    assert not (tmp_path / "out" / killer).exists()
    assert _partials(tmp_path / "out") == []


def test_overwrite_redoes_everything(corpus: dict, ray_session, tmp_path: Path) -> None:
    in_dir = _small_folder(corpus, tmp_path / "in", ["mono16k_03.wav", "corrupt.wav"])
    out = tmp_path / "out"
    batch.denoise_corpus(in_dir, out, model=corpus["model"])
    summary = batch.denoise_corpus(in_dir, out, model=corpus["model"], overwrite=True)
    assert (summary.files_ok, summary.files_failed, summary.files_skipped) == (1, 1, 0)
    assert (out / "mono16k_03.wav").read_bytes() == (
        corpus["ref_dir"] / "mono16k_03.wav"
    ).read_bytes()


def test_empty_folder_writes_an_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    summary = batch.denoise_corpus(tmp_path / "in", tmp_path / "out")
    assert (summary.files_ok, summary.files_failed, summary.files_skipped) == (0, 0, 0)
    assert batch.read_manifest(summary.manifest) == []
    assert summary.exit_code == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_workers": 0}, r"num_workers=0 must be an integer >= 1"),
        ({"num_workers": 1.5}, r"num_workers=1.5 must be an integer >= 1"),
        ({"block_samples": 0}, r"block_samples=0 must be an integer >= 1"),
    ],
)
def test_bad_settings_are_rejected_before_ray_starts(
    tmp_path: Path, kwargs: dict, match: str
) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(ParameterError, match=match):
        batch.denoise_corpus(tmp_path / "in", tmp_path / "out", **kwargs)


def test_missing_input_folder_and_output_equal_to_input_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"Input folder .*nope does not exist"):
        batch.denoise_corpus(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(ParameterError, match=r"is the input folder; seproc never overwrites"):
        batch.denoise_corpus(tmp_path, tmp_path)


def test_standalone_call_starts_local_ray_and_shuts_it_down(corpus: dict, tmp_path: Path) -> None:
    """In a fresh process: exit code, summary line, and no Ray left initialised."""
    in_dir = _small_folder(corpus, tmp_path / "in", ["mono16k_04.wav", "corrupt.wav"])
    script = (
        "import sys, ray\n"
        "from seproc.batch import denoise_folder_ray\n"
        f"code = denoise_folder_ray({str(in_dir)!r}, {str(tmp_path / 'out')!r}, "
        f"num_workers=1, model={str(corpus['model'])!r})\n"
        "print('ray initialized after:', ray.is_initialized())\n"
        "sys.exit(code)\n"
    )
    env = dict(os.environ, RAY_ADDRESS="")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "seproc: 1 ok, 1 failed, 0 skipped; " in done.stdout
    assert "ray initialized after: False" in done.stdout
    assert (tmp_path / "out" / "mono16k_04.wav").read_bytes() == (
        corpus["ref_dir"] / "mono16k_04.wav"
    ).read_bytes()


def _run_console_script(
    in_dir: Path, out: Path, model: Path, *options: str
) -> subprocess.CompletedProcess:
    """``seproc denoise IN OUT --engine ray`` through the console script's entry point."""
    command = [
        sys.executable,
        "-c",
        "import sys; from seproc.cli import main; sys.exit(main())",
        "denoise",
        str(in_dir),
        str(out),
        "--engine",
        "ray",
        "--num-workers",
        "2",
        "--model",
        str(model),
        *options,
    ]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=dict(os.environ, RAY_ADDRESS=""),
        cwd=Path(__file__).parents[1],
        timeout=300,
    )


CONSOLE_NAMES = ["mono16k_05.wav", "stereo48k_23.wav", "sub/deeper/flac22k_24.flac", "empty.wav"]


@pytest.fixture(scope="module")
def console_run(corpus: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    cli = pytest.importorskip("seproc.cli")
    try:
        cli.build_parser().parse_args(["denoise", "in", "out", "--engine", "ray"])
    except SystemExit:
        pytest.skip("this seproc.cli has no --engine ray yet")
    base = tmp_path_factory.mktemp("console")
    in_dir = _small_folder(corpus, base / "in", CONSOLE_NAMES)
    done = _run_console_script(in_dir, base / "out", corpus["model"])
    return {"in": in_dir, "out": base / "out", "done": done}


def test_console_script_engine_ray(corpus: dict, console_run: dict) -> None:
    done, out = console_run["done"], console_run["out"]
    assert done.returncode == 1, done.stderr[-3000:]
    assert "seproc: 3 ok, 1 failed, 0 skipped; " in done.stdout
    for name in CONSOLE_NAMES[:3]:
        assert (out / name).read_bytes() == (corpus["ref_dir"] / name).read_bytes(), name
    rows = {row["input"]: row["status"] for row in batch.read_manifest(out / batch.MANIFEST_NAME)}
    assert rows == {**dict.fromkeys(CONSOLE_NAMES[:3], "ok"), "empty.wav": "failed"}


def test_console_script_rerun_with_skip_existing_resumes(corpus: dict, console_run: dict) -> None:
    done = _run_console_script(
        console_run["in"], console_run["out"], corpus["model"], "--skip-existing"
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "seproc: 0 ok, 1 failed, 3 skipped; " in done.stdout


def test_bad_model_fails_once_before_ray_starts(corpus: dict, tmp_path: Path) -> None:
    in_dir = _small_folder(corpus, tmp_path / "in", ["mono16k_06.wav"])
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match=r"broken\.onnx"):
        batch.denoise_corpus(in_dir, tmp_path / "out", model=broken)
    assert not (tmp_path / "out" / batch.MANIFEST_NAME).exists()


@pytest.mark.slow
def test_driver_killed_with_sigkill_then_rerun_processes_each_file_once(
    corpus: dict, ray_session, tmp_path: Path
) -> None:
    """A real kill -9 of the driver process part way, then a rerun.

    Slow: a second Ray instance, and it races the run (the kill must land before the
    last file), so it stays out of CI; the in-process stop above covers the logic.
    """
    out = tmp_path / "out"
    journal = out / batch.MANIFEST_NAME
    script = (
        "from seproc.batch import denoise_folder_ray\n"
        f"denoise_folder_ray({str(corpus['in'])!r}, {str(out)!r}, num_workers=2, "
        f"model={str(corpus['model'])!r})\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, RAY_ADDRESS=""),
        cwd=Path(__file__).parents[1],
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) > 8:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the run finished before it could be killed"
        driver.send_signal(signal.SIGKILL)
    finally:
        driver.wait(timeout=60)
    done_first = {row["input"] for row in batch.read_manifest(journal) if row["status"] == "ok"}
    assert 5 <= len(done_first) < 28

    _assert_rerun_finishes_every_file_once(corpus, out, done_first)


def test_only_partials_of_planned_outputs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    planned = [
        (tmp_path / "in" / "a.wav", out / "a.wav"),
        (tmp_path / "in/sub/b.v1.flac", out / "sub/b.v1.flac"),
    ]
    stale = [out / ".a.wav.x1y2z3.partial", out / "sub" / ".b.v1.flac.abc_9.partial"]
    foreign = [
        out / ".c.wav.x1y2z3.partial",
        out / "sub" / ".a.wav.q.partial",
        out / "a.wav.partial",
    ]
    for path in stale + foreign:
        path.write_bytes(b"x")
    batch._remove_partials(out, planned)
    assert [path.exists() for path in stale] == [False, False]
    assert [path.exists() for path in foreign] == [True, True, True]


def test_attempt_files_count_the_tries_whose_worker_died(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dst = tmp_path / "a.v1.wav"
    assert batch._claim_attempt(dst) == (False, tmp_path / ".a.v1.wav.try1.partial")
    (tmp_path / ".a.v1.wav.try3.partial").touch()  # left by dead tries, like try1 now
    assert batch._claim_attempt(dst) == (False, tmp_path / ".a.v1.wav.try2.partial")
    assert batch._claim_attempt(dst) == (False, tmp_path / ".a.v1.wav.try4.partial")
    assert batch._claim_attempt(dst) == (True, None)  # 4 died: the 5th try reports failure
    batch._remove_partials(tmp_path, [(tmp_path / "in.wav", dst)])
    assert _partials(tmp_path) == []

    def refuse(*args: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(batch.os, "open", refuse)  # a folder the worker cannot write
    assert batch._claim_attempt(dst) == (False, None)

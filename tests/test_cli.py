"""The ``seproc`` command, run as a real process on real files written with soundfile."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import seproc
from seproc.api import sha256_file
from seproc.cli import AUDIO_EXTENSIONS, build_parser, plan_outputs
from seproc.errors import ParameterError
from tests.model_factory import bypass_model, make_model

REPO = Path(__file__).resolve().parent.parent


def _seproc_command() -> list[str]:
    """The installed console script when it runs this checkout's code, else ``python -m``."""
    script = shutil.which("seproc")
    if script is not None:
        probe = subprocess.run(
            [sys.executable, "-c", "import seproc.cli; print(seproc.cli.__file__)"],
            capture_output=True,
            text=True,
            cwd="/",
            check=False,
        )
        if Path(probe.stdout.strip() or "/").resolve() == (REPO / "seproc" / "cli.py"):
            return [script]
    return [sys.executable, "-m", "seproc.cli"]


SEPROC = _seproc_command()


def run_seproc(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="100")
    return subprocess.run(
        [*SEPROC, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


def assert_clean_failure(result, code):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def tone(sample_rate, channels, seconds, frequency_hz=440.0, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    clean = 0.4 * np.sin(2 * np.pi * frequency_hz * t)
    return np.stack([clean + noise * rng.standard_normal(t.size) for _ in range(channels)]).T


def snapshot(folder):
    return {p.relative_to(folder): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_models")
    return {"bypass": bypass_model(folder / "bypass.onnx"), "test": make_model(folder / "m.onnx")}


# -- help and usage -----------------------------------------------------------------------


def test_help_texts_name_every_option():
    top = run_seproc("--help")
    denoise = run_seproc("denoise", "--help")
    info = run_seproc("info", "--help")
    assert (top.returncode, denoise.returncode, info.returncode) == (0, 0, 0)
    assert "denoise" in top.stdout and "info" in top.stdout
    for option in [
        "--attenuation-limit",
        "--model",
        "--block-size",
        "--subtype",
        "--overwrite",
        "--skip-existing",
        "--engine",
        "--address",
        "--num-workers",
        "exit status",
    ]:
        assert option in denoise.stdout
    assert "--json" in info.stdout
    version = run_seproc("--version")
    assert version.stdout.strip() == f"seproc {seproc.__version__}"


def test_console_script_is_declared_for_cli_main():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"seproc": "seproc.cli:main"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["denoise", "missing.wav", "out.wav"], "Input missing.wav does not exist"),
        (["denoise", "in.wav", "in.wav"], "is an input file"),
        (["denoise", "in.wav", "out.xyz"], "which soundfile cannot write"),
        (["denoise", "in.wav", "out.wav", "--attenuation-limit", "-3"], "must be a finite"),
        (["denoise", "in.wav", "out.wav", "--block-size", "0"], "must be an integer >= 1"),
        (["denoise", "in.wav", "out.wav", "--subtype", "PCM_17"], "not a soundfile subtype"),
        (["denoise", "in.wav", "out.wav", "--model", "nope.onnx"], "nope.onnx"),
        (["denoise", "in.wav", "out.wav", "--num-workers", "2"], "need --engine ray"),
        (["denoise", "in.wav", "out.wav", "--engine", "ray"], "denoises folders"),
        (["denoise"], "required: IN, OUT"),
    ],
)
def test_usage_errors_exit_2_on_one_line(tmp_path, args, message):
    sf.write(tmp_path / "in.wav", tone(16000, 1, 0.2), 16000)
    before = snapshot(tmp_path)
    result = run_seproc(*args, cwd=tmp_path)
    assert_clean_failure(result, 2)
    assert message in result.stderr
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1
    assert snapshot(tmp_path) == before  # nothing written, input untouched


# -- seproc denoise -----------------------------------------------------------------------

FORMATS = [
    # name, sample rate, channels, subtype
    ("speech.wav", 16000, 1, "PCM_16"),
    ("stereo.flac", 16000, 2, "PCM_24"),
    ("nested/deeper/hifi.wav", 48000, 2, "FLOAT"),
    ("nested/low.aiff", 8000, 1, "PCM_16"),
]


def test_folder_keeps_rate_channels_subtype_and_layout(tmp_path, models):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    signals = {}
    for name, rate, channels, subtype in FORMATS:
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        # white noise only at the model's rate: resampling would (rightly) cut its top band
        noise = 0.01 if rate == 16000 else 0.0
        signals[name] = tone(rate, channels, 1.3, seed=len(signals), noise=noise)
        sf.write(inputs / name, signals[name], rate, subtype=subtype)
    (inputs / "notes.txt").write_text("not audio")
    sf.write(inputs / ".hidden.wav", tone(16000, 1, 0.1), 16000)
    hashes = snapshot(inputs)

    result = run_seproc("denoise", inputs, outputs, "--model", models["bypass"], "-q")

    assert result.returncode == 0, result.stderr
    assert snapshot(inputs) == hashes  # inputs byte-identical
    written = sorted(str(p.relative_to(outputs)) for p in outputs.rglob("*") if p.is_file())
    assert written == sorted(name for name, *_ in FORMATS)  # no .txt, no hidden, no partials
    for name, rate, channels, subtype in FORMATS:
        before, after = sf.info(str(inputs / name)), sf.info(str(outputs / name))
        assert (after.samplerate, after.channels, after.subtype, after.frames) == (
            rate,
            channels,
            subtype,
            before.frames,
        )
        # A bypass model gives the input back, aligned: the latency is compensated.
        expected, _ = sf.read(str(inputs / name), always_2d=True)
        got, _ = sf.read(str(outputs / name), always_2d=True)
        if rate == 16000:  # the model's rate: no resampling, the identity up to rounding
            np.testing.assert_allclose(got, expected, atol=2 / 32768)
        else:  # resampled to 16 kHz and back: a 440 Hz tone passes, still aligned
            middle = slice(rate // 10, -rate // 10)
            np.testing.assert_allclose(got[middle], expected[middle], atol=0.03)


def test_subtype_option_changes_only_the_subtype(tmp_path, models):
    sf.write(tmp_path / "in.wav", tone(16000, 2, 0.5), 16000, subtype="PCM_16")
    result = run_seproc(
        "denoise", tmp_path / "in.wav", tmp_path / "out.wav", "--subtype", "float",
        "--model", models["test"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = sf.info(str(tmp_path / "out.wav"))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == ("FLOAT", 16000, 2, 8000)


def test_one_corrupt_file_fails_alone(tmp_path, models):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in ["a.wav", "c.wav"]:
        sf.write(inputs / name, tone(16000, 1, 0.5), 16000)
    (inputs / "b.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio" * 3)
    sf.write(inputs / "d.flac", tone(16000, 1, 0.5), 16000)
    truncated = (inputs / "d.flac").read_bytes()
    (inputs / "d.flac").write_bytes(truncated[: len(truncated) // 3])  # header ok, data cut
    sf.write(inputs / "e.wav", tone(4000, 1, 0.5), 4000)  # valid, but below 8 kHz
    hashes = snapshot(inputs)

    result = run_seproc("denoise", inputs, outputs, "--model", models["test"], "-q")

    assert_clean_failure(result, 1)
    failed = [line for line in result.stderr.splitlines() if line.startswith("seproc: failed:")]
    assert any("b.wav" in line for line in failed)
    assert any("d.flac" in line for line in failed)  # fails mid-read, after the header
    assert any("e.wav" in line and "sample_rate=4000" in line for line in failed)
    assert len(failed) == 3
    assert "2 of 5 files denoised, 3 failed" in result.stderr
    assert snapshot(inputs) == hashes
    names = sorted(p.name for p in outputs.rglob("*"))
    assert "a.wav" in names and "c.wav" in names and "b.wav" not in names
    assert not [n for n in names if n.startswith(".") or "partial" in n]  # no partial outputs
    for name in names:  # whatever was written is complete
        assert sf.info(str(outputs / name)).frames == 8000


def test_unwritable_output_fails_cleanly(tmp_path, models):
    sf.write(tmp_path / "in.wav", tone(16000, 1, 0.5), 16000)
    if os.geteuid() == 0:  # root ignores permission bits: write under a file instead
        (tmp_path / "a-file").write_text("x")
        target = tmp_path / "a-file" / "out"
    else:
        target = tmp_path / "read-only"
        target.mkdir()
        target.chmod(0o555)
    hashes = snapshot(tmp_path)
    try:
        result = run_seproc("denoise", tmp_path / "in.wav", target / "out.wav",
                            "--model", models["test"])  # fmt: skip
    finally:
        if os.geteuid() != 0:
            target.chmod(0o755)
    assert_clean_failure(result, 1)
    assert "seproc: failed:" in result.stderr and "cannot write" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 2  # the failure, then the summary
    assert snapshot(tmp_path) == hashes  # nothing new anywhere, input untouched


def test_existing_output_needs_overwrite(tmp_path, models):
    sf.write(tmp_path / "in.wav", tone(16000, 1, 0.5), 16000)
    (tmp_path / "out.wav").write_bytes(b"precious")
    refused = run_seproc("denoise", tmp_path / "in.wav", tmp_path / "out.wav",
                         "--model", models["test"])  # fmt: skip
    assert_clean_failure(refused, 2)
    assert "already exists; pass --overwrite" in refused.stderr
    assert (tmp_path / "out.wav").read_bytes() == b"precious"
    replaced = run_seproc("denoise", tmp_path / "in.wav", tmp_path / "out.wav",
                          "--model", models["test"], "--overwrite")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert sf.info(str(tmp_path / "out.wav")).frames == 8000
    output = (tmp_path / "out.wav").read_bytes()
    kept = run_seproc("denoise", tmp_path / "in.wav", tmp_path / "out.wav",
                      "--model", models["test"], "--skip-existing")  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert "skipping 1 existing outputs, verified" in kept.stderr
    assert (tmp_path / "out.wav").read_bytes() == output


def test_file_into_existing_folder_keeps_its_name(tmp_path, models):
    sf.write(tmp_path / "in.wav", tone(16000, 1, 0.25), 16000)
    (tmp_path / "out").mkdir()
    result = run_seproc("denoise", tmp_path / "in.wav", tmp_path / "out", "--model", models["test"])
    assert result.returncode == 0, result.stderr
    assert sf.info(str(tmp_path / "out" / "in.wav")).frames == 4000


# -- seproc info --------------------------------------------------------------------------


def test_info_reports_versions_model_latency_and_speed(models):
    import numpy
    import onnxruntime

    from seproc.denoiser import Denoiser

    result = run_seproc("info", "--model", models["test"], "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["versions"]["numpy"] == numpy.__version__
    assert report["versions"]["onnxruntime"] == onnxruntime.__version__
    assert report["versions"]["seproc"] == seproc.__version__
    assert report["model"]["version"] == "test"
    assert report["model"]["hop_length"] == 160
    assert report["model"]["state_tensors"] == {"acc": [1, 1, 161]}
    for rate in (16000, 48000):
        latency = Denoiser(models["test"], sample_rate=rate, warm_up=False).latency_samples
        assert report["latency"][f"{rate // 1000} kHz"]["samples"] == latency
        speed = report["speed"][f"{rate // 1000} kHz"]
        assert speed["real_time_factor"] > 0 and speed["audio_s"] > 0
        assert (speed["sample_rate_hz"], speed["block_samples"]) == (rate, rate // 100)
        assert (speed["channels"], speed["onnxruntime_threads"]) == (1, 1)
        assert speed["engine"] in ("blas", "onnxruntime")
        assert speed["int8_matrices"] == 0  # a float32 model
    assert report["speed"]["machine"]["cpus"] == os.cpu_count()

    text = run_seproc("info", "--model", models["test"])
    assert text.returncode == 0, text.stderr
    for heading in ["versions", "model", "latency", "real-time factor", "48 kHz"]:
        assert heading in text.stdout
    assert re.search(
        r"48 kHz   block 480 samples \(10 ms\), mono, (blas|onnxruntime) engine, 1 thread",
        text.stdout,
    )
    assert f"{os.cpu_count()} CPUs, load average" in text.stdout


def test_info_without_a_model_says_why(tmp_path):
    result = run_seproc("info", "--model", tmp_path / "missing.onnx")
    assert_clean_failure(result, 2)
    assert "numpy" in result.stdout and "missing.onnx" in result.stdout


# -- plan_outputs, in process ---------------------------------------------------------------


def test_plan_outputs_mirrors_folders_and_skips_non_audio(tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub" / ".cache").mkdir(parents=True)
    for name in ["b.wav", "a.FLAC", "sub/c.ogg", "sub/.d.wav", "sub/.cache/e.wav", "sub/f.txt"]:
        (inputs / name).write_bytes(b"")
    pairs = plan_outputs(inputs, tmp_path / "out")
    assert [(s.relative_to(inputs).as_posix(), d.relative_to(tmp_path).as_posix())
            for s, d in pairs] == [
        ("a.FLAC", "out/a.FLAC"),
        ("b.wav", "out/b.wav"),
        ("sub/c.ogg", "out/sub/c.ogg"),
    ]  # fmt: skip


def test_plan_outputs_ignores_an_output_folder_inside_the_input(tmp_path):
    (tmp_path / "clean").mkdir()
    (tmp_path / "x.wav").write_bytes(b"")
    (tmp_path / "clean" / "x.wav").write_bytes(b"")
    pairs = plan_outputs(tmp_path, tmp_path / "clean", overwrite=True)
    assert pairs == [(tmp_path / "x.wav", tmp_path / "clean" / "x.wav")]


def test_plan_outputs_errors(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(ParameterError, match="is the input folder"):
        plan_outputs(tmp_path, tmp_path)
    with pytest.raises(ParameterError, match=r"is a folder but output .* is a file"):
        plan_outputs(tmp_path, tmp_path / "x.wav")
    with pytest.raises(ParameterError, match="is an input file"):
        plan_outputs(tmp_path / "x.wav", tmp_path / "x.wav", overwrite=True)
    (tmp_path / "y.wav").write_bytes(b"")
    with pytest.raises(ParameterError, match=r"y\.wav already exists; pass --overwrite"):
        plan_outputs(tmp_path / "x.wav", tmp_path / "y.wav")
    with pytest.raises(ParameterError, match="does not exist"):
        plan_outputs(tmp_path / "nope", tmp_path / "out")


def test_audio_extensions_cover_what_soundfile_reads():
    for name in sf.available_formats():
        assert f".{name.lower()}" in AUDIO_EXTENSIONS
    assert {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"} <= AUDIO_EXTENSIONS


def test_parser_defaults_match_process_file():
    import inspect

    from seproc.api import process_file

    args = build_parser().parse_args(["denoise", "a.wav", "b.wav"])
    defaults = inspect.signature(process_file).parameters
    assert args.attenuation_limit == defaults["attenuation_limit_db"].default
    assert args.subtype == defaults["subtype"].default
    assert args.model == defaults["model"].default
    assert (args.engine, args.overwrite) == ("local", False)


def test_ray_engine_without_ray_says_what_to_install(tmp_path, monkeypatch, capsys):
    from seproc.cli import main

    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in" / "a.wav", tone(16000, 1, 0.1), 16000)
    monkeypatch.setitem(sys.modules, "seproc.batch", None)  # import fails as without Ray
    status = main(["denoise", str(tmp_path / "in"), str(tmp_path / "out"), "--engine", "ray"])
    assert status == 2
    assert "pip install 'seproc[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_denoise_works_without_tqdm(models, tmp_path, monkeypatch, capsys):
    """tqdm is an optional extra (`seproc[progress]`): without it the bars are simply absent."""
    import sys

    from seproc import cli

    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes `from tqdm import tqdm` fail
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, tone(16000, 1, 0.5), 16000)
    (folder / "broken.wav").write_text("not audio")
    status = cli.main(
        ["denoise", str(folder), str(tmp_path / "out"), "--model", str(models["bypass"])]
    )
    assert status == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "b.wav"]
    assert "broken.wav" in capsys.readouterr().err


# -- the run's summary line -------------------------------------------------------------------


def test_denoise_prints_one_summary_line_unless_quiet(models, tmp_path, capsys):
    """Files done/skipped/failed, audio duration, wall time, real-time factor, output."""
    from seproc import cli

    folder = tmp_path / "in"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(16000, 1, 1.5), 16000)
    sf.write(folder / "b.wav", tone(16000, 2, 0.5), 16000)
    out = tmp_path / "out"
    model = ["--model", str(models["bypass"])]

    assert cli.main(["denoise", str(folder), str(out), *model]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = [text for text in captured.err.splitlines() if text.startswith("seproc")]  # no bars
    match = re.fullmatch(
        r"seproc: 2 of 2 files denoised, 0 failed; (\S+) s of audio in (\S+) s "
        r"\(real-time factor (\S+)\); outputs in (.+)",
        line,
    )
    assert match, line
    audio_s, wall_s, factor = (float(match[i]) for i in (1, 2, 3))
    assert audio_s == pytest.approx(2.0)
    assert factor == pytest.approx(wall_s / audio_s, rel=0.01)
    assert match[4] == str(out)

    (out / "b.wav").unlink()  # resume: a.wav is verified and skipped, b.wav redone
    assert cli.main(["denoise", str(folder), str(out), *model, "--skip-existing"]) == 0
    lines = [text for text in capsys.readouterr().err.splitlines() if text.startswith("seproc")]
    assert len(lines) == 2
    assert lines[0].startswith("seproc: skipping 1 existing outputs, verified")
    assert lines[1].startswith("seproc: 1 of 2 files denoised, 0 failed, 1 skipped; 0.5 s of audio")

    assert cli.main(["denoise", str(folder), str(out), *model, "--overwrite", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_summary_line_formats_long_durations():
    from seproc.cli import RunSummary

    line = RunSummary(
        planned=3, done=2, failed=0, audio_s=7384.0, wall_s=95.0, output="out/"
    ).line()
    assert line == (
        "seproc: 2 of 3 files denoised, 0 failed, 1 skipped; 2 h 03 min of audio in "
        "1 min 35 s (real-time factor 0.0129); outputs in out/"
    )

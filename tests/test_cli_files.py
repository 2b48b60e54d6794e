"""Awkward input files through ``seproc denoise``: processed correctly or reported on one line.

Every case runs through ``seproc.cli.main`` in this process (tests/test_cli.py runs the
real console script). A bypass model at the files' own 16 kHz makes "processed correctly"
checkable: the output must equal the readable input up to the subtype's quantisation.
Inputs are never modified and no partial output is ever left behind.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seproc.api import sha256_file
from seproc.cli import main
from seproc.denoiser import Denoiser
from tests.model_factory import bypass_model

RATE = 16000

# name -> (channels, subtype, frames, one quantisation step of the subtype)
GOOD = {
    "six-channels.wav": (6, "PCM_16", 8000, 1 / 32768),
    "unsigned-8-bit.wav": (1, "PCM_U8", 8000, 1 / 128),
    "signed-8-bit.aiff": (2, "PCM_S8", 8000, 1 / 128),
    "mu-law.wav": (1, "ULAW", 8000, 1 / 32),  # 8-bit companded: coarse near full scale
    "24-bit.wav": (2, "PCM_24", 8000, 1 / 2**23),
    "float.wav": (1, "FLOAT", 8000, 1e-6),
    "double.wav": (2, "DOUBLE", 8000, 1e-6),
    "no-frames.wav": (1, "PCM_16", 0, 1 / 32768),
}
BAD = {
    "zero-bytes.wav": "Format not recognised",
    "text.wav": "Format not recognised",
    "cut-in-header.wav": "No 'data' chunk marker",
}


def write_good(folder: Path, rng: np.random.Generator) -> None:
    for name, (channels, subtype, frames, _) in GOOD.items():
        signal = np.clip(0.3 * rng.standard_normal((frames, channels)), -0.99, 0.99)
        sf.write(folder / name, signal, RATE, subtype=subtype)


def write_bad(folder: Path) -> None:
    (folder / "zero-bytes.wav").write_bytes(b"")
    (folder / "text.wav").write_text("this is not audio, only its name says so\n" * 10)
    whole = io.BytesIO()
    sf.write(whole, np.zeros((100, 1)), RATE, format="WAV", subtype="PCM_16")
    (folder / "cut-in-header.wav").write_bytes(whole.getvalue()[:30])


def write_cut_in_data(folder: Path, rng: np.random.Generator) -> None:
    """A WAV whose header promises 16000 frames but whose data stops mid-frame."""
    whole = io.BytesIO()
    sf.write(whole, 0.3 * rng.standard_normal((RATE, 2)).clip(-1, 1), RATE, format="WAV")
    (folder / "cut-in-data.wav").write_bytes(whole.getvalue()[: 44 + 4 * 5000 + 3])


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in folder.rglob("*") if p.is_file()}


def run_cli(*args: object) -> tuple[int, list[str]]:
    """Run ``seproc`` in this process; return its exit status and its stderr lines."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in args])
    return status, stderr.getvalue().splitlines()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return bypass_model(tmp_path_factory.mktemp("cli-files") / "bypass.onnx")


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, model):
    """One ``seproc denoise IN/ OUT/`` over every awkward file at once."""
    root = tmp_path_factory.mktemp("folder-run")
    inputs, outputs = root / "in", root / "out"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    write_good(inputs, rng)
    write_bad(inputs)
    write_cut_in_data(inputs, rng)
    before = snapshot(inputs)
    status, lines = run_cli(
        "denoise", inputs, outputs, "--model", model, "--attenuation-limit", "0", "-q"
    )
    return {
        "inputs": inputs,
        "outputs": outputs,
        "status": status,
        "lines": lines,
        "before": before,
        "after": snapshot(inputs),
    }


def test_the_run_reports_each_failure_once_and_a_summary(folder_run):
    assert folder_run["status"] == 1
    failed = [line for line in folder_run["lines"] if line.startswith("seproc: failed: ")]
    assert len(failed) == len(BAD)
    for name, reason in BAD.items():
        [line] = [line for line in failed if name in line]
        assert f"Cannot read {folder_run['inputs'] / name}" in line and reason in line
    total = len(GOOD) + len(BAD) + 1
    assert re.fullmatch(
        rf"seproc: {total - len(BAD)} of {total} files denoised, {len(BAD)} failed; "
        rf"\S+ s of audio in \S+ s \(real-time factor \S+\); outputs in "
        + re.escape(str(folder_run["outputs"])),
        folder_run["lines"][-1],
    )
    assert len(folder_run["lines"]) == len(BAD) + 1
    assert not any("Traceback" in line for line in folder_run["lines"])


def test_inputs_are_untouched_and_no_partial_output_is_left(folder_run):
    assert folder_run["after"] == folder_run["before"]
    written = sorted(p.name for p in folder_run["outputs"].rglob("*"))
    assert written == sorted([*GOOD, "cut-in-data.wav"])


@pytest.mark.parametrize("name", list(GOOD))
def test_each_format_is_kept_and_the_audio_passes_through(folder_run, name):
    channels, subtype, frames, step = GOOD[name]
    source, target = folder_run["inputs"] / name, folder_run["outputs"] / name
    info_in, info_out = sf.info(str(source)), sf.info(str(target))
    assert (info_out.format, info_out.subtype) == (info_in.format, subtype)
    assert (info_out.samplerate, info_out.channels, info_out.frames) == (RATE, channels, frames)
    expected, _ = sf.read(str(source), always_2d=True)
    got, _ = sf.read(str(target), always_2d=True)
    np.testing.assert_allclose(got, expected, rtol=0, atol=step + 1e-6)


def test_a_wav_cut_in_its_data_is_denoised_up_to_the_cut(folder_run):
    source = folder_run["inputs"] / "cut-in-data.wav"
    target = folder_run["outputs"] / "cut-in-data.wav"
    readable, _ = sf.read(str(source), always_2d=True)
    assert readable.shape == (5000, 2)  # libsndfile reads the whole frames that are there
    got, _ = sf.read(str(target), always_2d=True)
    np.testing.assert_allclose(got, readable, rtol=0, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("zero-bytes.wav", b"", "Format not recognised"),
        ("text.wav", b"not audio\n" * 50, "Format not recognised"),
        ("movie.m4a", struct.pack(">I", 24) + b"ftypM4A " + bytes(212), "Format not recognised"),
    ],
    ids=["zero-bytes", "text", "m4a"],
)
def test_one_unreadable_file_gives_one_line_and_no_output(tmp_path, model, name, content, reason):
    source = tmp_path / name
    source.write_bytes(content)
    status, lines = run_cli("denoise", source, tmp_path / "out.wav", "--model", model)
    assert status == 1
    assert len(lines) == 2
    assert lines[0] == f"seproc: failed: Cannot read {source}: {reason}."
    assert lines[1].startswith("seproc: 0 of 1 files denoised, 1 failed; 0 s of audio in ")
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert source.read_bytes() == content


def test_a_wav_holding_mpeg_data_fails_on_one_seproc_line(tmp_path, model):
    """Format tag 0x0055 (MPEG layer 3 in a WAV): libsndfile hands it to mpg123, which
    prints its own "Note:" lines on the C stderr; seproc's report is still one line."""
    fmt = struct.pack("<HHIIHHH", 0x0055, 1, RATE, 2000, 1, 0, 12)
    fmt += struct.pack("<HIHHH", 1, 2, 104, 1, 1393)
    body = b"WAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", 104)
    source = tmp_path / "mpeg.wav"
    source.write_bytes(b"RIFF" + struct.pack("<I", len(body) + 104) + body + bytes(104))
    status, lines = run_cli("denoise", source, tmp_path / "out.wav", "--model", model)
    assert status == 1
    assert [line for line in lines if line.startswith("seproc:")] == [
        line for line in lines if not line.startswith("Note:")
    ]
    assert len(lines) == 2 and lines[0].startswith(f"seproc: failed: Cannot read {source}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mpeg.wav"]


def test_a_format_the_output_cannot_hold_falls_back_to_its_default(tmp_path, model):
    """FLOAT into FLAC: FLAC has no float subtype, so soundfile's default (PCM_16) is used."""
    signal = np.clip(0.3 * np.random.default_rng(1).standard_normal((4000, 1)), -1, 1)
    sf.write(tmp_path / "in.wav", signal, RATE, subtype="FLOAT")
    status, lines = run_cli(
        "denoise", tmp_path / "in.wav", tmp_path / "out.flac", "--model", model,
        "--attenuation-limit", "0", "-q",
    )  # fmt: skip
    assert (status, lines) == (0, [])
    info = sf.info(str(tmp_path / "out.flac"))
    assert (info.format, info.subtype, info.frames) == ("FLAC", "PCM_16", 4000)
    got, _ = sf.read(str(tmp_path / "out.flac"), always_2d=True)
    np.testing.assert_allclose(got, signal, rtol=0, atol=1 / 32768 + 1e-6)


def test_an_interrupt_mid_file_leaves_no_output_and_exits_130(tmp_path, model, monkeypatch):
    sf.write(tmp_path / "in.wav", np.zeros((RATE, 1)), RATE)
    calls = []
    process = Denoiser.process

    def interrupted(self, block, out=None):
        calls.append(block.shape[-1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return process(self, block, out)

    monkeypatch.setattr(Denoiser, "process", interrupted)
    status, lines = run_cli(
        "denoise", tmp_path / "in.wav", tmp_path / "out.wav", "--model", model,
        "--block-size", "1000", "-q",
    )  # fmt: skip
    assert (status, lines) == (130, ["seproc: interrupted"])
    assert len(calls) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]


def test_a_float_file_with_nan_mid_way_fails_on_one_line_without_partial(tmp_path, model):
    """The NaN is met after several blocks were already written to the temporary file."""
    signal = np.zeros((RATE * 2, 1))
    signal[RATE + 123] = np.nan
    source = tmp_path / "nan.wav"
    sf.write(source, signal, RATE, subtype="FLOAT")
    before = source.read_bytes()
    status, lines = run_cli(
        "denoise", source, tmp_path / "out.wav", "--model", model, "--block-size", "4096",
    )  # fmt: skip
    assert status == 1 and len(lines) == 2
    assert lines[0].startswith(f"seproc: failed: {source}") and "NaN or Inf" in lines[0]
    # The line names the file and where: the block of 4096 frames that holds the NaN.
    assert "after frame 12288" in lines[0] and "Parameter block" not in lines[0]
    assert lines[1].startswith("seproc: 0 of 1 files denoised, 1 failed; 0 s of audio in ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.wav"]
    assert source.read_bytes() == before

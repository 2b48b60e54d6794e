"""The examples and scripts run as their users run them, on the bundled example file."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seproc import errors as seproc_errors
from seproc.denoiser import Denoiser
from tests.model_factory import bypass_model, make_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "noisy_speech.wav"


def run_python(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("example_models")
    return {"bypass": bypass_model(folder / "bypass.onnx"), "test": make_model(folder / "m.onnx")}


def test_bundled_example_is_small_real_pcm_audio():
    info = sf.info(str(EXAMPLE))
    assert EXAMPLE.stat().st_size <= 400_000
    assert info.format in {"WAV", "FLAC"} and info.subtype == "PCM_16"
    assert 3.0 <= info.duration <= 10.0
    audio, _ = sf.read(str(EXAMPLE))
    assert 0.01 < np.sqrt(np.mean(audio**2)) and np.max(np.abs(audio)) < 1.0


def test_readme_first_command_uses_the_bundled_example():
    readme = (REPO / "README.md").read_text()
    command = "pip install . && seproc denoise examples/noisy_speech.wav out/clean.wav"
    assert command in readme
    assert f"\n{command}\n" in (REPO / ".ci" / "run").read_text()  # CI runs it verbatim
    assert "/out/" in (REPO / ".gitignore").read_text().splitlines()
    assert "docs/images/before_after.png" in readme
    assert (REPO / "docs" / "images" / "before_after.png").is_file()


def test_pedalboard_chain_example_runs(tmp_path, models):
    pytest.importorskip("pedalboard")
    out = tmp_path / "clean.wav"
    result = run_python(
        REPO / "examples" / "pedalboard_chain.py", EXAMPLE, out, "--model", models["test"]
    )
    assert result.returncode == 0, result.stderr
    before, after = sf.info(str(EXAMPLE)), sf.info(str(out))
    assert (after.samplerate, after.channels, after.frames) == (
        before.samplerate,
        before.channels,
        before.frames,
    )
    latency_ms = Denoiser(models["test"], sample_rate=before.samplerate).latency_ms
    assert f"denoiser latency {latency_ms:.1f} ms, compensated" in result.stdout
    audio, _ = sf.read(str(out))
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) > 0.01


def test_host_loop_example_reports_latency_and_lines_up(models):
    result = run_python(REPO / "examples" / "host_loop.py", "--model", models["bypass"])
    assert result.returncode == 0, result.stderr
    latency = Denoiser(models["bypass"], sample_rate=48000, channels=2).latency_samples
    assert f"plugin reports latency: {latency} samples" in result.stdout
    assert "best lag 0 samples" in result.stdout


def test_microphone_example_documents_itself():
    result = run_python(REPO / "examples" / "microphone.py", "--help")
    assert result.returncode == 0, result.stderr
    for option in ["--device", "--list", "--attenuation-limit", "--block-ms"]:
        assert option in result.stdout


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_make_example_writes_noisy_speech(tmp_path):
    pytest.importorskip("scipy")
    out = tmp_path / "noisy.wav"
    result = run_python(REPO / "examples" / "make_example.py", out)
    assert result.returncode == 0, result.stderr
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 3.0 < info.duration < 10.0


def test_readme_figure_script_draws_a_png(tmp_path, models):
    pytest.importorskip("matplotlib")
    out = tmp_path / "figure.png"
    result = run_python(
        REPO / "scripts" / "make_readme_figure.py", "--model", models["test"], "--out", out
    )
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    """Every ```python block of the README runs as written (with the bundled model)."""
    pytest.importorskip("pedalboard")
    from seproc.model import default_model_path

    try:
        default_model_path()
    except seproc_errors.ModelError:
        pytest.skip("the bundled model is not in this checkout")
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    (tmp_path / "examples").mkdir()
    shutil.copy(EXAMPLE, tmp_path / "examples" / "noisy_speech.wav")
    shutil.copy(EXAMPLE, tmp_path / "noisy.wav")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert sf.info("clean.wav").frames == sf.info(str(EXAMPLE)).frames

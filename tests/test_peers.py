"""Every peer reduces noise and returns an aligned, same-length, finite signal."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate, correlation_lags

from tests.eval_fixtures import SAMPLE_RATE_HZ, mix, speech_like, white_noise
from tests.model_factory import bypass_model, make_model, model_with_frames, reference_gain
from training import metrics, peers

EXTERNAL_PEERS = ("noisereduce", "rnnoise", "nsnet2", "deepfilternet3")
SHIPPED_MODEL = Path(__file__).resolve().parent.parent / "models" / "seproc-default.onnx"


def lag_samples(output: np.ndarray, reference: np.ndarray) -> int:
    """The lag of ``output`` behind ``reference`` at the cross-correlation peak."""
    corr = correlate(output.astype(np.float64), reference.astype(np.float64), mode="full")
    lags = correlation_lags(output.size, reference.size, mode="full")
    return int(lags[np.argmax(corr)])


@pytest.fixture(scope="module")
def signals() -> tuple[np.ndarray, np.ndarray]:
    clean = speech_like(3.0, seed=2)
    return clean, mix(clean, white_noise(clean.size, seed=5), 5.0)


@pytest.fixture(scope="module", params=EXTERNAL_PEERS)
def peer(request) -> peers.Peer:
    return peers.make_peer(request.param)


def test_lag_helper_detects_a_shift(signals):
    clean, _ = signals
    assert lag_samples(clean, clean) == 0
    assert lag_samples(np.concatenate([np.zeros(3, np.float32), clean[:-3]]), clean) == 3
    assert lag_samples(np.concatenate([clean[2:], np.zeros(2, np.float32)]), clean) == -2


def test_peer_output_is_aligned_same_length_and_finite(peer, signals):
    clean, noisy = signals
    output = peer.denoise(noisy)
    assert output.shape == noisy.shape
    assert output.dtype == np.float32
    assert np.all(np.isfinite(output))
    assert lag_samples(output, clean) == 0


def test_peer_reduces_noise(peer, signals):
    clean, noisy = signals
    output = peer.denoise(noisy)
    assert metrics.si_sdr(clean, output) > metrics.si_sdr(clean, noisy) + 2.0
    noise_only = 0.03 * white_noise(noisy.size, seed=8)
    residual = peer.denoise(noise_only)
    assert np.mean(residual[4000:] ** 2) < 0.5 * np.mean(noise_only[4000:] ** 2)


@pytest.mark.parametrize("n_samples", [0, 1, 159, 1009, 16001])
def test_peer_keeps_any_length(peer, n_samples):
    audio = 0.1 * white_noise(n_samples, seed=n_samples)
    output = peer.denoise(audio)
    assert output.shape == (n_samples,)
    assert np.all(np.isfinite(output))


def test_deepfilternet3_prepared_runtime_gives_the_same_output(signals):
    _, noisy = signals
    dfn = peers.DeepFilterNet3()
    first = dfn.denoise(noisy)
    dfn.prepare()
    np.testing.assert_array_equal(dfn.denoise(noisy), first)


def test_noisy_is_the_identity(signals):
    _, noisy = signals
    output = peers.Noisy().denoise(noisy)
    np.testing.assert_array_equal(output, noisy)
    assert output is not noisy


def test_peers_reject_multichannel_input():
    with pytest.raises(ValueError, match=r"must be 1-D \(samples,\)"):
        peers.Noisy().denoise(np.zeros((2, 100)))


def test_rnnoise_delay_is_two_frames_at_48k():
    """Measure the C library's own delay on a 48 kHz signal, without any compensation."""
    import ctypes

    from pyrnnoise import rnnoise

    x = speech_like(2.0, seed=6, sample_rate=48000) * 32768.0
    frame = rnnoise.FRAME_SIZE
    padded = np.zeros(-(-(x.size + 2 * frame) // frame) * frame, np.float32)
    padded[: x.size] = x
    out = np.empty_like(padded)
    buffer = np.zeros(frame, np.float32)
    pointer = buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    state = rnnoise.lib.rnnoise_create(None)
    for start in range(0, padded.size, frame):
        buffer[:] = padded[start : start + frame]
        rnnoise.lib.rnnoise_process_frame(state, pointer, pointer)
        out[start : start + frame] = buffer
    rnnoise.lib.rnnoise_destroy(state)
    # the input high-pass filter's phase moves the peak by a sample or two
    assert abs(lag_samples(out, padded) - peers.RNNoise.delay_samples_48k) <= 3


def test_deepfilternet3_keeps_the_tail():
    """Speech running up to the last sample must come back in the last 30 ms.

    The runtime mutes its delayed output when silence follows the clip; the padding
    in ``peers.DeepFilterNet3`` must prevent that (with zeros this fails: 0.001 RMS).
    """
    clean = speech_like(3.0, seed=1)[: int(1.14 * SAMPLE_RATE_HZ)]  # cut mid-syllable
    output = peers.DeepFilterNet3().denoise(clean)
    tail = slice(-480, None)
    assert np.sqrt(np.mean(clean[tail] ** 2)) > 0.1
    assert np.sqrt(np.mean(output[tail] ** 2)) > 0.3 * np.sqrt(np.mean(clean[tail] ** 2))


def _nsnet2_featurelib(monkeypatch):
    """Import the wheel's featurelib.py, which needs two windows scipy moved."""
    import scipy.signal
    import scipy.signal.windows

    monkeypatch.setattr(scipy.signal, "blackman", scipy.signal.windows.blackman, raising=False)
    monkeypatch.setattr(
        scipy.signal, "blackmanharris", scipy.signal.windows.blackmanharris, raising=False
    )
    path = peers.nsnet2_model_path().parent / "featurelib.py"
    spec = importlib.util.spec_from_file_location("nsnet2_featurelib_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nsnet2_matches_the_packages_own_signal_path(monkeypatch, signals):
    """Compose featurelib the way NSnet2Enhancer.__call__ does at 16 kHz."""
    import onnxruntime as ort

    featurelib = _nsnet2_featurelib(monkeypatch)
    _, noisy = signals
    cfg = {"winlen": 0.02, "hopfrac": 0.5, "fs": 16000, "mingain": -80, "feattype": "LogPow"}
    cfg["nfft"] = 320
    spec = featurelib.calcSpec(noisy.astype(np.float64), cfg)
    feature = featurelib.calcFeat(spec, cfg)
    session = ort.InferenceSession(str(peers.nsnet2_model_path()))
    gain = session.run(None, {"input": feature.T[None].astype(np.float32)})[0][0].T
    reference = featurelib.spec2sig(spec * np.clip(gain, 10 ** (-80 / 20), 1.0), cfg)

    nsnet2 = peers.NSNet2()
    np.testing.assert_allclose(nsnet2.spectrum(noisy), spec.T, rtol=0, atol=1e-12)
    np.testing.assert_allclose(nsnet2.features(nsnet2.spectrum(noisy)), feature.T, atol=1e-12)
    output = nsnet2.denoise(noisy)
    np.testing.assert_allclose(output, reference[: noisy.size], rtol=0, atol=1e-6)


def _stft_reference(audio: np.ndarray, n_fft: int = 320, hop: int = 160) -> np.ndarray:
    """librosa's STFT of the signal preceded by ``n_fft - hop`` zeros, frames first."""
    import librosa

    window = np.sqrt(librosa.filters.get_window("hann", n_fft, fftbins=True))
    n_frames = -(-audio.size // hop) + 1
    padded = np.zeros((n_frames - 1) * hop + n_fft)
    padded[n_fft - hop : n_fft - hop + audio.size] = audio
    return librosa.stft(padded, n_fft=n_fft, hop_length=hop, window=window, center=False).T


def test_seproc_reconstructs_through_a_bypass_model(tmp_path, signals):
    _, noisy = signals
    seproc = peers.Seproc(bypass_model(tmp_path / "bypass.onnx"))
    output = seproc.denoise(noisy)
    assert output.dtype == np.float32
    np.testing.assert_allclose(output, noisy, rtol=0, atol=1e-6)
    odd = noisy[:1009]
    np.testing.assert_allclose(seproc.denoise(odd), odd, rtol=0, atol=1e-6)
    assert seproc.denoise(np.zeros(0, np.float32)).shape == (0,)


def test_seproc_applies_the_models_gain_to_the_right_frames(tmp_path, signals):
    """The runtime against librosa's STFT and a numpy overlap-add (models/FORMAT.md)."""
    pytest.importorskip("librosa")
    _, noisy = signals
    path = make_model(tmp_path / "stateful.onnx", scale=0.01)
    seproc = peers.Seproc(path)
    spec = _stft_reference(noisy.astype(np.float64))
    features = (10 * np.log10(np.maximum(np.abs(spec) ** 2, 1e-10)) + 40.0) / 20.0
    gain = reference_gain(features)
    # overlap-add of the gained frames: w^2 of the periodic Hann sums to one at hop n/2
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320))
    frames = np.fft.irfft(spec * gain, n=320, axis=-1) * window
    signal = np.zeros((frames.shape[0] - 1) * 160 + 320)
    for k, frame in enumerate(frames):
        signal[k * 160 : k * 160 + 320] += frame
    expected = signal[160 : 160 + noisy.size]
    # the gain is not a constant: a frame off would show
    assert np.ptp(gain[20:]) > 0.1
    np.testing.assert_allclose(seproc.denoise(noisy), expected, rtol=0, atol=1e-6)


def test_seproc_noise_subtraction(tmp_path, signals):
    _, noisy = signals
    path = make_model(tmp_path / "seed.onnx", formulation="noise_subtraction", noise_db_value=-200)
    seproc = peers.Seproc(path, name="seproc-seed")
    assert (seproc.name, seproc.formulation) == ("seproc-seed", "noise_subtraction")
    np.testing.assert_allclose(seproc.denoise(noisy), noisy, rtol=0, atol=1e-5)
    loud = make_model(tmp_path / "loud.onnx", formulation="noise_subtraction", noise_db_value=60)
    silent = peers.Seproc(loud).denoise(noisy)
    assert np.max(np.abs(silent)) == 0.0


@pytest.mark.parametrize("sample_rate_hz", [8000, 24000])
def test_seproc_runs_a_model_of_another_rate_at_16k(tmp_path, signals, sample_rate_hz):
    """The runtime resamples (24 kHz) or frames at 16 kHz (8 kHz) inside, aligned."""
    clean, _ = signals
    path = model_with_frames(
        tmp_path / f"bypass{sample_rate_hz}.onnx",
        sample_rate_hz // 50,  # 20 ms frames, 10 ms hop
        sample_rate_hz,
        scale=0.0,
        bias=100.0,
    )
    seproc = peers.Seproc(path)
    assert seproc.sample_rate_hz == sample_rate_hz
    output = seproc.denoise(clean)
    assert output.shape == clean.shape and output.dtype == np.float32
    assert lag_samples(output, clean) == 0
    # a bypass: the signal comes back (through the resamplers' passband at 24 kHz)
    assert metrics.si_sdr(clean, output) > 30.0


@pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="models/seproc-default.onnx not shipped")
def test_shipped_seproc_model_reduces_noise(signals):
    clean, noisy = signals
    output = peers.make_peer("seproc", model=SHIPPED_MODEL).denoise(noisy)
    assert output.shape == noisy.shape
    assert np.all(np.isfinite(output))
    assert lag_samples(output, clean) == 0
    assert metrics.si_sdr(clean, output) > metrics.si_sdr(clean, noisy) + 2.0


def test_make_peer_errors():
    with pytest.raises(ValueError, match="unknown system 'rnnoise2'; choose from noisy"):
        peers.make_peer("rnnoise2")
    with pytest.raises(ValueError, match="needs a model file: pass --model PATH"):
        peers.make_peer("seproc")
    with pytest.raises(ValueError, match="needs a model file: pass --seed-model PATH"):
        peers.make_peer("seproc-seed", model="x.onnx")
    assert [peers.make_peer(n).name for n in EXTERNAL_PEERS] == list(EXTERNAL_PEERS)


def test_real_time_factor_runs_on_one_core_and_restores_affinity():
    before = os.sched_getaffinity(0)
    audio = 0.1 * white_noise(SAMPLE_RATE_HZ)

    class Probe(peers.Peer):
        name = "probe"

        def __init__(self) -> None:
            self.cores: list[int] = []

        def denoise(self, audio_16k: np.ndarray) -> np.ndarray:
            self.cores.append(len(os.sched_getaffinity(0)))
            return audio_16k

    probe = Probe()
    rtf = peers.real_time_factor(probe, audio, repeats=2)
    assert probe.cores == [1, 1, 1]  # warm-up plus two timed runs, all on one core
    assert os.sched_getaffinity(0) == before
    assert 0.0 <= rtf < 1.0
    assert np.isfinite(peers.real_time_factor(peers.NSNet2(), audio))
    with pytest.raises(ValueError, match="empty"):
        peers.real_time_factor(probe, np.zeros(0, np.float32))

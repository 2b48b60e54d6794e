"""The pitch (comb) filter of format-2 mask models: kernels, streaming, Denoiser, metadata."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from seproc import Denoiser, _kernels
from seproc.errors import ModelError
from seproc.model import OnnxModel, default_model_path
from seproc.pitch import PitchFilter, band_edges, lag_scratch_samples
from seproc.stft import STFT
from tests.model_factory import make_model
from tests.streaming import peak_bytes_into_out, stream
from training.postfilter import set_postfilter

STRENGTH = 0.7
RATE = 16000


def voiced(samples, f0_hz=150.0, rate=RATE, noise=0.05, seed=0, channels=1):
    """A harmonic voice-like tone (10 harmonics, 1/k) in white noise, switched on and off."""
    t = np.arange(samples) / rate
    tone = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 11))
    tone = tone * (np.sin(2 * np.pi * 1.5 * t) > -0.3)
    rng = np.random.default_rng(seed)
    return (0.2 * tone + noise * rng.standard_normal((channels, samples))).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pitch_models")
    raw = folder / "raw.onnx"
    set_postfilter(default_model_path(), raw, None, None)
    release = folder / "release.onnx"
    set_postfilter(raw, release, 250.0, 1.2)
    pitch = folder / "pitch.onnx"
    set_postfilter(raw, pitch, 250.0, 1.2, STRENGTH)
    return {"raw": raw, "release": release, "pitch": pitch}


def stft16() -> STFT:
    return STFT(n_fft=320, hop_length=160, win_length=320, window="sqrt_hann", dtype=np.float32)


# -- the period search ---------------------------------------------------------------------


@pytest.mark.parametrize("f0_hz", [80.0, 110.0, 150.0, 210.0, 290.0, 400.0])
def test_the_period_of_a_harmonic_tone_is_found_within_one_sample(f0_hz):
    """Not a multiple of the period (the doubling check), and refined at the full rate."""
    x = voiced(4000, f0_hz, noise=0.01)[0]
    scratch = np.zeros(lag_scratch_samples(320, 320, 4), np.float32)
    lag = _kernels.pitch_lag(x, 3000, 320, 32, 320, 4, scratch)
    assert abs(lag - RATE / f0_hz) <= 1.0


def test_the_period_search_agrees_with_a_full_search_on_scipys_correlation():
    """On a tone in noise, against every lag's normalised correlation (scipy): the lag
    found correlates within 0.85 of the best lag, which is a whole multiple of it."""
    x = voiced(6000, 180.0, noise=0.05, seed=3)[0].astype(np.float64)
    scratch = np.zeros(lag_scratch_samples(320, 320, 4), np.float32)
    for end in range(1000, 6000, 160):
        segment = x[end - 320 : end]
        past = x[end - 320 - 320 : end]
        corr = scipy.signal.correlate(past, segment, mode="valid")[::-1]  # lag 0..320
        energy = np.array([np.sum(x[end - 320 - k : end - k] ** 2) for k in range(321)])
        norm = corr / np.sqrt(energy * np.sum(segment**2) + 1e-20)
        best = 32 + int(np.argmax(norm[32:]))
        lag = _kernels.pitch_lag(x.astype(np.float32), end, 320, 32, 320, 4, scratch)
        if np.sum(segment**2) > 1.0:  # voiced frames (the tone is on)
            assert norm[lag] >= 0.85 * norm[best]
            assert abs(best / round(best / lag) - lag) <= 2
            assert abs(lag - RATE / 180.0) <= 2


def test_brown_noise_does_not_take_the_period_from_the_voice():
    """Brown noise (1/f^2, correlated over many ms) 10 dB above a 200 Hz voice: behind the
    filter's 80 Hz DC blocker the search finds the voice's period (80 samples) in most
    voiced frames; on the raw signal in half of them."""
    rng = np.random.default_rng(4)
    brown = np.cumsum(rng.standard_normal(8000))
    brown -= np.convolve(brown, np.ones(801) / 801, mode="same")  # no drift
    voice = voiced(8000, 200.0, noise=0.0)[0].astype(np.float64)
    brown *= np.sqrt(10 * np.mean(voice**2) / np.mean(brown**2))
    raw = voice + brown
    pole = np.exp(-2 * np.pi * 80.0 / RATE)
    filtered = scipy.signal.lfilter([1.0, -1.0], [1.0, -pole], raw)  # the DC blocker
    ends = [end for end in range(1500, 7500, 160) if np.sum(voice[end - 320 : end] ** 2) > 1]
    scratch = np.zeros(lag_scratch_samples(320, 320, 4), np.float32)

    def share_at_the_voice(x):
        x32 = x.astype(np.float32)
        lags = [_kernels.pitch_lag(x32, end, 320, 32, 320, 4, scratch) for end in ends]
        return np.mean(np.abs(np.array(lags) - 80) <= 2)

    assert share_at_the_voice(filtered) > 0.7  # measured 0.77
    assert share_at_the_voice(filtered) >= share_at_the_voice(raw) + 0.2  # raw: 0.5
    # the streaming filter's own history holds the same high-passed signal
    pitch = PitchFilter(stft16(), RATE, 1, 8000, 60)
    pitch.push(raw[None].astype(np.float32), 8000, 50, np.zeros((1, 60, 161), np.complex64), 0)
    keep = int(pitch._params[0])
    np.testing.assert_allclose(pitch._filtered[0, :keep], filtered[-keep:], rtol=0, atol=1e-4)


def test_silence_gives_the_shortest_period():
    scratch = np.zeros(lag_scratch_samples(320, 320, 4), np.float32)
    assert _kernels.pitch_lag(np.zeros(2000, np.float32), 1500, 320, 32, 320, 4, scratch) == 32


def test_band_edges_are_rnnoises_points_below_nyquist():
    edges = band_edges(16000, 320)
    np.testing.assert_array_equal(
        edges, [0, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 136, 161]
    )
    assert band_edges(48000, 960)[-1] == 481


# -- the comb ------------------------------------------------------------------------------


def comb_reference(x, p, g, strength, edges, n_bins=161):
    """RNNoise's pitch_filter in float64 numpy, triangular bands (see seproc.pitch)."""
    w = np.zeros((edges.size, n_bins))
    for b in range(edges.size - 1):
        for k in range(edges[b], min(edges[b + 1], n_bins)):
            frac = (k - edges[b]) / (edges[b + 1] - edges[b])
            w[b, k] += 1 - frac
            w[b + 1, k] += frac
    ex, ep = np.abs(x) ** 2 @ w.T, np.abs(p) ** 2 @ w.T
    c = (x * p.conj()).real @ w.T / np.sqrt(1e-20 + ex * ep)
    g2 = (g**2 * np.abs(x) ** 2) @ w.T / (ex + 1e-20)
    r = np.where(c > np.sqrt(g2), 1.0, c**2 * (1 - g2) / (0.001 + g2 * (1 - c**2)))
    r = np.where(c > np.sqrt(g2), 1.0, np.sqrt(np.clip(r, 0, 1)))
    r = strength * r * np.sqrt(ex / (1e-20 + ep))
    y = x + (r @ w) * p
    norm = np.sqrt(ex / (1e-20 + np.abs(y) ** 2 @ w.T))
    return y * (norm @ w)


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_the_comb_matches_a_numpy_reference(strength):
    rng = np.random.default_rng(5)
    shape = (40, 161)
    x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    p = (0.7 * x + 0.5 * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))).astype(
        np.complex64
    )
    g = rng.uniform(0.01, 1.0, shape).astype(np.float32)
    pitch = PitchFilter(stft16(), RATE, 1, 160, 1, strength=strength, min_gain=0.01)
    got = x.copy()
    pitch.apply(got, p, g, len(x))
    expected = comb_reference(x.astype(np.complex128), p, g, strength, band_edges(RATE, 320))
    assert np.max(np.abs(got - x)) > 0.1  # it does something
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(x).max())


def test_the_comb_keeps_each_bands_energy_and_leaves_unit_gains_alone():
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((8, 161)) + 1j * rng.standard_normal((8, 161))).astype(np.complex64)
    p = x[::-1].copy()
    pitch = PitchFilter(stft16(), RATE, 1, 160, 1, min_gain=0.01)
    ones = np.ones((8, 161), np.float32)
    kept = x.copy()
    pitch.apply(kept, p, ones, 8)  # the gains keep everything: nothing to comb
    np.testing.assert_allclose(kept, x, rtol=0, atol=1e-5)
    combed = x.copy()
    pitch.apply(combed, p, np.full((8, 161), 0.1, np.float32), 8)
    for lo, hi in ((0, 4), (40, 48), (136, 161)):  # band energies (within the triangles' spill)
        ratio = np.sum(np.abs(combed[:, lo:hi]) ** 2) / np.sum(np.abs(x[:, lo:hi]) ** 2)
        assert 0.5 < ratio < 2.0
    floored = x.copy()  # gains raised to min_gain 1: nothing to comb
    PitchFilter(stft16(), RATE, 1, 160, 1, min_gain=1.0).apply(
        floored, p, np.full((8, 161), 0.1, np.float32), 8
    )
    np.testing.assert_allclose(floored, x, rtol=0, atol=1e-5)


def test_the_delayed_frames_are_the_signal_one_period_back_for_any_split():
    """push: each frame's delayed spectrum is the windowed frame ``lag`` samples earlier."""
    signal = voiced(8000, 170.0)
    frames_total = signal.shape[1] // 160
    expected = np.zeros((1, frames_total, 161), np.complex64)
    PitchFilter(stft16(), RATE, 1, 8000, 60).push(signal, 8000, 50, expected, 0)
    rng = np.random.default_rng(2)
    pitch = PitchFilter(stft16(), RATE, 1, 700, 5)
    got = np.zeros_like(expected)
    pos = done = 0
    while done < 50:
        n = int(rng.integers(1, 700))
        frames = min((pos + n) // 160 - done, 50 - done)
        pitch.push(signal[:, pos : pos + n], n, frames, got, done)
        pos, done = pos + n, done + frames
    np.testing.assert_array_equal(got[:, :50], expected[:, :50])
    # frame 30 ends at 31 * 160; its copy is one period (16000 / 170 = 94 samples) back
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320))
    end = 31 * 160
    best = min(
        range(90, 99),
        key=lambda lag: np.abs(
            np.fft.rfft(signal[0, end - 320 - lag : end - lag] * window) - expected[0, 30]
        ).max(),
    )
    reference = np.fft.rfft(signal[0, end - 320 - best : end - best] * window)
    np.testing.assert_allclose(expected[0, 30], reference, rtol=0, atol=1e-4)


def test_the_pitch_filter_refuses_an_fft_longer_than_its_window():
    padded = STFT(n_fft=512, hop_length=160, win_length=320, window="sqrt_hann")
    with pytest.raises(ValueError, match="n_fft == win_length"):
        PitchFilter(padded, RATE, 1, 160, 1)


# -- the Denoiser --------------------------------------------------------------------------


def test_info_and_the_denoiser_report_the_strength(models):
    assert OnnxModel(models["pitch"]).info.pitch_filter_strength == STRENGTH
    assert OnnxModel(models["release"]).info.pitch_filter_strength is None
    assert Denoiser(models["pitch"]).postfilter["pitch_filter_strength"] == STRENGTH
    assert Denoiser(models["release"]).postfilter["pitch_filter_strength"] is None


@pytest.mark.parametrize("rate", [16000, 48000])
def test_the_comb_changes_the_output_and_postfilter_false_removes_it(models, rate):
    signal = voiced(rate, rate=rate, noise=0.1)
    combed = Denoiser(models["pitch"], sample_rate=rate)(signal, rate)
    released = Denoiser(models["release"], sample_rate=rate)(signal, rate)
    raw = Denoiser(models["raw"], sample_rate=rate)(signal, rate)
    assert np.max(np.abs(combed - released)) > 1e-3
    assert np.all(np.isfinite(combed))
    off = Denoiser(models["pitch"], sample_rate=rate, postfilter=False)(signal, rate)
    np.testing.assert_array_equal(off, raw)


def test_the_comb_raises_the_harmonics_over_the_noise_between_them(models):
    """At 150 Hz in white noise: the harmonic-to-between-harmonic energy ratio rises."""
    signal = voiced(RATE * 2, 150.0, noise=0.08, seed=7)
    outputs = {
        name: Denoiser(models[name])(signal, RATE)[0, RATE // 2 :] for name in ("release", "pitch")
    }

    def contrast_db(audio):
        freqs, power = scipy.signal.welch(audio, RATE, nperseg=4096)
        low = freqs < 1500
        on = np.zeros_like(freqs, bool)
        for k in range(1, 10):
            on |= np.abs(freqs - 150 * k) < 15
        off = ~on & low & (freqs > 100)
        return 10 * np.log10(power[on & low].mean() / power[off].mean())

    assert contrast_db(outputs["pitch"]) > contrast_db(outputs["release"]) + 1.0


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
@pytest.mark.parametrize("block", [1, 64, 160, 441, 480, 1023])
def test_any_partition_gives_the_one_shot_output_with_the_comb(models, rate, block):
    signal = voiced(rate + 1009, rate=rate, channels=2)
    whole = Denoiser(models["pitch"], sample_rate=rate, channels=2, max_block_samples=65536)
    expected = whole.process(signal)
    streamed = stream(Denoiser(models["pitch"], sample_rate=rate, channels=2), signal, [block])
    np.testing.assert_array_equal(streamed, expected)


def test_random_partitions_at_48k_give_the_one_shot_output_with_the_comb(models):
    rng = np.random.default_rng(12)
    signal = voiced(48000 * 2, rate=48000)
    expected = Denoiser(models["pitch"], sample_rate=48000, max_block_samples=131072).process(
        signal
    )
    sizes = list(rng.integers(1, 2000, size=60))
    streamed = stream(Denoiser(models["pitch"], sample_rate=48000), signal, sizes)
    np.testing.assert_array_equal(streamed, expected)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_no_allocation_after_warm_up_with_the_comb(models, rate):
    denoiser = Denoiser(models["pitch"], sample_rate=rate, channels=2)
    block = voiced(rate // 100 * 4, rate=rate, channels=2)
    assert peak_bytes_into_out(denoiser, block) < 8 * 1024


@pytest.mark.parametrize("rate", [16000, 48000])
def test_reset_restores_a_fresh_stream_with_the_comb(models, rate):
    signal = voiced(rate // 2, rate=rate)
    used = Denoiser(models["pitch"], sample_rate=rate)
    first = used.process(signal).copy()
    used.process(voiced(rate // 3, 230.0, rate=rate, seed=9))
    used.reset()
    np.testing.assert_array_equal(used.process(signal), first)


@pytest.mark.parametrize("rate", [16000, 44100, 48000])
def test_bypass_is_still_an_exact_delay_with_the_comb(models, rate):
    denoiser = Denoiser(models["pitch"], sample_rate=rate, attenuation_limit_db=0)
    signal = voiced(rate // 2, rate=rate)
    out = np.concatenate([denoiser.process(signal), denoiser.flush()], axis=1)
    np.testing.assert_allclose(out[:, denoiser.latency_samples :], signal, rtol=0, atol=1e-5)


# -- metadata ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-1", "nan", "strong"])
def test_bad_strengths_raise_model_errors_naming_the_key(tmp_path, value):
    path = make_model(
        tmp_path / "bad.onnx",
        metadata={"seproc_model_format": "2", "pitch_filter_strength": value},
    )
    with pytest.raises(ModelError, match="pitch_filter_strength"):
        OnnxModel(path)


def test_the_tool_writes_and_removes_the_strength(models, tmp_path):
    info = OnnxModel(models["pitch"]).info
    assert (info.gain_release_db_per_s, info.gain_exponent) == (250.0, 1.2)
    back = tmp_path / "back.onnx"
    set_postfilter(models["pitch"], back, None, None, None)
    assert OnnxModel(back).info.pitch_filter_strength is None
    with pytest.raises(ValueError, match="pitch_filter_strength"):
        set_postfilter(models["raw"], back, None, None, -1.0)


def test_seproc_info_reports_the_pitch_filter(models):
    from seproc.cli import _model_report, _postfilter_line

    report = _model_report(str(models["pitch"]))
    assert report["postfilter"]["pitch_filter_strength"] == STRENGTH
    assert "pitch filter 0.7" in _postfilter_line(report["postfilter"])
    release = _model_report(str(models["release"]))["postfilter"]
    assert "pitch filter" not in _postfilter_line(release)

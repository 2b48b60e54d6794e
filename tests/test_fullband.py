"""The full-band path at host rates above the model's (seproc.highband).

References: ``scipy.signal.welch`` for band levels, ``soxr`` for the 16 kHz comparison.
"""

import numpy as np
import pytest
import soxr
from scipy import signal as sps

from seproc import Denoiser
from seproc.highband import HighBandGain, host_framing
from tests.model_factory import bypass_model, make_model
from tests.streaming import stream

FULL_BAND_RATES = [32000, 44100, 48000, 88200, 96000]
RESAMPLED_RATES = [8000, 11025, 16000, 22050]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fullband-models")
    return {
        "bypass": bypass_model(folder / "bypass.onnx"),
        "mute": make_model(folder / "mute.onnx", scale=0.0, bias=-100.0),
        "half": make_model(folder / "half.onnx", scale=0.0, bias=0.0),
    }


def white(rate, seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(rate * seconds))).astype(np.float32)


def activity_per_frame(denoiser, x, hop):
    frames = []
    for start in range(0, x.size, hop):
        denoiser.process(x[start : start + hop])
        frames.append(denoiser.speech_activity[0].copy())
    return np.concatenate(frames)


def band_levels_db(x, rate, bands):
    freqs, psd = sps.welch(x, rate, nperseg=2048)
    return [10 * np.log10(psd[(freqs >= lo) & (freqs < hi)].sum() + 1e-30) for lo, hi in bands]


@pytest.mark.parametrize("rate", FULL_BAND_RATES)
def test_framing_has_the_models_durations_and_bin_spacing(rate):
    n_fft, hop, win = host_framing(rate, 16000, 320, 160, 320)
    assert (n_fft * 16000, hop * 16000, win * 16000) == (320 * rate, 160 * rate, 320 * rate)
    assert rate / n_fft == 16000 / 320  # host bin k is model bin k


@pytest.mark.parametrize("rate", RESAMPLED_RATES)
def test_rates_whose_frames_are_not_whole_samples_keep_the_resamplers(rate):
    assert host_framing(rate, 16000, 320, 160, 320) is None
    assert not Denoiser(sample_rate=rate, warm_up=False).full_band


@pytest.mark.parametrize("rate", [44100, 48000])
def test_bypass_is_an_exact_delay_over_the_whole_band(rate):
    """The acceptance: error <= -60 dB relative to the input, in every band up to 20 kHz."""
    denoiser = Denoiser(sample_rate=rate, attenuation_limit_db=0)
    assert denoiser.full_band
    x = white(rate)
    out = np.concatenate([denoiser.process(x), denoiser.flush()[0]])
    delayed = out[denoiser.latency_samples :]
    bands = [(0, 4000), (4000, 8000), (8000, 12000), (12000, 20000)]
    input_db = band_levels_db(x, rate, bands)
    error_db = band_levels_db(delayed - x, rate, bands)
    for band, level, error in zip(bands, input_db, error_db, strict=True):
        assert error - level <= -60.0, (band, error - level)


@pytest.mark.parametrize("rate", FULL_BAND_RATES)
def test_latency_is_one_window_and_within_the_budget(rate):
    denoiser = Denoiser(sample_rate=rate, warm_up=False)
    # win_length - 1 (20 ms) + the model-rate resampler's delay (about 3.2 ms)
    assert 2 * rate // 100 - 1 < denoiser.latency_samples < 2 * rate // 100 + rate // 250
    assert denoiser.latency_ms <= 32.0


def test_a_gain_one_model_passes_the_high_band_and_a_mute_model_removes_it(models):
    rate = 48000
    x = white(rate)
    bands = [(0, 8000), (8000, 12000), (12000, 20000)]
    before = band_levels_db(x, rate, bands)
    passed = Denoiser(models["bypass"], sample_rate=rate)(x, rate)
    np.testing.assert_allclose(passed, x, atol=1e-5)
    muted = Denoiser(models["mute"], sample_rate=rate, attenuation_limit_db=30)(x, rate)
    after = band_levels_db(muted, rate, bands)
    # The high bands follow the model's top-octave gain: the 30 dB limit everywhere.
    for b, a in zip(before, after, strict=True):
        assert a - b == pytest.approx(-30.0, abs=0.5)


def test_high_bands_take_the_models_top_octave_gain(models):
    """A constant gain of 0.5 (sigmoid(0)) below 8 kHz gives -6 dB above it too."""
    rate = 44100
    x = white(rate)
    out = Denoiser(models["half"], sample_rate=rate)(x, rate)
    bands = [(1000, 8000), (8000, 20000)]
    for b, a in zip(band_levels_db(x, rate, bands), band_levels_db(out, rate, bands), strict=True):
        assert a - b == pytest.approx(20 * np.log10(0.5), abs=0.3)


def test_the_model_hears_the_same_at_48k_as_at_16k():
    """The model's features come from the resampled stream, framed in step with the host:
    the speech activity per frame of a band-limited signal agrees at both rates."""
    rng = np.random.default_rng(3)
    t = np.arange(3 * 16000) / 16000
    voiced = 0.2 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 2 * t) > 0)
    x16 = (voiced + 0.03 * rng.standard_normal(t.size)).astype(np.float32)
    x48 = soxr.resample(x16, 16000, 48000).astype(np.float32)
    a16 = activity_per_frame(Denoiser(sample_rate=16000), x16, 160)
    a48 = activity_per_frame(Denoiser(sample_rate=48000), x48, 480)
    n = min(a16.size, a48.size)
    assert n > 250
    assert np.mean(np.abs(a16[:n] - a48[:n])) < 0.05


@pytest.mark.parametrize("sizes", [[1], [37, 480, 1024], [4800]])
def test_any_partition_gives_the_one_shot_output_at_48k(sizes):
    rate = 48000
    x = white(rate, 1.0, seed=5)[None]
    reference = Denoiser(sample_rate=rate, channels=1)
    expected = reference.process(x).copy()
    denoiser = Denoiser(sample_rate=rate, channels=1)
    np.testing.assert_array_equal(stream(denoiser, x, sizes), expected)


@pytest.mark.parametrize("rate", [32000, 44100, 48000])
def test_the_high_band_follows_the_models_top_octave(rate):
    n_fft, _, _ = host_framing(rate, 16000, 320, 160, 320)
    gains = HighBandGain(rate, n_fft, 161, (6, 81))
    assert gains.reference_band_hz == (4000.0, 7800.0)


def test_the_model_band_edge_follows_the_models_nyquist_frequency():
    """A 24 kHz model keeps its own gains to 11.7 kHz, its top octave from 6 kHz."""
    n_fft, _, _ = host_framing(48000, 24000, 480, 240, 480)
    gains = HighBandGain(48000, n_fft, 241, (6, 81))
    assert gains.reference_band_hz == (6000.0, 11700.0)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_no_seam_at_the_models_nyquist_frequency(rate):
    """White noise comes out as suppressed at 7.9-8.1 kHz as at 6-7.5 and 8.5-12 kHz.

    The model hears the host signal through a resampler that rolls off above 7.4 kHz; its
    gains on the last bins below 8 kHz once let 7 dB more noise through there (a line
    across the spectrogram).
    """
    x = 0.5 * white(rate, 4.0, seed=3)  # -26 dBFS: the seam was widest at such levels
    y = Denoiser(sample_rate=rate)(x, rate)
    n_fft = rate // 50  # 20 ms: the STFT's own 50 Hz bins
    freqs, p_in = sps.welch(x, rate, nperseg=n_fft)
    _, p_out = sps.welch(y, rate, nperseg=n_fft)
    level_db = 10 * np.log10(p_out / p_in)

    def band(low_hz, high_hz):
        return level_db[(freqs >= low_hz) & (freqs < high_hz)]

    around = max(np.mean(band(6000, 7500)), np.mean(band(8500, 12000)))
    assert np.mean(band(7900, 8100)) < around + 2.0  # the old seam: 4-7 dB above

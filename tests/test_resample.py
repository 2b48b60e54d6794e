"""Tests of seproc.resample against soxr, scipy's windows and first-principles sinusoids."""

from __future__ import annotations

import inspect
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
import soxr
from scipy.signal import windows

from seproc.errors import ParameterError
from seproc.resample import RateBridge, StreamResampler, resample

HOST_RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]
MODEL_RATE = 16000
HOP = 160
INNER_DELAY = 160
PAIRS = [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 44100), (8000, 16000),
         (16000, 8000), (11025, 16000), (96000, 16000)]  # fmt: skip
BLOCK_SWEEP = [1, 63, 64, 65, HOP, HOP + 1, 4096, 8193]


def tone(frequency_hz, rate_hz, n, phase=0.3):
    return np.sin(2 * np.pi * frequency_hz * np.arange(n) / rate_hz + phase)


def band_limited_noise(n, rate_hz, max_hz, seed=0, channels=1):
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal((channels, n)), axis=1)
    spectrum[:, np.fft.rfftfreq(n, 1 / rate_hz) > max_hz] = 0
    return (np.fft.irfft(spectrum, n, axis=1) * 0.1).astype(np.float32)


def fitted_amplitude(y, frequency_hz, rate_hz):
    """Least-squares amplitude of a sinusoid of known frequency in ``y``."""
    t = np.arange(len(y)) / rate_hz
    basis = np.stack([np.sin(2 * np.pi * frequency_hz * t), np.cos(2 * np.pi * frequency_hz * t)])
    coef, *_ = np.linalg.lstsq(basis.T, y, rcond=None)
    return float(np.hypot(*coef))


def db(x):
    return 20 * np.log10(x)


def stream(resampler, signal, sizes):
    pieces, done, i = [], 0, 0
    while done < signal.shape[1] or i == 0:
        size = sizes[i % len(sizes)]
        pieces.append(resampler.process(signal[:, done : done + size]))
        done += size
        i += 1
    return np.concatenate(pieces, axis=1)


# -- StreamResampler --------------------------------------------------------------------


def test_ratio_is_reduced_by_the_gcd():
    r = StreamResampler(44100, 16000, channels=1, max_block_samples=64)
    assert r.ratio == (160, 441)
    assert (r.in_rate_hz, r.out_rate_hz) == (44100, 16000)
    assert r.filter_length % 2 == 1
    assert r.delay_samples == Fraction(r.filter_length - 1, 2 * 441)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 16000), (16000, 44100), (11025, 16000)])
@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_equals_one_call_bit_for_bit(in_rate, out_rate, channels):
    rng = np.random.default_rng(1)
    signal = rng.standard_normal((channels, 20011)).astype(np.float32)
    whole = StreamResampler(in_rate, out_rate, channels=channels, max_block_samples=20011).process(
        signal
    )
    r = StreamResampler(in_rate, out_rate, channels=channels, max_block_samples=4096)
    assert whole.shape[1] == r.total_output_samples(20011)
    for size in BLOCK_SWEEP:
        r.reset()
        np.testing.assert_array_equal(stream(r, signal, [size]), whole)
    for _ in range(3):
        r.reset()
        sizes = list(rng.integers(0, 8194, size=20))
        np.testing.assert_array_equal(stream(r, signal, sizes), whole)


@pytest.mark.parametrize("in_rate", [32000, 48000, 96000])
@pytest.mark.parametrize("extra_fine", [0, -5, 7, 12])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_decimation_streams_bit_for_bit_and_equals_the_per_output_sums(
    in_rate, extra_fine, dtype
):
    """The vectorised decimation path (``up == 1``) against the general kernel.

    Streaming in random blocks equals one call bit for bit (delays that start the stream
    with zeros included), and one call equals the general per-output kernel on the same
    filter within the float rounding of a different summation order.
    """
    down = in_rate // 16000
    extra = Fraction(extra_fine, down)  # on the fine grid, negative ones shorten the delay
    rng = np.random.default_rng(down)
    signal = rng.standard_normal((2, 12007)).astype(dtype)
    kwargs = dict(channels=2, dtype=dtype, extra_delay_samples=extra)
    one_call = StreamResampler(in_rate, 16000, max_block_samples=12007, **kwargs)
    assert one_call._phases is not None  # the decimation path
    whole = one_call.process(signal)
    general = StreamResampler(in_rate, 16000, max_block_samples=12007, **kwargs)
    general._phases = None  # the per-output kernel, polyphase_resample
    reference = general.process(signal)
    assert whole.shape == reference.shape == (2, one_call.total_output_samples(12007))
    tolerance = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(whole, reference, rtol=0, atol=tolerance * np.abs(signal).max())
    r = StreamResampler(in_rate, 16000, max_block_samples=480, **kwargs)
    for _ in range(2):
        r.reset()
        sizes = list(rng.integers(0, 1500, size=30))
        np.testing.assert_array_equal(stream(r, signal, sizes), whole)


@pytest.mark.parametrize("in_rate", [32000, 48000, 96000])
@pytest.mark.parametrize("extra_fine", [0, 2, -1])
def test_decimation_with_sums_in_registers_equals_the_vectorised_kernel_bit_for_bit(
    in_rate, extra_fine
):
    """``_simd.decimate_registers`` (float32 into a C-contiguous out) and ``decimate``.

    Each output is the same chain of fused multiply-adds in tap order in both, whether
    it falls in a 64-, 32- or 8-output block of registers or the one-by-one remainder.
    """
    from seproc import _kernels
    from seproc._simd import decimate_registers

    down = in_rate // 16000
    rng = np.random.default_rng(extra_fine + down)
    kwargs = dict(
        channels=2, max_block_samples=1500, extra_delay_samples=Fraction(extra_fine, down)
    )
    held = [StreamResampler(in_rate, 16000, **kwargs).fused_args() for _ in range(2)]
    positions = [int(held[0][4][0])] * 2
    outs = [np.zeros((2, 1500 // down + 2), np.float32) for _ in range(2)]
    kernels = (_kernels.decimate, decimate_registers)
    for n in [480, 1, 7, 1500, 333, 0, 64, 95, 1024] * 3:
        block = rng.standard_normal((2, n)).astype(np.float32)
        counts = []
        for i, kernel in enumerate(kernels):
            history, taps, _, _, _, phases, _ = held[i]
            count, positions[i] = kernel(
                history, block, n, taps, down, positions[i], phases, outs[i]
            )
            counts.append(count)
        assert counts[0] == counts[1] and positions[0] == positions[1]
        np.testing.assert_array_equal(outs[1][:, : counts[1]], outs[0][:, : counts[0]])


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 479, 1009])
def test_output_count_follows_the_formula(n):
    r = StreamResampler(44100, 16000, channels=1, max_block_samples=128, extra_delay_samples=3)
    out = r.process(np.zeros((1, n), np.float32))
    assert out.shape == (1, -(-(n * 160 + 3 * 441) // 441))
    assert out.shape[1] <= r.max_output_samples(n)


def test_process_into_allocates_nothing_and_matches_process():
    rng = np.random.default_rng(2)
    signal = rng.standard_normal((2, 4800)).astype(np.float32)
    r = StreamResampler(48000, 16000, channels=2, max_block_samples=480)
    out = np.zeros((2, r.max_output_samples(480)), np.float32)
    r.process_into(signal[:, :480], out)  # compile outside the measurement
    r.reset()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for i in range(0, 4800, 480):
        r.process_into(signal[:, i : i + 480], out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak - baseline < 1024  # a few views and ints, no arrays (out alone is 1280 bytes)
    r.reset()
    got = []
    for i in range(0, 4800, 480):
        count = r.process_into(signal[:, i : i + 480], out)
        got.append(out[:, :count].copy())
    whole = StreamResampler(48000, 16000, channels=2, max_block_samples=4800).process(signal)
    np.testing.assert_array_equal(np.concatenate(got, axis=1), whole)


def test_reset_makes_the_next_output_equal_a_fresh_objects():
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((1, 3000)).astype(np.float32)
    r = StreamResampler(16000, 44100, channels=1, max_block_samples=512)
    r.process(noise)
    r.reset()
    fresh = StreamResampler(16000, 44100, channels=1, max_block_samples=512)
    np.testing.assert_array_equal(r.process(noise[:, :700]), fresh.process(noise[:, :700]))
    r.reset()
    assert not np.any(r.process(np.zeros((1, 2000), np.float32)))


def test_equal_rates_are_a_plain_copy():
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((2, 999)).astype(np.float32)
    r = StreamResampler(16000, 16000, channels=2, max_block_samples=100)
    assert r.delay_samples == 0
    np.testing.assert_array_equal(stream(r, signal, [100]), signal)
    delayed = StreamResampler(
        16000, 16000, channels=2, max_block_samples=100, extra_delay_samples=5
    )
    out = stream(delayed, signal, [37])
    np.testing.assert_array_equal(out[:, 5:], signal)
    np.testing.assert_array_equal(out[:, :5], 0)


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_delay_samples_is_the_measured_group_delay(in_rate, out_rate):
    # A sinusoid comes out as the same sinusoid, delay_samples later (first principles).
    low = min(in_rate, out_rate)
    r = StreamResampler(in_rate, out_rate, channels=1, max_block_samples=4096)
    n = in_rate // 2
    for f in (0.1 * low, 0.3 * low):
        y = r.process(tone(f, in_rate, n)[np.newaxis].astype(np.float32))[0]
        r.reset()
        m = np.arange(len(y))
        expected = np.sin(2 * np.pi * f * (m - float(r.delay_samples)) / out_rate + 0.3)
        settled = slice(len(y) // 4, len(y) - len(y) // 4)
        assert np.max(np.abs(y[settled] - expected[settled])) < 3e-4


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_passband_is_flat_within_0_1_db(in_rate, out_rate):
    low = min(in_rate, out_rate)
    n = in_rate // 2
    for f in np.linspace(50, 0.45 * low, 7):
        y = resample(tone(f, in_rate, n), in_rate, out_rate)
        settled = y[len(y) // 4 : -len(y) // 4]
        gain_db = db(fitted_amplitude(settled, f, out_rate))
        assert abs(gain_db) < 0.1, (f, gain_db)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 16000), (44100, 16000), (96000, 16000),
                                                   (16000, 8000), (22050, 16000)])  # fmt: skip
def test_tones_above_the_output_nyquist_alias_below_minus_60_db(in_rate, out_rate):
    nyquist = out_rate / 2
    n = in_rate // 2
    for f in (nyquist * 1.002, nyquist * 1.1, nyquist * 1.5, 0.49 * in_rate):
        y = resample(tone(f, in_rate, n), in_rate, out_rate)
        settled = y[len(y) // 4 : -len(y) // 4]
        level_db = db(np.sqrt(2) * np.sqrt(np.mean(settled**2)))
        assert level_db < -60, (f, level_db)
        # soxr, the reference, agrees that nothing of the tone belongs in the output
        ref = soxr.resample(tone(f, in_rate, n), in_rate, out_rate, quality="VHQ")
        assert db(np.sqrt(2 * np.mean(ref[len(ref) // 4 : -len(ref) // 4] ** 2))) < -60


def chirp(f0, f1, rate_hz, n):
    t = np.arange(n) / rate_hz
    duration = n / rate_hz
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration))
    return np.sin(phase) * windows.tukey(n, 0.2)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 16000), (44100, 16000), (96000, 16000)])
def test_a_sweep_above_the_output_nyquist_is_removed(in_rate, out_rate):
    x = chirp(0.51 * out_rate, 0.49 * in_rate, in_rate, in_rate)
    y = resample(x, in_rate, out_rate)
    level_db = 10 * np.log10(np.mean(y**2) / np.mean(x**2))
    assert level_db < -60


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 48000), (16000, 44100), (8000, 16000),
                                                   (11025, 16000)])  # fmt: skip
def test_images_of_an_upsampled_sweep_stay_below_minus_60_db(in_rate, out_rate):
    nyquist = in_rate / 2
    x = chirp(50, 0.45 * in_rate, in_rate, in_rate)
    y = resample(x, in_rate, out_rate)
    spectrum = np.abs(np.fft.rfft(y * windows.blackmanharris(len(y)))) ** 2
    freqs = np.fft.rfftfreq(len(y), 1 / out_rate)
    # images of 0 .. 0.45 * in_rate land at 0.55 * in_rate and above
    image_db = 10 * np.log10(spectrum[freqs > 1.1 * nyquist].sum() / spectrum.sum())
    assert image_db < -60
    for f in (0.2 * in_rate, 0.45 * in_rate):  # and a tone's image, by itself
        z = resample(tone(f, in_rate, in_rate), in_rate, out_rate)
        tone_spectrum = np.abs(np.fft.rfft(z * windows.blackmanharris(len(z))))
        image = tone_spectrum[freqs > nyquist].max() / tone_spectrum.max()
        assert db(image) < -60


@pytest.mark.parametrize(("in_rate", "out_rate"), PAIRS)
def test_one_shot_output_is_close_to_soxr(in_rate, out_rate):
    low = min(in_rate, out_rate)
    x = band_limited_noise(in_rate, in_rate, 0.45 * low, seed=5, channels=2)
    ours = resample(x, in_rate, out_rate)
    assert ours.shape == (2, round(x.shape[1] * out_rate / in_rate))
    assert ours.dtype == np.float32
    ref = soxr.resample(x.T, in_rate, out_rate, quality="VHQ").T
    m = min(ours.shape[1], ref.shape[1])
    inner = slice(m // 8, m - m // 8)  # soxr and ours treat the signal's ends differently
    error = ours[:, inner] - ref[:, inner]
    snr_db = 10 * np.log10(np.sum(ref[:, inner] ** 2) / np.sum(error**2))
    assert snr_db > 70


def test_one_shot_handles_mono_empty_float64_and_equal_rates():
    x = tone(440, 44100, 44100)
    y = resample(x, 44100, 16000)
    assert y.shape == (16000,) and y.dtype == np.float64
    assert resample(np.zeros(0, np.float32), 44100, 16000).shape == (0,)
    assert resample(np.zeros((2, 3), np.float32), 44100, 16000).shape == (2, 1)
    z = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(resample(z, 16000, 16000), z)


def test_errors_name_the_problem_and_the_fix():
    with pytest.raises(ParameterError, match=r"in_rate_hz=0 must be an integer >= 1"):
        StreamResampler(0, 16000, channels=1, max_block_samples=1)
    with pytest.raises(ParameterError, match=r"quality='best' is not one of"):
        StreamResampler(48000, 16000, channels=1, max_block_samples=1, quality="best")
    with pytest.raises(ParameterError, match=r"dtype=.* must be np.float32 or np.float64"):
        StreamResampler(48000, 16000, channels=1, max_block_samples=1, dtype=np.int16)
    with pytest.raises(ParameterError, match=r"not a multiple of 1/3 output samples"):
        StreamResampler(48000, 16000, channels=1, max_block_samples=1,
                        extra_delay_samples=Fraction(1, 2))  # fmt: skip
    with pytest.raises(ParameterError, match=r"makes the delay negative"):
        StreamResampler(48000, 16000, channels=1, max_block_samples=1, extra_delay_samples=-100)
    with pytest.raises(ParameterError, match=r"must be an int or a fractions.Fraction"):
        StreamResampler(48000, 16000, channels=1, max_block_samples=1, extra_delay_samples=0.5)
    r = StreamResampler(48000, 16000, channels=2, max_block_samples=8)
    with pytest.raises(ParameterError, match=r"Expected 2-channel audio .* pass block.T"):
        r.process(np.zeros((100, 2), np.float32))
    with pytest.raises(ParameterError, match=r"it needs shape \(2, >= 34\)"):
        r.process_into(np.zeros((2, 100), np.float32), np.zeros((2, 10), np.float32))
    with pytest.raises(ParameterError, match=r"convert integer PCM"):
        resample(np.zeros(10, np.int16), 48000, 16000)


# -- RateBridge -------------------------------------------------------------------------


class InnerStage:
    """Pure-numpy stand-in for the STFT stage: delay ``delay`` samples, emit whole hops."""

    def __init__(self, channels, delay=INNER_DELAY, hop=HOP):
        self.delay, self.hop = delay, hop
        self.received = np.zeros((channels, 0), np.float32)
        self.emitted = 0

    def process(self, block):
        self.received = np.concatenate([self.received, block], axis=1)
        total = self.received.shape[1] // self.hop * self.hop
        delayed = np.concatenate(
            [np.zeros((self.received.shape[0], self.delay), np.float32), self.received], axis=1
        )
        out = delayed[:, self.emitted : total]
        self.emitted = total
        return out


def run_chain(bridge, signal, sizes, prefill=None):
    """The Denoiser's chain around ``bridge``; fails on a FIFO underrun."""
    channels, n = signal.shape
    inner = InnerStage(channels)
    fifo = [np.zeros((channels, bridge.prefill_samples if prefill is None else prefill),
                     np.float32)]  # fmt: skip
    available = fifo[0].shape[1]
    done, i = 0, 0
    while done < n:
        size = min(sizes[i % len(sizes)], n - done)
        i += 1
        block = signal[:, done : done + size]
        done += size
        model = bridge.to_inner(block)
        assert model.shape[1] <= bridge.max_inner_samples
        burst = inner.process(model.copy())
        host = bridge.to_outer(burst)
        assert host.shape[1] <= bridge.max_outer_samples(burst.shape[1])
        fifo.append(host.copy())
        available += host.shape[1]
        if available < done:
            raise AssertionError(f"FIFO underrun after {done} samples ({available} available)")
    return np.concatenate(fifo, axis=1)[:, :n]


def make_bridge(host_rate, channels=1, max_block_samples=1024):
    return RateBridge(host_rate, MODEL_RATE, channels=channels, max_block_samples=max_block_samples,
                      inner_delay_samples=INNER_DELAY, inner_block_samples=HOP)  # fmt: skip


def test_equal_rates_bridge_is_a_pair_of_copies():
    bridge = make_bridge(16000)
    assert bridge.prefill_samples == HOP - 1
    assert bridge.latency_samples == HOP - 1 + INNER_DELAY == 319
    signal = np.random.default_rng(6).standard_normal((2, 5000)).astype(np.float32)
    bridge = make_bridge(16000, channels=2)
    out = run_chain(bridge, signal, [1, 480, 1024, 63])
    np.testing.assert_array_equal(out[:, 319:], signal[:, :-319])
    np.testing.assert_array_equal(out[:, :319], 0)


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_latency_is_prefill_plus_the_chain_delay_in_host_samples(host_rate):
    bridge = make_bridge(host_rate)
    inner = bridge.inner_resampler.delay_samples * Fraction(host_rate, MODEL_RATE)
    total = bridge.prefill_samples + inner + Fraction(INNER_DELAY * host_rate, MODEL_RATE)
    total += bridge.outer_resampler.delay_samples
    assert total == bridge.latency_samples
    outer = bridge.outer_resampler
    assert 0 <= outer.delay_samples - outer.filter_delay_samples < 1  # under one host sample
    assert bridge.latency_ms == pytest.approx(1000 * bridge.latency_samples / host_rate)


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_fifo_never_underruns_and_the_prefill_is_tight(host_rate):
    bridge = make_bridge(host_rate, max_block_samples=1024)
    rng = np.random.default_rng(host_rate)
    n = 3 * host_rate // 10
    signal = np.zeros((1, n), np.float32)
    partitions = [[1], [1024], [3, 1, 2, 7], list(rng.integers(1, 1025, size=50)),
                  list(rng.integers(1, 8, size=50))]  # fmt: skip
    outs = []
    for sizes in partitions:
        bridge.reset()
        outs.append(run_chain(bridge, signal, sizes))
    # a prefill one sample shorter runs dry for sample-by-sample blocks (the worst case),
    # within one period of the deficit
    period = bridge.inner_resampler.ratio[1] * HOP
    bridge.reset()
    with pytest.raises(AssertionError, match="FIFO underrun"):
        run_chain(bridge, np.zeros((1, period + 1), np.float32), [1], bridge.prefill_samples - 1)


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_an_impulse_peaks_exactly_latency_samples_later(host_rate):
    # 16 impulses far enough apart that their responses do not meet, at positions whose
    # phases against the rate ratio all differ (the resamplers are periodically
    # time-varying); each one must peak exactly latency_samples later.
    bridge = make_bridge(host_rate, max_block_samples=1024)
    spacing = 3001
    positions = [2000 + k * spacing for k in range(16)]
    impulses = np.zeros((1, positions[-1] + spacing + bridge.latency_samples), np.float32)
    impulses[0, positions] = 1.0
    sizes = list(np.random.default_rng(9).integers(1, 1025, size=20))
    out = run_chain(bridge, impulses, sizes)[0]
    for p in positions:
        peak = p + bridge.latency_samples
        window = np.abs(out[peak - spacing // 2 : peak + spacing // 2])
        assert int(np.argmax(window)) == spacing // 2, (p, int(np.argmax(window)) - spacing // 2)


def test_one_shot_defaults_match_the_stream_objects():
    # soundfile's test_argspec: the function beside the object keeps its defaults
    one_shot = inspect.signature(resample).parameters
    streaming = inspect.signature(StreamResampler).parameters
    assert one_shot["quality"].default == streaming["quality"].default == "high"


@pytest.mark.parametrize("host_rate", HOST_RATES)
def test_bypass_returns_a_band_limited_signal_delayed(host_rate):
    bridge = make_bridge(host_rate, channels=2, max_block_samples=1024)
    low = min(host_rate, MODEL_RATE)
    n = host_rate // 2
    signal = band_limited_noise(n, host_rate, 0.42 * low, seed=10, channels=2)
    out_a = run_chain(bridge, signal, [1024])
    bridge.reset()
    out_b = run_chain(bridge, signal, list(np.random.default_rng(11).integers(1, 1025, size=30)))
    np.testing.assert_array_equal(out_a, out_b)  # any partition, same samples
    latency = bridge.latency_samples
    settled = slice(latency + n // 8, n - n // 8)
    error = out_a[:, settled] - signal[:, settled.start - latency : settled.stop - latency]
    assert np.sqrt(np.mean(error**2)) < 1e-3 * np.sqrt(np.mean(signal**2))  # SNR > 60 dB


@pytest.mark.parametrize(("in_rate", "out_rate"), [(48000, 16000), (16000, 44100)])
def test_low_quality_is_shorter_and_still_meets_the_limits(in_rate, out_rate):
    high = StreamResampler(in_rate, out_rate, channels=1, max_block_samples=64)
    low = StreamResampler(in_rate, out_rate, channels=1, max_block_samples=64, quality="low")
    assert low.delay_samples < high.delay_samples
    small = min(in_rate, out_rate)
    n = in_rate // 2
    y = resample(tone(0.45 * small, in_rate, n), in_rate, out_rate, quality="low")
    assert abs(db(fitted_amplitude(y[len(y) // 4 : -len(y) // 4], 0.45 * small, out_rate))) < 0.1
    if out_rate < in_rate:
        z = resample(tone(0.51 * out_rate, in_rate, n), in_rate, out_rate, quality="low")
        assert db(np.sqrt(2 * np.mean(z[len(z) // 4 : -len(z) // 4] ** 2))) < -60


@pytest.mark.parametrize("out_dtype", [np.float64, np.float32])
def test_decimation_into_an_out_of_either_dtype(out_dtype):
    """A float32 resampler writes a float64 ``out`` too (its sums in registers are float32 only)."""
    rng = np.random.default_rng(4)
    signal = rng.standard_normal((1, 4800)).astype(np.float32)
    expected = StreamResampler(48000, 16000, channels=1, max_block_samples=480).process(signal)
    r = StreamResampler(48000, 16000, channels=1, max_block_samples=480)
    out = np.zeros((1, r.max_output_samples(480)), out_dtype)
    pieces = []
    for start in range(0, 4800, 480):
        count = r.process_into(signal[:, start : start + 480], out)
        pieces.append(out[:, :count].copy())
    np.testing.assert_allclose(np.concatenate(pieces, 1), expected, rtol=0, atol=2e-6)

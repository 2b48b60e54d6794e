"""STFT core against scipy's ShortTimeFFT, a first-principles rfft, and itself streaming."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import ShortTimeFFT

from seproc.errors import ParameterError
from seproc.stft import STFT

SETTINGS = [(320, 160, None), (512, 128, None), (512, 128, 400), (400, 100, 256)]
LENGTHS = [0, 7919, 16000]  # 7919 is prime
BLOCKS = [1, 63, 64, 65, 160, 161, 4096, 8193]


def signal(channels: int, n: int, seed: int = 0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-0.5, 0.5, size=(channels, n)).astype(dtype)


def reference_frames(stft: STFT, x: np.ndarray) -> np.ndarray:
    """First-principles causal frames: window support of frame t ends at (t + 1) * hop."""
    n_fft, hop, win = stft.n_fft, stft.hop_length, stft.win_length
    pad_left = (n_fft - win) // 2
    n_frames = x.shape[-1] // hop
    zeros = np.zeros((x.shape[0], n_fft))
    padded = np.concatenate([zeros, x.astype(np.float64), zeros], axis=1)
    frames = np.empty((x.shape[0], n_frames, n_fft))
    for t in range(n_frames):
        start = (t + 1) * hop - win - pad_left + n_fft
        frames[:, t] = padded[:, start : start + n_fft]
    return frames


def reference_window(n_fft: int, win: int, name: str) -> np.ndarray:
    hann = scipy.signal.get_window("hann", win, fftbins=True)  # periodic
    short = np.sqrt(hann) if name == "sqrt_hann" else hann
    full = np.zeros(n_fft)
    full[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = short
    return full


@pytest.mark.parametrize(("dtype", "tol"), [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize(("n_fft", "hop", "win"), SETTINGS)
@pytest.mark.parametrize("window", ["sqrt_hann", "hann"])
def test_stft_matches_first_principles_rfft(dtype, tol, n_fft, hop, win, window):
    stft = STFT(n_fft, hop, win, window=window, dtype=dtype, planner_effort="FFTW_ESTIMATE")
    x = signal(2, 4801, dtype=dtype)
    full = reference_window(n_fft, stft.win_length, window)
    np.testing.assert_allclose(stft.window, full, atol=1e-7 if dtype == np.float32 else 1e-15)
    expected = np.fft.rfft(reference_frames(stft, x) * full, axis=-1)
    spec = stft.stft(x)
    assert spec.shape == (2, 4801 // hop, n_fft // 2 + 1)
    assert spec.dtype == (np.complex64 if dtype == np.float32 else np.complex128)
    peak = np.abs(expected).max()
    error = np.abs(spec - expected).max()
    assert error <= (tol * peak if dtype == np.float32 else tol)
    np.testing.assert_array_equal(stft.stft(x[0]), spec[0])


@pytest.mark.parametrize(("dtype", "tol"), [(np.float32, 1e-5), (np.float64, 1e-10)])
@pytest.mark.parametrize(("n_fft", "hop", "win"), SETTINGS)
def test_stft_matches_scipy_short_time_fft(dtype, tol, n_fft, hop, win):
    stft = STFT(n_fft, hop, win, dtype=dtype, planner_effort="FFTW_ESTIMATE")
    x = signal(1, 6000, seed=3, dtype=dtype)[0]
    full = reference_window(n_fft, stft.win_length, "sqrt_hann")
    sft = ShortTimeFFT(full, hop, fs=16000, mfft=n_fft, fft_mode="onesided", phase_shift=None)
    # scipy's slice p starts at p * hop - n_fft // 2; ours, frame t, at
    # (t + 1) * hop - win - pad_left. Prepend `shift` zeros so slice t + q is frame t.
    pad_left = (n_fft - stft.win_length) // 2
    q = 0
    while (shift := q * hop - n_fft // 2 - hop + stft.win_length + pad_left) < 0:
        q += 1
    shifted = np.concatenate([np.zeros(shift), x.astype(np.float64)])
    n_frames = len(x) // hop
    expected = sft.stft(shifted, p0=q, p1=q + n_frames).T
    spec = stft.stft(x)
    peak = np.abs(expected).max()
    error = np.abs(spec - expected).max()
    assert error <= (tol * peak if dtype == np.float32 else tol)


@pytest.mark.parametrize(("n_fft", "hop", "win"), SETTINGS)
@pytest.mark.parametrize("window", ["sqrt_hann", "hann"])
def test_istft_reconstructs(n_fft, hop, win, window):
    stft = STFT(n_fft, hop, win, window=window, planner_effort="FFTW_ESTIMATE")
    x = signal(2, 9001, seed=5)
    # Without padding: exact away from the tail (the last latency_samples).
    y = stft.istft(stft.stft(x))
    usable = (x.shape[1] // hop) * hop - stft.latency_samples
    assert y.shape == (2, (x.shape[1] // hop) * hop)
    assert np.abs(y[:, :usable] - x[:, :usable]).max() <= 1e-5
    # With pad_end every sample comes back, including the first (causal framing).
    y = stft.istft(stft.stft(x, pad_end=True), length=x.shape[1])
    assert y.shape == x.shape
    assert np.abs(y - x).max() <= 1e-5


def test_istft_float64_and_length():
    stft = STFT(dtype=np.float64, planner_effort="FFTW_ESTIMATE")
    x = signal(1, 3217, seed=9, dtype=np.float64)[0]
    y = stft.istft(stft.stft(x, pad_end=True), length=len(x))
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, x, atol=1e-12)
    longer = stft.istft(stft.stft(x), length=len(x) + 500)
    assert longer.shape == (len(x) + 500,)
    np.testing.assert_array_equal(longer[(len(x) // 160) * 160 :], 0)


def run_stream(stft: STFT, x: np.ndarray, block: int):
    channels = x.shape[0]
    analyzer = stft.analyzer(channels, block)
    synthesizer = stft.synthesizer(channels, analyzer.max_frames)
    spec = np.zeros((channels, analyzer.max_frames, stft.n_bins), stft.complex_dtype)
    out = np.zeros((channels, analyzer.max_frames * stft.hop_length), stft.dtype)
    specs, samples = [], []
    for start in range(0, max(x.shape[1], 1), block):
        frames = analyzer.process(x[:, start : start + block], spec)
        specs.append(spec[:, :frames].copy())
        n = synthesizer.process(spec, frames, out)
        assert n == frames * stft.hop_length
        samples.append(out[:, :n].copy())
    return np.concatenate(specs, axis=1), np.concatenate(samples, axis=1)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("channels", [1, 2])
def test_streaming_equals_offline_bit_for_bit(block, n, channels):
    stft = STFT(320, 160)
    x = signal(channels, n, seed=n + channels)
    streamed_spec, streamed = run_stream(stft, x, block)
    offline_spec = stft.stft(x)
    assert streamed_spec.shape == offline_spec.shape == (channels, n // 160, 161)
    np.testing.assert_array_equal(streamed_spec, offline_spec)
    latency = stft.latency_samples
    offline = stft.istft(offline_spec)
    assert streamed.shape[1] == offline.shape[1]
    np.testing.assert_array_equal(streamed[:, latency:], offline[:, : offline.shape[1] - latency])
    np.testing.assert_array_equal(streamed[:, :latency], 0)


@pytest.mark.parametrize(("n_fft", "hop", "win"), SETTINGS)
@pytest.mark.parametrize("block", [1, 65, 4096])
def test_streaming_equals_offline_other_settings(n_fft, hop, win, block):
    stft = STFT(n_fft, hop, win, dtype=np.float64)
    x = signal(2, 7919, seed=11, dtype=np.float64)
    streamed_spec, streamed = run_stream(stft, x, block)
    np.testing.assert_array_equal(streamed_spec, stft.stft(x))
    offline = stft.istft(stft.stft(x))
    latency = stft.latency_samples
    np.testing.assert_array_equal(streamed[:, latency:], offline[:, : offline.shape[1] - latency])


@pytest.mark.parametrize(("n_fft", "hop", "win"), SETTINGS)
def test_impulse_comes_out_exactly_latency_samples_later(n_fft, hop, win):
    stft = STFT(n_fft, hop, win)
    assert stft.latency_samples == stft.win_length - hop
    x = np.zeros((1, 4000), np.float32)
    position = 1234
    x[0, position] = 1.0
    _, streamed = run_stream(stft, x, 97)
    assert int(np.argmax(np.abs(streamed[0]))) == position + stft.latency_samples
    assert streamed[0, position + stft.latency_samples] == pytest.approx(1.0, abs=1e-5)


def test_reset_equals_fresh_and_silence_after_reset_is_silence():
    stft = STFT()
    x = signal(2, 3000, seed=2)
    analyzer = stft.analyzer(2, 512)
    synthesizer = stft.synthesizer(2, analyzer.max_frames)
    spec = np.zeros((2, analyzer.max_frames, 161), np.complex64)
    out = np.zeros((2, analyzer.max_frames * 160), np.float32)
    for start in range(0, 3000, 500):
        frames = analyzer.process(x[:, start : start + 500], spec)
        synthesizer.process(spec, frames, out)
    analyzer.reset()
    synthesizer.reset()
    silence = np.zeros((2, 512), np.float32)
    for _ in range(4):
        frames = analyzer.process(silence, spec)
        n = synthesizer.process(spec, frames, out)
        np.testing.assert_array_equal(spec[:, :frames], 0)
        np.testing.assert_array_equal(out[:, :n], 0)
    analyzer.reset()
    synthesizer.reset()
    first = [analyzer.process(x[:, :500], spec), spec.copy()]
    fresh = stft.analyzer(2, 512)
    spec2 = np.zeros_like(spec)
    assert fresh.process(x[:, :500], spec2) == first[0]
    np.testing.assert_array_equal(spec2[:, : first[0]], first[1][:, : first[0]])


def test_streaming_process_does_not_allocate():
    stft = STFT()
    analyzer = stft.analyzer(2, 128)
    synthesizer = stft.synthesizer(2, analyzer.max_frames)
    spec = np.zeros((2, analyzer.max_frames, 161), np.complex64)
    out = np.zeros((2, analyzer.max_frames * 160), np.float32)
    block = signal(2, 128, seed=4)
    for _ in range(50):  # compile and warm up
        synthesizer.process(spec, analyzer.process(block, spec), out)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for _ in range(2000):
            synthesizer.process(spec, analyzer.process(block, spec), out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024  # no growth
    assert peak - before < 16384  # no per-call array (a frame alone is 1288 bytes)


def test_window_is_frozen_and_properties():
    stft = STFT(512, 128, 400, window="hann", dtype=np.float64)
    assert (stft.n_fft, stft.hop_length, stft.win_length, stft.n_bins) == (512, 128, 400, 257)
    assert stft.latency_samples == 272
    assert stft.dtype == np.float64 and stft.complex_dtype == np.complex128
    assert stft.n_frames(1000) == 7
    with pytest.raises(ValueError, match="read-only"):
        stft.window[0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        stft.synthesis_window[0] = 1.0
    # The pair reconstructs: sum over frames of w * w_s is 1 at every sample.
    total = np.zeros(512 * 8)
    for start in range(0, len(total) - 512, 128):
        total[start : start + 512] += stft.window * stft.synthesis_window
    np.testing.assert_allclose(total[512:-1024], 1.0, atol=1e-12)
    assert "n_fft=512" in repr(stft)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hop_length": 0}, r"hop_length=0 must be an integer >= 1"),
        ({"hop_length": 2.5}, r"hop_length=2.5 must be an integer"),
        ({"n_fft": 256, "win_length": 320}, r"win_length=320 must be <= n_fft=256"),
        ({"hop_length": 400}, r"hop_length=400 must be <= win_length=320"),
        ({"hop_length": 320}, r"hop_length=320 leaves samples .* not invertible"),
        ({"window": "hamming"}, r"window='hamming' is not supported"),
        ({"dtype": np.int16}, r"dtype=.* must be np.float32 or np.float64"),
        ({"dtype": np.complex64}, r"dtype=.* must be np.float32 or np.float64"),
        ({"planner_effort": "fast"}, r"planner_effort='fast' is not supported"),
        ({"n_fft": 1}, r"n_fft=1 must be an integer >= 2"),
        ({"win_length": True}, r"win_length=True must be an integer"),
    ],
)
def test_bad_settings_raise_parameter_error(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        STFT(**kwargs)
    assert issubclass(ParameterError, ValueError)


def test_bad_offline_input_raises():
    stft = STFT(planner_effort="FFTW_ESTIMATE")
    x = signal(1, 1000)[0]
    x[10] = np.nan
    with pytest.raises(ParameterError, match=r"Parameter x holds NaN or Inf"):
        stft.stft(x)
    with pytest.raises(ParameterError, match=r"Parameter x must be audio of shape .* 3-D"):
        stft.stft(np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ParameterError, match=r"Parameter x has integer dtype int16"):
        stft.stft(np.zeros(100, np.int16))
    with pytest.raises(ParameterError, match=r"Parameter spec must be a complex array"):
        stft.istft(np.zeros((3, 160), np.complex64))
    with pytest.raises(ParameterError, match=r"Parameter spec holds NaN"):
        stft.istft(np.full((3, 161), np.nan, np.complex64))
    with pytest.raises(ParameterError, match=r"Parameter length=-1 must be an integer >= 0"):
        stft.istft(np.zeros((3, 161), np.complex64), length=-1)


def test_bad_streaming_input_raises_and_keeps_state():
    stft = STFT()
    analyzer = stft.analyzer(2, 256)
    spec = np.zeros((2, analyzer.max_frames, 161), np.complex64)
    assert analyzer.max_frames == 2
    block = signal(2, 256, seed=1)
    with pytest.raises(ParameterError, match=r"block has 257 samples, more than max_block"):
        analyzer.process(signal(2, 257), spec)
    with pytest.raises(ParameterError, match=r"pass block.T"):
        analyzer.process(block.T.copy(), spec)
    with pytest.raises(ParameterError, match=r"Parameter out must be a complex64 array"):
        analyzer.process(block, np.zeros((2, 2, 161), np.complex128))
    bad = block.copy()
    bad[1, 7] = np.inf
    with pytest.raises(ParameterError, match=r"block holds NaN or Inf"):
        analyzer.process(bad, spec)
    # The failed calls changed nothing: the result equals a fresh analyser's.
    frames = analyzer.process(block, spec)
    fresh_spec = np.zeros_like(spec)
    assert stft.analyzer(2, 256).process(block, fresh_spec) == frames == 1
    np.testing.assert_array_equal(spec[:, :1], fresh_spec[:, :1])

    synthesizer = stft.synthesizer(2, 2)
    out = np.zeros((2, 320), np.float32)
    with pytest.raises(ParameterError, match=r"n_frames=3 must be between 0 and max_frames=2"):
        synthesizer.process(spec, 3, out)
    with pytest.raises(ParameterError, match=r"Parameter out must be a float array"):
        synthesizer.process(spec, 2, np.zeros((2, 100), np.float32))
    with pytest.raises(ParameterError, match=r"Parameter spec must be a complex array"):
        synthesizer.process(np.zeros((2, 2, 160), np.complex64), 1, out)
    with pytest.raises(ParameterError, match=r"max_block_samples=0 must be an integer >= 1"):
        stft.analyzer(1, 0)


def test_float64_mono_blocks_into_float32_stream_equal_offline():
    stft = STFT()
    x = signal(1, 2003, seed=8, dtype=np.float64)[0]
    analyzer = stft.analyzer(1, 100)
    spec = np.zeros((1, analyzer.max_frames, 161), np.complex64)
    frames = []
    for start in range(0, len(x), 100):
        count = analyzer.process(x[start : start + 100], spec)  # 1-D float64 blocks
        frames.append(spec[0, :count].copy())
    np.testing.assert_array_equal(np.concatenate(frames), stft.stft(x))


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 700), min_size=1, max_size=30),
    channels=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_any_block_partition_equals_offline(sizes, channels, seed):
    stft = _SHARED_STFT
    x = signal(channels, sum(sizes), seed=seed)
    analyzer = stft.analyzer(channels, 700)
    synthesizer = stft.synthesizer(channels, analyzer.max_frames)
    spec = np.zeros((channels, analyzer.max_frames, 161), np.complex64)
    out = np.zeros((channels, analyzer.max_frames * 160), np.float32)
    frames, samples, start = [], [], 0
    for size in sizes:
        count = analyzer.process(x[:, start : start + size], spec)
        frames.append(spec[:, :count].copy())
        samples.append(out[:, : synthesizer.process(spec, count, out)].copy())
        start += size
    offline = stft.stft(x)
    np.testing.assert_array_equal(np.concatenate(frames, axis=1), offline)
    streamed = np.concatenate(samples, axis=1)
    expected = stft.istft(offline)
    latency = stft.latency_samples
    np.testing.assert_array_equal(streamed[:, latency:], expected[:, : expected.shape[1] - latency])


_SHARED_STFT = STFT(320, 160)


def test_offline_falls_back_to_one_frame_plans_when_the_batch_plan_differs(monkeypatch):
    import seproc.stft as stft_module

    reference = STFT(512, 128, 400)
    x = signal(2, 5003, seed=12)
    expected_spec = reference.stft(x)
    expected = reference.istft(expected_spec)
    monkeypatch.setattr(stft_module.np, "array_equal", lambda a, b: False)
    forced = STFT(512, 128, 400)
    spec = forced.stft(x)
    assert forced._offline_forward.run.__name__ == "run"  # per-frame plans
    monkeypatch.undo()
    np.testing.assert_array_equal(spec, expected_spec)
    np.testing.assert_array_equal(forced.istft(spec), expected)


def test_row_transforms_are_lent_again_only_after_their_owner_is_collected() -> None:
    """A collected owner's planned transforms go, zeroed, to the next owner of that problem."""
    import gc

    from seproc.stft import RowTransforms

    class Owner:
        pass

    first, second = Owner(), Owner()
    args = (3, 96, np.dtype(np.float32), "FFTW_ESTIMATE", False)
    lent = RowTransforms.lend(first, *args)
    other = RowTransforms.lend(second, *args)
    assert other is not lent  # two live owners never share buffers
    lent.real[:, :96] = np.random.default_rng(0).standard_normal((3, 96))
    lent.run(3)
    expected = np.fft.rfft(lent.real[:, :96].astype(np.float64), axis=1)
    np.testing.assert_allclose(lent.spec[:, :49], expected, rtol=1e-4, atol=1e-4)
    del first
    gc.collect()
    again = RowTransforms.lend(Owner(), *args)
    assert again is lent
    assert not again.real.any() and not again.spec.any()
    # another problem (inverse) is planned anew
    assert (
        RowTransforms.lend(Owner(), 3, 96, np.dtype(np.float32), "FFTW_ESTIMATE", True) is not lent
    )
    del second
    gc.collect()


def test_whole_file_denoise_on_lent_plans_equals_it_on_plans_made_for_it(monkeypatch) -> None:
    import seproc
    from seproc.stft import RowTransforms

    noisy = np.random.default_rng(4).normal(0, 0.05, 20000).astype(np.float32)
    seproc.denoise(noisy, 16000)  # leaves its planned rows idle
    lent = seproc.denoise(noisy, 16000)  # on those rows, their buffers used before
    monkeypatch.setattr(RowTransforms, "lend", classmethod(lambda cls, owner, *a: cls(*a)))
    planned = seproc.denoise(noisy, 16000)
    # Not bit for bit: rows planned earlier in the process may run another FFTW algorithm
    # than rows planned now, after other plans added wisdom (seen in CI: 5e-9 apart).
    np.testing.assert_allclose(lent, planned, rtol=0, atol=1e-7)

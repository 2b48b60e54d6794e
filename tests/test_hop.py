"""The one-call chunk (``seproc._hop``) against the Python path it fuses, and its FFTW plans."""

from __future__ import annotations

import numpy as np
import pytest

import seproc.denoiser
from seproc import Denoiser, _fftw
from seproc.stft import RowTransforms, _BatchTransforms
from tests.streaming import peak_bytes_into_out, stream


def _pair(monkeypatch, **kwargs):
    """A Denoiser on the one-call chunk and one on the Python path, same settings."""
    fused = Denoiser(**kwargs)
    monkeypatch.setattr(seproc.denoiser, "_FUSED", False)
    python = Denoiser(**kwargs)
    monkeypatch.setattr(seproc.denoiser, "_FUSED", True)
    assert fused._fused is not None, "the shipped model on the BLAS engine runs fused"
    assert python._fused is None
    return fused, python


def _noisy_voice(rate_hz, channels, seconds=2.0, seed=3):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    voice = 0.2 * np.sin(2 * np.pi * 170 * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    rows = [voice + 0.03 * rng.standard_normal(t.size) for _ in range(channels)]
    return np.asarray(rows, np.float32)


@pytest.mark.parametrize(
    ("rate_hz", "channels", "sizes"),
    [
        (16000, 1, [160]),
        (16000, 1, [64, 1, 300, 17]),
        (16000, 2, [160, 1000]),
        (48000, 1, [480]),
        (48000, 1, [128, 1, 2000, 479]),
        (48000, 2, [480, 37]),
        (44100, 1, [441, 1000, 5]),  # full band through the polyphase resampler
        (32000, 1, [320, 64]),
        (8000, 1, [80]),  # a resampler between host and STFT: the Python path
    ],
)
def test_the_one_call_chunk_equals_the_python_path_bit_for_bit(
    monkeypatch, rate_hz, channels, sizes
):
    signal = _noisy_voice(rate_hz, channels)
    if rate_hz == 8000:  # resampled to the model's rate: nothing to fuse
        denoiser = Denoiser(sample_rate=rate_hz)
        assert denoiser._fused is None
        return
    fused, python = _pair(monkeypatch, sample_rate=rate_hz, channels=channels)
    got = stream(fused, signal, sizes)
    expected = stream(python, signal, sizes)
    np.testing.assert_array_equal(got, expected)
    assert np.abs(got).max() > 0.01  # the voice came through
    np.testing.assert_array_equal(fused.speech_activity, python.speech_activity)
    np.testing.assert_array_equal(fused.flush(), python.flush())


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_partitions_of_the_one_call_chunk_equal_one_call(rate_hz):
    signal = _noisy_voice(rate_hz, 1, seconds=1.5)
    one = Denoiser(sample_rate=rate_hz, max_block_samples=1024)
    assert one._fused is not None
    expected = stream(one, signal, [signal.shape[1]])  # chunks of 1024 inside
    got = stream(Denoiser(sample_rate=rate_hz), signal, [1, 7, 160, 480, 999])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"postfilter": False},  # no release, no pitch filter
        {"attenuation_limit_db": 12.0},
        {"attenuation_limit_db": 0.0},  # bypass: no pitch filter
    ],
)
@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_the_one_call_chunk_follows_the_denoisers_settings(monkeypatch, rate_hz, kwargs):
    signal = _noisy_voice(rate_hz, 1, seconds=1.0)
    fused, python = _pair(monkeypatch, sample_rate=rate_hz, **kwargs)
    np.testing.assert_array_equal(stream(fused, signal, [480]), stream(python, signal, [480]))


def test_a_reset_mid_stream_starts_the_one_call_chunk_afresh():
    signal = _noisy_voice(48000, 1, seconds=0.5)
    denoiser = Denoiser(sample_rate=48000)
    first = stream(denoiser, signal, [480]).copy()
    stream(denoiser, signal[:, :7000], [333])
    denoiser.reset()  # the network's state leaves its scratch: loaded again on the next call
    np.testing.assert_array_equal(stream(denoiser, signal, [480]), first)


def test_the_one_call_chunk_falls_back_where_the_network_runs_in_onnxruntime(monkeypatch):
    monkeypatch.setattr(seproc.denoiser, "_ENGINE", "onnxruntime")
    assert Denoiser(sample_rate=48000)._fused is None


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_the_one_call_chunk_allocates_nothing(rate_hz):
    denoiser = Denoiser(sample_rate=rate_hz)
    assert denoiser._fused is not None
    block = _noisy_voice(rate_hz, 1, seconds=0.01 * 4)[:, : rate_hz // 100]
    assert peak_bytes_into_out(denoiser, block) < 8 * 1024


def test_fftw_is_callable_from_numba_here():
    assert _fftw.available()


@pytest.mark.parametrize("inverse", [False, True])
# sizes no Denoiser here plans: FFTW's wisdom for the Denoisers' problems stays as it was
@pytest.mark.parametrize(("n_fft", "effort"), [(384, "FFTW_MEASURE"), (200, "FFTW_ESTIMATE")])
def test_numba_plans_transform_every_row_as_pyfftw_does(n_fft, effort, inverse):
    rows = RowTransforms(3, n_fft, np.dtype(np.float32), effort, inverse)
    plans = rows.numba_plans(3)
    assert plans is not None and plans.shape == (4,)
    assert rows.numba_plans(2) is plans  # made once
    rng = np.random.default_rng(5)
    n_bins = n_fft // 2 + 1
    for r in range(3):
        if inverse:
            frame = rng.standard_normal(2 * n_bins).astype(np.float32).view(np.complex64)
            frame[0] = frame[0].real  # a real signal's DC and Nyquist bins
            frame[-1] = frame[-1].real
            rows.spec[r, :n_bins] = frame
            _fftw.execute_rows(plans, r + 1)
            got = rows.real[r, :n_fft].copy()
            expected = np.fft.irfft(frame.astype(np.complex128), n_fft) * n_fft
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-4)
            rows.spec[r, :n_bins] = frame  # the inverse destroys its input
            rows.real[r].fill(0)
            rows.run(r + 1)  # pyfftw's plan for the row: the same bits
            np.testing.assert_array_equal(rows.real[r, :n_fft], got)
        else:
            frame = rng.standard_normal(n_fft).astype(np.float32)
            rows.real[r, :n_fft] = frame
            _fftw.execute_rows(plans, r + 1)
            got = rows.spec[r, :n_bins].copy()
            np.testing.assert_allclose(got, np.fft.rfft(frame.astype(np.float64)), atol=2e-4)
            rows.spec[r].fill(0)
            rows.run(r + 1)  # pyfftw's plan for the row: the same bits
            np.testing.assert_array_equal(rows.spec[r, :n_bins], got)


def test_numba_plans_are_refused_where_there_are_no_row_plans():
    assert RowTransforms(2, 72, np.dtype(np.float64), "FFTW_ESTIMATE", False).numba_plans(2) is None
    assert RowTransforms(2, 72, np.dtype(np.float32), "FFTW_ESTIMATE", False).numba_plans(3) is None
    batch = _BatchTransforms(8, 72, np.dtype(np.float32), "FFTW_ESTIMATE", False)
    if len(batch._plans) == 1:  # one batched plan (it equalled the row plans)
        assert batch.numba_plans(1) is None


def _blocks_of_every_layout(signal, size):
    """``signal`` in blocks of ``size``, cycling float32 C, float64, read-only, F-order and
    strided views: the one call takes the first, the others go through the copies."""
    kinds = []
    for i, start in enumerate(range(0, signal.shape[1], size)):
        block = signal[:, start : start + size]
        kind = i % 5
        if kind == 1:
            block = block.astype(np.float64)
        elif kind == 2:
            block = block.copy()
            block.flags.writeable = False
        elif kind == 3:
            block = np.asfortranarray(block)
        elif kind == 4:
            block = np.repeat(block, 2, axis=1)[:, ::2]
        kinds.append(block)
    return kinds


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_blocks_and_outs_of_any_layout_give_the_python_paths_output(monkeypatch, rate_hz):
    signal = _noisy_voice(rate_hz, 2, seconds=1.0)
    fused, python = _pair(monkeypatch, sample_rate=rate_hz, channels=2)
    size = rate_hz // 100
    got, expected = [], []
    for i, block in enumerate(_blocks_of_every_layout(signal, size)):
        out = np.zeros(block.shape, np.float64) if i % 3 == 1 else None
        got.append(np.array(fused.process(block, out=out), np.float32))
        expected.append(python.process(block.astype(np.float32)))
    np.testing.assert_array_equal(np.concatenate(got, 1), np.concatenate(expected, 1))


@pytest.mark.parametrize("rate_hz", [16000, 48000])
@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e16])
def test_a_bad_block_is_refused_by_the_one_call_and_the_stream_goes_on(monkeypatch, rate_hz, bad):
    from seproc.errors import ParameterError

    signal = _noisy_voice(rate_hz, 1, seconds=0.5)
    fused, python = _pair(monkeypatch, sample_rate=rate_hz)
    size = rate_hz // 100
    for i, start in enumerate(range(0, signal.shape[1], size)):
        block = signal[:, start : start + size].copy()
        if i == 7:
            spoiled = block.copy()
            spoiled[0, size // 2] = bad
            with pytest.raises(ParameterError, match="block"):
                fused.process(spoiled, out=spoiled)
        np.testing.assert_array_equal(fused.process(block, out=block.copy()), python.process(block))


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_every_setting_takes_the_one_compiled_version_of_its_path(rate_hz):
    """One numba type per path (each costs ~15 s of LLVM on a cold cache): channels, the
    post-filter, the pitch filter and the attenuation limit change values, not types."""
    from numba import typeof

    default = typeof(Denoiser(sample_rate=rate_hz)._fused_args())
    for kwargs in ({"channels": 2}, {"postfilter": False}, {"attenuation_limit_db": 0.0}):
        assert typeof(Denoiser(sample_rate=rate_hz, **kwargs)._fused_args()) == default, kwargs


@pytest.mark.parametrize("warm_up", [True, False])
def test_a_denoiser_is_freed_without_the_garbage_collector(warm_up):
    """No reference cycle: its FFT plans go back to the pool as soon as it is dropped
    (one through a bound method stored on the object made ``seproc.denoise`` plan anew
    on every call)."""
    import gc
    import weakref

    denoiser = Denoiser(sample_rate=48000, warm_up=warm_up)
    denoiser.process(np.zeros((1, 480), np.float32))
    gone = weakref.ref(denoiser)
    gc.disable()
    try:
        del denoiser
        assert gone() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("rate_hz", [16000, 48000])
def test_after_the_warm_up_the_one_call_skips_numbas_dispatcher(rate_hz):
    from seproc._hop import full_band_chunk, model_rate_chunk

    denoiser = Denoiser(sample_rate=rate_hz)
    assert denoiser._chunk_call not in (model_rate_chunk, full_band_chunk)  # an entry point
    cold = Denoiser(sample_rate=rate_hz, warm_up=False)
    assert cold._fused is None  # onnxruntime: nothing fused, nothing compiled for it


@pytest.mark.parametrize(
    ("rate_hz", "channels", "one_d"), [(16000, 1, True), (48000, 1, False), (48000, 2, False)]
)
def test_in_place_blocks_take_the_short_path_and_give_the_python_paths_output(
    monkeypatch, rate_hz, channels, one_d
):
    signal = _noisy_voice(rate_hz, channels, seconds=0.5)
    fused, python = _pair(monkeypatch, sample_rate=rate_hz, channels=channels)
    size = rate_hz // 100
    for start in range(0, signal.shape[1] - size + 1, size):
        buffer = signal[:, start : start + size].copy()
        expected = python.process(buffer)
        if one_d:
            buffer = buffer[0]
        assert fused.process(buffer, out=buffer) is buffer  # out itself, in place
        np.testing.assert_array_equal(buffer.reshape(channels, size), expected)

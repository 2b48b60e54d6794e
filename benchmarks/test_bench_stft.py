"""STFT core: seproc beside librosa, scipy, numpy.fft (and torch if installed), same work, same run.

Run: ``python -m pytest benchmarks/test_bench_stft.py --benchmark-only
--benchmark-group-by=group --benchmark-columns=min,median,mean,rounds``

Offline cases transform 10 s of 16 kHz mono white noise with a sqrt-Hann window at
n_fft/hop 320/160 and 512/128, every engine on the same samples and settings, no
centre padding (librosa ``center=False``; scipy ``ShortTimeFFT`` pads its edges, a few
frames more; torch uses one thread and ``center=True`` for its ISTFT). Compare medians
within a group: peer / seproc is seproc's speed-up.

Streaming cases push 1 s through ``STFT.analyzer`` + ``STFT.synthesizer`` (analysis and
overlap-add synthesis, the identity chain) in fixed blocks; ``extra_info`` holds the
cost per hop in microseconds. The peer is the same chain written with numpy.fft, one
frame at a time. Every engine runs once before it is timed (numba compiles, FFTW plans).
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.fft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import ShortTimeFFT

from seproc.stft import STFT

SECONDS = 10
SAMPLE_RATE_HZ = 16000
SETTINGS = [(320, 160), (512, 128)]
OFFLINE_ENGINES = ["seproc", "librosa", "scipy_shorttimefft", "numpy_rfft", "scipy_rfft", "torch"]
BLOCKS = [64, 128, 480, 1024]


def _signal(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE_HZ))).astype(np.float32)


def _stft_engine(engine: str, n_fft: int, hop: int):
    stft = STFT(n_fft, hop)
    window = stft.window
    if engine == "seproc":
        return stft.stft
    if engine == "librosa":
        return lambda x: librosa.stft(
            x, n_fft=n_fft, hop_length=hop, window=window, center=False, dtype=np.complex64
        )
    if engine == "scipy_shorttimefft":
        sft = ShortTimeFFT(window, hop, fs=SAMPLE_RATE_HZ, mfft=n_fft, phase_shift=None)
        return sft.stft
    if engine in ("numpy_rfft", "scipy_rfft"):
        rfft = np.fft.rfft if engine == "numpy_rfft" else scipy.fft.rfft
        return lambda x: rfft(sliding_window_view(x, n_fft)[::hop] * window, axis=-1)
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # seproc is single-threaded; the machine is shared
    torch_window = torch.from_numpy(np.array(window))
    return lambda x: torch.stft(
        torch.from_numpy(x),
        n_fft,
        hop,
        window=torch_window,
        center=False,
        return_complex=True,
    )


def _istft_engine(engine: str, n_fft: int, hop: int, x: np.ndarray):
    stft = STFT(n_fft, hop)
    if engine == "seproc":
        spec = stft.stft(x)
        return lambda: stft.istft(spec)
    if engine == "librosa":
        spec = librosa.stft(x, n_fft=n_fft, hop_length=hop, window=stft.window, center=False)
        return lambda: librosa.istft(spec, hop_length=hop, window=stft.window, center=False)
    if engine == "scipy_shorttimefft":
        sft = ShortTimeFFT(stft.window, hop, fs=SAMPLE_RATE_HZ, mfft=n_fft, phase_shift=None)
        spec = sft.stft(x)
        return lambda: sft.istft(spec, k1=len(x))
    if engine in ("numpy_rfft", "scipy_rfft"):
        irfft = np.fft.irfft if engine == "numpy_rfft" else scipy.fft.irfft
        spec = np.fft.rfft(sliding_window_view(x, n_fft)[::hop] * stft.window, axis=-1)
        synthesis = stft.synthesis_window

        def overlap_add():
            frames = irfft(spec, n=n_fft, axis=-1) * synthesis
            y = np.zeros(hop * (len(frames) - 1) + n_fft, np.float32)
            for t, frame in enumerate(frames):  # librosa's __overlap_add, in numpy
                y[t * hop : t * hop + n_fft] += frame
            return y

        return overlap_add
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    window = torch.from_numpy(np.array(stft.window))
    # center=True: torch.istft rejects a window that is 0 at the uncentred edge (NOLA).
    spec = torch.stft(torch.from_numpy(x), n_fft, hop, window=window, return_complex=True)
    return lambda: torch.istft(spec, n_fft, hop, window=window)


@pytest.mark.parametrize("engine", OFFLINE_ENGINES)
@pytest.mark.parametrize(("n_fft", "hop"), SETTINGS)
def test_offline_stft(benchmark, n_fft, hop, engine):
    benchmark.group = f"offline STFT {n_fft}/{hop}, {SECONDS} s"
    x = _signal(SECONDS)
    transform = _stft_engine(engine, n_fft, hop)
    transform(x)  # compile / plan
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark(transform, x)


@pytest.mark.parametrize("engine", OFFLINE_ENGINES)
@pytest.mark.parametrize(("n_fft", "hop"), SETTINGS)
def test_offline_istft(benchmark, n_fft, hop, engine):
    benchmark.group = f"offline ISTFT {n_fft}/{hop}, {SECONDS} s"
    x = _signal(SECONDS)
    inverse = _istft_engine(engine, n_fft, hop, x)
    inverse()
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark(inverse)


def _stream_seproc(stft: STFT, x: np.ndarray, block: int):
    analyzer = stft.analyzer(1, block)
    synthesizer = stft.synthesizer(1, analyzer.max_frames)
    spec = np.zeros((1, analyzer.max_frames, stft.n_bins), np.complex64)
    out = np.zeros((1, analyzer.max_frames * stft.hop_length), np.float32)
    blocks = [x[np.newaxis, i : i + block] for i in range(0, len(x), block)]

    def run():
        analyzer.reset()
        synthesizer.reset()
        for b in blocks:
            synthesizer.process(spec, analyzer.process(b, spec), out)

    return run


def _stream_numpy(stft: STFT, x: np.ndarray, block: int):
    n_fft, hop, win = stft.n_fft, stft.hop_length, stft.win_length
    window = stft.window
    synthesis = stft.synthesis_window
    history = np.zeros(win - 1 + block, np.float32)
    acc = np.zeros(n_fft + hop, np.float32)
    blocks = [x[i : i + block] for i in range(0, len(x), block)]

    def run():
        filled = win - hop
        history[:] = 0
        acc[:] = 0
        for b in blocks:
            history[filled : filled + len(b)] = b
            filled += len(b)
            start = 0
            while start + win <= filled:
                frame = np.fft.irfft(np.fft.rfft(history[start : start + n_fft] * window), n_fft)
                acc[:n_fft] += frame * synthesis
                acc[:-hop] = acc[hop:].copy()  # emit hop samples (discarded here)
                acc[-hop:] = 0
                start += hop
            history[: filled - start] = history[start:filled].copy()
            filled -= start

    return run


@pytest.mark.parametrize("engine", ["seproc", "numpy_fft"])
@pytest.mark.parametrize("block_samples", BLOCKS)
def test_streaming_identity(benchmark, block_samples, engine):
    benchmark.group = f"streaming analysis+synthesis 320/160, block {block_samples}"
    stft = STFT(320, 160)
    x = _signal(1.0)
    run = (_stream_seproc if engine == "seproc" else _stream_numpy)(stft, x, block_samples)
    run()
    hops = len(x) // stft.hop_length
    benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    per_hop_us = 1e6 * benchmark.stats.stats.median / hops
    benchmark.extra_info["per_hop_us"] = round(per_hop_us, 2)
    benchmark.extra_info["real_time_factor"] = round(per_hop_us / (1e6 * 160 / SAMPLE_RATE_HZ), 5)
    benchmark.extra_info["latency_ms"] = 1000 * stft.latency_samples / SAMPLE_RATE_HZ

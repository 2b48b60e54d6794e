"""Streaming resampling: seproc's numba polyphase resampler beside soxr, same work, same run.

Run: ``python -m pytest benchmarks/test_bench_resample.py --benchmark-only
--benchmark-timer=time.process_time --benchmark-columns=median,min,max
--benchmark-group-by=group``

``time.process_time`` counts this process's CPU time, so other jobs on a shared
machine do not inflate the numbers (soxr runs single-threaded here: one channel).

Each case streams 10 s of mono white noise in fixed blocks through a fresh stream
object: ``seproc.resample.StreamResampler.process_into`` (into a preallocated buffer)
and ``soxr.ResampleStream.resample_chunk`` (its default quality, "HQ"). The seproc
row's ``extra_info`` holds the ratio to the soxr median of the same group, measured
just before it in the same session.
"""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from seproc.resample import StreamResampler

SECONDS = 10
CASES = [(48000, 16000), (16000, 48000), (44100, 16000)]
BLOCKS = [480, 1024]
_soxr_median_s: dict[str, float] = {}


def _signal(rate_hz: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((1, SECONDS * rate_hz))).astype(np.float32)


@pytest.mark.parametrize("engine", ["soxr", "seproc"])  # soxr first: the ratio needs it
@pytest.mark.parametrize("block_samples", BLOCKS)
@pytest.mark.parametrize(("in_rate_hz", "out_rate_hz"), CASES)
def test_stream_resample(benchmark, in_rate_hz, out_rate_hz, block_samples, engine):
    group = f"{in_rate_hz}->{out_rate_hz} Hz, block {block_samples}"
    benchmark.group = group
    signal = _signal(in_rate_hz)
    n = signal.shape[1]
    starts = range(0, n, block_samples)

    if engine == "seproc":
        resampler = StreamResampler(
            in_rate_hz, out_rate_hz, channels=1, max_block_samples=block_samples
        )
        out = np.empty((1, resampler.max_output_samples(block_samples)), np.float32)
        resampler.process_into(signal[:, :block_samples], out)  # compile before timing

        def run() -> int:
            resampler.reset()
            total = 0
            for i in starts:
                total += resampler.process_into(signal[:, i : i + block_samples], out)
            return total

    else:
        mono = np.ascontiguousarray(signal[0])

        def run() -> int:
            stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, 1, dtype="float32")
            total = 0
            for i in starts:
                total += len(stream.resample_chunk(mono[i : i + block_samples]))
            return total

    total = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    expected = n * out_rate_hz // in_rate_hz
    assert 0.99 * expected < total <= expected + 200  # all but what the filter delay holds

    median_s = benchmark.stats.stats.median
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark.extra_info["real_time_factor"] = median_s / SECONDS
    benchmark.extra_info["us_per_block"] = 1e6 * median_s / len(starts)
    if engine == "soxr":
        _soxr_median_s[group] = median_s
    elif group in _soxr_median_s:
        benchmark.extra_info["ratio_to_soxr"] = median_s / _soxr_median_s[group]

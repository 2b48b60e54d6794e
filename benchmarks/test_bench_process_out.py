"""What the default ``Denoiser.process(block)`` allocation costs against ``out=``.

``process(block)`` returns a new array the caller owns; ``process(block, out=buf)``
writes into the host's buffer and allocates nothing. Both stream the same 2 s of
48 kHz stereo noise through the bundled model in host-sized blocks, in the same run,
after the constructor's warm-up has compiled every kernel. The difference of the
``mean`` columns per group is the price of the allocation.

Run: ``python -m pytest benchmarks/test_bench_process_out.py --benchmark-only
--benchmark-group-by=param:block_samples --benchmark-columns=min,median,mean,rounds
-p no:randomly``
"""

from __future__ import annotations

import numpy as np
import pytest

from seproc import Denoiser

SAMPLE_RATE = 48000
CHANNELS = 2
SECONDS = 2
BLOCKS = [128, 480, 4096]


def stream(denoiser: Denoiser, signal: np.ndarray, block: int, out: np.ndarray | None) -> None:
    for start in range(0, signal.shape[1], block):
        piece = signal[:, start : start + block]
        if out is None:
            denoiser.process(piece)
        else:
            denoiser.process(piece, out=out[:, : piece.shape[1]])


@pytest.mark.parametrize("mode", ["out=buffer", "new array"])
@pytest.mark.parametrize("block_samples", BLOCKS)
def test_process_return(benchmark, block_samples, mode):
    signal = (
        0.1 * np.random.default_rng(0).standard_normal((CHANNELS, SECONDS * SAMPLE_RATE))
    ).astype(np.float32)
    denoiser = Denoiser(sample_rate=SAMPLE_RATE, channels=CHANNELS, max_block_samples=block_samples)
    out = np.empty((CHANNELS, block_samples), np.float32) if mode == "out=buffer" else None
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark.extra_info["block_ms"] = 1000.0 * block_samples / SAMPLE_RATE
    benchmark.pedantic(
        stream,
        args=(denoiser, signal, block_samples, out),
        setup=denoiser.reset,
        rounds=7,
        warmup_rounds=1,
    )

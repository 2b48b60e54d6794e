"""Feeding a Denoiser block by block: block partitions, and allocation on the hot path."""

from __future__ import annotations

import tracemalloc

import numpy as np


def stream(denoiser, signal, sizes):
    """Feed ``signal`` in blocks of the given sizes (cycled) and return the concatenation."""
    pieces, start, i = [], 0, 0
    while start < signal.shape[1]:
        size = sizes[i % len(sizes)]
        pieces.append(denoiser.process(signal[:, start : start + size]))
        start += size
        i += 1
    return np.concatenate(pieces, axis=1) if pieces else signal[:, :0]


def peak_bytes_into_out(denoiser, block, calls=20, warm_up_calls=3):
    """Peak bytes traced over ``calls`` of ``process(block, out=)`` after a warm-up.

    One new output array of a 2 x 4096 float32 block would be 32 KiB; views and
    bindings are far smaller, so a hot path that allocates nothing stays under 8 KiB.
    """
    out = np.empty_like(block)
    for _ in range(warm_up_calls):
        denoiser.process(block, out=out)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(calls):
            denoiser.process(block, out=out)
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()

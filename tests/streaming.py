"""Feeding a Denoiser block by block, for the tests that compare block partitions."""

from __future__ import annotations

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

"""Shared pieces of the interleaved A/B scripts (``ab_streaming.py``, ``ab_models.py``,
``ab_blas_engine.py``): their test signal and their timing loops."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np

from seproc import Denoiser


def noisy(sample_rate_hz: int, seconds: float) -> np.ndarray:
    """A 180 Hz tone modulated at 4 Hz in white noise, ``(1, samples)`` float32."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[np.newaxis]


def us_per_hop(
    denoisers: dict[str, Denoiser],
    signal: np.ndarray,
    block: int,
    rounds: int,
    *,
    reverse_every_other: bool = False,
    prepare: Mapping[str, Callable[[], None]] | None = None,
) -> dict[str, list[float]]:
    """Stream ``signal`` through each Denoiser in turn, round by round; µs per 10 ms hop.

    Each round resets every Denoiser and feeds it the whole signal in ``block``-sample
    blocks with ``process(block, out=)``; the variants take turns within a round (in
    reverse order every other round with ``reverse_every_other``), so load from
    neighbours hits them alike. Round 0 warms caches and is dropped. ``prepare[name]``,
    where given, runs (untimed) before that variant's turn: e.g. it swaps in the
    module-level kernels of the code path the variant stands for.
    """
    out = np.zeros((signal.shape[0], block), np.float32)
    sample_rate_hz = next(iter(denoisers.values())).sample_rate
    hops = signal.shape[1] / (sample_rate_hz / 100)
    times: dict[str, list[float]] = {name: [] for name in denoisers}
    names = list(denoisers)
    for r in range(rounds + 1):
        order = names[::-1] if reverse_every_other and r % 2 == 0 else names
        for name in order:
            d = denoisers[name]
            if prepare is not None and name in prepare:
                prepare[name]()
            d.reset()
            start = time.perf_counter()
            for s in range(0, signal.shape[1] - block + 1, block):
                d.process(signal[:, s : s + block], out=out)
            if r:
                times[name].append((time.perf_counter() - start) / hops * 1e6)
    return times


def us_per_call(
    calls: dict[str, Callable[[], object]], rounds: int, calls_per_round: int
) -> dict[str, list[float]]:
    """Time each callable ``calls_per_round`` times a round, round by round; µs per call.

    The variants take turns within a round, in reverse order every other round, so load
    from neighbours hits them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            call = calls[name]
            start = time.perf_counter()
            for _ in range(calls_per_round):
                call()
            times[name].append((time.perf_counter() - start) / calls_per_round * 1e6)
    return times

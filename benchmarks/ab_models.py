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
from pathlib import Path

import numpy as np
from _interleave import noisy, us_per_hop

import seproc.denoiser
from seproc import Denoiser


def build(model: Path | None, one_frame: bool, sample_rate_hz: int) -> Denoiser:
    """Return a Denoiser on ``model`` (None: the shipped one) on onnxruntime, one-frame graph
    on or off."""
    seproc.denoiser._ONE_FRAME_GRAPH = one_frame
    seproc.denoiser._ENGINE = "onnxruntime"  # the paths priced here are onnxruntime's
    try:
        d = Denoiser(sample_rate=sample_rate_hz, model=model)
    finally:
        seproc.denoiser._ONE_FRAME_GRAPH = True
        seproc.denoiser._ENGINE = None
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
    denoisers = {name: build(*spec, sample_rate_hz) for name, spec in variants.items()}
    times = us_per_hop(denoisers, noisy(sample_rate_hz, seconds), block, rounds)
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

"""Interleaved A/B of model files in the streaming path, in one process: µs per 10 ms hop.

Each variant is a ``Denoiser`` (mono) on one model file, streaming the same noisy signal
in fixed blocks with ``process(block, out=)``; variants alternate round by round (as in
``ab_streaming.py``), so a neighbour's load hits them alike. Prints medians and the
ratio to the first variant.

``taskset -c 1 python benchmarks/ab_models.py --rounds 60 refine=/tmp/refine.onnx``
compares the shipped model with the file ``refine.onnx`` (e.g. a model with a refine
head, ``training.model.grow_refine``) on onnxruntime, both on the one-frame graph, and
the second on its file graph.

``--engine blas`` runs every variant on the numba + BLAS engine instead: the shipped
model, then each file with the int8 matrices it holds (``training.quantize``) and with
them forced to float32 (the same weights, ``seproc.model._BLAS_INT8 = False``);
``--frame-calls N`` also times the model call alone on one frame (``frame_run``, N calls
a round), the same variants interleaved. Issue 20's int8 A/B::

    python -m training.quantize models/seproc-default.onnx --out /tmp/int8.onnx
    PYTHONPATH=. taskset -c 1 python benchmarks/ab_models.py --engine blas --rounds 40 \\
        --blocks 16000:160,48000:480,16000:64 --frame-calls 200 int8=/tmp/int8.onnx

(``PYTHONPATH=.``: a script's own folder comes first on ``sys.path``, so without it
``import seproc`` finds whatever seproc is installed, not this checkout's.)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _interleave import noisy, us_per_call, us_per_hop

import seproc.denoiser
import seproc.model
from seproc import Denoiser
from seproc.model import OnnxModel

#: How a variant evaluates its model: onnxruntime's one-frame or file graph, or the BLAS
#: engine with int8 matrices where the file's lie on the grid, or with float32 forced.
MODES = ("one-frame graph", "file graph", "blas", "blas, float32 forced")


def _engine_settings(mode: str) -> tuple[str, bool, bool]:
    """Return ``seproc.denoiser._ENGINE``, ``_ONE_FRAME_GRAPH`` and ``model._BLAS_INT8``."""
    if mode.startswith("blas"):
        return "blas", True, mode == "blas"
    return "onnxruntime", mode == "one-frame graph", True


def build(model: Path | None, mode: str, sample_rate_hz: int) -> Denoiser:
    """Return a Denoiser on ``model`` (None: the shipped one) evaluated as ``mode``."""
    engine, one_frame, int8 = _engine_settings(mode)
    seproc.denoiser._ENGINE, seproc.denoiser._ONE_FRAME_GRAPH = engine, one_frame
    seproc.model._BLAS_INT8 = int8
    try:
        d = Denoiser(sample_rate=sample_rate_hz, model=model)
    finally:
        seproc.denoiser._ONE_FRAME_GRAPH = True
        seproc.denoiser._ENGINE = None
        seproc.model._BLAS_INT8 = True
    _check(d._model, model, mode)
    return d


def _check(model: OnnxModel, path: Path | None, mode: str) -> None:
    engine, one_frame, int8 = _engine_settings(mode)
    if model.engine != engine:
        raise RuntimeError(f"{path}: BLAS engine refused: {model.engine_refusal}")
    if engine == "onnxruntime" and model.one_frame_graph != one_frame:
        raise RuntimeError(f"{path}: one-frame graph refused: {model.one_frame_refusal}")
    if engine == "blas" and not int8 and model.int8_matrices:
        raise RuntimeError(f"{path}: int8 matrices were not forced to float32")


def compare(
    variants: dict[str, tuple[Path | None, str]],
    sample_rate_hz: int,
    block: int,
    rounds: int,
    seconds: float,
) -> None:
    """Time the variants interleaved; print one table row each."""
    denoisers = {name: build(*spec, sample_rate_hz) for name, spec in variants.items()}
    times = us_per_hop(
        denoisers, noisy(sample_rate_hz, seconds), block, rounds, reverse_every_other=True
    )
    _print_rows(f"| {sample_rate_hz} | {block} ", times)


def compare_frame_calls(
    variants: dict[str, tuple[Path | None, str]], rounds: int, calls_per_round: int
) -> None:
    """Time the model call alone on one frame (bound buffers), interleaved."""
    calls = {}
    for name, (path, mode) in variants.items():
        engine, one_frame, int8 = _engine_settings(mode)
        seproc.model._BLAS_INT8 = int8
        try:
            model = OnnxModel(path, engine=engine, one_frame_graph=one_frame)
        finally:
            seproc.model._BLAS_INT8 = True
        _check(model, path, mode)
        features = np.random.default_rng(0).standard_normal((1, model.info.n_bins))
        row = features.astype(np.float32)
        calls[name] = model.frame_run(row, np.zeros_like(row), model.new_state())
        for _ in range(100):
            calls[name]()
    _print_rows("| one frame | - ", us_per_call(calls, rounds, calls_per_round))


def _print_rows(prefix: str, times: dict[str, list[float]]) -> None:
    """One row per variant: median µs, and against the first variant the median's
    difference, the ratio of medians and the median of the per-round ratios."""
    first = next(iter(times))
    base = float(np.median(times[first]))
    for name, values in times.items():
        median = float(np.median(values))
        per_round = float(np.median(np.array(values) / np.array(times[first])))
        print(
            f"{prefix}| {name} | {median:.1f} | {median - base:+.1f} | {median / base:.3f} | "
            f"{per_round:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="NAME=PATH of each model to compare")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per round")
    parser.add_argument("--engine", choices=("onnxruntime", "blas"), default="onnxruntime")
    parser.add_argument(
        "--blocks", default="16000:160,48000:480", help="RATE:BLOCK,... (default %(default)s)"
    )
    parser.add_argument(
        "--frame-calls", type=int, default=0, help="also time one-frame model calls (0: skip)"
    )
    args = parser.parse_args()
    if args.engine == "blas":
        variants: dict[str, tuple[Path | None, str]] = {"shipped, blas": (None, "blas")}
        modes = ("blas", "blas, float32 forced")
    else:
        variants = {"shipped, one-frame graph": (None, "one-frame graph")}
        modes = ("one-frame graph", "file graph")
    for spec in args.models:
        name, _, path = spec.partition("=")
        for mode in modes:
            variants[f"{name}, {mode}"] = (Path(path), mode)
    print(
        "| rate (Hz) | block | variant | median µs per hop | vs first (µs) | vs first | "
        "median of round ratios |"
    )
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for rate_block in args.blocks.split(","):
        sample_rate_hz, block = (int(v) for v in rate_block.split(":"))
        compare(variants, sample_rate_hz, block, args.rounds, args.seconds)
    if args.frame_calls:
        compare_frame_calls(variants, args.rounds, args.frame_calls)


if __name__ == "__main__":
    main()

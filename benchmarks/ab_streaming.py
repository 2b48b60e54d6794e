"""Interleaved A/B of the streaming levers of issue 20, in one process: µs per 10 ms hop.

Each variant is a ``Denoiser`` (mono, shipped model) streaming the same noisy signal in
fixed blocks, ``process(block, out=)``; variants alternate round by round, so a
neighbour's load hits them alike. Medians over the rounds, and the ratio to the first.
The earlier code paths are rebuilt on today's objects:

- ``main``: every one-frame model call binds its features and output (``OnnxModel.run``)
  on the file's graph, and the analyzer, synthesizer, features and rate bridge are
  called through their checked public methods (as on main before issue 20);
- ``+ FrameRun``: one-frame calls run on buffers bound once (``OnnxModel.frame_run``);
- ``+ one-frame graph``: ... on the graph derived for one frame (``seproc._one_frame``);
- ``+ unchecked DSP``: the owned DSP objects called without re-checks, equal rates passed
  through without copies;
- ``+ BLAS engine`` (= today's streaming Denoiser): every frame on the numba + BLAS engine
  (``seproc._blas_net``) instead of onnxruntime.

``taskset -c 1 python benchmarks/ab_streaming.py --rounds 30``
"""

from __future__ import annotations

import argparse

import numpy as np
from _interleave import noisy, us_per_hop

import seproc.denoiser
from seproc import Denoiser


class _Checked:
    """Stands in for an owned DSP object, sending the unchecked call to the checked one."""

    def __init__(self, real: object, **calls: object) -> None:
        self._real = real
        self.__dict__.update(calls)

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)


def build(variant: str, sample_rate_hz: int) -> Denoiser:
    seproc.denoiser._ONE_FRAME_GRAPH = variant != "main" and variant != "+ FrameRun"
    seproc.denoiser._ENGINE = "blas" if variant == "+ BLAS engine" else "onnxruntime"
    try:
        d = Denoiser(sample_rate=sample_rate_hz)
    finally:
        seproc.denoiser._ONE_FRAME_GRAPH = True
        seproc.denoiser._ENGINE = None
    if variant == "main":
        rows = len(d._frame_runs[0])
        d._frame_runs = [
            [
                (
                    lambda c=c, r=r: d._model.run(
                        d._feature_buffer[c, :1], d._model_out[c, r : r + 1], d._states[c]
                    )
                )
                for r in range(rows)
            ]
            for c in range(d.channels)
        ]
    if variant not in ("+ unchecked DSP", "+ BLAS engine"):
        d._analyzer = _Checked(d._analyzer, push=d._analyzer.process)
        d._synthesizer = _Checked(d._synthesizer, push=d._synthesizer.process)
        d._features = _Checked(d._features, compute_frames=d._features.compute)
        d._bridge._passthrough = False
    return d


VARIANTS = ("main", "+ FrameRun", "+ one-frame graph", "+ unchecked DSP", "+ BLAS engine")


def compare(sample_rate_hz: int, block: int, rounds: int, seconds: float) -> None:
    denoisers = {v: build(v, sample_rate_hz) for v in VARIANTS}
    times = us_per_hop(denoisers, noisy(sample_rate_hz, seconds), block, rounds)
    base = float(np.median(times[VARIANTS[0]]))
    previous = base
    for variant in VARIANTS:
        median = float(np.median(times[variant]))
        print(
            f"| {sample_rate_hz} | {block} | {variant} | {median:.1f} | "
            f"{median / previous:.3f} | {median / base:.3f} |"
        )
        previous = median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=1.0, help="audio per round")
    args = parser.parse_args()
    print("| rate (Hz) | block | variant | median µs per hop | vs previous row | vs main |")
    print("| ---: | ---: | --- | ---: | ---: | ---: |")
    for sample_rate_hz, block in ((16000, 160), (48000, 480), (16000, 64), (48000, 128)):
        compare(sample_rate_hz, block, args.rounds, args.seconds)


if __name__ == "__main__":
    main()

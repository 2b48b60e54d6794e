"""Interleaved A/B of ``seproc.denoise`` with lent FFTW rows and with rows planned per call.

``seproc.stft.RowTransforms.lend`` gives a new owner (a whole-file ``Denoiser``'s
analyser, synthesiser and pitch filter) the planned rows a collected owner left; the
"planned" variant replaces it, for its rounds only, by planning new rows every time (the
path before). NSNet2's whole-file ONNX run (``training.peers.NSNet2``) takes its turn in
each round, so all three see the same load; prints min and median ms per 10 s at 16 kHz
and the ratios to NSNet2. Issue 20's measurement::

    PYTHONPATH=. taskset -c 1 python benchmarks/ab_lent_plans.py --rounds 15

(``PYTHONPATH=.``: a script's own folder comes first on ``sys.path``, so without it
``import seproc`` finds whatever seproc is installed, not this checkout's.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import seproc
from seproc import stft
from training import peers


def _planned_each_time(
    cls: type, owner: object, *args: object
) -> stft.RowTransforms:  # the path before lending
    return cls(*args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    rate_hz = 16000
    noisy = np.random.default_rng(0).normal(0, 0.05, int(args.seconds * rate_hz))
    noisy = noisy.astype(np.float32)
    lend = stft.RowTransforms.lend.__func__
    nsnet2 = peers.NSNet2()
    nsnet2.denoise(noisy)
    seproc.denoise(noisy, rate_hz)  # compile and open the session once
    times_s: dict[str, list[float]] = {"lent": [], "planned": [], "nsnet2": []}
    try:
        for _ in range(args.rounds):
            for name, values in times_s.items():
                if name == "nsnet2":
                    start = time.perf_counter()
                    nsnet2.denoise(noisy)
                else:
                    chosen = lend if name == "lent" else _planned_each_time
                    stft.RowTransforms.lend = classmethod(chosen)  # type: ignore[method-assign]
                    start = time.perf_counter()
                    seproc.denoise(noisy, rate_hz)
                values.append(time.perf_counter() - start)
    finally:
        stft.RowTransforms.lend = classmethod(lend)  # type: ignore[method-assign]
    per_10_s = 10.0 / args.seconds * 1e3
    nsnet2_min = min(times_s["nsnet2"])
    for name, values in times_s.items():
        print(
            f"{name:8s} min {min(values) * per_10_s:6.1f}  median "
            f"{np.median(values) * per_10_s:6.1f} ms per 10 s  "
            f"min / NSNet2's {min(values) / nsnet2_min:.3f}"
        )


if __name__ == "__main__":
    main()

"""Time the BLAS engine's three product methods on the shipped U-Net's ten product shapes.

``seproc._blas_net.product_methods`` picks, per shape, the fastest of OpenBLAS's sgemm,
the numba loop ``_rows_product`` and the register tiles of ``seproc._simd.tiled_product``
(columns a multiple of 8: the head's five are padded to eight) when a model loads; this
prints the three times per shape (µs per product, 20000 products each), the figures
behind that choice (issue 20)::

    PYTHONPATH=. taskset -c 1 python benchmarks/product_methods.py
"""

from __future__ import annotations

import time

import numpy as np

from seproc._blas_net import PRODUCT_LOOP, PRODUCT_SGEMM, PRODUCT_TILED, _repeat_product
from seproc._simd import tiled_product_fits

# (rows, inner, columns): encoder levels 1-5, then decoder levels 5-1 of the shipped model
# (the head's columns as the engine holds them, padded 5 -> 8)
SHAPES = [
    (81, 10, 16), (41, 96, 24), (21, 144, 32), (11, 192, 48), (6, 288, 64),
    (6, 128, 144), (11, 96, 96), (21, 64, 72), (41, 48, 48), (81, 32, 8),
]  # fmt: skip
PRODUCTS = 20000
METHODS = {"loop": PRODUCT_LOOP, "sgemm": PRODUCT_SGEMM, "tiles": PRODUCT_TILED}


def main() -> None:
    print("| rows | inner | columns | " + " | ".join(f"{name} µs" for name in METHODS) + " |")
    print("| ---: | ---: | ---: |" + " ---: |" * len(METHODS))
    totals = dict.fromkeys(METHODS, 0.0)
    for rows, inner, columns in SHAPES:
        a = np.ones((rows, inner), np.float32)
        b = np.ones((inner, columns), np.float32)
        c = np.empty((rows, columns), np.float32)
        cells = []
        for name, method in METHODS.items():
            if method == PRODUCT_TILED and not tiled_product_fits(rows, inner, columns):
                cells.append("-")
                continue
            _repeat_product(a, b, c, method, 10)  # compiled and warm
            start = time.perf_counter()
            _repeat_product(a, b, c, method, PRODUCTS)
            us = (time.perf_counter() - start) / PRODUCTS * 1e6
            totals[name] += us
            cells.append(f"{us:.2f}")
        print(f"| {rows} | {inner} | {columns} | " + " | ".join(cells) + " |")
    print("| all ten | | | " + " | ".join(f"{total:.1f}" for total in totals.values()) + " |")


if __name__ == "__main__":
    main()

"""Time the BLAS engine's two product methods on the shipped U-Net's ten product shapes.

``seproc._blas_net.product_methods`` picks, per shape, the faster of OpenBLAS's sgemm and
the numba loop ``_rows_product`` when a model loads; this prints both times per shape
(µs per product, 20000 products each), the figures behind that choice (issue 20)::

    PYTHONPATH=. taskset -c 1 python benchmarks/product_methods.py
"""

from __future__ import annotations

import time

import numpy as np

from seproc._blas_net import _repeat_product

# (rows, inner, columns): encoder levels 1-5, then decoder levels 5-1 of the shipped model
SHAPES = [
    (81, 10, 16), (41, 96, 24), (21, 144, 32), (11, 192, 48), (6, 288, 64),
    (6, 128, 144), (11, 96, 96), (21, 64, 72), (41, 48, 48), (81, 32, 5),
]  # fmt: skip
PRODUCTS = 20000


def main() -> None:
    print("| rows | inner | columns | loop µs | sgemm µs |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    totals = {True: 0.0, False: 0.0}
    for rows, inner, columns in SHAPES:
        a = np.ones((rows, inner), np.float32)
        b = np.ones((inner, columns), np.float32)
        c = np.empty((rows, columns), np.float32)
        us = {}
        for loop in (True, False):
            _repeat_product(a, b, c, loop, 10)  # compiled and warm
            start = time.perf_counter()
            _repeat_product(a, b, c, loop, PRODUCTS)
            us[loop] = (time.perf_counter() - start) / PRODUCTS * 1e6
            totals[loop] += us[loop]
        print(f"| {rows} | {inner} | {columns} | {us[True]:.2f} | {us[False]:.2f} |")
    print(f"| all ten | | | {totals[True]:.1f} | {totals[False]:.1f} |")


if __name__ == "__main__":
    main()

"""Eight-float vectors for numba code, and the register-tiled product built on them.

LLVM's loop vectoriser keeps a product's partial sums in memory: each pass over a row
of ``c`` loads and stores it, and on rows of 16-144 floats its four-vector unrolled
body leaves much of the row to a scalar remainder. Written with scalar accumulators,
a tile of sums was not vectorised at all (issue 20, ``benchmarks/README.md``). Here
an ``f32x8`` is a numba value held as LLVM's ``<8 x float>``, so a tile of partial
sums stays in registers for the whole inner dimension, as in BLIS's micro-kernels:
:func:`tiled_product` computes ``c = a @ b`` six rows by sixteen columns at a time
(12 accumulators, two loads of ``b`` and six broadcasts of ``a`` per step of the inner
dimension). The vectors are portable LLVM IR: one AVX register on x86-64, two NEON
registers on ARM; ``llvm.fma`` fuses on CPUs with FMA (x86-64 since Haswell / Zen).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from seproc._kernels import decimation_start, keep_history, njit_cached, split_phases

__all__ = [
    "LANES",
    "decimate_registers",
    "f32x8",
    "phase_sums",
    "tiled_product",
    "tiled_product_fits",
    "vadd",
    "vfma",
    "vleaky",
    "vload",
    "vstore",
    "vzero",
]

LANES = 8
"""Floats per vector."""

_VECTOR = ir.VectorType(ir.FloatType(), LANES)


class F32x8(types.Type):
    """numba's type of eight float32 held in one LLVM vector register."""

    def __init__(self) -> None:
        super().__init__(name="f32x8")


f32x8 = F32x8()


@register_model(F32x8)
class _F32x8Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):  # type: ignore[no-untyped-def]
        super().__init__(dmm, fe_type, _VECTOR)


def _is_float32_c_matrix(array: types.Type) -> bool:
    return (
        isinstance(array, types.Array)
        and array.dtype == types.float32
        and array.ndim == 2
        and array.layout == "C"
    )


def _vector_pointer(context, builder, array_type, array, row, column):  # type: ignore[no-untyped-def]
    """Return the address of ``array[row, column]`` as a pointer to eight floats."""
    view = context.make_array(array_type)(context, builder, array)
    element = cgutils.get_item_pointer(
        context, builder, array_type, view, [row, column], wraparound=False
    )
    return builder.bitcast(element, _VECTOR.as_pointer())


@intrinsic
def vload(typingctx, array, row, column):  # type: ignore[no-untyped-def]
    """``array[row, column : column + 8]`` (a float32 C-contiguous matrix; unchecked)."""
    if not _is_float32_c_matrix(array):
        return None
    sig = f32x8(array, row, column)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1], args[2])
        return builder.load(pointer, align=4)

    return sig, codegen


@intrinsic
def vstore(typingctx, array, row, column, vector):  # type: ignore[no-untyped-def]
    """Write ``vector`` to ``array[row, column : column + 8]`` (unchecked)."""
    if not _is_float32_c_matrix(array) or vector != f32x8:
        return None
    sig = types.none(array, row, column, vector)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        pointer = _vector_pointer(context, builder, sig.args[0], args[0], args[1], args[2])
        builder.store(args[3], pointer, align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def vzero(typingctx):  # type: ignore[no-untyped-def]
    """Eight zeros."""
    sig = f32x8()

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return ir.Constant(_VECTOR, [0.0] * LANES)

    return sig, codegen


@intrinsic
def vfma(typingctx, acc, x, vector):  # type: ignore[no-untyped-def]
    """``acc + x * vector`` lane by lane, the scalar ``x`` broadcast, by ``llvm.fma``."""
    if acc != f32x8 or vector != f32x8 or x != types.float32:
        return None
    sig = f32x8(acc, x, vector)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        acc, x, vector = args
        undefined = ir.Constant(_VECTOR, ir.Undefined)
        first = builder.insert_element(undefined, x, ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        broadcast = builder.shuffle_vector(first, undefined, lanes)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VECTOR, [_VECTOR] * 3), "llvm.fma.v8f32"
        )
        return builder.call(fma, [broadcast, vector, acc])

    return sig, codegen


@intrinsic
def vadd(typingctx, x, y):  # type: ignore[no-untyped-def]
    """``x + y`` lane by lane."""
    if x != f32x8 or y != f32x8:
        return None
    sig = f32x8(x, y)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        return builder.fadd(args[0], args[1])

    return sig, codegen


@intrinsic
def vleaky(typingctx, x, alpha):  # type: ignore[no-untyped-def]
    """``x if x >= 0 else alpha * x`` lane by lane (a leaky ReLU; NaN stays NaN)."""
    if x != f32x8 or alpha != types.float32:
        return None
    sig = f32x8(x, alpha)

    def codegen(context, builder, sig, args):  # type: ignore[no-untyped-def]
        x, alpha = args
        undefined = ir.Constant(_VECTOR, ir.Undefined)
        first = builder.insert_element(undefined, alpha, ir.Constant(ir.IntType(32), 0))
        lanes = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
        slope = builder.shuffle_vector(first, undefined, lanes)
        keep = builder.fcmp_ordered(">=", x, ir.Constant(_VECTOR, [0.0] * LANES))
        return builder.select(keep, x, builder.fmul(slope, x))

    return sig, codegen


@njit_cached(inline="always")
def _tile_rows(i, m):  # pragma: no cover - compiled
    """Return the six rows of the tile at row ``i``; past ``m - 1``, the last row again."""
    last = m - 1
    return (
        i,
        min(i + 1, last),
        min(i + 2, last),
        min(i + 3, last),
        min(i + 4, last),
        min(i + 5, last),
    )


@njit_cached()
def _tile_6x16(a, b, c, i, j):  # pragma: no cover - compiled
    """``c[i : i + 6, j : j + 16] = a[i : i + 6] @ b[:, j : j + 16]`` in 12 registers.

    Rows past ``a``'s last are the last row again (:func:`_tile_rows`), computed from
    the same row of ``a`` in the same order, so their stores write its values once more
    and a matrix of any row count is covered by whole tiles.
    """
    r0, r1, r2, r3, r4, r5 = _tile_rows(i, a.shape[0])
    c00 = c01 = c10 = c11 = c20 = c21 = vzero()
    c30 = c31 = c40 = c41 = c50 = c51 = vzero()
    for k in range(a.shape[1]):
        b0 = vload(b, k, j)
        b1 = vload(b, k, j + LANES)
        x = a[r0, k]
        c00, c01 = vfma(c00, x, b0), vfma(c01, x, b1)
        x = a[r1, k]
        c10, c11 = vfma(c10, x, b0), vfma(c11, x, b1)
        x = a[r2, k]
        c20, c21 = vfma(c20, x, b0), vfma(c21, x, b1)
        x = a[r3, k]
        c30, c31 = vfma(c30, x, b0), vfma(c31, x, b1)
        x = a[r4, k]
        c40, c41 = vfma(c40, x, b0), vfma(c41, x, b1)
        x = a[r5, k]
        c50, c51 = vfma(c50, x, b0), vfma(c51, x, b1)
    for row, low, high in (
        (r0, c00, c01), (r1, c10, c11), (r2, c20, c21),
        (r3, c30, c31), (r4, c40, c41), (r5, c50, c51),
    ):  # fmt: skip
        vstore(c, row, j, low)
        vstore(c, row, j + LANES, high)


@njit_cached()
def _tile_6x8(a, b, c, i, j):  # pragma: no cover - compiled
    """:func:`_tile_6x16` on eight columns (six registers)."""
    r0, r1, r2, r3, r4, r5 = _tile_rows(i, a.shape[0])
    c0 = c1 = c2 = c3 = c4 = c5 = vzero()
    for k in range(a.shape[1]):
        b0 = vload(b, k, j)
        c0 = vfma(c0, a[r0, k], b0)
        c1 = vfma(c1, a[r1, k], b0)
        c2 = vfma(c2, a[r2, k], b0)
        c3 = vfma(c3, a[r3, k], b0)
        c4 = vfma(c4, a[r4, k], b0)
        c5 = vfma(c5, a[r5, k], b0)
    for row, vector in ((r0, c0), (r1, c1), (r2, c2), (r3, c3), (r4, c4), (r5, c5)):
        vstore(c, row, j, vector)


@njit_cached()
def tiled_product(a, b, c):  # pragma: no cover - compiled
    """``c = a @ b`` in register tiles; float32 C-contiguous, ``b``'s columns a multiple of 8.

    Each output is one fused multiply-add chain over the inner dimension in order, so
    it does not depend on the tile it falls in. Nothing is checked here (see
    :func:`tiled_product_fits`): the callers own buffers of fitting shapes.
    """
    m = a.shape[0]
    n = b.shape[1]
    for i in range(0, m, 6):
        j = 0
        while j + 2 * LANES <= n:
            _tile_6x16(a, b, c, i, j)
            j += 2 * LANES
        if j < n:
            _tile_6x8(a, b, c, i, j)


def tiled_product_fits(rows: int, inner: int, columns: int) -> bool:
    """Whether :func:`tiled_product` computes a ``[rows, inner] @ [inner, columns]`` product."""
    return rows >= 1 and inner >= 1 and columns >= LANES and columns % LANES == 0


@njit_cached(inline="always")
def _phase_block(phases, branch, down, q, out, row, column, vectors):  # pragma: no cover
    """``vectors`` (1, 4 or 8) vectors of :func:`phase_sums`' outputs from ``q``, in registers."""
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = vzero()
    r = 0
    a = q
    for j in range(branch.shape[0]):
        w = branch[j]
        s0 = vfma(s0, w, vload(phases, r, a))
        if vectors >= 4:
            s1 = vfma(s1, w, vload(phases, r, a + LANES))
            s2 = vfma(s2, w, vload(phases, r, a + 2 * LANES))
            s3 = vfma(s3, w, vload(phases, r, a + 3 * LANES))
        if vectors == 8:
            s4 = vfma(s4, w, vload(phases, r, a + 4 * LANES))
            s5 = vfma(s5, w, vload(phases, r, a + 5 * LANES))
            s6 = vfma(s6, w, vload(phases, r, a + 6 * LANES))
            s7 = vfma(s7, w, vload(phases, r, a + 7 * LANES))
        r += 1
        if r == down:  # tap j + 1 is phase 0 of the next sample
            r = 0
            a += 1
    vstore(out, row, column, s0)
    if vectors >= 4:
        vstore(out, row, column + LANES, s1)
        vstore(out, row, column + 2 * LANES, s2)
        vstore(out, row, column + 3 * LANES, s3)
    if vectors == 8:
        vstore(out, row, column + 4 * LANES, s4)
        vstore(out, row, column + 5 * LANES, s5)
        vstore(out, row, column + 6 * LANES, s6)
        vstore(out, row, column + 7 * LANES, s7)


@njit_cached(fastmath={"contract"})
def phase_sums(phases, branch, down, n_out, out, row, column):  # pragma: no cover - compiled
    """``out[row, column + q] = sum_j branch[j] * phases[j % down, j // down + q]``, ``q < n_out``.

    Each output is one chain of fused multiply-adds from zero in tap order, held in a
    register over all taps: 64 outputs at a time (eight chains in flight), then 32, then
    8, then one by one (the same chain, contracted to fused multiply-adds). The decimator
    of ``seproc._kernels.decimate`` summed four taps per pass over the outputs in memory:
    the same chains, so the same bits. ``phases`` and ``out`` are float32 C matrices
    (unchecked: the caller owns fitting buffers).
    """
    q = 0
    while q + 8 * LANES <= n_out:
        _phase_block(phases, branch, down, q, out, row, column + q, 8)
        q += 8 * LANES
    if q + 4 * LANES <= n_out:
        _phase_block(phases, branch, down, q, out, row, column + q, 4)
        q += 4 * LANES
    while q + LANES <= n_out:
        _phase_block(phases, branch, down, q, out, row, column + q, 1)
        q += LANES
    while q < n_out:
        total = np.float32(0.0)
        r = 0
        a = q
        for j in range(branch.shape[0]):
            total = total + branch[j] * phases[r, a]
            r += 1
            if r == down:
                r = 0
                a += 1
        out[row, column + q] = total
        q += 1


@njit_cached()
def decimate_registers(history, block, n, taps, down, position, phases, out):  # pragma: no cover
    """``seproc._kernels.decimate`` with each output's sum in a register (:func:`phase_sums`).

    The same arguments and result, bit for bit, for float32 ``history``, ``phases`` and
    a float32 C-contiguous ``out``: at 48 kHz a 10 ms block's 304-tap sums ~4 -> ~1.5 µs.
    """
    keep = taps.shape[1] - 1
    count, position = decimation_start(history, block, n, keep, down, position, out)
    if position < n:
        n_out = (n - position + down - 1) // down
        for c in range(history.shape[0]):
            split_phases(history[c], n, keep, down, position, n_out, phases[c])
            phase_sums(phases[c], taps[0], down, n_out, out, c, count)
        count += n_out
        position += n_out * down
    keep_history(history, n, keep)
    return count, position - n

"""The seproc network as one compiled function per call, its products in BLAS.

At one frame per call onnxruntime's kernels run at 13-33 GMAC/s on the model's 1.1 M
multiply-adds and it spends ~20 µs more on layout reorders and concatenations
(``benchmarks/README.md``, issue 20). This engine reads the weights of the model file
(:mod:`seproc._onnx_proto`), recognises the causal U-Net of ``training/model.py`` node
by node, and runs each frame in one numba function whose products go to BLAS through
``np.dot(a, b, out)`` (scipy's OpenBLAS sgemm, into preallocated buffers), to a numba
loop or to register tiles (:mod:`seproc._simd`), whichever was fastest on this CPU when
the model loaded (:func:`product_methods`; the tiles on every level, the head's padded
to eight columns, on an AVX2 core):

- activations are channels-last ``[F, C]`` in zero-padded buffers, so a strided
  convolution's im2col row is two contiguous copies (``kf * C_in`` floats of the
  previous frame's input and of the current one) and its product
  ``col [F_out, 2 kf C_in] @ W [2 kf C_in, C_out]`` writes straight into the next
  level's padded input;
- the bottleneck's squeeze rows and expand columns are permuted to that flattening;
  its three one-row products (squeeze, the GRU's input and recurrent matrices, expand)
  are numba loops vectorised over the outputs, not BLAS: OpenBLAS splits an sgemv of
  this size (above 9216 elements) over the cores the process may use, and a real-time
  stream keeps to one (the convolutions' sgemm calls, m n k <= 110 k for the shipped
  model, are under OpenBLAS's default threading threshold of 262 k);
- where all four of those matrices lie on a per-row int8 grid (``training.quantize``
  writes such files, still float32 ONNX), they are held as int8 with a float32 scale
  per row, a quarter of the bytes, and multiplied by an int8 loop (:func:`int8_grid`,
  :func:`_matvec_int8`); any other model keeps the float32 loop;
- a transposed convolution is ``concat [F_in, Ca + Cb] @ W [C_in, k C_out]`` (the level
  below writes the left half, the skip is copied into the right) and a col2im
  scatter-add with the bias and the activation, or the head on the last level.

Every frame is computed alone, also inside a call of several frames, so a stream's
output does not depend on how it is cut into calls. The sums run in another order than
onnxruntime's: one frame from the same state differs by up to ~1e-5 on the shipped
model, and the GRU carries that forward to ~2e-5 over long streams (there the engine is
~1.1e-5 from a float64 evaluation of the same network, onnxruntime ~1.7e-5;
``benchmarks/README.md``). The model checks the
engine against onnxruntime on a few frames at load and refuses it past 1e-5. The
streaming state is the file graph's own tensors (``conv<k>`` ``[1, C, 1, F]``, ``gru``
``[1, 1, H]``) in one packed buffer: :func:`blas_run` reads it at the start of a call and
writes it at its end; :func:`blas_resident` (the model's runs) leaves it in the scratch
between the calls of one stream, and :class:`seproc.model.ModelState` has it written back
(:func:`store_state`) before anything else reads it, so either engine can continue a
stream. The GRU's gates and the sigmoid head use a float64 polynomial ``exp``
(:func:`seproc._kernels.exp_f64`) that vectorises; libm's ``expf``/``tanhf`` did not.
A graph of any other layout raises :class:`BlasUnsupported`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from seproc._kernels import exp_f64, njit_cached
from seproc._onnx_proto import OnnxGraph, OnnxNode
from seproc._simd import (
    LANES,
    tiled_product,
    tiled_product_fits,
    vadd,
    vleaky,
    vload,
    vstore,
)

__all__ = [
    "INT8_MAX",
    "PRODUCT_LOOP",
    "PRODUCT_SGEMM",
    "PRODUCT_TILED",
    "BlasNet",
    "BlasUnsupported",
    "blas_resident",
    "blas_run",
    "build_blas_net",
    "int8_candidates",
    "int8_grid",
    "load_state",
    "product_methods",
    "store_state",
]

INT8_MAX = 127
"""The symmetric int8 grid's largest step: ``q`` in ``[-127, 127]``, ``w = q * s``."""


class BlasUnsupported(ValueError):
    """The graph is not one this engine recognises (the model stays on onnxruntime)."""


# Integer table: a header, then one row per encoder level (and one for the flat
# bottleneck input after them), then one row per decoder level.
(H_N_ENC, H_N_DEC, H_HIDDEN, H_N_BINS, H_SIGMOID, H_MUL, H_ADD) = range(7)
(H_SQ_W, H_SQ_B, H_GW, H_GR, H_GB, H_EX_W, H_EX_B, H_Z, H_GX, H_GH, H_H, H_EX) = range(7, 19)
(H_GRU_STATE, H_OUT) = range(19, 21)
# where the four one-row products' matrices are int8 (at H_SQ_W, H_GW, H_GR, H_EX_W), the
# offset of their per-row float32 scales; -1 where they are float32
(H_SQ_S, H_GW_S, H_GR_S, H_EX_S) = range(21, 25)
_HEADER = 32
(E_C, E_F, E_PAD, E_X, E_S, E_COL, E_W, E_B, E_ALPHA, E_STATE, E_KF, E_LOOP) = range(12)
_E = 12
(D_CA, D_CB, D_C_OUT, D_F_IN, D_F_OUT, D_K, D_PAD, D_W, D_B, D_CAT, D_T, D_ALPHA) = range(12)
D_LOOP = 12
D_TW = 13  # the width of the level's product T: k C_out, padded to a multiple of 8
_D = 14
# E_LOOP / D_LOOP: the level's product method, PRODUCT_SGEMM, PRODUCT_LOOP or PRODUCT_TILED
PRODUCT_SGEMM, PRODUCT_LOOP, PRODUCT_TILED = 0, 1, 2
"""The methods of a level's product: BLAS sgemm, :func:`_rows_product`, or
:func:`seproc._simd.tiled_product` (register tiles; columns a multiple of 8)."""


@njit_cached(inline="always", error_model="numpy")
def _tanh(x):  # pragma: no cover - compiled
    """``tanh(x)`` in float64 as ``1 - 2 / (exp(2x) + 1)``, odd by construction."""
    t = 1.0 - 2.0 / (exp_f64(2.0 * abs(x)) + 1.0)
    return t if x >= 0 else -t


@njit_cached()
def _matvec(w, x, x_off, n_in, w_off, b_off, n_out, y, y_off):  # pragma: no cover
    """``y[y_off:] = x[x_off:x_off+n_in] @ W + b``, ``W [n_in, n_out]`` row-major in ``w``.

    On views indexed by ``range`` alone, so LLVM vectorises the inner loop (offsets
    added inside it, which numba must check for negative wraparound, kept it scalar
    and 10x slower).
    """
    m = w[w_off : w_off + n_in * n_out].reshape((n_in, n_out))
    b = w[b_off : b_off + n_out]
    xs = x[x_off : x_off + n_in]
    ys = y[y_off : y_off + n_out]
    for j in range(n_out):
        ys[j] = b[j]
    for r in range(n_in):
        xv = xs[r]
        for j in range(n_out):
            ys[j] += m[r, j] * xv


@njit_cached(fastmath={"contract"})
def _matvec_int8(w, x, x_off, n_in, q_off, s_off, b_off, n_out, y, y_off):  # pragma: no cover
    """:func:`_matvec` with int8 weights ``W = q * s[:, None]`` and one scale per row.

    ``q [n_in, n_out]`` starts at byte ``4 * q_off`` of ``w``, the float32 scales at
    ``w[s_off:]``. The scale folds into the input (``ys += float32(q[r]) * (x[r] *
    s[r])``), four rows are added per pass over ``ys`` (in row order) and the
    multiply-adds may fuse (``fastmath={"contract"}``; nothing else of fastmath): 16
    int8 are widened to 16 float32 per AVX-512 step, one FMA each. The rounding differs
    from the float32 weights' products by an ulp here and there, as onnxruntime's own
    sums do (its MLAS kernels fuse too).
    Alone, on the shipped model's four bottleneck matrices, 11 µs against 20 µs for
    :func:`_matvec` on their float32 values (``benchmarks/README.md``).
    """
    q = w.view(np.int8)[4 * q_off : 4 * q_off + n_in * n_out].reshape((n_in, n_out))
    scales = w[s_off : s_off + n_in]
    b = w[b_off : b_off + n_out]
    xs = x[x_off : x_off + n_in]
    ys = y[y_off : y_off + n_out]
    for j in range(n_out):
        ys[j] = b[j]
    r = 0
    while r + 4 <= n_in:
        x0, x1 = xs[r] * scales[r], xs[r + 1] * scales[r + 1]
        x2, x3 = xs[r + 2] * scales[r + 2], xs[r + 3] * scales[r + 3]
        q0, q1, q2, q3 = q[r], q[r + 1], q[r + 2], q[r + 3]
        for j in range(n_out):
            v = ys[j] + np.float32(q0[j]) * x0
            v = v + np.float32(q1[j]) * x1
            v = v + np.float32(q2[j]) * x2
            ys[j] = v + np.float32(q3[j]) * x3
        r += 4
    while r < n_in:
        xv, qr = xs[r] * scales[r], q[r]
        for j in range(n_out):
            ys[j] += np.float32(qr[j]) * xv
        r += 1


@njit_cached(fastmath={"contract"})
def _one_row(ai, b, ci):  # pragma: no cover - compiled
    """``ci = ai @ b`` for one row: four rows of ``b`` per pass over ``ci``."""
    k_all, n = b.shape
    for j in range(n):
        ci[j] = 0.0
    k = 0
    while k + 4 <= k_all:
        a0, a1, a2, a3 = ai[k], ai[k + 1], ai[k + 2], ai[k + 3]
        b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
        for j in range(n):
            v = ci[j] + a0 * b0[j]
            v = v + a1 * b1[j]
            v = v + a2 * b2[j]
            ci[j] = v + a3 * b3[j]
        k += 4
    while k < k_all:
        av, bk = ai[k], b[k]
        for j in range(n):
            ci[j] += av * bk[j]
        k += 1


@njit_cached(fastmath={"contract"})
def _two_rows(a, b, c):  # pragma: no cover - compiled
    """``c = a @ b`` for two rows: four rows of ``b`` per pass over both rows of ``c``."""
    k_all, n = b.shape
    c0, c1, p, q = c[0], c[1], a[0], a[1]
    for j in range(n):
        c0[j] = 0.0
        c1[j] = 0.0
    k = 0
    while k + 4 <= k_all:
        p0, p1, p2, p3 = p[k], p[k + 1], p[k + 2], p[k + 3]
        q0, q1, q2, q3 = q[k], q[k + 1], q[k + 2], q[k + 3]
        b0, b1, b2, b3 = b[k], b[k + 1], b[k + 2], b[k + 3]
        for j in range(n):
            x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
            c0[j] = c0[j] + p0 * x0 + p1 * x1 + p2 * x2 + p3 * x3
            c1[j] = c1[j] + q0 * x0 + q1 * x1 + q2 * x2 + q3 * x3
        k += 4
    while k < k_all:
        p0, q0, bk = p[k], q[k], b[k]
        for j in range(n):
            c0[j] += p0 * bk[j]
            c1[j] += q0 * bk[j]
        k += 1


@njit_cached(fastmath={"contract"})
def _four_rows(a, b, c):  # pragma: no cover - compiled
    """``c = a @ b`` for four rows: two rows of ``b`` per pass over all four rows of ``c``."""
    k_all, n = b.shape
    c0, c1, c2, c3 = c[0], c[1], c[2], c[3]
    a0, a1, a2, a3 = a[0], a[1], a[2], a[3]
    for j in range(n):
        c0[j] = 0.0
        c1[j] = 0.0
        c2[j] = 0.0
        c3[j] = 0.0
    k = 0
    while k + 2 <= k_all:
        p0, p1, q0, q1 = a0[k], a0[k + 1], a1[k], a1[k + 1]
        r0, r1, s0, s1 = a2[k], a2[k + 1], a3[k], a3[k + 1]
        b0, b1 = b[k], b[k + 1]
        for j in range(n):
            x0, x1 = b0[j], b1[j]
            c0[j] = c0[j] + p0 * x0 + p1 * x1
            c1[j] = c1[j] + q0 * x0 + q1 * x1
            c2[j] = c2[j] + r0 * x0 + r1 * x1
            c3[j] = c3[j] + s0 * x0 + s1 * x1
        k += 2
    if k < k_all:
        p0, q0, r0, s0, bk = a0[k], a1[k], a2[k], a3[k], b[k]
        for j in range(n):
            x0 = bk[j]
            c0[j] += p0 * x0
            c1[j] += q0 * x0
            c2[j] += r0 * x0
            c3[j] += s0 * x0


@njit_cached(fastmath={"contract"})
def _rows_product(a, b, c):  # pragma: no cover - compiled
    """``c = a @ b`` for few rows, by register blocks: four rows of ``a`` at a time.

    Each pass over a block's output rows adds the products of two rows of ``b`` to four
    rows of ``c`` (the rest: two rows by four of ``b``, then one by four), so each
    element of ``b`` loaded feeds four multiply-adds and a row of ``c`` is loaded and
    stored once per two (or four) of ``b``'s rows. On an AVX2 core the narrow levels'
    products took 4-6 µs each against 6-9 µs one row at a time and 10-19 µs by sgemm
    (``benchmarks/product_methods.py``). The multiply-adds may fuse
    (``fastmath={"contract"}``; nothing else of fastmath).
    """
    m = a.shape[0]
    i = 0
    while i + 4 <= m:
        _four_rows(a[i : i + 4], b, c[i : i + 4])
        i += 4
    if i + 2 <= m:
        _two_rows(a[i : i + 2], b, c[i : i + 2])
        i += 2
    if i < m:
        _one_row(a[i], b, c[i])


@njit_cached(inline="always")
def _gemm(a, b, c, method):  # pragma: no cover - compiled
    """``c = a @ b`` by ``method`` (``PRODUCT_SGEMM``, ``PRODUCT_LOOP`` or ``PRODUCT_TILED``)."""
    if method == PRODUCT_TILED:
        tiled_product(a, b, c)
    elif method == PRODUCT_LOOP:
        _rows_product(a, b, c)
    else:
        np.dot(a, b, c)


@njit_cached()
def _repeat_product(a, b, c, method, times):  # pragma: no cover - compiled
    """Compute ``c = a @ b`` ``times`` times by one method (for :func:`product_methods`)."""
    for _ in range(times):
        _gemm(a, b, c, method)


_CHOSEN: dict[tuple[int, int, int], int] = {}


def product_methods(shapes: list[tuple[int, int, int]]) -> list[int]:
    """Return, per ``(rows, inner, columns)`` product, the method that is fastest here.

    The U-Net's products are small and their best method depends on the CPU: on an AVX2
    core without AVX-512 OpenBLAS's sgemm took 10-16 µs for each of the narrowest
    levels' products (6-11 rows; :func:`_rows_product` 4-5, the register tiles of
    :func:`seproc._simd.tiled_product` 3-4) and the tiles 3-4 µs on every level where
    sgemm took 1-10; on an AVX-512 core the ten sgemm calls took 17 µs in all
    (``benchmarks/README.md``, issue 20). So each shape is timed once per process (best
    of three rounds of 40 products each way on random data, up to ~6 ms a shape) and
    keeps the fastest (``PRODUCT_SGEMM``, ``PRODUCT_LOOP`` or ``PRODUCT_TILED``, the
    tiles only where the columns are a multiple of 8); they differ by float32 rounding
    only.
    """
    chosen = []
    for shape in shapes:
        if shape not in _CHOSEN:
            rows, inner, columns = shape
            rng = np.random.default_rng(0)
            a = rng.standard_normal((rows, inner)).astype(np.float32)
            b = rng.standard_normal((inner, columns)).astype(np.float32)
            c = np.empty((rows, columns), np.float32)
            methods = [PRODUCT_SGEMM, PRODUCT_LOOP]
            if tiled_product_fits(rows, inner, columns):
                methods.append(PRODUCT_TILED)
            best = dict.fromkeys(methods, np.inf)
            for method in methods:
                _repeat_product(a, b, c, method, 2)  # compiled and warm
            for _ in range(3):
                for method in methods:
                    start = time.perf_counter()
                    _repeat_product(a, b, c, method, 40)
                    best[method] = min(best[method], time.perf_counter() - start)
            _CHOSEN[shape] = min(methods, key=best.__getitem__)
        chosen.append(_CHOSEN[shape])
    return chosen


@njit_cached()
def _product(w, x, x_off, n_in, w_off, s_off, b_off, n_out, y, y_off):  # pragma: no cover
    """One-row product by float32 weights (``s_off < 0``) or int8 ones with scales."""
    if s_off < 0:
        _matvec(w, x, x_off, n_in, w_off, b_off, n_out, y, y_off)
    else:
        _matvec_int8(w, x, x_off, n_in, w_off, s_off, b_off, n_out, y, y_off)


@njit_cached()
def load_state(state, work, tab):  # pragma: no cover - compiled
    """Copy the packed ``state`` (the file's channels-first tensors) into ``work``."""
    n_enc, hidden = tab[H_N_ENC], tab[H_HIDDEN]
    for i in range(n_enc):
        row = _HEADER + i * _E
        c, f, pad = tab[row + E_C], tab[row + E_F], tab[row + E_PAD]
        s, so = tab[row + E_S], tab[row + E_STATE]
        for ci in range(c):
            for fi in range(f):
                work[s + (pad + fi) * c + ci] = state[so + ci * f + fi]
    h0 = tab[H_H]
    for j in range(hidden):
        work[h0 + j] = state[tab[H_GRU_STATE] + j]


@njit_cached()
def store_state(state, work, tab):  # pragma: no cover - compiled
    """Copy the state held in ``work`` to the packed ``state`` (:func:`load_state`'s inverse)."""
    n_enc, hidden = tab[H_N_ENC], tab[H_HIDDEN]
    for i in range(n_enc):
        row = _HEADER + i * _E
        c, f, pad = tab[row + E_C], tab[row + E_F], tab[row + E_PAD]
        s, so = tab[row + E_S], tab[row + E_STATE]
        for ci in range(c):
            for fi in range(f):
                state[so + ci * f + fi] = work[s + (pad + fi) * c + ci]
    h0 = tab[H_H]
    for j in range(hidden):
        state[tab[H_GRU_STATE] + j] = work[h0 + j]


@njit_cached()
def blas_run(features, out, state_in, state_out, w, work, tab):  # pragma: no cover - compiled
    """Run ``features [T, F]`` into ``out [T, F]``; state ``state_in`` -> ``state_out``."""
    load_state(state_in, work, tab)
    for t in range(features.shape[0]):
        _frame(features, out, t, w, work, tab)
    store_state(state_out, work, tab)


@njit_cached()
def blas_resident(features, out, state, w, work, tab, load):  # pragma: no cover - compiled
    """:func:`blas_run` that leaves the state in ``work`` (read from ``state`` if ``load``).

    The packed state's channels-first transposition, in and out, took 5.5 µs of a
    55 µs frame; a stream run frame after frame on one scratch keeps its state there
    and stores it (:func:`store_state`) only when something else reads it.
    """
    if load:
        load_state(state, work, tab)
    for t in range(features.shape[0]):
        _frame(features, out, t, w, work, tab)


@njit_cached(inline="always")
def _copy(src, src_row, src_col, dst, dst_row, dst_col, n):  # pragma: no cover - compiled
    """``dst[dst_row, dst_col : dst_col + n] = src[src_row, src_col : src_col + n]``.

    Eight floats a step (:mod:`seproc._simd`), then one at a time: a slice assignment or
    a loop over rows of 16-144 floats spent most of its time outside LLVM's
    four-vector body (issue 20).
    """
    j = 0
    while j + LANES <= n:
        vstore(dst, dst_row, dst_col + j, vload(src, src_row, src_col + j))
        j += LANES
    while j < n:
        dst[dst_row, dst_col + j] = src[src_row, src_col + j]
        j += 1


@njit_cached(inline="always")
def _bias_leaky(y, bias, alpha):  # pragma: no cover - compiled
    """``y = leaky(y + bias)`` row by row, ``bias [1, C]`` (``y``'s columns)."""
    rows, columns = y.shape
    if columns % LANES == 0:
        for r in range(rows):
            for j in range(0, columns, LANES):
                vstore(y, r, j, vleaky(vadd(vload(y, r, j), vload(bias, 0, j)), alpha))
    else:
        for r in range(rows):
            for j in range(columns):
                v = y[r, j] + bias[0, j]
                y[r, j] = v if v >= 0 else alpha * v


@njit_cached(inline="always")
def _col2im(tt, d, bias, alpha, k, pad, activate):  # pragma: no cover - compiled
    """Scatter-add a transposed convolution's products ``tt [F_in, k C]`` into ``d[:, :C]``.

    Output bin ``fo`` is ``bias`` plus ``tt[q, kk]`` over ``2 q + kk - pad == fo`` in
    increasing ``kk``, then the leaky ReLU if ``activate``. The levels of stride 2,
    ``k = 3``, ``pad = 1`` and ``C`` a multiple of 8 (all but the head) take one pass of
    eight-float vectors per output row: even rows ``bias + tt[m, 1]``, odd rows
    ``bias + tt[m + 1, 0] + tt[m, 2]`` in that order, the sums of the general loop bit
    for bit.
    """
    f_in = tt.shape[0]
    f_out = d.shape[0]
    c_out = bias.shape[1]
    if k == 3 and pad == 1 and f_out == 2 * f_in - 1 and c_out % LANES == 0:
        for m in range(f_in):
            for j in range(0, c_out, LANES):
                b = vload(bias, 0, j)
                v = vadd(b, vload(tt, m, c_out + j))
                vstore(d, 2 * m, j, vleaky(v, alpha) if activate else v)
                if m + 1 < f_in:
                    v = vadd(vadd(b, vload(tt, m + 1, j)), vload(tt, m, 2 * c_out + j))
                    vstore(d, 2 * m + 1, j, vleaky(v, alpha) if activate else v)
        return
    if c_out == 1:  # the head: each bin's few terms summed in a register
        for fo in range(f_out):
            acc = bias[0, 0]
            for kk in range((fo + pad) % 2, k, 2):
                q = (fo + pad - kk) // 2
                if 0 <= q < f_in:
                    acc += tt[q, kk]
            d[fo, 0] = acc
            if activate:
                d[fo, 0] = acc if acc >= 0 else alpha * acc
        return
    # narrow levels index T directly (a row slice per term cost more than its few adds)
    for fo in range(f_out):
        for co in range(c_out):
            d[fo, co] = bias[0, co]
        for kk in range((fo + pad) % 2, k, 2):
            q = (fo + pad - kk) // 2
            if q < 0 or q >= f_in:
                continue
            for co in range(c_out):
                d[fo, co] += tt[q, kk * c_out + co]
        if activate:
            for co in range(c_out):
                v = d[fo, co]
                d[fo, co] = v if v >= 0 else alpha * v


@njit_cached(error_model="numpy")
def _frame(features, out, t, w, work, tab):  # pragma: no cover - compiled
    """One frame: encoder, bottleneck, decoder, head (the state is in ``work``).

    Loops run over views indexed by ``range`` alone, or are slice copies: an offset
    added inside a loop is checked for negative wraparound on every element, which keeps
    LLVM from vectorising it. numpy's error model: a division checked for zero (Python's
    ``ZeroDivisionError``) kept the GRU's gates from vectorising.
    """
    n_enc, n_dec = tab[H_N_ENC], tab[H_N_DEC]
    hidden = tab[H_HIDDEN]
    n_bins = tab[H_N_BINS]
    x0 = tab[_HEADER + E_X] + tab[_HEADER + E_PAD]  # level 0 has one channel
    work[x0 : x0 + n_bins] = features[t]
    for i in range(n_enc):
        row = _HEADER + i * _E
        nrow = row + _E
        c_in, f_in, pad, kf = tab[row + E_C], tab[row + E_F], tab[row + E_PAD], tab[row + E_KF]
        c_out, f_out = tab[nrow + E_C], tab[nrow + E_F]
        n_pad = (f_in + 2 * pad) * c_in
        xv = work[tab[row + E_X] : tab[row + E_X] + n_pad].reshape((1, n_pad))
        sv = work[tab[row + E_S] : tab[row + E_S] + n_pad].reshape((1, n_pad))
        nk = kf * c_in
        col = work[tab[row + E_COL] : tab[row + E_COL] + f_out * 2 * nk].reshape((f_out, 2 * nk))
        # im2col: the previous frame's kf bins, then the current frame's (contiguous rows)
        for fo in range(f_out):
            _copy(sv, 0, 2 * fo * c_in, col, fo, 0, nk)
            _copy(xv, 0, 2 * fo * c_in, col, fo, nk, nk)
        wm = w[tab[row + E_W] : tab[row + E_W] + 2 * nk * c_out].reshape((2 * nk, c_out))
        y0 = tab[nrow + E_X] + tab[nrow + E_PAD] * c_out
        y = work[y0 : y0 + f_out * c_out].reshape((f_out, c_out))
        _gemm(col, wm, y, tab[row + E_LOOP])
        bias = w[tab[row + E_B] : tab[row + E_B] + c_out].reshape((1, c_out))
        _bias_leaky(y, bias, w[tab[row + E_ALPHA]])
        _copy(xv, 0, 0, sv, 0, 0, n_pad)  # this frame's input becomes the level's state
    # bottleneck on the last encoder output, flattened channels-last
    last = _HEADER + n_enc * _E
    c5 = tab[last + E_C]
    flat, n_flat = tab[last + E_X], c5 * tab[last + E_F]
    z, gx, gh, h, ex = tab[H_Z], tab[H_GX], tab[H_GH], tab[H_H], tab[H_EX]
    _product(w, work, flat, n_flat, tab[H_SQ_W], tab[H_SQ_S], tab[H_SQ_B], hidden, work, z)
    zv = work[z : z + hidden]
    for j in range(hidden):
        v = zv[j]
        zv[j] = v if v > 0 else np.float32(0.0)
    gb = tab[H_GB]
    _product(w, work, z, hidden, tab[H_GW], tab[H_GW_S], gb, 3 * hidden, work, gx)
    _product(w, work, h, hidden, tab[H_GR], tab[H_GR_S], gb + 3 * hidden, 3 * hidden, work, gh)
    xz, xr, xn = (
        work[gx : gx + hidden],
        work[gx + hidden : gx + 2 * hidden],
        work[gx + 2 * hidden : gx + 3 * hidden],
    )
    hz, hr, hn = (
        work[gh : gh + hidden],
        work[gh + hidden : gh + 2 * hidden],
        work[gh + 2 * hidden : gh + 3 * hidden],
    )
    hv = work[h : h + hidden]
    one = np.float32(1.0)
    # ONNX gates z, r, h; linear_before_reset. The nonlinearities in float64 from a
    # polynomial exp (libm's expf and tanhf, called per element, took 2.9 µs a frame)
    for j in range(hidden):
        zz = np.float32(1.0 / (1.0 + exp_f64(-np.float64(xz[j] + hz[j]))))
        r = np.float32(1.0 / (1.0 + exp_f64(-np.float64(xr[j] + hr[j]))))
        n = np.float32(_tanh(np.float64(xn[j] + r * hn[j])))
        hv[j] = (one - zz) * n + zz * hv[j]
    _product(w, work, h, hidden, tab[H_EX_W], tab[H_EX_S], tab[H_EX_B], n_flat, work, ex)
    # decoder level 0 reads expand + residual in the left half of its concat
    drow = _HEADER + (n_enc + 1) * _E
    f0, cat0 = tab[drow + D_F_IN], tab[drow + D_CAT]
    a0 = work[cat0 : cat0 + f0 * (c5 + tab[drow + D_CB])].reshape((f0, c5 + tab[drow + D_CB]))
    exv = work[ex : ex + n_flat].reshape((f0, c5))
    flv = work[flat : flat + n_flat].reshape((f0, c5))
    if c5 % LANES == 0:
        for f in range(f0):
            for c in range(0, c5, LANES):
                vstore(a0, f, c, vadd(vload(exv, f, c), vload(flv, f, c)))
    else:
        for f in range(f0):
            for c in range(c5):
                a0[f, c] = exv[f, c] + flv[f, c]
    for j in range(n_dec):
        row = drow + j * _D
        ca, cb, c_out = tab[row + D_CA], tab[row + D_CB], tab[row + D_C_OUT]
        f_in, f_out, k, pad = (
            tab[row + D_F_IN],
            tab[row + D_F_OUT],
            tab[row + D_K],
            tab[row + D_PAD],
        )
        width = ca + cb
        a = work[tab[row + D_CAT] : tab[row + D_CAT] + f_in * width].reshape((f_in, width))
        # the skip: encoder level n_dec - 1 - j's output (the next level's padded input)
        erow = _HEADER + (n_enc - j) * _E
        skip = tab[erow + E_X] + tab[erow + E_PAD] * cb
        skip_rows = work[skip : skip + f_in * cb].reshape((f_in, cb))
        for q in range(f_in):
            _copy(skip_rows, q, 0, a, q, ca, cb)
        tw = tab[row + D_TW]
        wm = w[tab[row + D_W] : tab[row + D_W] + width * tw].reshape((width, tw))
        tt = work[tab[row + D_T] : tab[row + D_T] + f_in * tw].reshape((f_in, tw))
        _gemm(a, wm, tt, tab[row + D_LOOP])
        final = j == n_dec - 1
        if final:
            dst, dst_width = tab[H_OUT], c_out
        else:
            dst = tab[row + _D + D_CAT]
            dst_width = tab[row + _D + D_CA] + tab[row + _D + D_CB]
        d = work[dst : dst + f_out * dst_width].reshape((f_out, dst_width))
        bias = w[tab[row + D_B] : tab[row + D_B] + c_out].reshape((1, c_out))
        _col2im(tt, d, bias, w[tab[row + D_ALPHA]], k, pad, not final)
    ov = work[tab[H_OUT] : tab[H_OUT] + n_bins]
    mul, add = w[tab[H_MUL] : tab[H_MUL] + n_bins], w[tab[H_ADD] : tab[H_ADD] + n_bins]
    orow = out[t]
    if tab[H_SIGMOID]:
        for f in range(n_bins):
            orow[f] = np.float32(1.0 / (1.0 + exp_f64(-np.float64(ov[f])))) * mul[f] + add[f]
    else:
        for f in range(n_bins):
            orow[f] = ov[f] * mul[f] + add[f]


def int8_grid(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return ``(q, scale)`` if every row of ``matrix`` lies on a symmetric int8 grid.

    Row ``r`` lies on the grid when its float32 values are exactly
    ``float32(q[r, j]) * scale[r]`` (a float32 product) with integers ``|q| <= 127``
    and ``scale[r] = float32(max |row| / 127)`` computed in float32, the scale the row's
    largest value gives back (``training.quantize`` picks scales for which it does).
    An all-zero row has scale 0.

    Parameters
    ----------
    matrix : np.ndarray
        ``[n_in, n_out]``, one scale per row (the engine's row is one input).

    Returns
    -------
    tuple of np.ndarray or None
        ``q`` int8 ``[n_in, n_out]`` and ``scale`` float32 ``[n_in]``; None if any value
        is off the grid (or not finite).
    """
    m = np.asarray(matrix, np.float32)
    if m.ndim != 2 or not np.all(np.isfinite(m)):
        return None
    scale = np.max(np.abs(m), axis=1) / np.float32(INT8_MAX)
    divisor = np.where(scale > 0, scale, np.float32(1.0))
    q = np.rint(m / divisor[:, None])
    if np.any(np.abs(q) > INT8_MAX):
        return None
    if not np.array_equal(q.astype(np.float32) * scale[:, None], m):
        return None
    return q.astype(np.int8), scale.astype(np.float32)


def int8_candidates(graph: OnnxGraph) -> dict[str, int]:
    """Name the initializers the engine can hold as int8, each with its input axis.

    These are the one-row products' matrices: every MatMul's constant right operand
    (``[n_in, n_out]``: the bottleneck's squeeze and expand; inputs on axis 0) and the
    GRU's input and recurrent weights (``[1, 3 H, n_in]``; inputs on axis 2). A grid
    has one scale per input index (:func:`int8_grid` on the matrix with that axis
    first), the row of the engine's ``ys += m[r, :] * x[r]``.

    Parameters
    ----------
    graph : OnnxGraph
        The model file's nodes and initializers.

    Returns
    -------
    dict of str to int
        Initializer name -> the axis of its inputs, in graph order.
    """
    found: dict[str, int] = {}
    for node in _Walker(graph).nodes:
        if node.op_type == "MatMul" and len(node.inputs) == 2:
            weight = graph.initializers.get(node.inputs[1])
            if weight is not None and weight.ndim == 2:
                found[node.inputs[1]] = 0
        elif node.op_type == "GRU":
            for name in node.inputs[1:3]:
                weight = graph.initializers.get(name)
                if weight is not None and weight.ndim == 3:
                    found[name] = 2
    return found


@dataclass
class BlasNet:
    """The packed network: weights, the integer table and the size of its scratch."""

    weights: np.ndarray
    table: np.ndarray
    work_size: int
    int8_matrices: tuple[str, ...] = ()
    """The initializers held as int8 with per-row scales (empty: all float32)."""

    def new_work(self) -> np.ndarray:
        """Return a scratch buffer for one stream."""
        return np.zeros(self.work_size, np.float32)

    def run(
        self,
        features: np.ndarray,
        out: np.ndarray,
        state_in: np.ndarray,
        state_out: np.ndarray,
        work: np.ndarray,
    ) -> None:
        """Run ``features [T, F]`` into ``out [T, F]``; packed state in -> out."""
        blas_run(features, out, state_in, state_out, self.weights, work, self.table)


class _Packer:
    """Appends float32 arrays to one buffer, each at a 16-float (64-byte) boundary."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, array: np.ndarray | float) -> int:
        offset = self.size
        flat = np.ascontiguousarray(array, np.float32).ravel()
        pad = (-flat.size) % 16
        self.parts.append(np.concatenate([flat, np.zeros(pad, np.float32)]))
        self.size += flat.size + pad
        return offset

    def add_int8(self, array: np.ndarray) -> int:
        """Append int8 values (in float32 slots, read back with ``w.view(np.int8)``)."""
        offset = self.size
        raw = np.ascontiguousarray(array, np.int8).ravel()
        raw = np.concatenate([raw, np.zeros((-raw.size) % 64, np.int8)])
        self.parts.append(raw.view(np.float32))
        self.size += raw.size // 4
        return offset

    def reserve(self, size: int) -> int:
        offset = self.size
        self.size += size + (-size) % 16
        return offset

    def buffer(self) -> np.ndarray:
        return np.concatenate(self.parts)


class _Walker:
    """Steps through the graph's non-constant nodes in order, checking each one."""

    def __init__(self, graph: OnnxGraph) -> None:
        self.consts: dict[str, np.ndarray] = dict(graph.initializers)
        self.nodes: list[OnnxNode] = []
        for node in graph.nodes:
            if node.op_type == "Constant" and isinstance(node.attributes.get("value"), np.ndarray):
                self.consts[node.outputs[0]] = node.attributes["value"]  # type: ignore[assignment]
            else:
                self.nodes.append(node)
        self.pos = 0

    def take(self, op_type: str, first_input: str | None = None) -> OnnxNode:
        if self.pos >= len(self.nodes):
            raise BlasUnsupported(f"the graph ends where a {op_type} node was expected")
        node = self.nodes[self.pos]
        if node.op_type != op_type:
            raise BlasUnsupported(f"node {self.pos} is {node.op_type}, expected {op_type}")
        if first_input is not None and (not node.inputs or node.inputs[0] != first_input):
            raise BlasUnsupported(f"{op_type} node {self.pos} does not read {first_input!r}")
        self.pos += 1
        return node

    def peek(self) -> str:
        return self.nodes[self.pos].op_type if self.pos < len(self.nodes) else ""

    def const(self, name: str) -> np.ndarray:
        if name not in self.consts:
            raise BlasUnsupported(f"{name!r} is not a constant or initializer")
        return np.asarray(self.consts[name])

    def other_operand(self, node: OnnxNode, data: str) -> np.ndarray:
        """Return the constant operand of a binary node whose other operand is ``data``."""
        if len(node.inputs) != 2 or data not in node.inputs:
            raise BlasUnsupported(f"{node.op_type} does not combine {data!r} with a constant")
        return self.const(node.inputs[1] if node.inputs[0] == data else node.inputs[0])


def _ints(node: OnnxNode, key: str, default: list[int]) -> list[int]:
    return [int(v) for v in node.attributes.get(key, default)]  # type: ignore[union-attr]


def _leaky(walker: _Walker, data: str, required: bool) -> tuple[float, str]:
    """Consume a LeakyRelu on ``data``; return its slope and output (1.0 when none)."""
    if walker.peek() == "LeakyRelu" and walker.nodes[walker.pos].inputs[0] == data:
        node = walker.take("LeakyRelu", data)
        return float(node.attributes.get("alpha", 0.01)), node.outputs[0]  # type: ignore[arg-type]
    if required:
        raise BlasUnsupported("a convolution is not followed by a LeakyRelu")
    return 1.0, data


def _check_conv(node: OnnxNode, kernel: tuple[int, int], transposed: bool) -> int:
    """Check a (transposed) convolution's attributes; return its frequency padding."""
    kt, kf = kernel
    pads = _ints(node, "pads", [0, 0, 0, 0])
    if _ints(node, "strides", [1, 1]) != [1, 2] or _ints(node, "dilations", [1, 1]) != [1, 1]:
        raise BlasUnsupported(f"{node.op_type} has strides or dilations this engine lacks")
    if int(node.attributes.get("group", 1)) != 1 or node.attributes.get(
        "auto_pad", b"NOTSET"
    ) not in (  # type: ignore[call-overload]
        b"NOTSET",
        "NOTSET",
    ):
        raise BlasUnsupported(f"{node.op_type} has groups or auto padding")
    if pads[0] or pads[2] or pads[1] != pads[3] or kf % 2 == 0 or pads[1] != kf // 2:
        raise BlasUnsupported(f"{node.op_type} pads {pads} are not kf // 2 in frequency only")
    if transposed and (kt != 1 or "output_shape" in node.attributes):
        raise BlasUnsupported("a ConvTranspose reaches across frames")
    if not transposed and kt != 2:
        raise BlasUnsupported("an encoder convolution's kernel is not two frames")
    return pads[1]


def build_blas_net(
    graph: OnnxGraph,
    n_bins: int,
    output_name: str,
    state_shapes: dict[str, tuple[int, ...]],
    int8: bool = True,
) -> BlasNet:
    """Recognise the seproc U-Net in ``graph`` and pack it for :func:`blas_run`.

    If all four one-row products' matrices (the squeeze, the GRU's two, the expand) lie
    on a per-row int8 grid (:func:`int8_grid`; ``training.quantize`` writes such
    models), they are packed as int8 plus one float32 scale per row (a quarter of the
    bytes) and multiplied by :func:`_matvec_int8`; otherwise, or with ``int8=False``,
    they stay float32 (:func:`_matvec`).

    Parameters
    ----------
    graph : OnnxGraph
        The model file's nodes and initializers.
    n_bins : int
        Bins per frame.
    output_name : str
        The graph output of the model's formulation (``gain`` or ``noise_db``).
    state_shapes : dict[str, tuple[int, ...]]
        The state tensors in packed order (:class:`seproc.model.ModelState`'s buffers).
    int8 : bool
        Whether to hold matrices on the int8 grid as int8 (False: always float32, the
        same weights; for A/B timing).

    Returns
    -------
    BlasNet

    Raises
    ------
    BlasUnsupported
        If any node departs from the layout ``training/export.py`` writes.
    """
    walker = _Walker(graph)
    weights = _Packer()
    work = _Packer()
    state_offsets: dict[str, int] = {}
    offset = 0
    for name, shape in state_shapes.items():
        state_offsets[name] = offset
        offset += int(np.prod(shape))

    x = walker.take("Unsqueeze", "features").outputs[0]
    c_in, f_in = 1, n_bins
    enc: list[dict[str, int]] = []
    skips: list[str] = []
    while walker.peek() == "Concat":
        concat = walker.take("Concat")
        if concat.attributes.get("axis") != 2 or len(concat.inputs) != 2 or concat.inputs[1] != x:
            raise BlasUnsupported("an encoder Concat is not [state, input] along time")
        state = concat.inputs[0].removesuffix("_in")
        if state_shapes.get(state) != (1, c_in, 1, f_in):
            raise BlasUnsupported(
                f"encoder state {concat.inputs[0]!r} is not [1, {c_in}, 1, {f_in}]"
            )
        walker.take("Slice", concat.outputs[0])  # the new state: this engine keeps its own
        conv = walker.take("Conv", concat.outputs[0])
        weight = walker.const(conv.inputs[1]).astype(np.float32)
        c_out, wc_in, kt, kf = weight.shape
        if wc_in != c_in:
            raise BlasUnsupported("an encoder convolution's input channels do not match")
        pad = _check_conv(conv, (kt, kf), transposed=False)
        bias = walker.const(conv.inputs[2]) if len(conv.inputs) > 2 else np.zeros(c_out)
        alpha, x = _leaky(walker, conv.outputs[0], required=True)
        f_out = (f_in + 1) // 2
        if f_in % 2 == 0 or (f_in + 2 * pad - kf) // 2 + 1 != f_out:
            raise BlasUnsupported("an encoder level's bins are not odd")
        padded = (f_in + 2 * pad) * c_in
        enc.append(
            {
                "c": c_in,
                "f": f_in,
                "pad": pad,
                "x": work.reserve(padded),
                "s": work.reserve(padded),
                "col": work.reserve(f_out * kt * kf * c_in),
                "w": weights.add(weight.transpose(2, 3, 1, 0).reshape(-1, c_out)),
                "b": weights.add(bias),
                "alpha": weights.add(alpha),
                "state": state_offsets[state],
                "kf": kf,
            }
        )
        skips.append(x)
        c_in, f_in = c_out, f_out
    if not enc:
        raise BlasUnsupported("the graph has no encoder convolution")
    # the flat bottleneck input: the last encoder output, no padding
    enc.append({"c": c_in, "f": f_in, "pad": 0, "x": work.reserve(c_in * f_in)})
    n_flat = c_in * f_in
    perm = np.arange(n_flat).reshape(c_in, f_in).T.ravel()  # file index c F + f -> f C + c

    transpose = walker.take("Transpose", x)
    if _ints(transpose, "perm", []) != [0, 2, 1, 3]:
        raise BlasUnsupported("the bottleneck's Transpose is not [0, 2, 1, 3]")
    flat = walker.take("Reshape", transpose.outputs[0]).outputs[0]
    squeeze = walker.take("MatMul", flat)
    sq_w = walker.const(squeeze.inputs[1])
    add = walker.take("Add")
    sq_b = walker.other_operand(add, squeeze.outputs[0])
    relu = walker.take("Relu", add.outputs[0])
    hidden = sq_w.shape[1] if sq_w.ndim == 2 else 0
    if sq_w.shape != (n_flat, hidden) or sq_b.shape != (hidden,):
        raise BlasUnsupported("the squeeze is not [flat, hidden] + bias")
    pre = walker.take("Transpose", relu.outputs[0])
    gru = walker.take("GRU", pre.outputs[0])
    gw, gr = walker.const(gru.inputs[1]), walker.const(gru.inputs[2])
    gb = walker.const(gru.inputs[3]) if len(gru.inputs) > 3 and gru.inputs[3] else None
    if (
        int(gru.attributes.get("linear_before_reset", 0)) != 1  # type: ignore[call-overload]
        or int(gru.attributes.get("hidden_size", 0)) != hidden  # type: ignore[call-overload]
        or gru.attributes.get("direction", b"forward") not in (b"forward", "forward")
        or any(key in gru.attributes for key in ("activations", "clip", "layout"))
        or (len(gru.inputs) > 4 and gru.inputs[4])
        or len(gru.inputs) < 6
        or gru.inputs[5] != "gru_in"
        or state_shapes.get("gru") != (1, 1, hidden)
        or gw.shape != (1, 3 * hidden, hidden)
        or gr.shape != (1, 3 * hidden, hidden)
    ):
        raise BlasUnsupported("the GRU is not one forward layer with linear_before_reset=1")
    gb = np.zeros((1, 6 * hidden), np.float32) if gb is None else gb
    walker.take("Squeeze", gru.outputs[0])
    walker.take("Transpose")
    expand = walker.take("MatMul")
    ex_w = walker.const(expand.inputs[1])
    add = walker.take("Add")
    ex_b = walker.other_operand(add, expand.outputs[0])
    residual = walker.take("Add", add.outputs[0])
    if residual.inputs[1] != flat or ex_w.shape != (hidden, n_flat) or ex_b.shape != (n_flat,):
        raise BlasUnsupported("the expand is not [hidden, flat] + bias + the flat input")
    reshape = walker.take("Reshape", residual.outputs[0])
    x = walker.take("Transpose", reshape.outputs[0]).outputs[0]

    dec: list[dict[str, int]] = []
    ca = c_in
    for level in range(len(skips) - 1, -1, -1):
        concat = walker.take("Concat", x)
        if concat.attributes.get("axis") != 1 or concat.inputs != [x, skips[level]]:
            raise BlasUnsupported("a decoder Concat does not join the skip in channels")
        deconv = walker.take("ConvTranspose", concat.outputs[0])
        weight = walker.const(deconv.inputs[1]).astype(np.float32)
        width, c_out, kt, k = weight.shape
        cb = enc[level + 1]["c"]
        if width != ca + cb:
            raise BlasUnsupported("a ConvTranspose's input channels do not match")
        pad = _check_conv(deconv, (kt, k), transposed=True)
        f_in, f_out = enc[level + 1]["f"], enc[level]["f"]
        out_pad = _ints(deconv, "output_padding", [0, 0])
        if out_pad[0] or (f_in - 1) * 2 - 2 * pad + k + out_pad[1] != f_out:
            raise BlasUnsupported("a ConvTranspose does not restore its encoder level's bins")
        bias = walker.const(deconv.inputs[2]) if len(deconv.inputs) > 2 else np.zeros(c_out)
        alpha, x = _leaky(walker, deconv.outputs[0], required=level > 0)
        if level == 0 and (alpha != 1.0 or c_out != 1):
            raise BlasUnsupported("the last ConvTranspose has an activation or several channels")
        # the product's columns padded with zeros to a multiple of 8 (the head's 5 -> 8),
        # so that every level may take the register tiles (seproc._simd)
        t_width = -(-k * c_out // LANES) * LANES
        padded = np.zeros((width, t_width), np.float32)
        padded[:, : k * c_out] = weight[:, :, 0, :].transpose(0, 2, 1).reshape(width, k * c_out)
        dec.append(
            {
                "ca": ca,
                "cb": cb,
                "c_out": c_out,
                "f_in": f_in,
                "f_out": f_out,
                "k": k,
                "pad": pad,
                "w": weights.add(padded),
                "b": weights.add(bias),
                "cat": work.reserve(f_in * width),
                "t": work.reserve(f_in * t_width),
                "tw": t_width,
                "alpha": weights.add(alpha),
            }
        )
        ca = c_out

    # the head: Squeeze, then [Sigmoid], Mul by a constant, Add a constant -> the output
    x = walker.take("Squeeze", x).outputs[0]
    sigmoid = walker.peek() == "Sigmoid"
    if sigmoid:
        x = walker.take("Sigmoid", x).outputs[0]
    mul = walker.take("Mul")
    head_mul = np.broadcast_to(walker.other_operand(mul, x), (n_bins,))
    add = walker.take("Add")
    head_add = np.broadcast_to(walker.other_operand(add, mul.outputs[0]), (n_bins,))
    if add.outputs[0] != output_name or walker.pos != len(walker.nodes):
        raise BlasUnsupported(f"the head is not [Sigmoid,] Mul, Add into {output_name!r}")

    header = np.zeros(_HEADER, np.int64)
    header[H_N_ENC], header[H_N_DEC] = len(skips), len(dec)
    header[H_HIDDEN], header[H_N_BINS], header[H_SIGMOID] = hidden, n_bins, int(sigmoid)
    header[H_MUL], header[H_ADD] = weights.add(head_mul), weights.add(head_add)
    # the one-row products' matrices [n_in, n_out] as the engine multiplies them
    products = {
        H_SQ_W: (squeeze.inputs[1], sq_w[perm]),
        H_GW: (gru.inputs[1], gw[0].T),
        H_GR: (gru.inputs[2], gr[0].T),
        H_EX_W: (expand.inputs[1], ex_w[:, perm]),
    }
    scale_slot = {H_SQ_W: H_SQ_S, H_GW: H_GW_S, H_GR: H_GR_S, H_EX_W: H_EX_S}
    grids = {key: int8_grid(matrix) for key, (_, matrix) in products.items()} if int8 else {}
    on_grid = bool(grids) and all(grid is not None for grid in grids.values())
    for key, (_, matrix) in products.items():
        grid = grids.get(key) if on_grid else None
        if grid is None:
            header[key], header[scale_slot[key]] = weights.add(matrix), -1
        else:
            header[key], header[scale_slot[key]] = weights.add_int8(grid[0]), weights.add(grid[1])
    header[H_SQ_B] = weights.add(sq_b)
    header[H_GB] = weights.add(gb[0])
    header[H_EX_B] = weights.add(ex_b[perm])
    header[H_Z] = work.reserve(hidden)
    header[H_GX], header[H_GH] = work.reserve(3 * hidden), work.reserve(3 * hidden)
    header[H_H], header[H_EX] = work.reserve(hidden), work.reserve(n_flat)
    header[H_GRU_STATE] = state_offsets["gru"]
    header[H_OUT] = work.reserve(n_bins)
    # each level's product by the method that is faster on this CPU (product_methods)
    shapes = [
        ((lv["f"] + 1) // 2, 2 * lv["kf"] * lv["c"], enc[i + 1]["c"])
        for i, lv in enumerate(enc[:-1])
    ]
    shapes += [(lv["f_in"], lv["ca"] + lv["cb"], lv["tw"]) for lv in dec]
    methods = product_methods(shapes)
    for level, method in zip(enc[:-1] + dec, methods, strict=True):
        level["loop"] = int(method)
    keys_e = ("c", "f", "pad", "x", "s", "col", "w", "b", "alpha", "state", "kf", "loop")
    keys_d = ("ca", "cb", "c_out", "f_in", "f_out", "k", "pad", "w", "b", "cat", "t", "alpha")
    keys_d += ("loop", "tw")
    rows = [header]
    for level in enc:
        row = np.zeros(_E, np.int64)
        row[: len(keys_e)] = [level.get(key, 0) for key in keys_e]
        rows.append(row)
    for level in dec:
        row = np.zeros(_D, np.int64)
        row[: len(keys_d)] = [level[key] for key in keys_d]
        rows.append(row)
    int8_names = tuple(name for name, _ in products.values()) if on_grid else ()
    return BlasNet(weights.buffer(), np.concatenate(rows), work.size, int8_names)

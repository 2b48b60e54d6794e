"""One numba function per frame with BLAS products against onnxruntime's one-frame call.

Issue 20: onnxruntime's one-frame run of the shipped model costs ~85-90 µs, of which
its kernels run at 13-33 GMAC/s on 1.1 M multiply-adds plus ~20 µs of layout
reorders and concatenations. A previous numba engine (branch ``speed``,
``seproc/_net.py``) with hand-written loops vectorised over output channels was 1.8x
slower. This prototype asks whether one compiled function per frame that feeds every
product to BLAS (``np.dot(a, b, out)`` in numba: sgemm/sgemv from scipy's OpenBLAS,
no allocation) does better:

- channels-last activations ``[F, C]`` in zero-padded buffers, so each encoder im2col
  row is two contiguous copies (``kf * C_in`` floats from the previous frame's buffer
  and from the current one) and each product writes straight into the next level's
  padded input;
- encoder: ``col [F_out, kt * kf * C_in] @ W [kt * kf * C_in, C_out]``, then bias and
  LeakyReLU in place; the state is the level's previous padded input (copied once);
- bottleneck: the squeeze's rows and the expand's columns permuted to the
  channels-last flattening; GRU as two sgemv (``W^T``, ``R^T``) and one loop
  (ONNX ``linear_before_reset=1``);
- decoder: ``concat [F_in, Ca + Cb]`` (the previous level writes its left half, the
  skip is copied into the right) ``@ W [C_in, k * C_out]`` then a col2im scatter-add
  with bias and LeakyReLU, or the head on the last level.

It checks the engine against onnxruntime's one-frame graph (``OnnxModel(...,
one_frame_graph=True)`` + ``frame_run``) over a stream of frames with states (max abs
difference of every output and of the final states), checks that the compiled call
allocates nothing (numba's NRT allocation counters), then times both interleaved
(rounds alternate which goes first), median µs per frame:

With seproc's integrated engine (``OnnxModel(engine="blas")``) it also times that, prints
the distance of onnxruntime and of the engine (float32) to the engine run in float64 on
free-running streams, and times ``Denoiser.process(block, out=)`` per 10 ms hop on both
engines (``seproc.denoiser._ENGINE``), interleaved:

``taskset -c 1 python benchmarks/ab_blas_engine.py --rounds 40 --frames 100``
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NRT_STATS", "1")  # the allocation counters below

import numba as nb
import numpy as np
from _interleave import us_per_call
from numba.core.runtime import rtsys

from seproc._onnx_proto import read_graph
from seproc.model import OnnxModel, default_model_path


def _weights(path):
    """The shipped layout's weights, re-laid for the channels-last engine."""
    graph = read_graph(path)
    init = dict(graph.initializers)
    consts = {}
    for node in graph.nodes:
        if node.op_type == "Constant":
            consts[node.outputs[0]] = node.attributes["value"]
    convs = [n for n in graph.nodes if n.op_type == "Conv"]
    deconvs = [n for n in graph.nodes if n.op_type == "ConvTranspose"]
    matmuls = [n for n in graph.nodes if n.op_type == "MatMul"]
    gru = next(n for n in graph.nodes if n.op_type == "GRU")
    head_mul = next(n for n in graph.nodes if n.op_type == "Mul")
    head_add = next(n for n in graph.nodes if n.op_type == "Add" and n.outputs[0] == "gain")
    alpha = 0.1
    enc = []
    for n in convs:
        w = init[n.inputs[1]]  # [C_out, C_in, kt, kf]
        c_out = w.shape[0]
        wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, c_out), np.float32)
        enc.append((wm, init[n.inputs[2]].astype(np.float32), int(n.attributes["pads"][1])))
    dec = []
    for n in deconvs:
        w = init[n.inputs[1]]  # [C_in, C_out, 1, k]
        c_in, c_out, _, k = w.shape
        wm = np.ascontiguousarray(w[:, :, 0, :].transpose(0, 2, 1).reshape(c_in, k * c_out))
        dec.append(
            (
                wm.astype(np.float32),
                init[n.inputs[2]].astype(np.float32),
                k,
                int(n.attributes["pads"][1]),
            )
        )
    c5, f5 = init[convs[-1].inputs[1]].shape[0], 6
    # flat index in the file graph: c * F + f; here f * C + c
    perm = np.arange(c5 * f5).reshape(c5, f5).T.ravel()
    sq_w = np.ascontiguousarray(init[matmuls[0].inputs[1]][perm], np.float32)  # [384, 160]
    ex_w = np.ascontiguousarray(init[matmuls[1].inputs[1]][:, perm], np.float32)  # [160, 384]
    sq_b = init["model.squeeze.bias"].astype(np.float32)
    ex_b = init["model.expand.bias"][perm].astype(np.float32)
    gw = np.ascontiguousarray(init[gru.inputs[1]][0].T, np.float32)  # [160, 480]
    gr = np.ascontiguousarray(init[gru.inputs[2]][0].T, np.float32)
    gb = init[gru.inputs[3]][0].astype(np.float32)  # [960]
    mul = np.broadcast_to(consts.get(head_mul.inputs[1], init.get(head_mul.inputs[1])), (161,))
    add = np.broadcast_to(consts.get(head_add.inputs[1], init.get(head_add.inputs[1])), (161,))
    return dict(
        enc=enc,
        dec=dec,
        sq_w=sq_w,
        sq_b=sq_b,
        ex_w=ex_w,
        ex_b=ex_b,
        gw=gw,
        gr=gr,
        gb=gb,
        mul=np.ascontiguousarray(mul, np.float32),
        add=np.ascontiguousarray(add, np.float32),
        alpha=alpha,
    )


@nb.njit(cache=False)
def _frame(
    features,
    out,
    xpad,
    spad,
    col,
    ew,
    eb,
    epad,
    cat,
    tmp,
    dw,
    db,
    dk,
    dpad,
    sq_w,
    sq_b,
    ex_w,
    ex_b,
    gw,
    gr,
    gb,
    z,
    gx,
    gh,
    h,
    ex,
    head_mul,
    head_add,
    alpha,
    acc_out,
    stop,
):  # pragma: no cover - compiled
    n_enc = len(ew)
    # features into level 0's padded input (channels-last, C = 1)
    p0 = epad[0]
    x0 = xpad[0]
    for f in range(features.shape[1]):
        x0[p0 + f, 0] = features[0, f]
    for i in range(n_enc):
        x = xpad[i]
        s = spad[i]
        c = col[i]
        w = ew[i]
        b = eb[i]
        c_in = x.shape[1]
        f_out = c.shape[0]
        kf = (w.shape[0] // c_in) // 2
        nk = kf * c_in
        # im2col: previous frame then current frame, kf rows of C_in each (contiguous)
        xf = x.ravel()
        sf = s.ravel()
        for fo in range(f_out):
            base = 2 * fo * c_in
            for j in range(nk):
                c[fo, j] = sf[base + j]
            for j in range(nk):
                c[fo, nk + j] = xf[base + j]
        nxt = xpad[i + 1]
        pn = epad[i + 1]
        y = nxt[pn : pn + f_out]
        np.dot(c, w, y)
        c_out = y.shape[1]
        for fo in range(f_out):
            for co in range(c_out):
                v = y[fo, co] + b[co]
                y[fo, co] = v if v >= 0 else alpha * v
        # the state becomes this frame's input
        s[:] = x
    if stop == 1:
        return 1
    # bottleneck: flat is the last encoder output, channels-last
    flat = xpad[n_enc].ravel()
    np.dot(flat, sq_w, z)
    for j in range(z.shape[0]):
        v = z[j] + sq_b[j]
        z[j] = v if v > 0 else 0.0
    np.dot(z, gw, gx)
    np.dot(h, gr, gh)
    hid = h.shape[0]
    for j in range(hid):
        zz = 1.0 / (1.0 + np.exp(-(gx[j] + gb[j] + gh[j] + gb[3 * hid + j])))
        r = 1.0 / (1.0 + np.exp(-(gx[hid + j] + gb[hid + j] + gh[hid + j] + gb[4 * hid + j])))
        n = np.tanh(gx[2 * hid + j] + gb[2 * hid + j] + r * (gh[2 * hid + j] + gb[5 * hid + j]))
        h[j] = (1.0 - zz) * n + zz * h[j]
    np.dot(h, ex_w, ex)
    c0 = cat[0]
    cb = xpad[n_enc].shape[1]
    for f in range(c0.shape[0]):
        for cc in range(cb):
            c0[f, cc] = ex[f * cb + cc] + ex_b[f * cb + cc] + flat[f * cb + cc]
    if stop == 2:
        return 2
    n_dec = len(dw)
    for j in range(n_dec):
        a = cat[j]
        lvl = n_enc - 1 - j
        skip = xpad[lvl + 1]
        ps = epad[lvl + 1]
        f_in = a.shape[0]
        c_skip = skip.shape[1]
        ca = a.shape[1] - c_skip
        for f in range(f_in):
            for cc in range(c_skip):
                a[f, ca + cc] = skip[ps + f, cc]
        t = tmp[j]
        np.dot(a, dw[j], t)
        k = dk[j]
        p = dpad[j]
        b = db[j]
        c_out = b.shape[0]
        last = j == n_dec - 1
        dst = acc_out if last else cat[j + 1]
        f_out = out.shape[1] if last else cat[j + 1].shape[0]
        # col2im: output bin fo gathers T[fi, kk] for 2 fi + kk - p == fo (vectorised over co)
        for fo in range(f_out):
            for co in range(c_out):
                dst[fo, co] = b[co]
            for kk in range(k):
                q = fo + p - kk
                if q >= 0 and q % 2 == 0 and q // 2 < f_in:
                    fi = q // 2
                    off = kk * c_out
                    for co in range(c_out):
                        dst[fo, co] += t[fi, off + co]
            if not last:
                for co in range(c_out):
                    v = dst[fo, co]
                    dst[fo, co] = v if v >= 0 else alpha * v
    for f in range(out.shape[1]):
        out[0, f] = head_add[f] + head_mul[f] / (1.0 + np.exp(-acc_out[f, 0]))
    return 0


class BlasEngine:
    """The prototype: buffers for one stream and the compiled per-frame function."""

    def __init__(self, path, n_bins=161):
        wt = _weights(path)
        bins = [n_bins]
        for _ in wt["enc"]:
            bins.append((bins[-1] + 1) // 2)
        pads = [p for _, _, p in wt["enc"]] + [0]
        chans = [1] + [w.shape[1] for w, _, _ in wt["enc"]]
        self.xpad = tuple(
            np.zeros((bins[i] + 2 * pads[i], chans[i]), np.float32) for i in range(len(bins))
        )
        self.spad = tuple(np.zeros_like(a) for a in self.xpad[:-1])
        self.col = tuple(
            np.zeros((bins[i + 1], w.shape[0]), np.float32) for i, (w, _, _) in enumerate(wt["enc"])
        )
        self.ew = tuple(w for w, _, _ in wt["enc"])
        self.eb = tuple(b for _, b, _ in wt["enc"])
        self.epad = np.array(pads, np.int64)
        n_enc = len(wt["enc"])
        self.cat = tuple(
            np.zeros((bins[n_enc - j], w.shape[0]), np.float32)
            for j, (w, _, _, _) in enumerate(wt["dec"])
        )
        self.tmp = tuple(
            np.zeros((bins[n_enc - j], w.shape[1]), np.float32)
            for j, (w, _, _, _) in enumerate(wt["dec"])
        )
        self.dw = tuple(w for w, _, _, _ in wt["dec"])
        self.db = tuple(b for _, b, _, _ in wt["dec"])
        self.dk = np.array([k for _, _, k, _ in wt["dec"]], np.int64)
        self.dpad = np.array([p for _, _, _, p in wt["dec"]], np.int64)
        hid = wt["sq_w"].shape[1]
        self.z = np.zeros(hid, np.float32)
        self.gx = np.zeros(3 * hid, np.float32)
        self.gh = np.zeros(3 * hid, np.float32)
        self.h = np.zeros(hid, np.float32)
        self.ex = np.zeros(wt["ex_w"].shape[1], np.float32)
        self.wt = wt
        self.acc_out = np.zeros((n_bins, 1), np.float32)
        self.stop = 0
        self.bins, self.pads, self.chans = bins, pads, chans

    def __call__(self, features, out):
        wt = self.wt
        _frame(
            features,
            out,
            self.xpad,
            self.spad,
            self.col,
            self.ew,
            self.eb,
            self.epad,
            self.cat,
            self.tmp,
            self.dw,
            self.db,
            self.dk,
            self.dpad,
            wt["sq_w"],
            wt["sq_b"],
            wt["ex_w"],
            wt["ex_b"],
            wt["gw"],
            wt["gr"],
            wt["gb"],
            self.z,
            self.gx,
            self.gh,
            self.h,
            self.ex,
            wt["mul"],
            wt["add"],
            np.float32(wt["alpha"]),
            self.acc_out,
            self.stop,
        )

    def onnx_states(self):
        """The state in the file's layout: ``conv<k>`` [1, C, 1, F] and ``gru`` [1, 1, H]."""
        states = {}
        for i, s in enumerate(self.spad):
            p, f = self.pads[i], self.bins[i]
            states[f"conv{i + 1}"] = s[p : p + f].T[None, :, None, :]
        states["gru"] = self.h[None, None, :]
        return states


def _check(model, engine, frames, rng):
    n_bins = model.info.n_bins
    state = model.new_state()
    features = np.zeros((1, n_bins), np.float32)
    out_a = np.zeros((1, n_bins), np.float32)
    out_b = np.zeros((1, n_bins), np.float32)
    run = model.frame_run(features, out_a, state)
    worst = 0.0
    for _ in range(frames):
        features[:] = rng.standard_normal((1, n_bins)).astype(np.float32)
        run()
        engine(features, out_b)
        worst = max(worst, float(np.max(np.abs(out_a - out_b))))
    mine = engine.onnx_states()
    worst_state = max(float(np.max(np.abs(state.inputs()[name] - mine[name]))) for name in mine)
    return worst, worst_state


def _speech_like(frames, seed):
    """Normalised features as ``tests/test_one_frame.py`` makes them (voiced and silent)."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((frames, 161)).astype(np.float32)
    envelope = np.sin(2 * np.pi * np.arange(frames) / 150.0)[:, None]
    harmonics = np.cos(2 * np.pi * np.arange(161) / 3.6)[None, :]
    features += (2.5 * np.maximum(envelope, 0) * harmonics).astype(np.float32)
    features[frames // 3 : frames // 3 + 100] = -3.0
    return features


def _accuracy(path, frames):
    """Free-running streams: onnxruntime, the engine in float32 and the engine in float64."""
    from seproc._blas_net import blas_run

    file_model = OnnxModel(path)
    engine_model = OnnxModel(path, engine="blas")
    if engine_model.int8_matrices:
        # the packed weights hold int8 bytes there: read as floats they are not weights
        print(
            f"accuracy check skipped: {path} holds {', '.join(engine_model.int8_matrices)} "
            "as int8 (the float64 rerun reads the weights as floats; use a float32 model)"
        )
        return
    net = engine_model._net
    print("| stream | frames | |blas - ort| | |ort - float64| | |blas - float64| |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, features in (
        ("unit variance, seed 0", np.random.default_rng(0).standard_normal((frames, 161))),
        ("speech-like, seed 0", _speech_like(frames, 0)),
        ("speech-like, seed 3", _speech_like(frames, 3)),
    ):
        features = features.astype(np.float32)
        ort = np.zeros_like(features)
        file_model.run(features, ort, file_model.new_state())
        results = {}
        for dtype in (np.float32, np.float64):
            weights = net.weights.astype(dtype)
            work = np.zeros(net.work_size, dtype)
            state = np.zeros((2, file_model.new_state()._packed[0].size), dtype)
            out = np.zeros(features.shape, dtype)
            x = features.astype(dtype)
            for t in range(len(x)):
                blas_run(
                    x[t : t + 1],
                    out[t : t + 1],
                    state[t % 2],
                    state[1 - t % 2],
                    weights,
                    work,
                    net.table,
                )
            results[dtype] = out
        b32, b64 = results[np.float32], results[np.float64]
        print(
            f"| {label} | {frames} | {np.max(np.abs(b32 - ort)):.2g} | "
            f"{np.max(np.abs(ort - b64)):.2g} | {np.max(np.abs(b32 - b64)):.2g} |"
        )


def _denoisers(rounds, seconds):
    """Denoiser.process(block, out=) per 10 ms hop: today's path against engine='blas'."""
    from _interleave import noisy, us_per_hop

    import seproc.denoiser
    from seproc import Denoiser

    print("| rate (Hz) | block | engine | median µs per hop | vs onnxruntime |")
    print("| ---: | ---: | --- | ---: | ---: |")
    for rate, block in ((16000, 160), (48000, 480), (16000, 64), (48000, 128)):
        made = {}
        for engine in ("onnxruntime", "blas"):
            seproc.denoiser._ENGINE = engine
            try:
                made[engine] = Denoiser(sample_rate=rate)
            finally:
                seproc.denoiser._ENGINE = None
            assert made[engine]._model.engine == engine
        signal = noisy(rate, seconds)
        times = us_per_hop(made, signal, block, rounds, reverse_every_other=True)
        base = np.array(times["onnxruntime"])
        for name, values in times.items():
            ratio = np.median(np.array(values) / base)
            print(f"| {rate} | {block} | {name} | {np.median(values):.1f} | {ratio:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--check-frames", type=int, default=3000)
    parser.add_argument("--accuracy-frames", type=int, default=6000, help="0: skip")
    parser.add_argument("--denoiser-rounds", type=int, default=30, help="0: skip")
    args = parser.parse_args()
    path = default_model_path()
    model = OnnxModel(path, one_frame_graph=True)
    assert model.one_frame_graph, model.one_frame_refusal
    engine = BlasEngine(path, model.info.n_bins)
    rng = np.random.default_rng(0)
    worst, worst_state = _check(model, engine, args.check_frames, rng)
    print(f"{args.check_frames} frames: max |out diff| {worst:.3g}, final state {worst_state:.3g}")

    n_bins = model.info.n_bins
    features = rng.standard_normal((1, n_bins)).astype(np.float32)
    out_a = np.zeros((1, n_bins), np.float32)
    out_b = np.zeros((1, n_bins), np.float32)
    run = model.frame_run(features, out_a, model.new_state())

    def blas():
        engine(features, out_b)

    variants = [("onnxruntime one-frame", run), ("numba + BLAS (prototype)", blas)]
    try:
        integrated = OnnxModel(path, engine="blas")
    except TypeError:  # a seproc without the engine
        integrated = None
    if integrated is not None:
        assert integrated.engine == "blas", integrated.engine_refusal
        out_c = np.zeros((1, n_bins), np.float32)
        variants.append(
            ("seproc engine='blas'", integrated.frame_run(features, out_c, integrated.new_state()))
        )

    for _ in range(200):
        for _, call in variants:
            call()
    # numba's NRT counts its allocations; np.dot into views makes none, so what is left
    # is the wrapper numba makes for each array argument it unboxes
    for name, call in variants[1:]:
        before = rtsys.get_allocation_stats()
        for _ in range(1000):
            call()
        after = rtsys.get_allocation_stats()
        print(f"{name}: NRT allocations in 1000 calls: {after.alloc - before.alloc}")
    times = us_per_call(dict(variants), args.rounds, args.frames)
    base = np.array(times["onnxruntime one-frame"])
    print("| engine | median µs per frame | vs onnxruntime | median of round ratios |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in times.items():
        med = np.median(values)
        ratio = np.median(np.array(values) / base)
        print(f"| {name} | {med:.1f} | {med / np.median(base):.3f} | {ratio:.3f} |")
    if integrated is not None and args.accuracy_frames:
        _accuracy(path, args.accuracy_frames)
    if integrated is not None and args.denoiser_rounds:
        _denoisers(args.denoiser_rounds, 1.0)


if __name__ == "__main__":
    main()

"""Convolutions of the one-frame graph as matrix products: single-node and whole-model A/B.

Issue 20 asks whether the encoder's strided causal convolutions (and the decoder's
transposed ones) run faster in the one-frame graph as one MatMul each in a channels-last
layout than as onnxruntime's Conv (which it runs in its NCHWc layout). Each form is
built with the ``onnx`` package from the shipped model's own weights, checked against
the operator it replaces (max difference on unit-variance inputs), and timed in
onnxruntime sessions with bound buffers, interleaved round by round (median µs per run):

- encoder level ``k``: ``Concat(state, x)`` in time -> ``Conv`` -> ``LeakyRelu`` (as in the
  derived graph) against
  * ``gather``: channels-first im2col by one ``Gather`` with constant indices into
    ``[state, x, 0]`` -> ``Gemm`` with the ``[C_out, C_in * 2 * kf]`` weight -> ``LeakyRelu``;
  * ``pairs``: channels-last ``[F, C]``: ``Concat`` in channels -> ``Pad`` -> ``Reshape``
    to pairs of bins ``[F / 2, 4 C]`` (stride 2 makes a pair of bins one row) -> one
    ``Slice`` per pair the kernel spans -> ``Concat`` -> ``MatMul`` -> ``Add`` -> ``LeakyRelu``,
    with no ``Transpose`` for the state tensors (which the file format keeps channels-first):
    the best case of that layout;
- decoder level ``k``: ``Concat`` in channels -> ``ConvTranspose`` [-> ``LeakyRelu``] against
  ``phases``: channels-last, the input and its shifted copies side by side -> one
  ``MatMul`` whose ``2 C_out`` columns are the even and odd output bins -> ``Reshape``
  to ``[2 F, C_out]`` (interleaving them) -> ``Slice``, again without transposes;
- the whole one-frame graph against the same with decoder level 0 as ``phases``, with
  the transposes it needs, on a 3000-frame stream (difference to the file graph) and
  timed the same way.

``taskset -c 1 python benchmarks/ab_matmul_forms.py --rounds 40``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from seproc._one_frame import OPSET, one_frame_graph
from seproc._onnx_proto import OnnxGraph, read_graph, write_model
from seproc.model import OnnxModel, _open_session_bytes, default_model_path

_ENCODER_BINS = (161, 81, 41, 21, 11)
_DECODER_BINS = (6, 11, 21, 41, 81)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return _open_session_bytes(model.SerializeToString(), 1)


def _model(
    nodes: list[onnx.NodeProto],
    inputs: dict[str, list[int]],
    outputs: dict[str, list[int]],
    initializers: dict[str, np.ndarray],
) -> onnx.ModelProto:
    def info(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes,
        "form",
        [info(n, s) for n, s in inputs.items()],
        [info(n, s) for n, s in outputs.items()],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(v), k) for k, v in initializers.items()
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def _ints(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def encoder_forms(graph: OnnxGraph, k: int) -> dict[str, onnx.ModelProto]:
    """Encoder level ``k`` as derived (``conv``) and as ``gather`` and ``pairs``."""
    conv = [n for n in graph.nodes if n.op_type == "Conv"][k]
    weight, bias = graph.initializers[conv.inputs[1]], graph.initializers[conv.inputs[2]]
    c_out, c_in, kt, kf = weight.shape
    bins, pad = _ENCODER_BINS[k], kf // 2
    bins_out = (bins + 2 * pad - kf) // 2 + 1
    inputs = {"s": [1, c_in, 1, bins], "x": [1, c_in, 1, bins]}
    outputs = {"y": [1, c_out, 1, bins_out]}
    forms = {
        "conv": _model(
            [
                helper.make_node("Concat", ["s", "x"], ["c"], axis=2),
                helper.make_node(
                    "Conv",
                    ["c", "w", "b"],
                    ["z"],
                    kernel_shape=[kt, kf],
                    pads=[0, pad, 0, pad],
                    strides=[1, 2],
                ),
                helper.make_node("LeakyRelu", ["z"], ["y"], alpha=0.1),
            ],
            inputs,
            outputs,
            {"w": weight, "b": bias},
        )
    }
    index = np.full((c_in, kt, kf, bins_out), 2 * c_in * bins, np.int64)  # the appended zero
    for t in range(kt):
        for j in range(kf):
            for fo in range(bins_out):
                f = 2 * fo + j - pad
                if 0 <= f < bins:
                    index[:, t, j, fo] = t * c_in * bins + np.arange(c_in) * bins + f
    forms["gather"] = _model(
        [
            helper.make_node("Reshape", ["s", "flat"], ["sf"]),
            helper.make_node("Reshape", ["x", "flat"], ["xf"]),
            helper.make_node("Concat", ["sf", "xf", "zero"], ["cat"], axis=0),
            helper.make_node("Gather", ["cat", "index"], ["cols"], axis=0),
            helper.make_node("Gemm", ["w", "cols", "b"], ["z"]),
            helper.make_node("LeakyRelu", ["z"], ["a"], alpha=0.1),
            helper.make_node("Reshape", ["a", "shape"], ["y"]),
        ],
        inputs,
        outputs,
        {
            "flat": _ints(-1),
            "zero": np.zeros(1, np.float32),
            "index": index.reshape(-1, bins_out),
            "w": weight.reshape(c_out, -1),
            "b": bias.reshape(c_out, 1),
            "shape": _ints(1, c_out, 1, bins_out),
        },
    )
    n_pairs = (kf + 1) // 2
    padded = 2 * (bins_out + n_pairs - 1)
    pair_weight = np.zeros((n_pairs, 2, kt, c_in, c_out), np.float32)  # rows (pair, bin, t, c)
    for j in range(kf):
        for t in range(kt):
            pair_weight[j // 2, j % 2, t] = weight[:, :, t, j].T
    nodes = [
        helper.make_node("Concat", ["s", "x"], ["c"], axis=1),
        helper.make_node("Pad", ["c", "pads"], ["padded"]),
        helper.make_node("Reshape", ["padded", "pair_shape"], ["pairs"]),
    ]
    initializers = {
        "pads": _ints(pad, 0, padded - bins - pad, 0),
        "pair_shape": _ints(padded // 2, 4 * c_in),
        "axis": _ints(0),
        "w": pair_weight.reshape(-1, c_out),
        "b": bias,
    }
    for p in range(n_pairs):
        nodes.append(
            helper.make_node("Slice", ["pairs", f"start{p}", f"end{p}", "axis"], [f"p{p}"])
        )
        initializers[f"start{p}"], initializers[f"end{p}"] = _ints(p), _ints(p + bins_out)
    nodes += [
        helper.make_node("Concat", [f"p{p}" for p in range(n_pairs)], ["cols"], axis=1),
        helper.make_node("MatMul", ["cols", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["z"]),
        helper.make_node("LeakyRelu", ["z"], ["y"], alpha=0.1),
    ]
    forms["pairs"] = _model(
        nodes, {"s": [bins, c_in], "x": [bins, c_in]}, {"y": [bins_out, c_out]}, initializers
    )
    return forms


def decoder_forms(graph: OnnxGraph, k: int) -> dict[str, onnx.ModelProto]:
    """Decoder level ``k`` as derived (``convtranspose``) and as ``phases``."""
    deconv = [n for n in graph.nodes if n.op_type == "ConvTranspose"][k]
    weight, bias = graph.initializers[deconv.inputs[1]], graph.initializers[deconv.inputs[2]]
    c_in, c_out, _, kf = weight.shape
    pad, bins = kf // 2, _DECODER_BINS[k]
    bins_out, c_x = 2 * bins - 1, (64, 48, 32, 24, 16)[k]
    act = k < len(_DECODER_BINS) - 1
    last = ["z"] if act else ["y"]
    tail = [helper.make_node("LeakyRelu", ["z"], ["y"], alpha=0.1)] if act else []
    forms = {
        "convtranspose": _model(
            [
                helper.make_node("Concat", ["x", "s"], ["c"], axis=1),
                helper.make_node(
                    "ConvTranspose",
                    ["c", "w", "b"],
                    last,
                    kernel_shape=[1, kf],
                    pads=[0, pad, 0, pad],
                    strides=[1, 2],
                ),
                *tail,
            ],
            {"x": [1, c_x, 1, bins], "s": [1, c_in - c_x, 1, bins]},
            {"y": [1, c_out, 1, bins_out]},
            {"w": weight, "b": bias},
        )
    }
    # output bin 2m + e takes tap j from input bin m + shift, 2 (m + shift) + j - pad = 2m + e
    taps = {(e, j): (e + pad - j) // 2 for e in (0, 1) for j in range(kf) if (e + pad - j) % 2 == 0}
    shifts = sorted(set(taps.values()))
    low, high = -shifts[0], shifts[-1]
    phase_weight = np.zeros((len(shifts), c_in, 2, c_out), np.float32)
    for (e, j), shift in taps.items():
        phase_weight[shifts.index(shift), :, e] += weight[:, :, 0, j]
    nodes = [
        helper.make_node("Concat", ["x", "s"], ["c"], axis=1),
        helper.make_node("Pad", ["c", "pads"], ["padded"]),
    ]
    initializers = {
        "pads": _ints(low, 0, high, 0),
        "axis": _ints(0),
        "w": phase_weight.reshape(-1, 2 * c_out),
        "b": np.tile(bias, 2),
        "shape": _ints(2 * bins, c_out),
        "zero": _ints(0),
        "end": _ints(bins_out),
    }
    for n, shift in enumerate(shifts):
        nodes.append(
            helper.make_node("Slice", ["padded", f"start{n}", f"end{n}", "axis"], [f"p{n}"])
        )
        initializers[f"start{n}"], initializers[f"end{n}"] = (
            _ints(shift + low),
            _ints(shift + low + bins),
        )
    nodes += [
        helper.make_node("Concat", [f"p{n}" for n in range(len(shifts))], ["cols"], axis=1),
        helper.make_node("MatMul", ["cols", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["z0"]),
        helper.make_node("Reshape", ["z0", "shape"], ["z1"]),
        helper.make_node("Slice", ["z1", "zero", "end", "axis"], last),
        *tail,
    ]
    forms["phases"] = _model(
        nodes, {"x": [bins, c_x], "s": [bins, c_in - c_x]}, {"y": [bins_out, c_out]}, initializers
    )
    return forms


def difference(forms: dict[str, onnx.ModelProto]) -> dict[str, float]:
    """Max |form - first form| on unit-variance inputs (channels-last forms transposed)."""
    sessions = {name: _session(model) for name, model in forms.items()}
    reference = next(iter(sessions.values()))
    rng = np.random.default_rng(0)
    feeds = {
        i.name: rng.standard_normal(i.shape).astype(np.float32) for i in reference.get_inputs()
    }
    expected = reference.run(None, feeds)[0]
    result = {}
    for name, session in sessions.items():
        if len(session.get_inputs()[0].shape) == 2:  # channels-last [F, C]
            got = session.run(None, {k: v[0, :, 0].T.copy() for k, v in feeds.items()})[0]
            got = got.T[None, :, None]
        else:
            got = session.run(None, feeds)[0]
        result[name] = float(np.max(np.abs(got - expected)))
    return result


def timed(
    sessions: dict[str, ort.InferenceSession], rounds: int, runs: int = 100
) -> dict[str, float]:
    """Median µs per run of each session on bound buffers, interleaved round by round."""
    rng = np.random.default_rng(1)
    bound = {}
    for name, session in sessions.items():
        binding = session.io_binding()
        buffers = []
        for arg, is_input in [(a, True) for a in session.get_inputs()] + [
            (a, False) for a in session.get_outputs()
        ]:
            array = rng.standard_normal(arg.shape).astype(np.float32)
            buffers.append(array)
            bind = binding.bind_input if is_input else binding.bind_output
            bind(arg.name, "cpu", 0, np.float32, array.shape, array.ctypes.data)
        bound[name] = (session, binding, buffers)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for r in range(rounds + 1):  # round 0 warms up and is dropped
        for name, (session, binding, _) in bound.items():
            start = time.perf_counter()
            for _ in range(runs):
                session.run_with_iobinding(binding)
            if r:
                times[name].append((time.perf_counter() - start) / runs * 1e6)
    return {name: float(np.median(values)) for name, values in times.items()}


def whole_model(rounds: int) -> None:
    """The derived one-frame graph against it with decoder level 0 as ``phases``."""
    model = OnnxModel()
    info = model.info
    file_graph = read_graph(default_model_path())
    graph, inputs, outputs = one_frame_graph(file_graph, info.state_shapes, info.n_bins, "gain")
    base = write_model(graph, inputs, outputs, opset=OPSET)
    proto = onnx.load_from_string(base)
    phases = decoder_forms(file_graph, 0)["phases"]
    nodes = list(proto.graph.node)
    first = next(i for i, n in enumerate(nodes) if n.output[0] == "dec0_in")
    end = next(i for i, n in enumerate(nodes) if n.output[0] == "dec0_act")
    body = []
    for node in phases.graph.node:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [n if n in ("x", "s") else f"p_{n}" for n in node.input]
        copy.output[:] = [f"p_{n}" for n in node.output]
        body.append(copy)
    swap = [
        helper.make_node("Reshape", ["bottleneck", "p_in_shape"], ["p_x"]),
        helper.make_node("Transpose", ["p_x"], ["x"], perm=[1, 0]),
        helper.make_node("Reshape", ["enc4_act", "p_in_shape"], ["p_s"]),
        helper.make_node("Transpose", ["p_s"], ["s"], perm=[1, 0]),
    ]
    back = [
        helper.make_node("Transpose", ["p_y"], ["p_yt"], perm=[1, 0]),
        helper.make_node("Reshape", ["p_yt", "p_out_shape"], ["dec0_act"]),
    ]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes[:first] + swap + body + back + nodes[end + 1 :])
    for tensor in phases.graph.initializer:
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.name = f"p_{tensor.name}"
        proto.graph.initializer.append(copy)
    proto.graph.initializer.append(numpy_helper.from_array(_ints(64, 6), "p_in_shape"))
    proto.graph.initializer.append(numpy_helper.from_array(_ints(1, 48, 1, 11), "p_out_shape"))
    sessions = {
        "one-frame graph (derived)": _open_session_bytes(base, 1),
        "... decoder level 0 as phases": _session(proto),
    }
    names = [o.name for o in model._session.get_outputs()]
    zeros = {f"{n}_in": np.zeros(s, np.float32) for n, s in info.state_shapes.items()}
    features = (1.5 * np.random.default_rng(2).standard_normal((3000, 161))).astype(np.float32)
    expected = model._session.run(names, {"features": features[None], **zeros})[0][0]
    print("| graph | median µs per run | vs derived | max abs difference, 3000 frames |")
    print("| --- | ---: | ---: | ---: |")
    differences = {}
    for name, session in sessions.items():
        state, got = dict(zeros), []
        for t in range(len(features)):
            result = session.run(names, {"features": features[None, t : t + 1], **state})
            got.append(result[0][0, 0])
            state = {
                n[: -len("_out")] + "_in": a for n, a in zip(names[1:], result[1:], strict=True)
            }
        differences[name] = float(np.max(np.abs(np.array(got) - expected)))
    medians = timed(sessions, rounds)
    first_median = next(iter(medians.values()))
    for name, median in medians.items():
        print(f"| {name} | {median:.1f} | {median / first_median:.3f} | {differences[name]:.2g} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    graph = read_graph(default_model_path())
    print("| layer | form | median µs per run | vs operator | max abs difference |")
    print("| --- | --- | ---: | ---: | ---: |")
    levels = [(f"encoder {k}", encoder_forms(graph, k)) for k in range(5)]
    levels += [(f"decoder {k}", decoder_forms(graph, k)) for k in range(5)]
    for label, forms in levels:
        diffs = difference(forms)
        medians = timed({name: _session(model) for name, model in forms.items()}, args.rounds)
        first = next(iter(medians.values()))
        for name, median in medians.items():
            print(f"| {label} | {name} | {median:.2f} | {median / first:.2f} | {diffs[name]:.2g} |")
    print()
    whole_model(args.rounds)


if __name__ == "__main__":
    main()

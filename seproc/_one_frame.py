"""A graph for one-frame calls, derived from the model file's own graph at load time.

A host's 10 ms callback completes one STFT frame, so most model calls see one frame.
The exported graph (``training/export.py``) serves any number of frames: each causal
convolution concatenates its state with the new frames in time and slices the new state
back out (a Concat and a Slice per layer), the bottleneck transposes and reshapes its
frames axis around the GRU, and shapes are dynamic. At one frame much of that is
bookkeeping: the new state of a layer *is* its input frame, the transposes move no
data, and every shape is known. :func:`one_frame_graph` rebuilds the same network for
exactly one frame from the file's weights:

- the state output of each convolution is its input tensor itself (no Slice);
- the bottleneck is Reshape -> MatMul, Add, Relu -> GRU -> MatMul, Add -> Add, with no
  Transpose, Squeeze or Unsqueeze;
- every shape is static, so onnxruntime plans all buffers once.

Every node that computes is the file graph's own operator on the same weights, so the
results agree bit for bit with the file graph's one-frame and many-frame runs (where
onnxruntime does not fuse differently: see ``seproc.model._open_session_bytes``).

The inputs, outputs and state tensors keep their names, shapes and meaning, so a
stream can switch between this graph and the file's graph from call to call. The
derivation knows the layout of ``training/model.py`` (causal convolutions with a
kernel of 2 frames, a MatMul/GRU/MatMul bottleneck, transposed convolutions, and an
optional refine head: convolutions within one frame over a channel concatenation of
the features and the decoder's output, then the elementwise head); for a graph of
another shape it raises ``ValueError`` and the caller keeps the file's graph.
:class:`seproc.model.OnnxModel` also checks the derived graph against the file's on
a few frames before using it.
"""

from __future__ import annotations

import numpy as np

from seproc._onnx_proto import OnnxGraph, OnnxNode

__all__ = ["OPSET", "one_frame_graph"]

OPSET = 17
"""The operator set the derived graph's nodes follow."""

_FEATURES = "features"


class _Builder:
    """Collects nodes and initializers with fresh names."""

    def __init__(self) -> None:
        self.nodes: list[OnnxNode] = []
        self.initializers: dict[str, np.ndarray] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = np.ascontiguousarray(value)
        return name

    def shape(self, name: str, dims: tuple[int, ...]) -> str:
        return self.const(name, np.asarray(dims, np.int64))

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(OnnxNode(op, inputs, [output], dict(attributes)))
        return output


_HEAD_OPS = ("Sigmoid", "Mul", "Add", "Sub", "Div", "Concat", "Conv", "LeakyRelu")
"""The operators the head may use between the decoder and the output."""


def _head_attributes(node: OnnxNode) -> dict[str, object]:
    """Return a head node's attributes, refusing any that would mix frames.

    The head sees one frame in the derived graph and ``T`` frames in the file's, so a
    Concat must join channels (axis 1 of ``[1, C, T, F]``) and a Conv must work within a
    frame (a kernel of one frame, no stride or padding in time).
    """
    attributes = dict(node.attributes)
    if node.op_type == "Concat" and attributes.get("axis") != 1:
        raise ValueError("a Concat after the decoder does not join channels")
    if node.op_type == "Conv":
        kernel = list(attributes.get("kernel_shape", []))
        strides = list(attributes.get("strides", [1, 1]))
        pads = list(attributes.get("pads", [0, 0, 0, 0]))
        dilations = list(attributes.get("dilations", [1, 1]))
        if len(kernel) != 2 or kernel[0] != 1 or strides[0] != 1 or pads[0] or pads[2]:
            raise ValueError("a Conv after the decoder reaches across frames")
        if len(dilations) != 2 or dilations[0] != 1:
            raise ValueError("a Conv after the decoder reaches across frames")
    if node.op_type == "LeakyRelu":
        attributes = {"alpha": float(attributes.get("alpha", 0.01))}
    return attributes


def _single(nodes: list[OnnxNode], what: str) -> OnnxNode:
    if len(nodes) != 1:
        raise ValueError(f"expected one {what}, found {len(nodes)}")
    return nodes[0]


def one_frame_graph(
    graph: OnnxGraph,
    state_shapes: dict[str, tuple[int, ...]],
    n_bins: int,
    output_name: str,
) -> tuple[OnnxGraph, dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Rebuild a seproc U-Net graph for calls of exactly one frame.

    Parameters
    ----------
    graph : OnnxGraph
        The model file's graph (:func:`seproc._onnx_proto.read_graph`).
    state_shapes : dict[str, tuple[int, ...]]
        The state tensors' shapes, by name without ``_in``/``_out``.
    n_bins : int
        Frequency bins per frame.
    output_name : str
        The graph's per-frame output (``gain`` or ``noise_db``).

    Returns
    -------
    graph : OnnxGraph
        The one-frame graph (inputs ``features [1, 1, n_bins]`` and the states).
    inputs, outputs : dict[str, tuple[int, ...]]
        Its input and output names with their shapes.

    Raises
    ------
    ValueError
        If the graph is not laid out like ``training/model.py``'s network.
    """
    nodes = graph.nodes
    init = graph.initializers
    producer = {out: node for node in nodes for out in node.outputs}
    consumers: dict[str, list[OnnxNode]] = {}
    for node in nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)
    constants = {
        node.outputs[0]: np.asarray(node.attributes["value"])
        for node in nodes
        if node.op_type == "Constant" and "value" in node.attributes
    }
    values = {**init, **constants}

    def followed_by(name: str, op: str) -> OnnxNode | None:
        after = [n for n in consumers.get(name, []) if n.op_type == op]
        return after[0] if len(after) == 1 and len(consumers[name]) == 1 else None

    b = _Builder()
    renamed: dict[str, str] = {}

    # -- encoder: Concat(state, x) in time -> Conv (2 frames) -> LeakyRelu ----------------
    if not any(n.op_type == "Conv" for n in nodes):
        raise ValueError("the graph has no Conv")
    gru = _single([n for n in nodes if n.op_type == "GRU"], "GRU")
    # the encoder's convolutions come before the bottleneck (nodes are in file order, which
    # is topological); those after the decoder belong to the head (a refine head, below)
    convs = [n for n in nodes[: nodes.index(gru)] if n.op_type == "Conv"]
    x = b.node("Reshape", [_FEATURES, b.shape("shape_features", (1, 1, 1, n_bins))], "features_4d")
    first_input = None
    enc_shape = (0, 0)
    for k, conv in enumerate(convs):
        concat = producer.get(conv.inputs[0])
        if concat is None or concat.op_type != "Concat" or concat.attributes.get("axis") != 2:
            raise ValueError(f"Conv {k} does not read a Concat of state and frames in time")
        state_in, layer_in = concat.inputs
        if not state_in.endswith("_in") or state_in[:-3] not in state_shapes:
            raise ValueError(f"Conv {k} reads {state_in!r}, not a state input")
        base = state_in[:-3]
        slices = [n for n in consumers.get(concat.outputs[0], []) if n.op_type == "Slice"]
        if [n.outputs[0] for n in slices] != [f"{base}_out"]:
            raise ValueError(f"state {base!r} is not sliced from Conv {k}'s input")
        weight = init[conv.inputs[1]]
        if weight.ndim != 4 or weight.shape[2] != 2 or state_shapes[base][2] != 1:
            raise ValueError(f"Conv {k} is not a causal convolution over 2 frames")
        if k == 0:
            first_input = layer_in
        elif renamed.get(layer_in) is None:
            raise ValueError(f"Conv {k} does not read Conv {k - 1}'s activation")
        # the layer's input frame is its new state: produce it under the state's name
        previous = b.nodes[-1]
        previous.outputs[0] = f"{base}_out"
        renamed[layer_in] = f"{base}_out"
        x = f"{base}_out"
        x = b.node("Concat", [state_in, x], f"enc{k}_frames", axis=2)
        bias = [b.const(f"enc{k}_b", init[conv.inputs[2]])] if len(conv.inputs) > 2 else []
        attributes = {key: conv.attributes[key] for key in conv.attributes}
        x = b.node("Conv", [x, b.const(f"enc{k}_w", weight), *bias], f"enc{k}_conv", **attributes)
        act = followed_by(conv.outputs[0], "LeakyRelu")
        if act is None:
            raise ValueError(f"Conv {k} is not followed by a LeakyRelu")
        x = b.node("LeakyRelu", [x], f"enc{k}_act", alpha=float(act.attributes.get("alpha", 0.01)))
        renamed[act.outputs[0]] = x
        pads = list(conv.attributes.get("pads", [0, 0, 0, 0]))
        stride = list(conv.attributes.get("strides", [1, 1]))[1]
        bins = (state_shapes[base][3] + pads[1] + pads[3] - weight.shape[3]) // stride + 1
        enc_shape = (int(weight.shape[0]), int(bins))
    if first_input is None or producer.get(first_input) is None:
        raise ValueError("the first Conv does not read the features")
    if _FEATURES not in producer[first_input].inputs:
        raise ValueError("the first Conv does not read the features")

    # -- bottleneck: MatMul + bias, Relu, GRU, MatMul + bias, residual Add --------------------
    matmuls = [n for n in nodes if n.op_type == "MatMul"]
    if len(matmuls) != 2:
        raise ValueError(f"expected the bottleneck's 2 MatMul, found {len(matmuls)}")
    if gru.attributes.get("direction", "forward") not in ("forward", b"forward"):
        raise ValueError("the GRU is not forward")
    if "activations" in gru.attributes or "clip" in gru.attributes:
        raise ValueError("the GRU has non-default activations or clipping")
    hidden = int(gru.attributes["hidden_size"])
    gru_state = gru.inputs[5] if len(gru.inputs) > 5 else ""
    if not gru_state.endswith("_in") or gru.outputs[1] != f"{gru_state[:-3]}_out":
        raise ValueError("the GRU's hidden state is not a state tensor")

    def affine(matmul: OnnxNode) -> tuple[np.ndarray, np.ndarray]:
        weight = init.get(matmul.inputs[1])
        add = followed_by(matmul.outputs[0], "Add")
        if weight is None or weight.ndim != 2 or add is None:
            raise ValueError("a bottleneck MatMul is not an affine map with constant weights")
        others = [name for name in add.inputs if name != matmul.outputs[0]]
        if len(others) != 1 or others[0] not in values:
            raise ValueError("a bottleneck MatMul is not followed by a constant bias")
        return weight, np.broadcast_to(values[others[0]], (weight.shape[1],)).astype(np.float32)

    squeeze_w, squeeze_b = affine(matmuls[0])
    expand_w, expand_b = affine(matmuls[1])
    last_act = x
    flat_size = int(np.prod(enc_shape))
    if squeeze_w.shape != (flat_size, hidden) or expand_w.shape != (hidden, flat_size):
        raise ValueError("the bottleneck's shapes do not match the encoder's output")
    flat = b.node("Reshape", [last_act, b.shape("shape_flat", (1, 1, flat_size))], "flat")
    z = b.node("MatMul", [flat, b.const("squeeze_w", squeeze_w)], "squeeze_mm")
    z = b.node("Add", [b.const("squeeze_b", squeeze_b), z], "squeeze")
    z = b.node("Relu", [z], "squeeze_relu")
    z = b.node("Reshape", [z, b.shape("shape_gru_x", (1, 1, hidden))], "gru_x")
    gru_bias = (
        [b.const("gru_b", init[gru.inputs[3]])] if len(gru.inputs) > 3 and gru.inputs[3] else [""]
    )
    b.nodes.append(
        OnnxNode(
            "GRU",
            [
                z,
                b.const("gru_w", init[gru.inputs[1]]),
                b.const("gru_r", init[gru.inputs[2]]),
                *gru_bias,
                "",
                gru_state,
            ],
            ["gru_y", gru.outputs[1]],
            {
                "hidden_size": hidden,
                "linear_before_reset": int(gru.attributes.get("linear_before_reset", 0)),
            },
        )
    )
    y = b.node("Reshape", ["gru_y", b.shape("shape_gru_y", (1, 1, hidden))], "gru_y_2d")
    y = b.node("MatMul", [y, b.const("expand_w", expand_w)], "expand_mm")
    y = b.node("Add", [b.const("expand_b", expand_b), y], "expand")
    y = b.node("Add", [y, flat], "residual")
    x = b.node(
        "Reshape",
        [y, b.shape("shape_bottleneck", (1, enc_shape[0], 1, enc_shape[1]))],
        "bottleneck",
    )

    # -- decoder: Concat(x, skip) in channels -> ConvTranspose [-> LeakyRelu] ---------------
    deconvs = [n for n in nodes if n.op_type == "ConvTranspose"]
    if len(deconvs) != len(convs):
        raise ValueError("the decoder does not mirror the encoder")
    last = None
    for j, deconv in enumerate(deconvs):
        concat = producer.get(deconv.inputs[0])
        if concat is None or concat.op_type != "Concat" or concat.attributes.get("axis") != 1:
            raise ValueError(f"ConvTranspose {j} does not read a Concat in channels")
        skip = renamed.get(concat.inputs[1])
        if skip is None:
            raise ValueError(f"ConvTranspose {j} does not read an encoder activation")
        x = b.node("Concat", [x, skip], f"dec{j}_in", axis=1)
        bias = [b.const(f"dec{j}_b", init[deconv.inputs[2]])] if len(deconv.inputs) > 2 else []
        attributes = {key: deconv.attributes[key] for key in deconv.attributes}
        x = b.node(
            "ConvTranspose",
            [x, b.const(f"dec{j}_w", init[deconv.inputs[1]]), *bias],
            f"dec{j}_conv",
            **attributes,
        )
        last = deconv
        act = followed_by(deconv.outputs[0], "LeakyRelu")
        if act is not None:
            x = b.node(
                "LeakyRelu", [x], f"dec{j}_act", alpha=float(act.attributes.get("alpha", 0.01))
            )
            last = act

    # -- head: what follows the decoder, with constants as initializers ---------------------
    # Elementwise nodes (the mask's sigmoid and scaling, or the noise denormalisation) and
    # optionally a refine head (``training/model.py``'s ``Refine``): convolutions over one
    # frame, on a concatenation in channels of the features and the decoder's output.
    renamed[last.outputs[0]] = x  # type: ignore[union-attr]
    tail = nodes[nodes.index(last) + 1 :]  # type: ignore[arg-type]
    for node in tail:
        if node.op_type == "Constant":
            continue
        if node.op_type == "Squeeze":
            if node.inputs[0] not in renamed:
                raise ValueError(f"the head squeezes {node.inputs[0]!r}, which it does not make")
            x = b.node(
                "Reshape",
                [renamed[node.inputs[0]], b.shape("shape_head", (1, 1, n_bins))],
                "head",
            )
            renamed[node.outputs[0]] = x
            continue
        if node.op_type not in _HEAD_OPS:
            raise ValueError(f"unexpected {node.op_type} after the decoder")
        inputs = []
        for name in node.inputs:
            if node.op_type == "Conv" and name in init and name != node.inputs[0]:
                inputs.append(b.const(f"head_{len(b.initializers)}", init[name]))
            elif name in renamed:
                inputs.append(renamed[name])
            elif name in values:
                inputs.append(b.const(f"head_{len(b.initializers)}", np.asarray(values[name])))
            else:
                raise ValueError(f"the head reads {name!r}, which it does not make")
        attributes = _head_attributes(node)
        out = node.outputs[0]
        renamed[out] = b.node(
            node.op_type, inputs, out if out == output_name else f"head_{out}", **attributes
        )
        x = renamed[out]
    if x != output_name:
        raise ValueError(f"the head does not end in {output_name!r}")

    inputs = {_FEATURES: (1, 1, n_bins)}
    inputs.update({f"{name}_in": shape for name, shape in state_shapes.items()})
    outputs = {output_name: (1, 1, n_bins)}
    outputs.update({f"{name}_out": shape for name, shape in state_shapes.items()})
    made = {out for node in b.nodes for out in node.outputs}
    missing = [name for name in outputs if name not in made]
    if missing:
        raise ValueError(f"the derived graph does not produce {missing}")
    return OnnxGraph(b.nodes, b.initializers), inputs, outputs

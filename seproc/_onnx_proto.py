"""A minimal reader and writer of ONNX files: graph nodes, attributes, initializers.

seproc derives a graph for one-frame calls (:mod:`seproc._one_frame`) from the weights
stored in the ONNX file itself, so the ONNX file stays the one model format.
onnxruntime does not hand out a graph's initializers, and the ``onnx`` package (with
``protobuf``) is a 15 MB dependency for what is ~200 lines of wire-format coding:
an ONNX file is a protocol-buffers message whose field numbers are frozen by
``onnx.proto`` (they have never been renumbered since ONNX 1.0). Only what seproc
needs is decoded: ``ModelProto.graph`` -> ``GraphProto.node`` / ``initializer``,
``NodeProto`` (inputs, outputs, op type, attributes) and ``TensorProto`` (float32,
int64 and int32 tensors stored inline). :func:`write_model` encodes the same subset
(plus graph inputs and outputs with static float32 shapes) into a model that
onnxruntime loads from bytes. Tests check both against ``onnx``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["OnnxGraph", "OnnxNode", "read_graph", "write_model"]

# protocol-buffers wire types
_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
# TensorProto.DataType values this reader decodes
_DTYPES = {1: np.dtype("<f4"), 6: np.dtype("<i4"), 7: np.dtype("<i8"), 11: np.dtype("<f8")}


@dataclass
class OnnxNode:
    """One graph node: its operator, tensor names and decoded attributes."""

    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, object] = field(default_factory=dict)


@dataclass
class OnnxGraph:
    """The nodes of a graph in file order and its initializers by name."""

    nodes: list[OnnxNode]
    initializers: dict[str, np.ndarray]


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _signed(value: int) -> int:
    """Read a varint as the two's-complement int64 that protobuf encodes."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field number, wire type, value)`` for each field of a message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
        elif wire == _BYTES:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        elif wire == _FIXED32:
            value = data[pos : pos + 4]
            pos += 4
        elif wire == _FIXED64:
            value = data[pos : pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
        if pos > end:
            raise ValueError("the file ends inside a protobuf field (truncated?)")
        yield number, wire, value


def _packed_varints(value: int | memoryview, wire: int) -> list[int]:
    if wire == _VARINT:
        return [_signed(int(value))]
    out, pos = [], 0
    while pos < len(value):
        item, pos = _varint(value, pos)
        out.append(_signed(item))
    return out


def _tensor(data: memoryview) -> tuple[str, np.ndarray]:
    """Decode a TensorProto stored inline; return its name and value."""
    dims: list[int] = []
    name, dtype_code, raw = "", 0, None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, value in _fields(data):
        if number == 1:
            dims.extend(_packed_varints(value, wire))
        elif number == 2:
            dtype_code = int(value)
        elif number == 4:  # float_data, packed or not
            floats.extend(np.frombuffer(value, "<f4").tolist())
        elif number in (5, 7):  # int32_data, int64_data
            ints.extend(_packed_varints(value, wire))
        elif number == 8:
            name = bytes(value).decode()
        elif number == 9:
            raw = bytes(value)
        elif number == 14 and int(value) == 1:
            raise ValueError(f"tensor {name!r} keeps its data in an external file")
    if dtype_code not in _DTYPES:
        raise ValueError(f"tensor {name!r} has data type {dtype_code}, which is not decoded")
    dtype = _DTYPES[dtype_code]
    if raw is not None:
        array = np.frombuffer(raw, dtype).copy()
    elif dtype.kind == "f":
        array = np.asarray(floats, dtype)
    else:
        array = np.asarray(ints, dtype)
    return name, array.reshape(dims)


def _attribute(data: memoryview) -> tuple[str, object]:
    name = ""
    value: object = None
    floats: list[float] = []
    ints: list[int] = []
    for number, wire, item in _fields(data):
        if number == 1:
            name = bytes(item).decode()
        elif number == 2:
            value = float(np.frombuffer(item, "<f4")[0])
        elif number == 3:
            value = _signed(int(item))
        elif number == 4:
            value = bytes(item).decode(errors="replace")
        elif number == 5:
            value = _tensor(item)[1]
        elif number == 7:
            floats.extend(np.frombuffer(item, "<f4").tolist())
        elif number == 8:
            ints.extend(_packed_varints(item, wire))
    if value is None:
        value = floats or ints
    return name, value


def _node(data: memoryview) -> OnnxNode:
    node = OnnxNode("", [], [])
    for number, _, value in _fields(data):
        if number == 1:
            node.inputs.append(bytes(value).decode())
        elif number == 2:
            node.outputs.append(bytes(value).decode())
        elif number == 4:
            node.op_type = bytes(value).decode()
        elif number == 5:
            key, attr = _attribute(value)
            node.attributes[key] = attr
    return node


def read_graph(path: str | Path) -> OnnxGraph:
    """Read the nodes and initializers of the main graph of an ONNX file.

    Parameters
    ----------
    path : str or Path
        The ONNX file.

    Returns
    -------
    OnnxGraph
        Nodes in file order (topological, as ONNX requires) and initializers as
        numpy arrays (copies, writable).

    Raises
    ------
    ValueError
        If the file is not a protocol-buffers message this reader can decode, or an
        initializer has a data type other than float32/64, int32 or int64, or keeps
        its data outside the file.
    """
    data = memoryview(Path(path).read_bytes())
    nodes: list[OnnxNode] = []
    initializers: dict[str, np.ndarray] = {}
    try:
        graphs = [value for number, _, value in _fields(data) if number == 7]
        if not graphs:
            raise ValueError("the file has no graph")
        for number, _, value in _fields(graphs[-1]):
            if number == 1:
                nodes.append(_node(value))
            elif number == 5:
                name, array = _tensor(value)
                initializers[name] = array
    except IndexError:
        raise ValueError("the file ends inside a protobuf field (truncated?)") from None
    return OnnxGraph(nodes, initializers)


# -- writing ------------------------------------------------------------------------------

_DTYPE_CODES = {np.dtype("<f4"): 1, np.dtype("<i8"): 7}
# AttributeProto.AttributeType values
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: two's complement, 10 bytes
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _int_field(number: int, value: int) -> bytes:
    return _key(number, _VARINT) + _encode_varint(int(value))


def _bytes_field(number: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _key(number, _BYTES) + _encode_varint(len(data)) + data


def _encode_tensor(name: str, array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    dtype = array.dtype.newbyteorder("<")
    if dtype not in _DTYPE_CODES:
        raise ValueError(f"tensor {name!r}: dtype {array.dtype} is not encoded")
    dims = b"".join(_int_field(1, d) for d in array.shape)
    return (
        dims
        + _int_field(2, _DTYPE_CODES[dtype])
        + _bytes_field(8, name)
        + _bytes_field(9, array.astype(dtype, copy=False).tobytes())
    )


def _encode_attribute(name: str, value: object) -> bytes:
    out = _bytes_field(1, name)
    if isinstance(value, float):
        return out + _key(2, _FIXED32) + np.float32(value).tobytes() + _int_field(20, _ATTR_FLOAT)
    if isinstance(value, (int, np.integer)):
        return out + _int_field(3, int(value)) + _int_field(20, _ATTR_INT)
    return out + b"".join(_int_field(8, v) for v in value) + _int_field(20, _ATTR_INTS)  # type: ignore[union-attr]


def _encode_node(node: OnnxNode, index: int) -> bytes:
    out = b"".join(_bytes_field(1, name) for name in node.inputs)
    out += b"".join(_bytes_field(2, name) for name in node.outputs)
    out += _bytes_field(3, f"n{index}_{node.op_type}") + _bytes_field(4, node.op_type)
    for key, value in node.attributes.items():
        out += _bytes_field(5, _encode_attribute(key, value))
    return out


def _encode_value_info(name: str, shape: tuple[int, ...]) -> bytes:
    dims = b"".join(_bytes_field(1, _int_field(1, d)) for d in shape)
    tensor_type = _int_field(1, 1) + _bytes_field(2, dims)  # float32, static shape
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def write_model(
    graph: OnnxGraph,
    inputs: dict[str, tuple[int, ...]],
    outputs: dict[str, tuple[int, ...]],
    *,
    opset: int,
    ir_version: int = 8,
) -> bytes:
    """Encode a graph as an ONNX model (bytes that onnxruntime loads).

    Parameters
    ----------
    graph : OnnxGraph
        Nodes in topological order; initializers float32 or int64.
    inputs, outputs : dict[str, tuple[int, ...]]
        The graph's float32 inputs and outputs and their static shapes.
    opset : int
        The version of the default ONNX operator set the nodes follow.
    ir_version : int
        The ONNX IR version the file declares.

    Returns
    -------
    bytes
        A serialised ``ModelProto``.
    """
    body = b"".join(_bytes_field(1, _encode_node(n, i)) for i, n in enumerate(graph.nodes))
    body += _bytes_field(2, "seproc_one_frame")
    body += b"".join(_bytes_field(5, _encode_tensor(k, v)) for k, v in graph.initializers.items())
    body += b"".join(_bytes_field(11, _encode_value_info(k, s)) for k, s in inputs.items())
    body += b"".join(_bytes_field(12, _encode_value_info(k, s)) for k, s in outputs.items())
    opset_id = _bytes_field(1, "") + _int_field(2, opset)
    return (
        _int_field(1, ir_version)
        + _bytes_field(2, "seproc")
        + _bytes_field(7, body)
        + _bytes_field(8, opset_id)
    )

"""Broken model files: every one gives a ModelError that names the file and the problem.

tests/test_model.py covers a missing, an empty, a text and a half-truncated file and a few
metadata mistakes; this module sweeps the rest: truncation at every kind of byte offset,
each required metadata key missing, unparsable metadata values, every way the graph's
inputs and outputs can disagree with models/FORMAT.md, and a graph that loads but fails
when it runs. No onnxruntime exception may reach the caller.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import soundfile as sf
from onnx import TensorProto, helper

from seproc.denoiser import Denoiser
from seproc.errors import ModelError
from seproc.model import _REQUIRED_KEYS, OnnxModel
from tests.model_factory import make_model


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("good") / "good.onnx")


def load_error(path) -> str:
    """Load ``path``; return the ModelError's message (fails on success or another error)."""
    with pytest.raises(ModelError) as raised:
        OnnxModel(path)
    message = str(raised.value)
    assert str(path) in message, message
    assert "\n" not in message, message
    return message


def edited(good_model, tmp_path, name, edit):
    """Write a copy of the good model with ``edit(model_proto)`` applied, unchecked."""
    proto = onnx.load(good_model)
    edit(proto)
    path = tmp_path / f"{name}.onnx"
    onnx.save(proto, path)
    return path


def value_info(proto, name):
    return next(v for v in [*proto.graph.input, *proto.graph.output] if v.name == name)


def set_dims(proto, name, dims):
    shape = value_info(proto, name).type.tensor_type.shape
    del shape.dim[:]
    for dim in dims:
        entry = shape.dim.add()
        if isinstance(dim, int):
            entry.dim_value = dim
        else:
            entry.dim_param = dim


def test_truncation_at_any_offset_gives_a_model_error(good_model, tmp_path):
    data = good_model.read_bytes()
    # Every offset in the header and the tail (metadata), and a stride through the graph.
    offsets = sorted(
        {*range(1, 40), *range(40, len(data) - 40, 53), *range(len(data) - 40, len(data))}
    )
    target = tmp_path / "cut.onnx"
    for offset in offsets:
        target.write_bytes(data[:offset])
        assert "could not be loaded" in load_error(target)


def test_truncation_at_a_protobuf_boundary_is_caught_by_the_metadata_check(good_model, tmp_path):
    """A cut just before the last metadata entry parses as a complete, smaller model."""
    proto = onnx.load(good_model)
    last = proto.metadata_props[-1].key
    del proto.metadata_props[-1]
    prefix = proto.SerializeToString()
    data = good_model.read_bytes()
    assert data.startswith(prefix) and len(prefix) < len(data)
    target = tmp_path / "cut.onnx"
    target.write_bytes(prefix)
    assert f"lacks {last}" in load_error(target)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x00" * 4096, "could not be loaded"),
        (bytes(range(256)) * 8, "could not be loaded"),
        (json.dumps({"features": [1, 2, 3]}).encode(), "could not be loaded"),
        (b"PK\x03\x04" + b"\x00" * 100, "could not be loaded"),
    ],
    ids=["zeros", "binary", "json", "zip-header"],
)
def test_non_onnx_bytes_give_a_model_error(tmp_path, content, match):
    path = tmp_path / "model.onnx"
    path.write_bytes(content)
    assert match in load_error(path)


def test_a_wav_file_named_onnx_gives_a_model_error(tmp_path):
    path = tmp_path / "speech.onnx"
    sf.write(path, np.zeros(1600, np.float32), 16000, format="WAV")
    assert "could not be loaded" in load_error(path)


def test_a_folder_gives_a_model_error(tmp_path):
    assert "is not a file" in load_error(tmp_path)


def test_an_onnx_model_without_seproc_metadata_is_named_as_such(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "relu.onnx"
    onnx.save(model, path)
    assert "is not a seproc model" in load_error(path)


@pytest.mark.parametrize("key", _REQUIRED_KEYS)
def test_each_missing_metadata_key_is_named(tmp_path, key):
    message = load_error(make_model(tmp_path / "m.onnx", metadata={key: None}))
    assert f"lacks {key}" in message


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"gain_floor_db": "abc"}, "gain_floor_db='abc' must be a finite number"),
        ({"gain_floor_db": "nan"}, "gain_floor_db='nan'"),
        ({"lookahead_frames": "x"}, "lookahead_frames='x' is not an integer"),
        ({"lookahead_frames": "-1"}, "lookahead_frames=-1 must be >= 0"),
        ({"feature_amin": "0"}, "feature_amin='0' must be > 0"),
        ({"feature_amin": "nan"}, "feature_amin='nan'"),
        ({"feature_amin": "tiny"}, "feature_amin='tiny'"),
        ({"feature_mean_db": '{"a": 1}'}, "feature_mean_db is not a JSON list"),
        ({"feature_mean_db": '["a"]'}, "feature_mean_db is not a JSON list"),
        ({"feature_std_db": "[1e400]"}, "feature_std_db must hold 161 finite"),
        ({"sample_rate_hz": "0"}, "sample_rate_hz=0 must be >= 1"),
        ({"hop_length": "400"}, "hop_length <= win_length <= n_fft"),
        ({"feature": "mel"}, "feature='mel' is not one of"),
        ({"formulation": "spectral"}, "formulation='spectral' is not one of"),
    ],
)
def test_unusable_metadata_values_are_named(tmp_path, metadata, match):
    assert match in load_error(make_model(tmp_path / "m.onnx", metadata=metadata))


def _add_extra_input(proto):
    proto.graph.input.append(helper.make_tensor_value_info("volume", TensorProto.FLOAT, [1]))


def _drop_state_output(proto):
    outputs = [o for o in proto.graph.output if o.name != "acc_out"]
    del proto.graph.output[:]
    proto.graph.output.extend(outputs)


def _rename_features(proto):
    for entry in proto.graph.input:
        if entry.name == "features":
            entry.name = "spectrum"
    for node in proto.graph.node:
        node.input[:] = ["spectrum" if name == "features" else name for name in node.input]


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda p: set_dims(p, "features", [1, 5, 161]), "input 'features' must be float32"),
        (lambda p: set_dims(p, "gain", [1, 5, 161]), "output 'gain' must be float32"),
        (lambda p: set_dims(p, "features", ["frames", 161]), "input 'features' must be"),
        (lambda p: set_dims(p, "features", [2, "frames", 161]), "input 'features' must be"),
        (lambda p: set_dims(p, "features", [1, "frames", "bins"]), "input 'features' must be"),
        (lambda p: set_dims(p, "acc_in", [1, "n", 161]), "state 'acc' must be float32"),
        (_add_extra_input, "input 'volume' is neither"),
        (_drop_state_output, "state input 'acc_in' has no output"),
        (_rename_features, "has no input named 'features'"),
    ],
    ids=[
        "static-frames-in",
        "static-frames-out",
        "rank-2",
        "batch-2",
        "dynamic-bins",
        "dynamic-state",
        "extra-input",
        "state-without-output",
        "renamed-features",
    ],
)
def test_graph_io_that_breaks_the_format_is_named(good_model, tmp_path, edit, match):
    path = edited(good_model, tmp_path, "edited", edit)
    assert match in load_error(path)


def test_a_graph_that_fails_at_run_time_gives_a_model_error(tmp_path):
    """Declared I/O is right, but the graph adds frames t and t + 1, so only T <= 2 runs."""
    bins = 161
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, "frames", bins])
    gain = helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1, "frames", bins])
    constants = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [1]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [2**62]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["features", "starts", "ends", "axes"], ["later"]),
            helper.make_node("Add", ["features", "later"], ["summed"]),
            helper.make_node("Sigmoid", ["summed"], ["gain"]),
        ],
        "two_frames_only",
        [features],
        [gain],
        initializer=constants,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    reference = onnx.load(make_model(tmp_path / "reference.onnx"))
    proto.metadata_props.extend(reference.metadata_props)
    path = tmp_path / "two_frames.onnx"
    onnx.save(proto, path)

    model = OnnxModel(path)
    state = model.new_state()
    two = np.zeros((2, bins), np.float32)
    out = np.empty_like(two)
    model.run(two, out, state)
    np.testing.assert_allclose(out, 0.5)
    three = np.zeros((3, bins), np.float32)
    with pytest.raises(ModelError, match=r"two_frames\.onnx failed to run on 3 frames") as raised:
        model.run(three, np.empty_like(three), state)
    assert raised.value.__cause__ is None and "\n" not in str(raised.value)
    # The Denoiser's warm-up runs the graph, so the error comes at construction.
    with pytest.raises(ModelError, match=r"two_frames\.onnx failed to run on \d+ frames?"):
        Denoiser(path, warm_up=True)

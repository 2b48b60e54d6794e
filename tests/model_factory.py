"""Small ONNX files that follow models/FORMAT.md, built with onnx.helper for tests.

The graph computes ``gain = sigmoid(scale * (cumsum_t(features) + acc_in))`` with a
running-sum state ``acc`` — a stateful model whose output depends on every earlier
frame — or, with ``scale=0`` and ``bias``, a constant gain (``bias`` large gives 1.0,
a bypass). ``noise_subtraction`` graphs output ``noise_db = noise_db_value``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

DEFAULT_METADATA = {
    "seproc_model_format": "1",
    "sample_rate_hz": "16000",
    "n_fft": "320",
    "hop_length": "160",
    "win_length": "320",
    "window": "sqrt_hann",
    "feature": "log_power_db",
    "feature_amin": "1e-10",
    "formulation": "mask",
    "gain_floor_db": "-25",
    "lookahead_frames": "0",
    "model_version": "test",
    "description": "test model built by tests/model_factory.py",
}


def make_model(
    path: Path,
    *,
    formulation: str = "mask",
    scale: float = 0.01,
    bias: float = 0.0,
    noise_db_value: float = -200.0,
    n_bins: int | None = None,
    metadata: dict[str, str | None] | None = None,
) -> Path:
    """Write a seproc-format ONNX model and return its path.

    ``metadata`` entries override the defaults; a value of ``None`` removes the key.
    """
    meta = dict(DEFAULT_METADATA, formulation=formulation)
    n_fft = int(meta["n_fft"])
    bins = n_fft // 2 + 1
    meta["feature_mean_db"] = json.dumps([-40.0] * bins)
    meta["feature_std_db"] = json.dumps([20.0] * bins)
    for key, value in (metadata or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    graph_bins = bins if n_bins is None else n_bins
    features = helper.make_tensor_value_info(
        "features", TensorProto.FLOAT, [1, "frames", graph_bins]
    )
    acc_in = helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 1, graph_bins])
    acc_out = helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 1, graph_bins])
    output_name = "gain" if formulation == "mask" else "noise_db"
    output = helper.make_tensor_value_info(
        output_name, TensorProto.FLOAT, [1, "frames", graph_bins]
    )
    constants = [
        helper.make_tensor("axis", TensorProto.INT64, [], [1]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("bias", TensorProto.FLOAT, [], [bias]),
        helper.make_tensor("noise_db_value", TensorProto.FLOAT, [], [noise_db_value]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    nodes = [
        helper.make_node("CumSum", ["features", "axis"], ["cumsum"]),
        helper.make_node("Add", ["cumsum", "acc_in"], ["running"]),
        helper.make_node("Mul", ["running", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        helper.make_node("ReduceSum", ["features", "axes"], ["frame_sum"], keepdims=1),
        helper.make_node("Add", ["acc_in", "frame_sum"], ["acc_out"]),
    ]
    if formulation == "mask":
        nodes.append(helper.make_node("Sigmoid", ["logits"], ["gain"]))
    else:
        nodes += [
            helper.make_node("Mul", ["logits", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "noise_db_value"], ["noise_db"]),
        ]
    graph = helper.make_graph(
        nodes, "seproc_test", [features, acc_in], [output, acc_out], initializer=constants
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, path)
    return path


def model_with_frames(path: Path, n_fft: int, sample_rate_hz: int = 16000, **kwargs) -> Path:
    """A ``make_model`` model with ``n_fft``-sample frames, hop ``n_fft // 2``, at a rate.

    Flat feature statistics (-40 dB mean, 20 dB std); ``kwargs`` go to ``make_model``
    (``scale=0.0, bias=100.0`` makes it a bypass).
    """
    bins = n_fft // 2 + 1
    metadata = {
        "sample_rate_hz": str(sample_rate_hz),
        "n_fft": str(n_fft),
        "hop_length": str(n_fft // 2),
        "win_length": str(n_fft),
        "feature_mean_db": json.dumps([-40.0] * bins),
        "feature_std_db": json.dumps([20.0] * bins),
    }
    return make_model(path, n_bins=bins, metadata=metadata, **kwargs)


def bypass_model(path: Path) -> Path:
    """A mask model whose gain is exactly 1.0 everywhere."""
    return make_model(path, scale=0.0, bias=100.0)


def reference_gain(features: np.ndarray, scale: float = 0.01, bias: float = 0.0) -> np.ndarray:
    """What ``make_model``'s mask graph computes for one stream, in float64."""
    running = np.cumsum(features.astype(np.float64), axis=0)
    return 1.0 / (1.0 + np.exp(-(scale * running + bias)))


def make_unet_model(
    path: Path, *, refine_channels: int = 0, channels: tuple[int, ...] = (4, 8), seed: int = 0
) -> Path:
    """Export a small random ``training.model.SeprocNet`` with ``training.export.export``.

    The network has the shipped model's layout (strided causal encoder, GRU bottleneck,
    transposed-conv decoder, mask head) at a toy size; with ``refine_channels`` it has a
    refine head whose last convolution is random too (a grown head starts at zero, which
    would make it an identity). Needs torch; the file is written next to its checkpoint.
    """
    import dataclasses

    import torch

    from training.export import export
    from training.model import ModelConfig, SeprocNet

    torch.manual_seed(seed)
    config = ModelConfig(channels=channels, gru_hidden=16, refine_channels=refine_channels)
    model = SeprocNet(config).eval()
    if model.refine is not None:
        with torch.no_grad():
            model.refine.conv3.weight.normal_(0.0, 0.2)
            model.refine.conv3.bias.fill_(0.05)
    path = Path(path)
    checkpoint = path.with_suffix(".pt")
    torch.save(
        {"model": model.state_dict(), "model_config": dataclasses.asdict(config)}, checkpoint
    )
    export(checkpoint, path)
    return path

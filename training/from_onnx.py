r"""Rebuild a training checkpoint from a shipped ONNX model, to fine-tune it.

The PyTorch checkpoints of the shipped models are not in the repository (only the ONNX
file is); this reads the graph's weights back into :class:`training.model.SeprocNet`.
Convolutions keep their PyTorch names in the graph; the two linear layers become
``MatMul`` by a transposed weight (plus the bias, which keeps its name); the GRU becomes
one ONNX ``GRU`` node whose gates are ordered (update, reset, hidden) where PyTorch
orders them (reset, update, new).

Command::

    python -m training.from_onnx models/seproc-default.onnx \\
        --config training/configs/cpu-finetune.toml --out checkpoints/shipped.pt

The result is checked: PyTorch and onnxruntime give the same gains on random features
(within 1e-4), or nothing is written.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from training.model import ModelConfig, SeprocNet
from training.train import load_config


def _gates_onnx_to_torch(weight: np.ndarray, hidden: int) -> np.ndarray:
    """Reorder ``(z, r, h)`` gate blocks along axis 0 into PyTorch's ``(r, z, n)``."""
    z, r, h = weight[:hidden], weight[hidden : 2 * hidden], weight[2 * hidden :]
    return np.concatenate([r, z, h])


def model_from_onnx(onnx_path: Path, config: dict) -> SeprocNet:
    """Build a SeprocNet with ``config``'s architecture and the ONNX file's weights."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path))
    meta = {p.key: p.value for p in graph.metadata_props}
    init = {i.name: numpy_helper.to_array(i) for i in graph.graph.initializer}
    model_cfg = asdict(config["model"])
    model_cfg["gain_floor_db"] = float(meta.get("gain_floor_db", model_cfg.get("gain_floor_db")))
    model_cfg["feature_mean_db"] = json.loads(meta["feature_mean_db"])
    model_cfg["feature_std_db"] = json.loads(meta["feature_std_db"])
    model = SeprocNet(ModelConfig(**model_cfg))
    state = model.state_dict()
    hidden = model.config.gru_hidden
    new_state = {}
    for name in state:
        onnx_name = f"model.{name}"
        if onnx_name in init:
            new_state[name] = torch.from_numpy(init[onnx_name].copy())
    # Linear layers: MatMul by weight.T; find them by shape.
    matmuls = {k: v for k, v in init.items() if k.startswith("onnx::MatMul")}
    for layer in ("squeeze", "expand"):
        shape = tuple(state[f"{layer}.weight"].shape)
        match = [v for v in matmuls.values() if v.shape == shape[::-1]]
        if len(match) != 1:
            raise ValueError(f"cannot identify the {layer} weight in {onnx_path}")
        new_state[f"{layer}.weight"] = torch.from_numpy(match[0].T.copy())
    gru_node = next(n for n in graph.graph.node if n.op_type == "GRU")
    w, r, b = (init[name] for name in gru_node.input[1:4])
    new_state["gru.weight_ih_l0"] = torch.from_numpy(_gates_onnx_to_torch(w[0], hidden))
    new_state["gru.weight_hh_l0"] = torch.from_numpy(_gates_onnx_to_torch(r[0], hidden))
    new_state["gru.bias_ih_l0"] = torch.from_numpy(_gates_onnx_to_torch(b[0, : 3 * hidden], hidden))
    new_state["gru.bias_hh_l0"] = torch.from_numpy(_gates_onnx_to_torch(b[0, 3 * hidden :], hidden))
    missing = [k for k in state if k not in new_state]
    for key in missing:  # buffers set from the config (feature statistics)
        new_state[key] = state[key]
    model.load_state_dict(new_state)
    model.eval()
    return model


def training_totals(onnx_path: Path) -> dict[str, float]:
    """Read the training totals that ``training.export`` wrote into the description.

    Returns ``step``, ``audio_seconds`` and ``seconds_trained`` (zeros when the
    description does not say), so that a fine-tune's totals count the runs before it.
    """
    import re

    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    found = re.search(
        r"trained (\d+) steps, ([\d.]+) h of mixtures, (\d+) min", meta.get("description", "")
    )
    if not found:
        return {"step": 0, "audio_seconds": 0.0, "seconds_trained": 0.0}
    return {
        "step": int(found.group(1)),
        "audio_seconds": float(found.group(2)) * 3600.0,
        "seconds_trained": float(found.group(3)) * 60.0,
    }


def check_against_onnx(model: SeprocNet, onnx_path: Path, frames: int = 50) -> float:
    """Return the largest gain difference between PyTorch and onnxruntime on random features."""
    from seproc.model import OnnxModel

    features = np.random.default_rng(0).standard_normal((frames, model.config.n_bins))
    features = features.astype(np.float32)
    onnx_model = OnnxModel(onnx_path)
    expected = np.zeros_like(features)
    onnx_model.run(features, expected, onnx_model.new_state())
    with torch.no_grad():
        got = model(torch.from_numpy(features)[None])[0][0].numpy()
    return float(np.max(np.abs(got - expected)))


def main(argv: list[str] | None = None) -> int:
    """Convert, check, write a checkpoint usable with ``training.train --init``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("onnx", type=Path)
    parser.add_argument("--config", type=Path, required=True, help="architecture (TOML)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    model = model_from_onnx(args.onnx, load_config(args.config))
    error = check_against_onnx(model, args.onnx)
    if not error <= 1e-4:
        raise SystemExit(f"PyTorch and onnxruntime differ by {error:.2e}; nothing written")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "model_config": asdict(model.config),
            **training_totals(args.onnx),
        },
        args.out,
    )
    print(f"{args.out}: max |torch - onnxruntime| = {error:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

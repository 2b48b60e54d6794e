"""Export a checkpoint to a seproc ONNX model (``models/FORMAT.md``), check it, time it.

``python -m training.export --checkpoint checkpoints/cpu-mask/best.pt
--out models/seproc-default.onnx [--benchmark]``

The graph is stateless: input ``features [1, T, 161]`` (``T`` dynamic) and one
``<name>_in`` per state tensor; outputs ``gain`` (or ``noise_db``) ``[1, T, 161]`` and
``<name>_out``. Every export is checked before it is written: onnxruntime against
PyTorch (max abs difference <= 1e-4) and onnxruntime frame by frame against the whole
sequence (<= 1e-5); a mismatch raises and nothing is written.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from training import spectral
from training.model import SeprocNet, count_flops_per_frame, count_parameters
from training.postfilter import add_postfilter_arguments, postfilter_keys
from training.train import load_model

__all__ = ["benchmark", "check_parity", "export", "main"]

MODEL_VERSION = "2026.12.7"
OPSET = 17
PARITY_TOLERANCE = 1e-4
STREAMING_TOLERANCE = 1e-5


class _Stateless(nn.Module):
    """The network with its state as positional inputs and outputs (batch 1)."""

    def __init__(self, model: SeprocNet) -> None:
        super().__init__()
        self.model = model
        model.export_batch_one = True

    def forward(self, features: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model(features, *states)


def _session(path_or_bytes: str | bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def _onnx_bytes(model: SeprocNet) -> bytes:
    """Trace the model into ONNX (TorchScript exporter: nn.GRU becomes one GRU node)."""
    shapes = model.state_shapes(1)
    output_name = "gain" if model.config.formulation == "mask" else "noise_db"
    input_names = ["features", *(f"{n}_in" for n in shapes)]
    output_names = [output_name, *(f"{n}_out" for n in shapes)]
    example = (torch.randn(1, 7, model.config.n_bins), *model.initial_state(1))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Stateless(model).eval(),
            example,
            buffer,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes={"features": {1: "frames"}, output_name: {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
    model.export_batch_one = False
    return buffer.getvalue()


def _metadata(model: SeprocNet, payload: dict) -> dict[str, str]:
    cfg = model.config
    params, flops = count_parameters(model), count_flops_per_frame(model)
    validation = payload.get("validation", {})
    description = (
        f"Causal U-Net on log-power frames: {len(cfg.channels)} strided conv levels "
        f"{list(cfg.channels)} (kernel {cfg.kernel_time} frames in time), GRU({cfg.gru_hidden}) "
        f"bottleneck, transposed-conv decoder with skips; {cfg.formulation}; {params} parameters, "
        f"{flops / 1e6:.2f} MFLOP/frame; trained "
        f"{payload.get('step', 0) + payload.get('steps_before', 0)} steps, "
        f"{payload.get('audio_seconds', 0) / 3600:.1f} h of mixtures, "
        f"{payload.get('seconds_trained', 0) / 60:.0f} min"
    )
    if "val_pesq" in validation:
        description += (
            f"; validation PESQ-wb {validation['val_pesq']:.2f}, "
            f"STOI {validation['val_stoi']:.3f}, SI-SDR {validation['val_si_sdr']:.1f} dB"
        )
    meta = {
        "seproc_model_format": "1",
        "sample_rate_hz": str(spectral.SAMPLE_RATE_HZ),
        "n_fft": str(spectral.N_FFT),
        "hop_length": str(spectral.HOP),
        "win_length": str(spectral.N_FFT),
        "window": "sqrt_hann",
        "feature": "log_power_db",
        "feature_amin": repr(spectral.AMIN),
        "feature_mean_db": json.dumps([round(float(v), 4) for v in model.feature_mean_db]),
        "feature_std_db": json.dumps([round(float(v), 4) for v in model.feature_std_db]),
        "formulation": cfg.formulation,
        "lookahead_frames": "0",
        "model_version": MODEL_VERSION,
        "description": description,
    }
    if cfg.formulation == "mask":
        meta["gain_floor_db"] = repr(float(cfg.gain_floor_db))
    return meta


def check_parity(model: SeprocNet, onnx_model: bytes, frames: int = 120, seed: int = 0) -> dict:
    """Compare onnxruntime with PyTorch, and ORT frame by frame with ORT whole-sequence.

    Raises ``AssertionError`` past ``PARITY_TOLERANCE`` / ``STREAMING_TOLERANCE``;
    returns the measured maxima.
    """
    session = _session(onnx_model)
    shapes = model.state_shapes(1)
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((1, frames, model.config.n_bins)).astype(np.float32) * 1.5
    zeros = {f"{n}_in": np.zeros(s, np.float32) for n, s in shapes.items()}
    whole = session.run(None, {"features": features, **zeros})
    with torch.no_grad():
        reference = model(torch.from_numpy(features))
    parity = max(
        float(np.max(np.abs(a - b.numpy()))) for a, b in zip(whole, reference, strict=True)
    )
    if not parity <= PARITY_TOLERANCE:
        raise AssertionError(
            f"ONNX export differs from PyTorch by {parity:.3g} (> {PARITY_TOLERANCE})"
        )
    state = dict(zeros)
    streamed = []
    names = list(shapes)
    for t in range(frames):
        result = session.run(None, {"features": features[:, t : t + 1], **state})
        streamed.append(result[0])
        state = {f"{n}_in": v for n, v in zip(names, result[1:], strict=True)}
    streaming = float(np.max(np.abs(np.concatenate(streamed, axis=1) - whole[0])))
    final_state = max(
        float(np.max(np.abs(state[f"{n}_in"] - w))) for n, w in zip(names, whole[1:], strict=True)
    )
    if not max(streaming, final_state) <= STREAMING_TOLERANCE:
        raise AssertionError(
            f"Frame-by-frame ONNX output differs from the whole sequence by "
            f"{max(streaming, final_state):.3g} (> {STREAMING_TOLERANCE})"
        )
    return {"torch_vs_onnx": parity, "streaming_vs_whole": max(streaming, final_state)}


def export(
    checkpoint: Path,
    out: Path,
    gain_floor_db: float | None = None,
    release_db_per_s: float | None = None,
    exponent: float | None = None,
    pitch_filter_strength: float | None = None,
) -> dict:
    """Export ``checkpoint`` to ``out`` after the parity checks; return a summary.

    ``gain_floor_db`` exports a mask model with another floor than it trained with
    (an experiment: how much the floor alone changes, without retraining).
    ``release_db_per_s``, ``exponent`` and ``pitch_filter_strength`` write the gain
    post-filter's keys (``gain_release_db_per_s``, ``gain_exponent``,
    ``pitch_filter_strength``; ``seproc_model_format`` 2) as ``training.postfilter``
    does; ``None`` (or 0, or an exponent of 1) leaves them out.
    """
    model, payload = load_model(checkpoint)
    if model.deep_filter is not None:
        raise ValueError(
            f"{checkpoint} has a deep filter (run 16), which neither the model format nor "
            "the runtime has yet; score it with training.mask_diagnosis --checkpoints"
        )
    if gain_floor_db is not None:
        if model.config.formulation != "mask":
            raise ValueError("gain_floor_db applies to mask models only")
        model.config.gain_floor_db = float(gain_floor_db)
    postfilter = postfilter_keys(release_db_per_s, exponent, pitch_filter_strength)
    if postfilter and model.config.formulation != "mask":
        raise ValueError("the gain post-filter applies to mask models only")
    raw = _onnx_bytes(model)
    proto = onnx.load_from_string(raw)
    # The tracer leaves some state outputs' time dimension symbolic (a slice of a
    # concatenation); their shapes are static, so write them into the graph.
    shapes = model.state_shapes(1)
    for output in proto.graph.output:
        if output.name.endswith("_out"):
            dims = output.type.tensor_type.shape.dim
            for dim, size in zip(dims, shapes[output.name[: -len("_out")]], strict=True):
                dim.Clear()
                dim.dim_value = size
    metadata = _metadata(model, payload)
    if postfilter:
        metadata.update(postfilter, seproc_model_format="2")
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "seproc training.export"
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    parity = check_parity(model, data)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx", delete=False) as handle:
        handle.write(data)
    Path(handle.name).chmod(0o644)  # a temporary file is created private (0600)
    Path(handle.name).replace(out)
    return {
        "out": str(out),
        "bytes": len(data),
        "parameters": count_parameters(model),
        "flops_per_frame": count_flops_per_frame(model),
        "formulation": model.config.formulation,
        "postfilter": postfilter or None,
        "step": payload.get("step"),
        "validation": payload.get("validation"),
        **parity,
    }


def benchmark(
    path: Path, frames_per_call: tuple[int, ...] = (1, 4), repeats: int = 7, calls: int = 1000
) -> dict:
    """Microseconds per hop of :class:`seproc.model.OnnxModel` on one thread.

    Each figure is the best of ``repeats`` runs of ``calls`` calls (as ``timeit``
    reports), in wall-clock time and in the calling thread's CPU time (onnxruntime
    runs a one-thread session on the calling thread), which leaves out the time the
    thread waits for a core on a shared machine. ``*_session_run`` times the bare
    graph through ``InferenceSession.run`` (no I/O binding) for comparison.
    """
    from seproc.model import OnnxModel

    model = OnnxModel(path, num_threads=1)
    n_bins = model.info.n_bins
    rng = np.random.default_rng(0)
    result = {}
    for frames in frames_per_call:
        features = rng.standard_normal((frames, n_bins)).astype(np.float32)
        out = np.empty_like(features)
        state = model.new_state()
        for _ in range(200):  # warm up
            model.run(features, out, state)
        wall, cpu = [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(calls):
                model.run(features, out, state)
            wall.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        hops = calls * frames
        result[f"us_per_hop_{frames}_frames_per_call"] = round(min(wall) / hops * 1e6, 1)
        result[f"cpu_us_per_hop_{frames}_frames_per_call"] = round(min(cpu) / hops * 1e6, 1)
        # the bare graph: onnxruntime's own run() with a feed dict, no I/O binding
        session = _session(str(path))
        feeds = {"features": features[None]}
        feeds.update(
            {f"{n}_in": np.zeros(s, np.float32) for n, s in model.info.state_shapes.items()}
        )
        for _ in range(200):
            session.run(None, feeds)
        cpu = []
        for _ in range(repeats):
            start_cpu = time.thread_time()
            for _ in range(calls):
                session.run(None, feeds)
            cpu.append(time.thread_time() - start_cpu)
        result[f"cpu_us_per_hop_{frames}_frames_per_call_session_run"] = round(
            min(cpu) / hops * 1e6, 1
        )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("models/seproc-default.onnx"))
    parser.add_argument("--benchmark", action="store_true", help="time one-thread inference")
    parser.add_argument(
        "--gain-floor-db",
        type=float,
        default=None,
        help="export a mask model with this floor instead of the one it trained with",
    )
    add_postfilter_arguments(parser)
    args = parser.parse_args(argv)
    try:
        postfilter_keys(args.release_db_per_s, args.exponent, args.pitch_filter_strength)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(1)
    summary = export(
        args.checkpoint,
        args.out,
        args.gain_floor_db,
        args.release_db_per_s,
        args.exponent,
        args.pitch_filter_strength,
    )
    if args.benchmark:
        summary.update(benchmark(args.out))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

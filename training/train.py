"""Train a seproc model: ``python -m training.train --config training/configs/cpu.toml --out DIR``.

One command, the same code on CPU and GPU (``--device cuda``):

- data: corpus shards ``{data}/shards/train/{speech,noise}-NNN.npz`` mixed on the fly
  (:mod:`training.batches`); validation on the fixed mixtures in
  ``{data}/mixtures/val`` (or, where those are absent, e.g. on a GPU machine that took
  only the shards along, on mixtures drawn with a fixed seed from the val shards); with a
  ``[teacher]`` table, random crops of mixtures labelled by another denoiser instead, the
  loss target moved from the clean reference towards its output (:mod:`training.teacher`);
  with ``[loss] target_mask_power``, the target is the noisy spectrum times the ideal
  ratio mask raised to that power (:func:`training.losses.shaped_target`), also as the
  part of a ``[teacher]``'s target that is not the teacher's;
- features exactly as the runtime computes them (:mod:`training.spectral`), normalised
  with per-bin mean and std measured on training mixtures at the start of a run and
  stored in the checkpoint (the exporter writes them into the ONNX metadata);
- ``DIR/last.pt`` (every validation and at the end, resumable with ``--resume``),
  ``DIR/best.pt`` (best validation PESQ), ``DIR/log.jsonl`` (loss terms, speed,
  validation PESQ / STOI / SI-SDR beside the noisy input's);
- fixed seeds: the model initialisation and the batch sequence follow ``[train] seed``;
  a resumed run continues the saved random generators.
- ``--minutes`` bounds this run's wall time; the learning rate anneals over the last
  ``lr_decay_fraction`` of it, so every run (first or resumed) ends on a low rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import tomllib
import torch

from training import spectral
from training.batches import BatchConfig, ClipPool, Mixer, ValClip, load_val_clips
from training.losses import LossConfig, shaped_target, total_loss
from training.metrics import si_sdr
from training.model import (
    ModelConfig,
    SeprocNet,
    count_flops_per_frame,
    count_parameters,
    grow_deep_filter,
    grow_gru,
    grow_refine,
)
from training.teacher import TeacherConfig, TeacherPairs

__all__ = ["TrainConfig", "enhance", "load_config", "load_model", "main", "train"]


@dataclass
class TrainConfig:
    """Run settings (the ``[train]`` table of a training config)."""

    seed: int = 1234
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 200
    lr_decay_fraction: float = 0.25
    lr_final_factor: float = 0.1
    grad_clip: float = 5.0
    threads: int = 2
    minutes: float = 60.0
    max_steps: int = 0
    validate_minutes: float = 8.0
    val_clips: int = 32
    log_seconds: float = 60.0
    stats_items: int = 256
    loader_workers: int = 0
    """Processes that mix batches ahead of the training step (0: mix in the training process).

    With workers, worker ``w`` of a run that starts at step ``s`` draws from
    ``numpy.random.default_rng([seed, s, w])`` and batches come round-robin, so a seed
    still fixes the batch sequence of a run (not the same one as without workers)."""
    snapshot_minutes: float = 0.0
    """Also keep the weights every this many minutes as ``snapshot-STEP.pt`` (0: never)."""


def _fill(cls: type, table: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = set(table) - names
    if unknown:
        raise ValueError(f"Unknown keys for {cls.__name__}: {sorted(unknown)}")
    values = {}
    for key, value in table.items():
        values[key] = tuple(value) if isinstance(value, list) and key != "mrstft_sizes" else value
    if "mrstft_sizes" in values:
        values["mrstft_sizes"] = [tuple(v) for v in values["mrstft_sizes"]]
    return cls(**values)


def load_config(path: Path) -> dict[str, Any]:
    """Read a TOML config into ``{"model", "loss", "batches", "train", "teacher"}`` dataclasses.

    ``teacher`` is ``None`` without a ``[teacher]`` table (``training.teacher``).
    """
    with open(path, "rb") as handle:
        raw = tomllib.load(handle)
    unknown = set(raw) - {"model", "loss", "batches", "train", "teacher"}
    if unknown:
        raise ValueError(f"{path}: unknown tables {sorted(unknown)}")
    return {
        "model": _fill(ModelConfig, raw.get("model", {})),
        "loss": _fill(LossConfig, raw.get("loss", {})),
        "batches": _fill(BatchConfig, raw.get("batches", {})),
        "train": _fill(TrainConfig, raw.get("train", {})),
        "teacher": _fill(TeacherConfig, raw["teacher"]) if "teacher" in raw else None,
    }


# -- signal path ------------------------------------------------------------------------------
def forward_batch(
    model: SeprocNet, noisy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the runtime's signal path on waveforms ``[batch, samples]``.

    Returns the enhanced spectrum and waveform, the model's raw output (gain or noise
    dB) and the noisy log-power in dB.
    """
    spec = spectral.stft(noisy)
    noisy_db = spectral.log_power_db(spec)
    features = (noisy_db - model.feature_mean_db) / model.feature_std_db
    out = model(features)[0]
    coef = None
    if model.deep_filter is not None:
        out, coef = out[..., : model.config.n_bins], out[..., model.config.n_bins :]
    if model.config.formulation == "mask":
        gain = release_gains(
            out, model.config.postfilter_release_db_per_s, model.config.postfilter_exponent
        )
    else:
        gain = torch.clamp(1.0 - torch.pow(10.0, (out - noisy_db) / 20.0), min=0.0)
    enhanced_spec = spec * gain
    if coef is not None:
        enhanced_spec = apply_deep_filter(enhanced_spec, spec, coef, model.config.deep_filter_order)
    enhanced = spectral.istft(enhanced_spec, noisy.shape[-1])
    return enhanced_spec, enhanced, out, noisy_db


def apply_deep_filter(
    masked: torch.Tensor, spec: torch.Tensor, coef: torch.Tensor, order: int
) -> torch.Tensor:
    """Add the deep filter's past frames to the masked spectrum (issue 19, run 16).

    ``masked`` and ``spec`` (the noisy STFT) are ``[batch, frames, bins]`` complex;
    ``coef [batch, frames, 2 * order * n]`` holds, per frame, the real parts then the
    imaginary parts of ``order`` complex coefficients for the lowest ``n`` bins:
    ``out[t, f] = masked[t, f] + sum_k c_k[t, f] spec[t - k, f]`` for ``k = 1 .. order``
    (frames before the first are zero). Causal: the past frames only.
    """
    batch, frames, width = coef.shape
    n = width // (2 * order)
    c = coef.reshape(batch, frames, order, 2, n)
    low = spec[..., :n]
    added = torch.zeros_like(low)
    for k in range(1, order + 1):
        past = torch.cat([torch.zeros_like(low[:, :k]), low[:, :-k]], dim=1)[:, :frames]
        added = added + torch.complex(c[:, :, k - 1, 0], c[:, :, k - 1, 1]) * past
    return torch.cat([masked[..., :n] + added, masked[..., n:]], dim=-1)


def release_gains(gain: torch.Tensor, release_db_per_s: float, exponent: float) -> torch.Tensor:
    """Apply the runtime's gain post-filter (``seproc._kernels.release_gains``), differentiably.

    ``gain [batch, frames, bins]``: per bin, ``held[t] = max(gain[t], factor * held[t-1])``
    from ``held[-1] = 0``, ``factor = 10 ** (-release_db_per_s * hop_s / 20)``, then
    ``held ** exponent``. ``release_db_per_s = 0`` and ``exponent = 1`` return ``gain``.
    """
    if release_db_per_s > 0:
        factor = 10.0 ** (-release_db_per_s * spectral.HOP / spectral.SAMPLE_RATE_HZ / 20.0)
        held, frames = gain[:, 0], [gain[:, 0]]
        for t in range(1, gain.shape[1]):
            held = torch.maximum(gain[:, t], factor * held)
            frames.append(held)
        gain = torch.stack(frames, dim=1)
    if exponent != 1.0:
        gain = gain.clamp_min(1e-12) ** exponent
    return gain


@torch.no_grad()
def enhance(model: SeprocNet, noisy: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Denoise one mono 16 kHz signal with a PyTorch model (whole sequence, causal)."""
    model.eval()
    wave = torch.from_numpy(np.asarray(noisy, np.float32))[None].to(device)
    return forward_batch(model, wave)[1][0].cpu().numpy()


# -- validation -------------------------------------------------------------------------------
SI_SDR_EPSILON = 1e-12
"""The epsilon of the validation SI-SDR (:func:`training.metrics.si_sdr`): a noise-free
validation clip's noisy input equals its clean reference, whose exact SI-SDR is ``inf``
(a mean over clips and the JSON log cannot hold it); with the epsilon it is
``10 log10(|s|^2 / 1e-12)``, over 100 dB, which the ``*_mixed`` means leave out."""


def quality(clean: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """PESQ-wb, STOI and SI-SDR of one clip.

    PESQ is NaN where pesq finds no utterance or is not installed.
    """
    from pystoi import stoi

    try:
        from pesq import pesq
    except ImportError:  # e.g. a GPU machine without a compiler for pesq: select by STOI
        pesq = None
    pesq_value = math.nan
    if pesq is not None:
        try:
            pesq_value = float(pesq(spectral.SAMPLE_RATE_HZ, clean, estimate, "wb"))
        except Exception:  # pesq raises its own NoUtterancesError and friends
            pesq_value = math.nan
    return {
        "pesq": pesq_value,
        "stoi": float(stoi(clean, estimate, spectral.SAMPLE_RATE_HZ, extended=False)),
        "si_sdr": si_sdr(clean, estimate, epsilon=SI_SDR_EPSILON),
    }


def _mean_quality(
    rows: list[dict[str, float]], clips: list[ValClip] | None = None
) -> dict[str, float]:
    """Means over all clips, and (``*_mixed``) over the clips that hold noise.

    A noise-free clip's input SI-SDR is unbounded (over 100 dB), so one of them
    dominates a plain mean; the ``_mixed`` means leave them out.
    """
    means = {key: float(np.nanmean([r[key] for r in rows])) for key in rows[0]}
    if clips is not None:
        mixed = [
            r for r, c in zip(rows, clips, strict=True) if not np.array_equal(c.noisy, c.clean)
        ]
        if mixed:
            means.update(
                {f"{key}_mixed": float(np.nanmean([r[key] for r in mixed])) for key in rows[0]}
            )
    return means


def validate(model: SeprocNet, clips: list[ValClip], device: str) -> dict[str, float]:
    """Mean PESQ / STOI / SI-SDR of the enhanced validation clips."""
    rows = [quality(c.clean, enhance(model, c.noisy, device)) for c in clips]
    model.train()
    return _mean_quality(rows, clips)


def report(checkpoint: Path, data: Path, n_clips: int) -> dict[str, Any]:
    """Noisy vs enhanced PESQ / STOI / SI-SDR on validation clips, by input SNR band.

    Bands come from ``data/mixtures/val/manifest.csv`` (``snr_db``); noise-free clips
    are their own band. Used for the model card; the full comparison with peers is
    ``training/evaluate.py``.
    """
    model, payload = load_model(checkpoint)
    folder = data / "mixtures" / "val"
    clips = load_val_clips(folder, n_clips)
    snr: dict[str, float] = {}
    manifest = folder / "manifest.csv"
    if manifest.is_file():
        import csv

        with open(manifest, newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("snr_db"):
                    snr[row["id"]] = float(row["snr_db"])
    bands: dict[str, list[tuple[dict[str, float], dict[str, float]]]] = {}
    for clip in clips:
        value = snr.get(clip.name)
        if np.array_equal(clip.noisy, clip.clean):
            band = "noise-free"
        elif value is None:
            band = "snr unknown"
        elif value < 5:
            band = "snr -5..5 dB"
        elif value < 12:
            band = "snr 5..12 dB"
        else:
            band = "snr 12..20 dB"
        pair = (quality(clip.clean, clip.noisy), quality(clip.clean, enhance(model, clip.noisy)))
        bands.setdefault(band, []).append(pair)
        bands.setdefault("all with noise" if band != "noise-free" else "_", []).append(pair)
    bands.pop("_", None)
    result: dict[str, Any] = {"checkpoint": str(checkpoint), "step": payload.get("step")}
    for band, pairs in sorted(bands.items()):
        result[band] = {
            "clips": len(pairs),
            "noisy": _mean_quality([p[0] for p in pairs]),
            "enhanced": _mean_quality([p[1] for p in pairs]),
        }
    return result


def _val_clips(data: Path, cfg: dict[str, Any]) -> list[ValClip]:
    folder = data / "mixtures" / "val"
    if folder.is_dir():
        try:
            return load_val_clips(folder, cfg["train"].val_clips)
        except FileNotFoundError:
            pass
    speech, noise = (
        ClipPool(data / "shards", "val", "speech"),
        ClipPool(data / "shards", "val", "noise"),
    )
    batch_cfg = BatchConfig(
        batch_size=1, segment_seconds=4.0, speech_free_probability=0.0, noise_free_probability=0.0
    )
    mixer = Mixer(speech, noise, batch_cfg, np.random.default_rng(20261130))
    clips = []
    for i in range(cfg["train"].val_clips):
        noisy, clean, _ = mixer.item()
        clips.append(ValClip(f"val-{i:03d}", noisy, clean))
    return clips


# -- checkpoints ------------------------------------------------------------------------------
def _save(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_model(checkpoint: Path, device: str = "cpu") -> tuple[SeprocNet, dict[str, Any]]:
    """Rebuild the model of a checkpoint; return it (eval mode) and the checkpoint dict."""
    payload = torch.load(checkpoint, map_location=device, weights_only=False)
    model = SeprocNet(ModelConfig(**payload["model_config"])).to(device)
    model.load_state_dict(payload["model"])
    model.eval()
    return model, payload


def feature_stats(mixer: Mixer, items: int) -> tuple[list[float], list[float]]:
    """Per-bin mean and std of the log-power features of ``items`` training mixtures."""
    total = None
    total_sq = None
    count = 0
    for _ in range(items):
        noisy, _, _ = mixer.item()
        db = spectral.log_power_db(spectral.stft(torch.from_numpy(noisy)[None]))[0].double()
        total = db.sum(0) if total is None else total + db.sum(0)
        total_sq = (db**2).sum(0) if total_sq is None else total_sq + (db**2).sum(0)
        count += db.shape[0]
    mean = total / count
    std = torch.sqrt(torch.clamp(total_sq / count - mean**2, min=1e-6))
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


# -- the loop ---------------------------------------------------------------------------------
def _learning_rate(cfg: TrainConfig, step: int, run_fraction: float) -> float:
    lr = cfg.learning_rate * min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    start = 1.0 - cfg.lr_decay_fraction
    if cfg.lr_decay_fraction > 0 and run_fraction > start:
        progress = min(1.0, (run_fraction - start) / cfg.lr_decay_fraction)
        factor = cfg.lr_final_factor + (1 - cfg.lr_final_factor) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        lr *= factor
    return lr


class _MixerStream(torch.utils.data.IterableDataset):
    """Endless mixer batches for a :class:`torch.utils.data.DataLoader` with workers."""

    def __init__(self, mixer: Mixer, seed: int, start_step: int) -> None:
        super().__init__()
        self.mixer, self.seed, self.start_step = mixer, seed, start_step

    def __iter__(self) -> Any:
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        self.mixer.rng = np.random.default_rng([self.seed, self.start_step, worker])
        while True:
            yield self.mixer.batch()


def _teacher_batches(
    pairs: TeacherPairs,
    teacher: TeacherConfig,
    bcfg: BatchConfig,
    rng: np.random.Generator,
    device: str,
) -> Any:
    """Iterate ``(noisy, clean, taught)`` tensors from labelled mixtures (random crops).

    ``taught`` is the teacher's output; the training loop mixes the target
    ``(1 - weight) base + weight taught`` (:func:`_teacher_target`).
    """
    while True:
        arrays = pairs.batch(rng, bcfg.batch_size, bcfg.segment_samples)
        yield tuple(torch.from_numpy(a).to(device) for a in arrays)


def _teacher_target(base: torch.Tensor, taught: torch.Tensor, weight: float) -> torch.Tensor:
    """Return the loss target ``(1 - weight) base + weight taught`` (``training.teacher``).

    ``base`` is the clean reference, or with ``[loss] target_mask_power`` the shaped
    target made from it (:func:`training.losses.shaped_target`).
    """
    return (1.0 - weight) * base + weight * taught


def _batches(mixer: Mixer, tcfg: TrainConfig, start_step: int, device: str) -> Any:
    """Iterate ``(noisy, clean, noise)`` tensors on ``device``, mixed here or by workers."""
    if tcfg.loader_workers <= 0:
        while True:
            yield tuple(torch.from_numpy(a).to(device) for a in mixer.batch())
    loader = torch.utils.data.DataLoader(
        _MixerStream(mixer, tcfg.seed, start_step),
        batch_size=None,
        num_workers=tcfg.loader_workers,
        prefetch_factor=4,
        pin_memory=device != "cpu",
    )
    for batch in loader:
        yield tuple(a.to(device, non_blocking=True) for a in batch)


def _score(metrics: dict[str, float]) -> float:
    """Score a validation: PESQ, or STOI where PESQ is unavailable (NaN)."""
    value = metrics.get("pesq", math.nan)
    return value if math.isfinite(value) else metrics["stoi"]


def _log(handle: Any, record: dict[str, Any]) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()


def train(
    config_path: Path,
    data: Path,
    out: Path,
    *,
    resume: bool = False,
    minutes: float | None = None,
    device: str = "cpu",
    max_steps: int | None = None,
    learning_rate: float | None = None,
    init: Path | None = None,
    gain_floor_db: float | None = None,
) -> dict[str, Any]:
    """Train (or resume) and return the final validation record.

    ``init`` starts a new run from another run's weights (fine-tuning): its network
    and feature statistics replace the config's ``[model]`` table (``gain_floor_db``
    may change the mask's floor), except that a ``refine_channels`` or ``gru_hidden``
    the init network lacks grows it (:func:`training.model.grow_refine`,
    :func:`training.model.grow_gru`: the same output at the start); the optimizer, step
    count and learning-rate warm-up start afresh, while ``steps_before``,
    ``seconds_trained`` and ``audio_seconds`` carry the weights'
    history on. A ``--resume`` that finds ``out/last.pt`` ignores it.
    """
    if gain_floor_db is not None and init is None:
        raise ValueError("gain_floor_db changes the floor of an --init model; give init too.")
    cfg = load_config(config_path)
    if cfg["teacher"] is not None and cfg["model"].formulation == "noise_subtraction":
        raise ValueError("A [teacher] needs the mask formulation (its target is a waveform).")
    if cfg["loss"].target_mask_power > 0 and cfg["model"].formulation == "noise_subtraction":
        raise ValueError(
            "[loss] target_mask_power shapes the clean target of a mask model; it cannot be "
            "combined with the noise_subtraction formulation."
        )
    tcfg: TrainConfig = cfg["train"]
    if minutes is not None:
        tcfg.minutes = minutes
    if learning_rate is not None:
        tcfg.learning_rate = learning_rate
    if max_steps is not None:
        tcfg.max_steps = max_steps
    torch.set_num_threads(tcfg.threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(tcfg.seed)
    rng = np.random.default_rng(tcfg.seed)

    speech = ClipPool(data / "shards", "train", "speech")
    noise = ClipPool(data / "shards", "train", "noise")
    mixer = Mixer(speech, noise, cfg["batches"], rng)

    last = out / "last.pt"
    payload: dict[str, Any] | None = None
    init_record: dict[str, Any] | None = None
    init_payload: dict[str, Any] = {}
    steps_before = 0
    if resume and last.is_file():
        model, payload = load_model(last, device)
        model.train()
        rng.bit_generator.state = payload["numpy_rng"]
        torch.set_rng_state(payload["torch_rng"])
    elif init is not None:
        model, init_payload = load_model(init, device)
        if gain_floor_db is not None:
            model.config.gain_floor_db = float(gain_floor_db)
        # the post-filter trained through is the config's, whatever the init model had
        model.config.postfilter_release_db_per_s = cfg["model"].postfilter_release_db_per_s
        model.config.postfilter_exponent = cfg["model"].postfilter_exponent
        refine = cfg["model"].refine_channels
        if refine and model.refine is None:
            # grow: the config asks for a refine head the init model lacks (same output)
            model = grow_refine(model, refine)
        hidden = cfg["model"].gru_hidden
        if hidden > model.config.gru_hidden:
            # grow: a wider GRU than the init model's (same output, new units to train)
            model = grow_gru(model, hidden, seed=tcfg.seed)
        order = cfg["model"].deep_filter_order
        if order and model.deep_filter is None:
            # grow: a deep filter the init model lacks (zero coefficients: same output)
            model = grow_deep_filter(model, order, cfg["model"].deep_filter_bins)
        model.train()
        steps_before = init_payload.get("step", 0) + init_payload.get("steps_before", 0)
        init_record = {
            "from": str(init),
            "step": init_payload.get("step"),
            "steps_before": steps_before,
            "gain_floor_db": model.config.gain_floor_db,
            "refine_channels": model.config.refine_channels,
            "gru_hidden": model.config.gru_hidden,
            "deep_filter_order": model.config.deep_filter_order,
        }
    else:
        mcfg: ModelConfig = cfg["model"]
        stats_mixer = Mixer(speech, noise, cfg["batches"], np.random.default_rng(tcfg.seed + 1))
        mcfg.feature_mean_db, mcfg.feature_std_db = feature_stats(stats_mixer, tcfg.stats_items)
        model = SeprocNet(mcfg).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=tcfg.learning_rate, weight_decay=tcfg.weight_decay
    )
    step, total_seconds_trained, audio_seconds = 0, 0.0, 0.0
    best_pesq = -math.inf
    if init_record is not None:
        # the weights' history goes on: totals count the runs they come from
        total_seconds_trained = float(init_payload.get("seconds_trained", 0.0))
        audio_seconds = float(init_payload.get("audio_seconds", 0.0))
    if payload is not None:
        steps_before = payload.get("steps_before", 0)
        optimizer.load_state_dict(payload["optimizer"])
        step = payload["step"]
        total_seconds_trained = payload["seconds_trained"]
        audio_seconds = payload["audio_seconds"]
        best_pesq = payload["best_pesq"]

    val = _val_clips(data, cfg)
    run_audio_start = audio_seconds
    log = open(out / "log.jsonl", "a")
    run_start = time.monotonic()
    if payload is None:
        noisy_quality = _mean_quality([quality(c.clean, c.noisy) for c in val], val)
        _log(
            log,
            {
                "event": "start",
                "config": str(config_path),
                "device": device,
                "init": init_record,
                "parameters": count_parameters(model),
                "flops_per_frame": count_flops_per_frame(model),
                "train_speech_hours": speech.seconds / 3600,
                "train_noise_hours": noise.seconds / 3600,
                "train_noise_groups": len(noise.members),
                "val_clips": len(val),
                "val_noisy": noisy_quality,
            },
        )
    else:
        _log(
            log,
            {
                "event": "resume",
                "step": step,
                "device": device,
                "learning_rate": tcfg.learning_rate,
                "minutes": tcfg.minutes,
            },
        )

    def checkpoint(path: Path, record: dict[str, Any]) -> None:
        _save(
            path,
            {
                "model": model.state_dict(),
                "model_config": asdict(model.config),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "steps_before": steps_before,
                "seconds_trained": total_seconds_trained + time.monotonic() - run_start,
                "audio_seconds": audio_seconds,
                "best_pesq": best_pesq,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "config_path": str(config_path),
                "validation": record,
            },
        )

    def run_validation() -> dict[str, Any]:
        nonlocal best_pesq
        metrics = validate(model, val, device)
        record = {
            "event": "val",
            "step": step,
            "minutes": (total_seconds_trained + time.monotonic() - run_start) / 60,
            "audio_hours": audio_seconds / 3600,
            **{f"val_{k}": v for k, v in metrics.items()},
        }
        improved = _score(metrics) > best_pesq
        if improved:
            best_pesq = _score(metrics)
        record["best"] = improved
        _log(log, record)
        checkpoint(last, record)
        if improved:
            checkpoint(out / "best.pt", record)
        return record

    model.train()
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    teacher: TeacherConfig | None = cfg["teacher"]
    if teacher is None:
        batches = _batches(mixer, tcfg, step, device)
    else:
        pairs = TeacherPairs([data / f for f in teacher.files()], teacher.skip_seconds)
        _log(
            log,
            {
                "event": "teacher",
                "pairs": teacher.pairs,
                "items": len(pairs),
                "teacher": pairs.teacher_name,
                "weight": teacher.weight,
            },
        )
        batches = _teacher_batches(pairs, teacher, cfg["batches"], rng, device)
    budget_s = tcfg.minutes * 60
    next_snapshot = (
        time.monotonic() + tcfg.snapshot_minutes * 60 if tcfg.snapshot_minutes > 0 else math.inf
    )
    next_val = time.monotonic() + tcfg.validate_minutes * 60
    next_log = time.monotonic() + tcfg.log_seconds
    sums: dict[str, float] = {}
    n_sum = 0
    run_steps = 0
    record: dict[str, Any] = {}
    try:
        while True:
            elapsed = time.monotonic() - run_start
            if elapsed >= budget_s or (tcfg.max_steps and run_steps >= tcfg.max_steps):
                break
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(tcfg, step, elapsed / budget_s)
            # the third: the noise, or with a teacher its output (the target moves towards it)
            noisy, clean, third = next(batches)
            has_speech = clean.abs().amax(dim=-1) > 0
            noise_wave = third
            enhanced_spec, enhanced, out_raw, _ = forward_batch(model, noisy)
            # the loss target ("clean" from here on): shaped, then moved towards the teacher
            if cfg["loss"].target_mask_power > 0:  # the shaped target instead of clean
                shaped_spec = shaped_target(
                    spectral.stft(noisy),
                    spectral.stft(clean),
                    cfg["loss"].target_mask_power,
                    cfg["loss"].target_floor_db,
                )
                clean = spectral.istft(shaped_spec, clean.shape[-1])
            if teacher is not None:
                clean = _teacher_target(clean, third, teacher.weight)
            clean_spec = spectral.stft(clean)
            extra = {}
            if model.config.formulation == "noise_subtraction":
                extra = {
                    "noise_db_pred": out_raw,
                    "noise_db_true": spectral.log_power_db(spectral.stft(noise_wave)),
                    "feature_std_db": model.feature_std_db,
                }
            loss, terms = total_loss(
                cfg["loss"],
                estimate_spec=enhanced_spec,
                clean_spec=clean_spec,
                estimate_wave=enhanced,
                clean_wave=clean,
                has_speech=has_speech,
                **extra,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            optimizer.step()
            step += 1
            run_steps += 1
            audio_seconds += noisy.numel() / spectral.SAMPLE_RATE_HZ
            terms["loss"] = float(loss.detach())
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
            n_sum += 1
            now = time.monotonic()
            if now >= next_log or (tcfg.max_steps and run_steps == 1):
                _log(
                    log,
                    {
                        "event": "train",
                        "step": step,
                        "minutes": (total_seconds_trained + now - run_start) / 60,
                        "audio_hours": audio_seconds / 3600,
                        "lr": optimizer.param_groups[0]["lr"],
                        **{k: v / n_sum for k, v in sums.items()},
                    },
                )
                sums, n_sum = {}, 0
                next_log = now + tcfg.log_seconds
            if now >= next_snapshot:
                _save(
                    out / f"snapshot-{step}.pt",
                    {
                        "model": model.state_dict(),
                        "model_config": asdict(model.config),
                        "step": step,
                    },
                )
                next_snapshot = now + tcfg.snapshot_minutes * 60
            if now >= next_val:
                run_validation()
                next_val = time.monotonic() + tcfg.validate_minutes * 60
        record = run_validation()
        elapsed = time.monotonic() - run_start
        _log(
            log,
            {
                "event": "end",
                "step": step,
                "run_minutes": elapsed / 60,
                "real_time_factor": (audio_seconds - run_audio_start) / max(elapsed, 1e-9),
                "best_pesq": best_pesq,
            },
        )
    finally:
        log.close()
    return record


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="training TOML config")
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="only evaluate CHECKPOINT on the validation mixtures, by input SNR band",
    )
    parser.add_argument("--data", type=Path, default=Path("data"), help="corpus folder")
    parser.add_argument("--out", type=Path, default=None, help="checkpoint and log folder")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    parser.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="peak learning rate of this run (e.g. lower when resuming a trained model)",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="CHECKPOINT",
        help="start a new run from this checkpoint's weights (fine-tuning)",
    )
    parser.add_argument(
        "--gain-floor-db",
        type=float,
        default=None,
        help="with --init: fine-tune with this mask floor instead of the checkpoint's",
    )
    args = parser.parse_args(argv)
    if args.gain_floor_db is not None and args.init is None:
        parser.error("--gain-floor-db needs --init")
    if args.report is not None:
        torch.set_num_threads(load_config(args.config)["train"].threads)
        n_clips = load_config(args.config)["train"].val_clips
        print(json.dumps(report(args.report, args.data, n_clips), indent=1))
        return 0
    if args.out is None:
        parser.error("--out is required to train")
    record = train(
        args.config,
        args.data,
        args.out,
        resume=args.resume,
        minutes=args.minutes,
        device=args.device,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        init=args.init,
        gain_floor_db=args.gain_floor_db,
    )
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

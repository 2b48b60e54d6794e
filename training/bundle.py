"""A GPU bundle: a few hours of the corpus shards in Opus, small enough to carry.

A GPU machine takes the working tree plus at most 64 MiB along, while the int16 shards
of a 20-hour corpus take over 2 GiB. Opus at about 16 kbit/s keeps speech nearly
transparent (PESQ-wb 4.35 of the coded speech against the original here) in 1/16 of the
bytes, so a bundle of ~45 MiB holds 6 hours: every training noise, every real voice
and an hour of the TTS speech, balanced over speakers.

    # here: choose and encode (needs soundfile with Opus, i.e. libsndfile >= 1.0.29)
    python -m training.bundle pack --data data --out data/gpu-bundle --max-mib 50
    python -m training.bundle weights checkpoints/cpu-mask/best.pt --out data/gpu-bundle/start.pt
    # there: decode into ordinary shards, then train on them
    python -m training.bundle unpack data/gpu-bundle --out /tmp/corpus
    python -m training.train --config training/configs/gpu.toml --data /tmp/corpus ...

A bundle is a folder of ``{split}-{kind}-NNN.ogg`` (the clips of one split and kind back to
back, mono 16 kHz Opus) with ``{split}-{kind}-NNN.npz`` beside each (``offsets``,
``source``, ``group``, ``clip_id`` as in :mod:`training.shards`) and ``bundle.json``
(what was chosen, minutes per source, bytes). Unpacking writes the shard format, so
training reads a bundle exactly as it reads the corpus.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from training.shards import SAMPLE_RATE_HZ, Clip, clip_index, read_clips, write_shards

__all__ = ["BundlePlan", "choose_clips", "codec_pesq", "pack", "unpack", "weights_only"]

OPUS_COMPRESSION_LEVEL = 0.95
"""libsndfile's Opus compression level (0-1): 0.95 gave 16 kbit/s for speech and PESQ-wb 4.35
against the original here (0.9: 26 kbit/s, 4.51; 1.0: 6 kbit/s, 2.0)."""
CHUNK_SECONDS = 600.0
"""Audio per Opus file, so that unpacking decodes files in parallel."""


@dataclass
class BundlePlan:
    """How many minutes of each kind of audio to take (``None``: all of it)."""

    noise_minutes: float | None = None
    real_speech_minutes: float | None = None
    tts_minutes: float | None = 60.0
    val_speech_minutes: float = 6.0
    val_noise_minutes: float = 6.0
    seed: int = 0


def _is_tts(source: str) -> bool:
    return source.startswith("tts-")


def choose_clips(
    clips: Sequence[Clip], minutes: float | None, rng: np.random.Generator
) -> list[Clip]:
    """Up to ``minutes`` of ``clips``, drawn round-robin over their groups.

    Each group's clips are shuffled, then groups take turns giving one clip until the
    minutes are used, so every speaker or noise type keeps a share. The result is in
    the input order. ``None`` takes everything.
    """
    if minutes is None:
        return list(clips)
    by_group: dict[str, list[int]] = defaultdict(list)
    for index, clip in enumerate(clips):
        by_group[clip.group].append(index)
    queues = [list(rng.permutation(indices)) for _, indices in sorted(by_group.items())]
    budget = minutes * 60 * SAMPLE_RATE_HZ
    chosen: list[int] = []
    total = 0
    while total < budget and any(queues):
        for queue in queues:
            if queue and total < budget:
                index = int(queue.pop())
                chosen.append(index)
                total += len(clips[index].audio)
    return [clips[i] for i in sorted(chosen)]


def _encode(path: Path | BinaryIO, audio: np.ndarray) -> None:
    import soundfile

    soundfile.write(
        path,
        audio,
        SAMPLE_RATE_HZ,
        format="OGG",
        subtype="OPUS",
        compression_level=OPUS_COMPRESSION_LEVEL,
    )


def codec_pesq(clips: Sequence[Clip], seconds: float = 30.0) -> float:
    """PESQ-wb of the first ``seconds`` of ``clips`` after an Opus round trip (NaN without pesq).

    What the bundle's coding costs the speech it carries; :func:`pack` records it in
    ``bundle.json`` (``speech_pesq_wb``, the first 30 s of the validation speech: 4.35 for
    the 20-hour corpus).
    """
    import io

    import soundfile

    try:
        from pesq import pesq
    except ImportError:
        return float("nan")
    audio = np.concatenate([c.audio for c in clips])[: int(seconds * SAMPLE_RATE_HZ)]
    buffer = io.BytesIO()
    _encode(buffer, audio)
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    return round(float(pesq(SAMPLE_RATE_HZ, audio, decoded[: len(audio)], "wb")), 3)


def _write_chunks(clips: list[Clip], out: Path, name: str) -> list[Path]:
    """Encode clips as Opus files of about ``CHUNK_SECONDS`` with their metadata beside."""
    paths: list[Path] = []
    limit = CHUNK_SECONDS * SAMPLE_RATE_HZ
    start = 0
    while start < len(clips):
        stop, samples = start, 0
        while stop < len(clips) and (stop == start or samples + len(clips[stop].audio) <= limit):
            samples += len(clips[stop].audio)
            stop += 1
        part = clips[start:stop]
        stem = out / f"{name}-{len(paths):03d}"
        np.savez(stem.with_suffix(".npz"), **clip_index(part))
        _encode(stem.with_suffix(".ogg"), np.concatenate([c.audio for c in part]))
        paths.append(stem.with_suffix(".ogg"))
        start = stop
    return paths


def pack(data: Path, out: Path, plan: BundlePlan, max_mib: float = 50.0) -> dict:
    """Choose clips from ``data/shards`` by ``plan`` and write them to ``out`` as Opus.

    Raises
    ------
    ValueError
        If the bundle comes out larger than ``max_mib`` (take fewer minutes).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("*.ogg"), *out.glob("*.npz")]:
        old.unlink()
    rng = np.random.default_rng(plan.seed)
    shards = Path(data) / "shards"
    report: dict = {"plan": plan.__dict__, "sets": {}}
    train_speech = list(read_clips(shards, "train", "speech"))
    val_speech = list(read_clips(shards, "val", "speech"))
    selections = {
        ("train", "speech"): choose_clips(
            [c for c in train_speech if not _is_tts(c.source)], plan.real_speech_minutes, rng
        )
        + choose_clips([c for c in train_speech if _is_tts(c.source)], plan.tts_minutes, rng),
        ("train", "noise"): choose_clips(
            list(read_clips(shards, "train", "noise")), plan.noise_minutes, rng
        ),
        ("val", "speech"): choose_clips(val_speech, plan.val_speech_minutes, rng),
        ("val", "noise"): choose_clips(
            list(read_clips(shards, "val", "noise")), plan.val_noise_minutes, rng
        ),
    }
    del train_speech
    for (split, kind), clips in selections.items():
        files = _write_chunks(clips, out, f"{split}-{kind}")
        minutes: dict[str, float] = defaultdict(float)
        for clip in clips:
            minutes[clip.source] += len(clip.audio) / SAMPLE_RATE_HZ / 60
        report["sets"][f"{split}/{kind}"] = {
            "clips": len(clips),
            "groups": len({c.group for c in clips}),
            "minutes": round(sum(minutes.values()), 2),
            "minutes_by_source": {k: round(v, 2) for k, v in sorted(minutes.items())},
            "files": [p.name for p in files],
        }
    report["speech_pesq_wb"] = codec_pesq(val_speech)
    size = sum(p.stat().st_size for p in out.iterdir() if p.suffix in (".ogg", ".npz"))
    report["bytes"] = size
    (out / "bundle.json").write_text(json.dumps(report, indent=1) + "\n")
    if size > max_mib * 2**20:
        raise ValueError(
            f"The bundle in {out} is {size / 2**20:.1f} MiB, over max_mib={max_mib}: "
            "take fewer minutes (--real-speech-minutes, --tts-minutes, --noise-minutes)."
        )
    return report


def _decode_chunk(path: Path) -> list[Clip]:
    import soundfile

    audio, rate = soundfile.read(path, dtype="float32")
    if rate != SAMPLE_RATE_HZ:
        raise ValueError(f"{path} is at {rate} Hz, expected {SAMPLE_RATE_HZ}.")
    with np.load(path.with_suffix(".npz")) as meta:
        offsets = meta["offsets"]
        source, group, clip_id = meta["source"], meta["group"], meta["clip_id"]
    if len(audio) != offsets[-1]:
        raise ValueError(f"{path} decodes to {len(audio)} samples; its index says {offsets[-1]}.")
    return [
        Clip(audio[offsets[i] : offsets[i + 1]], str(source[i]), str(group[i]), str(clip_id[i]))
        for i in range(len(offsets) - 1)
    ]


def unpack(bundle: Path, out: Path, workers: int = 8) -> dict[str, int]:
    """Decode a bundle into ``out/shards/{split}/{kind}-NNN.npz``; return clips per set."""
    bundle = Path(bundle)
    counts: dict[str, int] = {}
    sets = (("train", "speech"), ("train", "noise"), ("val", "speech"), ("val", "noise"))
    for split, kind in sets:
        files = sorted(bundle.glob(f"{split}-{kind}-*.ogg"))
        if not files:
            continue
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            clips = [clip for chunk in pool.map(_decode_chunk, files) for clip in chunk]
        write_shards(clips, Path(out) / "shards", split, kind)
        counts[f"{split}/{kind}"] = len(clips)
    if not counts:
        raise FileNotFoundError(f"No bundle files (*.ogg) in {bundle}.")
    return counts


WEIGHT_KEYS = (
    "model",
    "model_config",
    "step",
    "steps_before",
    "seconds_trained",
    "audio_seconds",
    "validation",
    "config_path",
)
"""What a ``--init`` needs of a checkpoint: weights and history, not optimizer or RNG state."""


def weights_only(checkpoint: Path, out: Path) -> int:
    """Copy a checkpoint without its optimizer and RNG state (a third of its bytes).

    Returns the bytes written. ``python -m training.train --init`` accepts the copy.
    """
    import torch

    payload = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "model" not in payload or "model_config" not in payload:
        raise ValueError(f"{checkpoint} is not a training checkpoint (no model weights).")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: payload[k] for k in WEIGHT_KEYS if k in payload}, out)
    return Path(out).stat().st_size


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="encode a share of the corpus shards as Opus")
    p.add_argument("--data", type=Path, default=Path("data"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-mib", type=float, default=50.0)
    p.add_argument("--noise-minutes", type=float, default=None, help="default: all")
    p.add_argument("--real-speech-minutes", type=float, default=None, help="default: all")
    p.add_argument("--tts-minutes", type=float, default=BundlePlan.tts_minutes)
    p.add_argument("--seed", type=int, default=0)
    u = sub.add_parser("unpack", help="decode a bundle into corpus shards")
    u.add_argument("bundle", type=Path)
    u.add_argument("--out", type=Path, required=True)
    u.add_argument("--workers", type=int, default=8)
    w = sub.add_parser("weights", help="copy a checkpoint's weights for --init (small)")
    w.add_argument("checkpoint", type=Path)
    w.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "weights":
        print(f"{weights_only(args.checkpoint, args.out)} bytes in {args.out}")
        return 0
    if args.command == "pack":
        plan = BundlePlan(
            noise_minutes=args.noise_minutes,
            real_speech_minutes=args.real_speech_minutes,
            tts_minutes=args.tts_minutes,
            seed=args.seed,
        )
        try:
            report = pack(args.data, args.out, plan, args.max_mib)
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(json.dumps({k: v["minutes"] for k, v in report["sets"].items()}))
        print(f"{report['bytes'] / 2**20:.1f} MiB in {args.out}")
    else:
        print(json.dumps(unpack(args.bundle, args.out, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

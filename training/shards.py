"""Compact corpus shards: the on-disk format shared by corpus building and training.

A shard is an ``.npz`` file holding many clips of one kind (``speech`` or ``noise``) of one
split (``train``, ``val`` or ``test``) at 16 kHz, concatenated as int16:

- ``audio``: int16 ``[n_samples]``, the clips back to back (full scale 32767 = 1.0);
- ``offsets``: int64 ``[n_clips + 1]``, clip ``i`` is ``audio[offsets[i]:offsets[i + 1]]``;
- ``source``: str ``[n_clips]``, the source name (package or generator);
- ``group``: str ``[n_clips]``, the speaker (speech) or noise type (noise) that splits are made by;
- ``clip_id``: str ``[n_clips]``, a stable identifier of the clip.

Files are named ``{root}/{split}/{kind}-{index:03d}.npz`` and kept under
``MAX_SHARD_BYTES`` each, so a GPU machine can take them along in bundles.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16000
MAX_SHARD_BYTES = 60 * 1024 * 1024
SPLITS = ("train", "val", "test")
KINDS = ("speech", "noise")


@dataclass(frozen=True)
class Clip:
    """One clip of a shard: float32 audio at 16 kHz and where it came from."""

    audio: np.ndarray
    source: str
    group: str
    clip_id: str


def to_int16(audio: np.ndarray) -> np.ndarray:
    """Convert float audio in [-1, 1] to int16, clipping what lies outside."""
    return np.clip(np.round(np.asarray(audio, np.float64) * 32767.0), -32768, 32767).astype(
        np.int16
    )


def clip_index(clips: Sequence[Clip]) -> dict[str, np.ndarray]:
    """Index clips laid back to back: a shard's fields other than ``audio``.

    Returns ``offsets`` (int64, clip ``i`` spans ``offsets[i]:offsets[i + 1]``),
    ``source``, ``group`` and ``clip_id``.
    """
    lengths = [len(c.audio) for c in clips]
    return {
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "source": np.array([c.source for c in clips]),
        "group": np.array([c.group for c in clips]),
        "clip_id": np.array([c.clip_id for c in clips]),
    }


def write_shards(clips: Iterable[Clip], root: Path, split: str, kind: str) -> list[Path]:
    """Write clips as shards of at most ``MAX_SHARD_BYTES`` and return their paths."""
    if split not in SPLITS or kind not in KINDS:
        raise ValueError(f"split must be one of {SPLITS} and kind one of {KINDS}")
    folder = Path(root) / split
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    pending: list[Clip] = []
    pending_bytes = 0

    def flush() -> None:
        nonlocal pending, pending_bytes
        if not pending:
            return
        path = folder / f"{kind}-{len(paths):03d}.npz"
        audio = [to_int16(c.audio) for c in pending]
        np.savez(
            path,
            audio=np.concatenate(audio) if audio else np.zeros(0, np.int16),
            **clip_index(pending),
        )
        paths.append(path)
        pending, pending_bytes = [], 0

    longest = [0, 0, 0]  # longest source, group and clip_id of the pending clips

    def size_with(clip: Clip) -> int:
        # int16 audio + int64 offsets + three str arrays that numpy pads to their longest
        # entry at 4 bytes a character + a margin for the npz and npy headers.
        n = len(pending) + 1
        text = max(longest[0], len(clip.source)) + max(longest[1], len(clip.group))
        text += max(longest[2], len(clip.clip_id))
        return pending_bytes + 2 * len(clip.audio) + 8 * (n + 1) + 4 * n * text + 4096

    for clip in clips:
        if pending and size_with(clip) > MAX_SHARD_BYTES:
            flush()
            longest[:] = [0, 0, 0]
        pending.append(clip)
        pending_bytes += 2 * len(clip.audio)
        longest[:] = [
            max(longest[0], len(clip.source)),
            max(longest[1], len(clip.group)),
            max(longest[2], len(clip.clip_id)),
        ]
    flush()
    return paths


def read_clips(root: Path, split: str, kind: str) -> Iterator[Clip]:
    """Yield every clip of one split and kind, in file order, as float32."""
    for path in sorted((Path(root) / split).glob(f"{kind}-*.npz")):
        with np.load(path) as shard:
            audio, offsets = shard["audio"], shard["offsets"]
            for i in range(len(offsets) - 1):
                yield Clip(
                    audio=audio[offsets[i] : offsets[i + 1]].astype(np.float32) / 32767.0,
                    source=str(shard["source"][i]),
                    group=str(shard["group"][i]),
                    clip_id=str(shard["clip_id"][i]),
                )

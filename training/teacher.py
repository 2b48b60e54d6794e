r"""Teacher targets: training mixtures labelled by another denoiser, for distillation.

A student learns what a stronger denoiser does to the same mixtures: each mixture of the
training mixer (``training.batches.Mixer``, the config's ``[batches]`` table, longer
segments) is denoised by the teacher (``training.peers``; DeepFilterNet3 by default,
which beats seproc on every metric of the full-band test) and stored with its clean
reference. ``training.train`` reads such a file when the config has a ``[teacher]``
table: its batches are random crops of the stored mixtures and the loss target is
``(1 - weight) * clean + weight * teacher`` (waveforms), so ``weight = 0`` is ordinary
training on the stored mixtures and ``weight = 1`` pure distillation. Speech presence
(the loss terms that skip speech-free items) still comes from the clean reference.

The file is an ``.npz`` of float16 arrays ``noisy``, ``clean``, ``teacher``
``[items, samples]`` at 16 kHz (float16 keeps ~66 dB below each sample; the mixer's
levels are -40 to -15 dBFS) and ``teacher_name``. Usage::

    python -m training.teacher --config training/configs/cpu-finetune-teacher.toml \
        --data data --items 1500 --seconds 5 --out data/teacher/dfn3.npz --workers 2
"""

from __future__ import annotations

import argparse
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from training.batches import BatchConfig, ClipPool, Mixer
from training.spectral import SAMPLE_RATE_HZ

__all__ = ["TeacherConfig", "TeacherPairs", "label", "main"]


@dataclass
class TeacherConfig:
    """The ``[teacher]`` table of a training config."""

    pairs: str | list[str] = ""
    """The labelled mixtures (``.npz`` written by :func:`label`), relative to the data folder;
    a list of such files is read as one (same mixture length and teacher)."""
    weight: float = 1.0
    """The teacher's share of the loss target, 0 to 1."""
    skip_seconds: float = 0.3
    """Crops start this far into a stored mixture (the teacher's own start-up)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"[teacher] weight must be in [0, 1], got {self.weight}")
        if self.skip_seconds < 0:
            raise ValueError(f"[teacher] skip_seconds must be >= 0, got {self.skip_seconds}")
        if not self.files():
            raise ValueError("[teacher] pairs must name at least one .npz file")

    def files(self) -> list[str]:
        """``pairs`` as a list of file names."""
        return [self.pairs] if isinstance(self.pairs, str) else list(self.pairs)


class TeacherPairs:
    """Random crops of labelled mixtures: ``(noisy, clean, teacher)`` batches.

    Parameters
    ----------
    path : Path or sequence of Path
        The ``.npz`` written by :func:`label`, or several, read as one: their mixtures must
        have one length and one teacher.
    skip_seconds : float
        Crops start at least this far into a mixture.
    """

    def __init__(self, path: Path | Sequence[Path], skip_seconds: float = 0.3) -> None:
        paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
        if not paths:
            raise ValueError("path must name at least one .npz file")
        parts: dict[str, list[np.ndarray]] = {"noisy": [], "clean": [], "teacher": []}
        names = set()
        for one in paths:
            with np.load(one) as data:
                for key, arrays in parts.items():
                    arrays.append(data[key])
                names.add(str(data["teacher_name"]))
            shapes = {arrays[-1].shape for arrays in parts.values()}
            if len(shapes) != 1:
                raise ValueError(f"{one}: noisy, clean and teacher differ in shape")
            if parts["noisy"][-1].shape[1:] != parts["noisy"][0].shape[1:]:
                raise ValueError(
                    f"{one}: mixtures of {parts['noisy'][-1].shape[1]} samples, "
                    f"{paths[0]} of {parts['noisy'][0].shape[1]} samples"
                )
        if len(names) != 1:
            raise ValueError(f"the files name different teachers: {sorted(names)}")
        self.noisy, self.clean, self.teacher = (
            arrays[0] if len(arrays) == 1 else np.concatenate(arrays) for arrays in parts.values()
        )
        self.teacher_name = names.pop()
        self.skip_samples = round(skip_seconds * SAMPLE_RATE_HZ)

    def __len__(self) -> int:
        return self.noisy.shape[0]

    def batch(
        self, rng: np.random.Generator, batch_size: int, segment_samples: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``batch_size`` random crops of ``segment_samples``: three float32 arrays."""
        last_start = self.noisy.shape[1] - segment_samples
        if last_start < self.skip_samples:
            raise ValueError(
                f"Stored mixtures of {self.noisy.shape[1]} samples are too short for crops of "
                f"{segment_samples} after {self.skip_samples}"
            )
        items = rng.integers(0, len(self), batch_size)
        starts = rng.integers(self.skip_samples, last_start + 1, batch_size)
        out = []
        for array in (self.noisy, self.clean, self.teacher):
            out.append(
                np.stack(
                    [array[i, s : s + segment_samples] for i, s in zip(items, starts, strict=True)]
                ).astype(np.float32)
            )
        return out[0], out[1], out[2]


def _label_chunk(args: tuple[str, np.ndarray]) -> np.ndarray:
    """Denoise rows of 16 kHz mixtures with a fresh teacher in this process."""
    from training.peers import make_peer

    name, noisy = args
    peer = make_peer(name)
    return np.stack([peer.denoise(row) for row in noisy]).astype(np.float32)


def label(
    config_path: Path,
    data: Path,
    out: Path,
    *,
    items: int,
    seconds: float,
    teacher: str = "deepfilternet3",
    seed: int = 20261207,
    workers: int = 1,
) -> Path:
    """Mix ``items`` training mixtures of ``seconds`` and store them with the teacher's output.

    The mixer is the config's ``[batches]`` (SNR range, levels, speech-free share, ...)
    with ``segment_seconds`` replaced; its random generator is seeded with ``seed``.
    """
    from tqdm import tqdm

    with open(config_path, "rb") as handle:
        table = tomllib.load(handle).get("batches", {})
    batches = BatchConfig(
        **{key: tuple(v) if isinstance(v, list) else v for key, v in table.items()}
    )
    batches = replace(batches, segment_seconds=seconds, batch_size=1)
    mixer = Mixer(
        ClipPool(data / "shards", "train", "speech"),
        ClipPool(data / "shards", "train", "noise"),
        batches,
        np.random.default_rng(seed),
    )
    noisy = np.zeros((items, batches.segment_samples), np.float32)
    clean = np.zeros_like(noisy)
    for i in range(items):
        noisy[i], clean[i], _ = mixer.item()
    chunks = [(teacher, part) for part in np.array_split(noisy, max(1, items // 25))]
    labelled: list[np.ndarray] = []
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for part in tqdm(pool.imap(_label_chunk, chunks), total=len(chunks), desc=teacher):
                labelled.append(part)
    else:
        for chunk in tqdm(chunks, desc=teacher):
            labelled.append(_label_chunk(chunk))
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        noisy=noisy.astype(np.float16),
        clean=clean.astype(np.float16),
        teacher=np.concatenate(labelled).astype(np.float16),
        teacher_name=np.array(teacher),
    )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m training.teacher", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--config", type=Path, required=True, help="training TOML config")
    parser.add_argument("--data", type=Path, default=Path("data"), help="corpus folder")
    parser.add_argument("--out", type=Path, required=True, help="the .npz to write")
    parser.add_argument("--items", type=int, default=1500, help="mixtures to label")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per mixture")
    parser.add_argument("--teacher", default="deepfilternet3", help="a training.peers name")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--workers", type=int, default=1, help="labelling processes")
    args: Any = parser.parse_args(argv)
    path = label(
        args.config,
        args.data,
        args.out,
        items=args.items,
        seconds=args.seconds,
        teacher=args.teacher,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

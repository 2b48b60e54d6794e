"""Training batches by dynamic mixing from corpus shards, and the fixed validation set.

Every item is made fresh: a random crop of a speech clip plus a random crop of one
noise (sometimes two), mixed at an SNR drawn uniformly from ``snr_db_range`` with
:func:`training.mixing.mix_at_snr`, then scaled to a random level. A share of items
has no speech (the model must learn to remove noise alone) and a share has no noise
(it must leave clean speech alone). Speech comes from real voices for a set share of
items (they are the minority of the corpus but what the product is judged on), the
rest from TTS. Noise comes from recordings for a set share, otherwise from the
synthetic kinds, and within either it is drawn uniformly over noise *groups* first,
so a few long noises cannot crowd out many short recordings. Everything is drawn
from one ``numpy.random.Generator``, so a seed fixes the sequence of batches.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from training.mixing import mix_at_snr
from training.shards import SAMPLE_RATE_HZ

__all__ = ["BatchConfig", "ClipPool", "Mixer", "ValClip", "load_val_clips"]


@dataclass
class BatchConfig:
    """Mixing settings (the ``[batches]`` table of a training config)."""

    batch_size: int = 12
    segment_seconds: float = 2.5
    snr_db_range: tuple[float, float] = (-5.0, 20.0)
    level_db_range: tuple[float, float] = (-40.0, -15.0)
    speech_free_probability: float = 0.05
    noise_free_probability: float = 0.05
    second_noise_probability: float = 0.2
    second_noise_db_range: tuple[float, float] = (-12.0, 0.0)
    real_speech_share: float = 0.5
    """Share of items whose speech is a real voice (a source not named ``tts-*``)."""
    recorded_noise_share: float = 0.67
    """Share of noises drawn from recordings (a source other than ``synthetic``)."""
    speech_sources_excluded: tuple[str, ...] = ()
    """Speech sources never drawn as clean targets (e.g. those whose references DNSMOS
    rates below 2.7: ``python -m training.score_sources``)."""

    @property
    def segment_samples(self) -> int:
        """Samples per item at 16 kHz."""
        return round(self.segment_seconds * SAMPLE_RATE_HZ)


class ClipPool:
    """Every clip of one split and kind, kept as the shards' int16 arrays (no copies)."""

    def __init__(self, root: Path, split: str, kind: str) -> None:
        paths = sorted((Path(root) / split).glob(f"{kind}-*.npz"))
        if not paths:
            raise FileNotFoundError(
                f"No {kind} shards in {Path(root) / split} (expected {kind}-NNN.npz); "
                "build the corpus first (python -m training.data)."
            )
        self.audio: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []
        self.lengths: list[np.ndarray] = []
        shard_of, index_of, groups, sources = [], [], [], []
        for shard_index, path in enumerate(paths):
            with np.load(path) as shard:
                audio = shard["audio"]
                offsets = shard["offsets"].astype(np.int64)
                group = shard["group"].astype(str)
                source = shard["source"].astype(str)
            self.audio.append(audio)
            self.starts.append(offsets[:-1])
            self.lengths.append(np.diff(offsets))
            shard_of.append(np.full(len(offsets) - 1, shard_index))
            index_of.append(np.arange(len(offsets) - 1))
            groups.append(group)
            sources.append(source)
        self.shard_of = np.concatenate(shard_of)
        self.index_of = np.concatenate(index_of)
        self.group = np.concatenate(groups)
        self.source = np.concatenate(sources)
        self.length = np.concatenate(self.lengths)
        keep = self.length > 0
        self.shard_of, self.index_of = self.shard_of[keep], self.index_of[keep]
        self.group, self.length = self.group[keep], self.length[keep]
        self.source = self.source[keep]
        if len(self.length) == 0:
            raise ValueError(f"All {kind} clips in {Path(root) / split} are empty.")
        names, inverse = np.unique(self.group, return_inverse=True)
        self.group_names = names
        self.members = [np.flatnonzero(inverse == g) for g in range(len(names))]
        self.subsets: dict[str, np.ndarray] = {}

    def subset(self, name: str, mask: np.ndarray) -> None:
        """Name a subset of the clips (e.g. real voices) for the ``pick_*`` methods."""
        if mask.any():
            self.subsets[name] = np.flatnonzero(mask)

    def seconds_of(self, name: str | None = None) -> float:
        """Duration in seconds of a named subset (all clips for ``None``)."""
        index = self.subsets.get(name, np.zeros(0, int)) if name else np.arange(len(self))
        return float(self.length[index].sum()) / SAMPLE_RATE_HZ

    def __len__(self) -> int:
        return len(self.length)

    @property
    def seconds(self) -> float:
        """Total duration in seconds."""
        return float(self.length.sum()) / SAMPLE_RATE_HZ

    def clip(self, i: int) -> np.ndarray:
        """Clip ``i`` as float32 in [-1, 1]."""
        s, j = self.shard_of[i], self.index_of[i]
        start = self.starts[s][j]
        return self.audio[s][start : start + self.lengths[s][j]].astype(np.float32) / 32767.0

    def pick_by_length(self, rng: np.random.Generator, subset: str | None = None) -> int:
        """Draw a clip index, each clip weighted by its duration (of a subset if named)."""
        index = self.subsets[subset] if subset else None
        cumulative = np.cumsum(self.length if index is None else self.length[index])
        k = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        k = min(k, len(cumulative) - 1)
        return k if index is None else int(index[k])

    def pick_by_group(self, rng: np.random.Generator, subset: str | None = None) -> int:
        """Draw a clip index: a group uniformly, then a clip of it (within a subset if named)."""
        if subset:
            index = self.subsets[subset]
            groups = np.unique(self.group[index])
            group = groups[int(rng.integers(len(groups)))]
            members = index[self.group[index] == group]
        else:
            members = self.members[int(rng.integers(len(self.members)))]
        return int(members[int(rng.integers(len(members)))])


def _crop_or_place(clip: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Crop ``n`` samples of a long clip, or place a short one at random in zeros."""
    if len(clip) >= n:
        start = int(rng.integers(len(clip) - n + 1))
        return clip[start : start + n].copy()
    out = np.zeros(n, np.float32)
    start = int(rng.integers(n - len(clip) + 1))
    out[start : start + len(clip)] = clip
    return out


def _crop_or_loop(clip: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Crop ``n`` samples at random, looping a short clip from a random phase."""
    if len(clip) >= n:
        start = int(rng.integers(len(clip) - n + 1))
        return clip[start : start + n].copy()
    reps = -(-n // len(clip)) + 1
    looped = np.tile(clip, reps)
    start = int(rng.integers(len(clip)))
    return looped[start : start + n].copy()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


class Mixer:
    """Makes batches of ``(noisy, clean, noise)`` by dynamic mixing.

    Parameters
    ----------
    speech, noise : ClipPool
        The clips to draw from.
    config : BatchConfig
        Mixing settings.
    rng : np.random.Generator
        The only source of randomness.
    """

    def __init__(
        self, speech: ClipPool, noise: ClipPool, config: BatchConfig, rng: np.random.Generator
    ) -> None:
        self.speech, self.noise, self.config, self.rng = speech, noise, config, rng
        allowed = ~np.isin(speech.source, list(config.speech_sources_excluded))
        if not allowed.any():
            raise ValueError(
                f"speech_sources_excluded={list(config.speech_sources_excluded)} leaves no "
                "speech to train on"
            )
        tts = np.char.startswith(speech.source, "tts-")
        speech.subset("real", allowed & ~tts)
        speech.subset("tts", allowed & tts)
        noise.subset("recorded", noise.source != "synthetic")
        noise.subset("synthetic", noise.source == "synthetic")

    def _speech_subset(self) -> str | None:
        both = "real" in self.speech.subsets and "tts" in self.speech.subsets
        if not both:
            return "real" if "real" in self.speech.subsets else "tts"
        return "real" if self.rng.random() < self.config.real_speech_share else "tts"

    def _noise_subset(self) -> str | None:
        both = "recorded" in self.noise.subsets and "synthetic" in self.noise.subsets
        if not both:
            return None
        return "recorded" if self.rng.random() < self.config.recorded_noise_share else "synthetic"

    def _noise_clip(self) -> np.ndarray:
        return self.noise.clip(self.noise.pick_by_group(self.rng, self._noise_subset()))

    def _noise(self, n: int) -> np.ndarray:
        rng, cfg = self.rng, self.config
        for _ in range(20):
            noise = _crop_or_loop(self._noise_clip(), n, rng)
            if _rms(noise) > 1e-5:
                break
        else:
            noise = rng.standard_normal(n).astype(np.float32) * 0.01
        if rng.random() < cfg.second_noise_probability:
            other = _crop_or_loop(self._noise_clip(), n, rng)
            if _rms(other) > 1e-5:
                rel_db = rng.uniform(*cfg.second_noise_db_range)
                other *= np.float32(_rms(noise) / _rms(other) * 10 ** (rel_db / 20))
                noise = noise + other
        return noise.astype(np.float32)

    def item(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One ``(noisy, clean, noise)`` triple, float32, with ``noisy == clean + noise``."""
        rng, cfg = self.rng, self.config
        n = cfg.segment_samples
        draw = rng.random()
        if draw < cfg.speech_free_probability:
            clean = np.zeros(n, np.float32)
            noise = self._noise(n)
        else:
            for _ in range(20):
                index = self.speech.pick_by_length(rng, self._speech_subset())
                clean = _crop_or_place(self.speech.clip(index), n, rng)
                if _rms(clean) > 1e-5:
                    break
            if draw < cfg.speech_free_probability + cfg.noise_free_probability:
                noise = np.zeros(n, np.float32)
            else:
                _, noise, _ = mix_at_snr(clean, self._noise(n), rng.uniform(*cfg.snr_db_range))
        noisy = clean + noise
        level = _rms(noisy)
        gain = 10 ** (rng.uniform(*cfg.level_db_range) / 20) / max(level, 1e-8)
        peak = float(np.max(np.abs(noisy))) * gain
        if peak > 0.99:
            gain *= 0.99 / peak
        gain = np.float32(gain)
        clean, noise = clean * gain, noise * gain
        return (
            (clean + noise).astype(np.float32),
            clean.astype(np.float32),
            noise.astype(np.float32),
        )

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``batch_size`` items stacked: three arrays ``[batch, segment_samples]``."""
        items = [self.item() for _ in range(self.config.batch_size)]
        return tuple(np.stack([it[k] for it in items]) for k in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class ValClip:
    """One fixed validation mixture."""

    name: str
    noisy: np.ndarray
    clean: np.ndarray


def _read_mono(path: Path) -> np.ndarray:
    audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    if rate != SAMPLE_RATE_HZ:
        raise ValueError(f"{path} is at {rate} Hz; validation clips must be 16 kHz.")
    return audio[:, 0]


def load_val_clips(folder: Path, max_clips: int) -> list[ValClip]:
    """Read up to ``max_clips`` validation mixtures (noisy and clean), in name order.

    Understands the layouts a corpus build writes: a manifest (``manifest.csv``,
    ``manifest.jsonl`` or ``manifest.json``) whose rows name ``noisy`` and ``clean``
    files; ``noisy/`` and ``clean/`` folders of same-named audio files; files named
    ``*_noisy.*`` beside ``*_clean.*``; or ``.npz`` files with ``noisy`` and ``clean``
    arrays. Clips are taken evenly spread over the sorted list; clips without speech
    (PESQ and SI-SDR are undefined for them) are left out.
    """
    folder = Path(folder)
    pairs: list[tuple[str, Path, Path]] = []
    manifest_rows: list[dict] = []
    if (folder / "manifest.csv").is_file():
        with open(folder / "manifest.csv", newline="") as handle:
            manifest_rows = list(csv.DictReader(handle))
    elif (folder / "manifest.jsonl").is_file():
        with open(folder / "manifest.jsonl") as handle:
            manifest_rows = [json.loads(line) for line in handle if line.strip()]
    elif (folder / "manifest.json").is_file():
        loaded = json.loads((folder / "manifest.json").read_text())
        manifest_rows = loaded if isinstance(loaded, list) else loaded.get("items", [])
    for row in manifest_rows:
        noisy_key = next((k for k in row if "noisy" in k.lower()), None)
        clean_key = next((k for k in row if "clean" in k.lower()), None)
        if noisy_key and clean_key:
            noisy_path, clean_path = folder / str(row[noisy_key]), folder / str(row[clean_key])
            if noisy_path.is_file() and clean_path.is_file():
                pairs.append((noisy_path.stem, noisy_path, clean_path))
    if not pairs and (folder / "noisy").is_dir() and (folder / "clean").is_dir():
        for noisy_path in sorted((folder / "noisy").iterdir()):
            clean_path = folder / "clean" / noisy_path.name
            if clean_path.is_file():
                pairs.append((noisy_path.stem, noisy_path, clean_path))
    if not pairs:
        for noisy_path in sorted(folder.rglob("*noisy*")):
            clean_path = noisy_path.with_name(noisy_path.name.replace("noisy", "clean"))
            if noisy_path.is_file() and clean_path.is_file() and clean_path != noisy_path:
                pairs.append((noisy_path.stem, noisy_path, clean_path))
    clips: list[ValClip] = []
    if pairs:
        pairs.sort()
        chosen = np.unique(np.linspace(0, len(pairs) - 1, min(max_clips, len(pairs))).round())
        for k in chosen.astype(int):
            name, noisy_path, clean_path = pairs[k]
            clips.append(ValClip(name, _read_mono(noisy_path), _read_mono(clean_path)))
    else:
        npz = sorted(folder.rglob("*.npz"))
        for path in npz:
            with np.load(path) as data:
                if "noisy" in data and "clean" in data:
                    noisy, clean = data["noisy"], data["clean"]
                    if noisy.ndim == 1:
                        clips.append(
                            ValClip(path.stem, noisy.astype(np.float32), clean.astype(np.float32))
                        )
                    else:
                        for i in range(len(noisy)):
                            clips.append(
                                ValClip(
                                    f"{path.stem}-{i}",
                                    noisy[i].astype(np.float32),
                                    clean[i].astype(np.float32),
                                )
                            )
        if clips:
            chosen = np.unique(np.linspace(0, len(clips) - 1, min(max_clips, len(clips))).round())
            clips = [clips[int(k)] for k in chosen]
    clips = [c for c in clips if float(np.max(np.abs(c.clean), initial=0.0)) > 1e-4]
    if not clips:
        raise FileNotFoundError(
            f"No validation mixtures found in {folder} (looked for a manifest, noisy/ and "
            "clean/ folders, *noisy* files beside *clean* files, and .npz files)."
        )
    return clips

"""Build the training corpus with one command: ``python -m training.data --hours 20 --out data/``.

Output (all 16 kHz; see training/README.md, section "Corpus"):

- ``shards/{train,val,test}/{speech,noise}-NNN.npz``: clean speech and noise clips in the
  format of :mod:`training.shards` (int16, < 60 MiB per file) for dynamic mixing anywhere;
- ``mixtures/{val,test_real,test_tts}/{noisy,clean,noise}/{id}.wav``: fixed mixtures,
  float32 WAV, with ``noisy = clean + noise`` exactly, and ``manifest.csv`` per set;
- ``manifest.json``: configuration, every source with minutes / speakers / split,
  speaker and noise-unit splits, shard list, build time;
- ``build_info.json``: build time, disk use and machine load (the only file that differs
  between two builds with one seed);
- ``READY``: written last.

Nothing is installed or downloaded: a missing program or package raises
:class:`~training.corpus_audio.MissingDependencyError` naming the apt or pip package.
The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.corpus_audio import (
    SAMPLE_RATE_HZ,
    AudioRef,
    MissingDependencyError,
    clipped_fraction,
    decode,
    decode_g722_batch,
    require_command,
    resample,
    rms_db,
    rng_for,
    trim_silence,
)
from training.mixing import mix_at_snr, snr_db
from training.shards import MAX_SHARD_BYTES, SPLITS, Clip, write_shards

__all__ = [
    "CorpusConfig",
    "MissingDependencyError",
    "build_corpus",
    "make_mixture",
    "synthetic_noise",
]

SYNTHETIC_KINDS = ("white", "pink", "brown", "hum", "fan", "babble", "clicks", "modulated")
SPEECH_LEVEL_DB = -23.0
NOISE_LEVEL_DB = -25.0
CLIP_MAX_S = 10.0
NOISE_CLIP_MAX_S = 30.0
MUSIC_MAX_S = 45.0
# Share of TTS items per engine (renormalised over the engines a split has voices of).
# Piper is natural neural speech (DNSMOS OVRL 3.33 in the corpus, espeak-ng 2.49); with
# Piper present it voices most TTS training items. Its 80-300 Hz body is about as thin as
# espeak-ng's (-5.5 dB, training/source_scores.md), so it is no cure for thin references.
ENGINE_WEIGHTS = {"espeak": 0.8, "flite": 0.15, "festival": 0.05, "piper": 2.0}


@dataclass
class CorpusConfig:
    """Everything that decides the corpus; stored in ``manifest.json``.

    Parameters
    ----------
    hours : float
        Hours of clean training speech: all real training speech, topped up with TTS.
    seed : int
        Seed of every random choice; the same seed gives identical files.
    tts_only : bool
        Use TTS speech (espeak-ng) and synthetic noise only: the tiny test configuration.
    tts_engines : tuple of str
        TTS engines to use, among ``"espeak"``, ``"flite"``, ``"festival"`` and ``"piper"``
        (the neural ``en_US-joe-medium`` voice, training only; when present it voices most
        TTS training items, see ``ENGINE_WEIGHTS``).
    heldout_tts_minutes : float
        Minutes of TTS speech for each of val and test (held-out voices).
    synthetic_noise_clips : int
        Synthetic noise clips per kind for training (val and test get a fifth, at least 2).
    synthetic_noise_seconds : float
        Length of each synthetic noise clip.
    val_mixtures : int
        Fixed validation mixtures (SNR drawn from ``snr_range_db``).
    test_pairs : int
        Speech/noise pairs in each test set; each is mixed at every SNR of ``test_snrs_db``.
    workers : int
        Worker processes (at most 2 on the shared build machine).
    """

    hours: float = 20.0
    seed: int = 0
    tts_only: bool = False
    tts_engines: tuple[str, ...] = ("espeak", "flite", "festival")
    heldout_tts_minutes: float = 20.0
    synthetic_noise_clips: int = 40
    synthetic_noise_seconds: float = 10.0
    val_mixtures: int = 128
    val_seconds: float = 4.0
    test_pairs: int = 50
    test_snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0)
    test_seconds_range: tuple[float, float] = (4.0, 8.0)
    snr_range_db: tuple[float, float] = (-5.0, 20.0)
    speech_free_share: float = 0.05
    noise_free_share: float = 0.05
    babble_speech_files: int = 1200
    workers: int = 2
    progress: bool = True
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- mixing


def _segment(
    audio: np.ndarray, length: int, rng: np.random.Generator, loop: bool
) -> tuple[np.ndarray, int]:
    """Cut ``length`` samples at a random offset; pad (speech) or loop (noise) short clips."""
    audio = np.asarray(audio, np.float32)
    if len(audio) >= length:
        offset = int(rng.integers(0, len(audio) - length + 1))
        return audio[offset : offset + length], offset
    if loop:
        offset = int(rng.integers(0, len(audio)))
        return np.resize(np.roll(audio, -offset), length).astype(np.float32), offset
    out = np.zeros(length, np.float32)
    offset = int(rng.integers(0, length - len(audio) + 1))
    out[offset : offset + len(audio)] = audio
    return out, -offset


def make_mixture(
    speech: np.ndarray | None,
    noise: np.ndarray | None,
    snr_db_target: float | None,
    length_samples: int,
    rng: np.random.Generator,
    level_db: float | None = None,
) -> dict:
    """Mix one example: a speech segment and a noise segment at an SNR, then a common gain.

    Parameters
    ----------
    speech, noise : np.ndarray [shape=(samples,)] or None
        Clean speech and noise clips at 16 kHz. ``None`` makes a noise-only (speech-free)
        or speech-only (noise-free) example.
    snr_db_target : float or None
        Clean-to-noise power ratio in dB over the whole segment; ignored when one part is None.
    length_samples : int
        Segment length. Speech shorter than this is zero-padded at a random place,
        noise is looped.
    rng : np.random.Generator
        Draws the offsets (and the level when ``level_db`` is None).
    level_db : float or None
        RMS level of the noisy signal in dBFS (drawn from -35 to -15 when None); lowered
        when the noisy peak would exceed 0.99.

    Returns
    -------
    dict
        ``noisy``, ``clean``, ``noise`` (float32, ``noisy == clean + noise`` exactly), and
        ``snr_db`` (requested), ``noise_gain`` (SNR scaling), ``level_gain`` (common gain),
        ``speech_offset``, ``noise_offset`` (negative: padding before the speech).
    """
    if level_db is None:
        level_db = float(rng.uniform(-35.0, -15.0))
    speech_offset = noise_offset = 0
    noise_gain = 1.0
    if speech is not None:
        clean, speech_offset = _segment(speech, length_samples, rng, loop=False)
    else:
        clean = np.zeros(length_samples, np.float32)
    if noise is not None:
        noise_part, noise_offset = _segment(noise, length_samples, rng, loop=True)
    else:
        noise_part = np.zeros(length_samples, np.float32)
    if speech is not None and noise is not None:
        _, noise_part, noise_gain = mix_at_snr(clean, noise_part, float(snr_db_target))
    else:
        snr_db_target = None
    mixed = clean.astype(np.float64) + noise_part
    rms = float(np.sqrt(np.mean(mixed**2))) if mixed.size else 0.0
    level_gain = 10 ** (level_db / 20) / rms if rms > 1e-9 else 1.0
    peak = float(np.max(np.abs(mixed))) if mixed.size else 0.0
    if peak * level_gain > 0.99:
        level_gain = 0.99 / peak
    clean = (clean * np.float32(level_gain)).astype(np.float32)
    noise_part = (noise_part * np.float32(level_gain)).astype(np.float32)
    return {
        "noisy": (clean + noise_part).astype(np.float32),
        "clean": clean,
        "noise": noise_part,
        "snr_db": snr_db_target,
        "noise_gain": noise_gain,
        "level_gain": float(level_gain),
        "speech_offset": speech_offset,
        "noise_offset": noise_offset,
    }


# ------------------------------------------------------------------- synthetic noise


def _colored(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1 / f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE_HZ)
    freqs[0] = freqs[1]
    spectrum *= freqs ** (-exponent / 2)
    return np.fft.irfft(spectrum, n)


def synthetic_noise(
    kind: str, n_samples: int, rng: np.random.Generator, voices: list[np.ndarray] | None = None
) -> np.ndarray:
    """One synthetic noise clip, normalised to -25 dBFS RMS; float32.

    Parameters
    ----------
    kind : str
        One of ``SYNTHETIC_KINDS``: white, pink, brown, hum (50/60 Hz with harmonics),
        fan (band-passed noise with a slow wobble and a blade tone), babble (3-6 voices
        from ``voices``), clicks (impulses and short bursts), modulated (amplitude-modulated
        coloured noise).
    """
    from scipy import signal

    t = np.arange(n_samples) / SAMPLE_RATE_HZ
    if kind == "white":
        x = rng.standard_normal(n_samples)
    elif kind == "pink":
        x = _colored(rng, n_samples, 1.0)
    elif kind == "brown":
        x = _colored(rng, n_samples, 2.0)
    elif kind == "hum":
        mains = 50.0 if rng.random() < 0.5 else 60.0
        x = sum(
            rng.uniform(0.05, 1.0) / k * np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3))
            for k in range(1, int(rng.integers(4, 12)))
        )
        x = x + 0.01 * rng.standard_normal(n_samples)
    elif kind == "fan":
        low, high = sorted(rng.uniform(80, 3000, 2))
        sos = signal.butter(2, [low, max(high, low * 1.5)], "band", fs=SAMPLE_RATE_HZ, output="sos")
        x = signal.sosfilt(sos, rng.standard_normal(n_samples))
        x *= 1 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 2) * t)
        x += 0.3 * np.std(x) * np.sin(2 * np.pi * rng.uniform(80, 400) * t)
    elif kind == "babble":
        if not voices:
            raise ValueError("babble needs speech clips to mix")
        x = np.zeros(n_samples)
        for _ in range(int(rng.integers(3, 7))):
            v = voices[int(rng.integers(len(voices)))]
            seg, _ = _segment(v, n_samples, rng, loop=True)
            x += seg / (np.sqrt(np.mean(seg.astype(np.float64) ** 2)) + 1e-9)
    elif kind == "clicks":
        x = 0.003 * rng.standard_normal(n_samples)
        rate_hz = rng.uniform(1, 12)
        for pos in np.flatnonzero(rng.random(n_samples) < rate_hz / SAMPLE_RATE_HZ):
            width = int(rng.integers(1, 200))
            burst = rng.standard_normal(width) * np.exp(-np.arange(width) / max(width / 4, 1))
            x[pos : pos + width] += rng.uniform(0.2, 1.0) * burst[: n_samples - pos]
    elif kind == "modulated":
        x = _colored(rng, n_samples, rng.uniform(0, 2))
        x *= 1 + 0.9 * np.sin(2 * np.pi * rng.uniform(0.5, 8) * t + rng.uniform(0, 6.3))
    else:
        raise ValueError(f"kind={kind!r} is not one of {SYNTHETIC_KINDS}")
    return _normalise(np.asarray(x, np.float64), NOISE_LEVEL_DB)


def _normalise(audio: np.ndarray, level_db: float) -> np.ndarray:
    """Scale to ``level_db`` RMS, lowered so that the peak stays below 0.95; float32."""
    rms = np.sqrt(np.mean(np.asarray(audio, np.float64) ** 2)) if len(audio) else 0.0
    if rms <= 1e-12:
        return np.asarray(audio, np.float32)
    gain = min(10 ** (level_db / 20) / rms, 0.95 / np.max(np.abs(audio)))
    return (np.asarray(audio, np.float64) * gain).astype(np.float32)


# ------------------------------------------------------------------- worker tasks


def _load_speech_task(item) -> tuple[np.ndarray | None, str]:
    """Decode, check and normalise one real speech file; returns (audio or None, status)."""
    try:
        audio, rate = decode(item.ref)
    except Exception as error:  # a broken file is dropped and counted, never fatal
        return None, f"undecodable: {type(error).__name__}"
    if clipped_fraction(audio) > 0.001:
        return None, "clipped"
    audio = trim_silence(resample(audio, rate))
    if len(audio) < 0.3 * SAMPLE_RATE_HZ:
        return None, "short"
    if rms_db(audio) < -50.0:
        return None, "silent"
    return _normalise(audio, SPEECH_LEVEL_DB), "ok"


def _load_noise_task(item) -> tuple[np.ndarray | None, str]:
    """Decode and normalise one recorded noise file."""
    try:
        audio, rate = decode(item.ref)
    except Exception as error:
        return None, f"undecodable: {type(error).__name__}"
    audio = trim_silence(resample(audio, rate), floor_below_peak_db=50.0, margin_ms=20.0)
    if item.noise_type == "music" and len(audio) > MUSIC_MAX_S * SAMPLE_RATE_HZ:
        start = (len(audio) - int(MUSIC_MAX_S * SAMPLE_RATE_HZ)) // 2
        audio = audio[start : start + int(MUSIC_MAX_S * SAMPLE_RATE_HZ)]
    if len(audio) < 0.25 * SAMPLE_RATE_HZ or rms_db(audio) < -60.0:
        return None, "silent"
    return _normalise(audio, NOISE_LEVEL_DB), "ok"


def _drum_task(args) -> np.ndarray:
    """Sequence one Hydrogen kit's samples into a random 16th-note pattern (music noise)."""
    seed, kit, samples, seconds = args
    rng = rng_for(seed, f"drums/{kit}")
    hits = []
    for ref in samples:
        try:
            audio, rate = decode(ref)
        except Exception:
            continue
        hits.append(resample(audio[: rate * 2], rate))
    n = int(seconds * SAMPLE_RATE_HZ)
    out = np.zeros(n + 2 * SAMPLE_RATE_HZ)
    step = int(SAMPLE_RATE_HZ * 60 / rng.uniform(80, 170) / 4)
    lanes = [hits[int(i)] for i in rng.choice(len(hits), size=min(5, len(hits)), replace=False)]
    pattern = rng.random((len(lanes), 16)) < rng.uniform(0.15, 0.5, (len(lanes), 1))
    for k, pos in enumerate(range(0, n, step)):
        for lane, hit in enumerate(lanes):
            if pattern[lane, k % 16]:
                out[pos : pos + len(hit)] += rng.uniform(0.5, 1.0) * hit
    return _normalise(out[:n], NOISE_LEVEL_DB)


def _tts_task(args) -> tuple[np.ndarray, str, str]:
    """Synthesise one TTS clip: (audio, source, speaker)."""
    from training.corpus_tts import make_less_synthetic, make_text, synthesize

    seed, key, voice = args
    rng = rng_for(seed, key)
    audio = synthesize(voice, make_text(rng, int(rng.integers(1, 4))), rng)
    audio = make_less_synthetic(audio, rng)
    return (
        _normalise(audio, SPEECH_LEVEL_DB + rng.uniform(-6, 6)),
        f"tts-{voice.engine}",
        voice.speaker,
    )


def _g722_task(paths: list[str]) -> list[bytes]:
    return [a.tobytes() for a in decode_g722_batch(paths)]


def _predecode_g722(files: list, pool, progress: bool) -> list:
    """Decode all G.722 files in batches of 64 per ffmpeg run (ffmpeg's start-up dominates)."""
    from dataclasses import replace

    g722 = [
        i for i, f in enumerate(files) if f.ref.container == "file" and f.ref.path.endswith(".g722")
    ]
    chunks = [[files[i].ref.path for i in g722[k : k + 64]] for k in range(0, len(g722), 64)]
    decoded = [
        b
        for chunk in _pool_map(_g722_task, chunks, pool, "g722 (x64)", len(chunks), progress)
        for b in chunk
    ]
    files = list(files)
    for i, data in zip(g722, decoded, strict=True):
        files[i] = replace(files[i], ref=AudioRef(files[i].ref.path, "f32", data=data))
    return files


def _decoded(
    files: Sequence[Any], results: Iterable[tuple[np.ndarray | None, str]], stats: _Stats
) -> Iterator[tuple[Any, np.ndarray]]:
    """Yield ``(file, audio)`` for the files that decoded; count used and dropped per source."""
    for item, (audio, status) in zip(files, results, strict=True):
        if audio is None:
            stats.data[item.source]["dropped"][status] += 1
            continue
        stats.data[item.source]["files_used"] += 1
        yield item, audio


def _pool_map(
    fn: Callable, items: Iterable, pool, desc: str, total: int | None, progress: bool
) -> Iterator:
    """Ordered parallel map with a progress bar; ``pool=None`` runs in this process."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="file", disable=not progress, file=sys.stderr)
    results = map(fn, items) if pool is None else pool.imap(fn, items, chunksize=2)
    for result in results:
        yield result
        bar.update()
    bar.close()


# ------------------------------------------------------------------- corpus assembly


def _concat_clips(
    items: list[tuple[str, np.ndarray]],
    rng: np.random.Generator,
    max_s: float,
    gap_s: tuple[float, float],
) -> list[tuple[str, np.ndarray]]:
    """Join short recordings of one speaker / noise unit into clips of at most ``max_s``."""
    max_n = int(max_s * SAMPLE_RATE_HZ)
    out: list[tuple[str, np.ndarray]] = []
    parts: list[np.ndarray] = []
    ids: list[str] = []
    length = 0

    def flush() -> None:
        nonlocal parts, ids, length
        if parts:
            out.append(
                (ids[0] if len(ids) == 1 else f"{ids[0]}+{len(ids) - 1}", np.concatenate(parts))
            )
        parts, ids, length = [], [], 0

    for clip_id, audio in items:
        for start in range(0, len(audio), max_n):
            piece = audio[start : start + max_n]
            if parts and length + len(piece) > max_n:
                flush()
            if parts:
                gap = np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE_HZ), np.float32)
                parts.append(gap)
                length += len(gap)
            parts.append(piece)
            ids.append(clip_id if start == 0 else f"{clip_id}@{start}")
            length += len(piece)
    flush()
    return out


class _Stats:
    """Per-source minutes, speakers or noise units, file counts and drop reasons by split."""

    def __init__(self) -> None:
        self.data: dict = defaultdict(
            lambda: {
                "minutes": defaultdict(float),
                "groups": defaultdict(set),
                "files_used": 0,
                "dropped": defaultdict(int),
            }
        )

    def add(self, source: str, split: str, group: str, n_samples: int) -> None:
        entry = self.data[source]
        entry["minutes"][split] += n_samples / SAMPLE_RATE_HZ / 60
        entry["groups"][split].add(group)

    def to_json(self) -> dict:
        out = {}
        for source, entry in sorted(self.data.items()):
            out[source] = {
                "minutes": {s: round(m, 2) for s, m in sorted(entry["minutes"].items())},
                "groups": {s: sorted(g) for s, g in sorted(entry["groups"].items())},
                "files_used": entry["files_used"],
                "files_dropped": dict(sorted(entry["dropped"].items())),
            }
        return out


def _check_dependencies(config: CorpusConfig) -> None:
    """Fail early, naming the package, when a program the configuration needs is absent."""
    require_command("espeak-ng", "espeak-ng")
    if config.tts_only:
        return
    require_command("ffmpeg", "ffmpeg")
    if "flite" in config.tts_engines:
        require_command("flite", "flite")
    if "festival" in config.tts_engines:
        require_command("text2wave", "festival")
    if "piper" in config.tts_engines:
        from training.corpus_tts import list_voices

        list_voices(("piper",))


def build_corpus(config: CorpusConfig, out: Path) -> dict:
    """Build the whole corpus under ``out`` (emptied first) and return its manifest.

    Raises
    ------
    MissingDependencyError
        A program, Debian data package or PyPI source archive is missing; the message
        names the package and the install script.
    """
    started = time.perf_counter()
    _check_dependencies(config)
    out = Path(out)
    if out.exists():
        for name in ("READY", "shards", "mixtures", "manifest.json", "build_info.json"):
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(2, config.workers))
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        return _build(config, out, pool, workers, started)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _build(config: CorpusConfig, out: Path, pool, workers: int, started: float) -> dict:
    from training import corpus_sources as cs
    from training import corpus_tts as tts

    seed = config.seed
    stats = _Stats()
    speech_seconds = dict.fromkeys(SPLITS, 0.0)
    speech: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    noise: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    noise_types: dict[str, str] = {}
    group_split: dict[str, dict[str, str]] = {"speakers": {}, "noise_units": {}}

    def add_group(table: str, group: str, split: str) -> None:
        previous = group_split[table].setdefault(group, split)
        if previous != split:
            raise AssertionError(f"{group} assigned to both {previous} and {split}")

    # --- real speech
    babble_pool: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    if not config.tts_only:
        files = _predecode_g722(cs.list_speech(), pool, config.progress)
        by_speaker: dict[tuple[str, str], list[tuple[str, np.ndarray]]] = defaultdict(list)
        results = _pool_map(
            _load_speech_task, files, pool, "real speech", len(files), config.progress
        )
        for item, audio in _decoded(files, results, stats):
            by_speaker[(item.source, item.speaker)].append((item.clip_id, audio))
        for (source, speaker), items in sorted(by_speaker.items()):
            split = cs.speaker_split(speaker)
            add_group("speakers", speaker, split)
            rng = rng_for(seed, f"concat/{source}/{speaker}")
            for clip_id, audio in _concat_clips(items, rng, CLIP_MAX_S, (0.15, 0.4)):
                speech[split].append(Clip(audio, source, speaker, clip_id))
                stats.add(source, split, speaker, len(audio))
                speech_seconds[split] += len(audio) / SAMPLE_RATE_HZ
                babble_pool[split].append(audio)

        babble_files = cs.list_babble_speech()
        babble_files.sort(key=lambda f: (rng_for(seed, f.clip_id).random(), f.clip_id))
        babble_files = sorted(babble_files[: config.babble_speech_files], key=lambda f: f.clip_id)
        results = _pool_map(
            _load_speech_task,
            babble_files,
            pool,
            "babble speech",
            len(babble_files),
            config.progress,
        )
        for item, audio in _decoded(babble_files, results, stats):
            split = cs.babble_split(item.speaker)
            add_group("speakers", item.speaker, split)
            stats.add(item.source, split, item.speaker, len(audio))
            babble_pool[split].append(audio)

    # --- recorded noise
    if not config.tts_only:
        files = cs.list_noise()
        kits = cs.list_drumkits()
        unit_split = cs.split_units(
            [(f.unit, f.noise_type) for f in files] + [(f"hydrogen/{k}", "music") for k in kits]
        )
        by_unit: dict[tuple[str, str, str], list[tuple[str, np.ndarray]]] = defaultdict(list)
        results = _pool_map(
            _load_noise_task, files, pool, "recorded noise", len(files), config.progress
        )
        for item, audio in _decoded(files, results, stats):
            by_unit[(item.source, item.unit, item.noise_type)].append((item.clip_id, audio))
        for (source, unit, kind), items in sorted(by_unit.items()):
            split = unit_split[unit]
            group = f"{kind}:{unit}"
            add_group("noise_units", group, split)
            noise_types[group] = kind
            rng = rng_for(seed, f"concat/{unit}")
            for clip_id, audio in _concat_clips(items, rng, NOISE_CLIP_MAX_S, (0.0, 0.5)):
                noise[split].append(Clip(audio, source, group, clip_id))
                stats.add(source, split, group, len(audio))
        tasks = [(seed, kit, refs, 20.0) for kit, refs in kits.items()]
        for (_, kit, refs, _), audio in zip(
            tasks,
            _pool_map(_drum_task, tasks, pool, "drum patterns", len(tasks), config.progress),
            strict=True,
        ):
            split = unit_split[f"hydrogen/{kit}"]
            group = f"music:hydrogen/{kit}"
            add_group("noise_units", group, split)
            noise_types[group] = "music"
            noise[split].append(Clip(audio, "hydrogen", group, f"hydrogen/{kit}"))
            stats.add("hydrogen", split, group, len(audio))
            stats.data["hydrogen"]["files_used"] += len(refs)

    # --- TTS speech
    engines = ("espeak",) if config.tts_only else config.tts_engines
    voices = tts.list_voices(engines)
    voices_by_split = {s: [v for v in voices if tts.tts_split(v.speaker) == s] for s in SPLITS}
    for voice in voices:
        add_group("speakers", voice.speaker, tts.tts_split(voice.speaker))

    def tts_tasks(split: str, prefix: str) -> Iterator[tuple]:
        pool = voices_by_split[split]
        by_engine = {e: [v for v in pool if v.engine == e] for e in engines}
        names = [e for e in engines if by_engine[e]]
        weights = np.array([ENGINE_WEIGHTS[e] for e in names])
        for i in range(10**9):
            rng = rng_for(seed, f"{prefix}/{split}/{i}/voice")
            engine = names[int(rng.choice(len(names), p=weights / weights.sum()))]
            voice = by_engine[engine][int(rng.integers(len(by_engine[engine])))]
            yield (seed, f"{prefix}/{split}/{i}", voice)

    def tts_clips(split: str, seconds: float, prefix: str = "tts") -> Iterator[Clip]:
        """TTS clips of one split until ``seconds`` are reached, in a fixed order."""
        if seconds <= 0:
            return
        done = 0.0
        tasks = tts_tasks(split, prefix)
        # Work in batches so that the stopping point depends only on the clip lengths.
        while done < seconds:
            batch = [next(tasks) for _ in range(max(2, workers * 16))]
            for task, (audio, source, speaker) in zip(
                batch, _pool_map(_tts_task, batch, pool, f"tts {split}", None, False), strict=False
            ):
                if done >= seconds:
                    break
                done += len(audio) / SAMPLE_RATE_HZ
                if prefix == "tts":
                    stats.add(source, split, speaker, len(audio))
                    speech_seconds[split] += len(audio) / SAMPLE_RATE_HZ
                yield Clip(audio, source, speaker, task[1])

    real_train_s = sum(len(c.audio) for c in speech["train"]) / SAMPLE_RATE_HZ
    tts_seconds = {
        "train": max(0.0, config.hours * 3600 - real_train_s),
        "val": config.heldout_tts_minutes * 60,
        "test": config.heldout_tts_minutes * 60,
    }
    if config.tts_only:  # the tiny configuration: a few seconds everywhere
        tts_seconds["val"] = tts_seconds["test"] = max(4.0, config.hours * 3600 / 4)
    heldout_tts = {s: list(tts_clips(s, tts_seconds[s])) for s in ("val", "test")}
    for split in ("val", "test"):
        if config.tts_only:
            babble_pool[split] = [c.audio for c in heldout_tts[split]]
    if config.tts_only:
        babble_pool["train"] = [c.audio for c in tts_clips("train", 12.0, "babble-tts")]

    # --- synthetic noise
    for split in SPLITS:
        count = (
            config.synthetic_noise_clips
            if split == "train"
            else max(2, config.synthetic_noise_clips // 5)
        )
        n_samples = int(config.synthetic_noise_seconds * SAMPLE_RATE_HZ)
        for kind in SYNTHETIC_KINDS:
            group = f"synthetic-{kind}:{split}"
            add_group("noise_units", group, split)
            noise_types[group] = f"synthetic-{kind}"
            for i in range(count):
                rng = rng_for(seed, f"synthetic/{split}/{kind}/{i}")
                audio = synthetic_noise(kind, n_samples, rng, babble_pool[split])
                noise[split].append(Clip(audio, "synthetic", group, f"{kind}/{split}/{i}"))
                stats.add("synthetic", split, group, len(audio))

    # --- shards (training speech streams straight from the TTS workers to disk)
    shard_root = out / "shards"
    shards = {}
    for split in SPLITS:
        extra = heldout_tts.get(split) or []
        stream: Iterable[Clip] = list(speech[split]) + extra
        if split == "train":
            stream = _chain(
                speech["train"],
                _progress(
                    tts_clips("train", tts_seconds["train"]), tts_seconds["train"], config.progress
                ),
            )
        shards[f"{split}/speech"] = write_shards(stream, shard_root, split, "speech")
        shards[f"{split}/noise"] = write_shards(noise[split], shard_root, split, "noise")

    # --- fixed mixtures
    mixtures = _write_mixture_sets(
        config, out / "mixtures", speech, heldout_tts, noise, noise_types
    )

    manifest = {
        "format": 1,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "config": _jsonable(asdict(config)),
        "hours_requested": config.hours,
        "speech_minutes": {s: round(v / 60, 2) for s, v in speech_seconds.items()},
        "sources": stats.to_json(),
        "source_info": {k: asdict(v) for k, v in cs.SOURCES.items()},
        "splits": group_split,
        "noise_types": dict(sorted(noise_types.items())),
        "shards": {k: [p.relative_to(out).as_posix() for p in v] for k, v in shards.items()},
        "max_shard_bytes": MAX_SHARD_BYTES,
        "mixtures": mixtures,
        "tools": _tool_versions(config),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    elapsed = time.perf_counter() - started
    build = {
        "build_seconds": round(elapsed, 1),
        "disk_bytes": disk,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    (out / "build_info.json").write_text(json.dumps(build, indent=1) + "\n")
    manifest.update(build)
    (out / "READY").write_text("ok\n")
    return manifest


def _chain(*parts: Iterable[Clip]) -> Iterator[Clip]:
    for part in parts:
        yield from part


def _progress(clips: Iterable[Clip], total_s: float, enabled: bool) -> Iterator[Clip]:
    from tqdm import tqdm

    with tqdm(
        total=round(total_s), desc="tts train", unit="s", disable=not enabled, file=sys.stderr
    ) as bar:
        for clip in clips:
            bar.update(round(len(clip.audio) / SAMPLE_RATE_HZ))
            yield clip


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _tool_versions(config: CorpusConfig) -> dict:
    """Versions of the TTS engines and decoders (they decide the bytes)."""
    import soundfile
    import soxr

    versions = {
        "numpy": np.__version__,
        "soxr": soxr.__version__,
        "libsndfile": soundfile.__libsndfile_version__,
        "python": sys.version.split()[0],
    }
    for name, cmd in (
        ("espeak-ng", ["espeak-ng", "--version"]),
        ("ffmpeg", ["ffmpeg", "-version"]),
        ("flite", ["flite", "--version"]),
    ):
        if config.tts_only and name != "espeak-ng":
            continue
        try:
            versions[name] = (
                subprocess.run(cmd, capture_output=True, text=True, check=False)
                .stdout.splitlines()[0]
                .strip()
            )
        except (OSError, IndexError):
            versions[name] = "absent"
    return versions


def write_wav_float32(path: Path, audio: np.ndarray) -> None:
    """Write mono 16 kHz IEEE-float WAV (fmt 18 bytes + fact chunk), byte for byte reproducible.

    libsndfile adds a PEAK chunk with a time stamp to float WAV files, so two writes of the
    same samples differ; this writer has no time stamp.
    """
    data = np.asarray(audio, "<f4").tobytes()
    n = len(data) // 4
    fmt = struct.pack("<HHIIHHH", 3, 1, SAMPLE_RATE_HZ, 4 * SAMPLE_RATE_HZ, 4, 32, 0)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"fact"
        + struct.pack("<II", 4, n)
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


_MANIFEST_FIELDS = (
    "id",
    "split",
    "snr_db",
    "measured_snr_db",
    "length_samples",
    "speech_source",
    "speaker",
    "speech_clip",
    "speech_offset",
    "noise_source",
    "noise_type",
    "noise_unit",
    "noise_clip",
    "noise_offset",
    "noise_gain",
    "level_gain",
    "seed",
    "key",
)


def _write_mixture_sets(config, root: Path, speech, heldout_tts, noise, noise_types) -> dict:
    """Write the fixed validation and test mixtures as float32 WAV plus ``manifest.csv``."""
    seed = config.seed
    real_test = [c for c in speech["test"]]
    tts_test = heldout_tts["test"]
    val_speech = list(speech["val"]) + list(heldout_tts["val"])
    sets = {}

    def pick_noise(split: str, rng: np.random.Generator) -> Clip:
        """Pick a noise type uniformly (recorded first 2/3 of the time), then a clip."""
        clips = noise[split]
        recorded = sorted(
            {
                noise_types[c.group]
                for c in clips
                if not noise_types[c.group].startswith("synthetic")
            }
        )
        synthetic = sorted(
            {noise_types[c.group] for c in clips if noise_types[c.group].startswith("synthetic")}
        )
        kinds = recorded if recorded and rng.random() < 2 / 3 else synthetic
        kind = kinds[int(rng.integers(len(kinds)))]
        pool = [c for c in clips if noise_types[c.group] == kind]
        return pool[int(rng.integers(len(pool)))]

    def write_set(name: str, rows: list[tuple]) -> None:
        folder = root / name
        for sub in ("noisy", "clean", "noise"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        records = []
        for mix_id, split, clean_clip, noise_clip, snr, length, key in rows:
            rng = rng_for(seed, key)
            mix = make_mixture(
                None if clean_clip is None else clean_clip.audio,
                None if noise_clip is None else noise_clip.audio,
                snr,
                length,
                rng,
            )
            for sub in ("noisy", "clean", "noise"):
                write_wav_float32(folder / sub / f"{mix_id}.wav", mix[sub])
            measured = (
                snr_db(mix["clean"], mix["noise"])
                if clean_clip is not None and noise_clip is not None
                else None
            )
            records.append(
                {
                    "id": mix_id,
                    "split": split,
                    "snr_db": mix["snr_db"],
                    "measured_snr_db": None if measured is None else round(measured, 4),
                    "length_samples": length,
                    "speech_source": "" if clean_clip is None else clean_clip.source,
                    "speaker": "" if clean_clip is None else clean_clip.group,
                    "speech_clip": "" if clean_clip is None else clean_clip.clip_id,
                    "speech_offset": mix["speech_offset"],
                    "noise_source": "" if noise_clip is None else noise_clip.source,
                    "noise_type": "" if noise_clip is None else noise_types[noise_clip.group],
                    "noise_unit": "" if noise_clip is None else noise_clip.group,
                    "noise_clip": "" if noise_clip is None else noise_clip.clip_id,
                    "noise_offset": mix["noise_offset"],
                    "noise_gain": round(mix["noise_gain"], 8),
                    "level_gain": round(mix["level_gain"], 8),
                    "seed": seed,
                    "key": key,
                }
            )
        with open(folder / "manifest.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=_MANIFEST_FIELDS, lineterminator="\n")
            writer.writeheader()
            for record in records:
                writer.writerow({k: "" if v is None else v for k, v in record.items()})
        sets[name] = {
            "count": len(records),
            "folder": f"mixtures/{name}",
            "noise_types": sorted({r["noise_type"] for r in records}),
        }

    rows = []
    for i in range(config.val_mixtures):
        key = f"mix/val/{i}"
        rng = rng_for(seed, key + "/pick")
        draw = rng.random()
        clean_clip = (
            None
            if draw < config.speech_free_share
            else val_speech[int(rng.integers(len(val_speech)))]
        )
        noise_clip = (
            None
            if config.speech_free_share
            <= draw
            < (config.speech_free_share + config.noise_free_share)
            else pick_noise("val", rng)
        )
        snr = float(rng.uniform(*config.snr_range_db))
        rows.append(
            (
                f"val_{i:04d}",
                "val",
                clean_clip,
                noise_clip,
                snr,
                int(config.val_seconds * SAMPLE_RATE_HZ),
                key,
            )
        )
    write_set("val", rows)

    for name, pool in (("test_real", real_test), ("test_tts", tts_test)):
        if not pool:
            continue
        rows = []
        for i in range(config.test_pairs):
            pick = rng_for(seed, f"mix/{name}/{i}/pick")
            clean_clip = pool[int(pick.integers(len(pool)))]
            noise_clip = pick_noise("test", pick)
            length = int(pick.uniform(*config.test_seconds_range) * SAMPLE_RATE_HZ)
            for snr in config.test_snrs_db:
                rows.append(
                    (
                        f"{name}_{i:03d}_snr{snr:+03.0f}",
                        "test",
                        clean_clip,
                        noise_clip,
                        float(snr),
                        length,
                        f"mix/{name}/{i}/snr{snr}",
                    )
                )
        write_set(name, rows)
    return sets


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m training.data", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--hours", type=float, default=20.0, help="hours of clean training speech (real + TTS)"
    )
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes (at most 2)")
    parser.add_argument(
        "--tts-only",
        action="store_true",
        help="TTS speech and synthetic noise only (tiny test configuration)",
    )
    parser.add_argument(
        "--tts-engines",
        nargs="+",
        default=list(CorpusConfig.tts_engines),
        choices=["espeak", "flite", "festival", "piper"],
        help="TTS engines for the speech that tops up the real voices",
    )
    parser.add_argument("--val-mixtures", type=int, default=128)
    parser.add_argument("--test-pairs", type=int, default=50)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    config = CorpusConfig(
        hours=args.hours,
        seed=args.seed,
        workers=args.workers,
        tts_only=args.tts_only,
        tts_engines=tuple(args.tts_engines),
        val_mixtures=args.val_mixtures,
        test_pairs=args.test_pairs,
        progress=not args.no_progress,
    )
    try:
        manifest = build_corpus(config, args.out)
    except MissingDependencyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {k: manifest[k] for k in ("speech_minutes", "build_seconds", "disk_bytes", "mixtures")},
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

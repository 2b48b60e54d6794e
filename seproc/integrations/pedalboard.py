"""Use seproc inside spotify's pedalboard scripts: denoise between two effect chains.

pedalboard has no plugin base class that Python code can subclass, so a seproc
``Denoiser`` cannot sit *inside* a ``Pedalboard``. It does not need to: a
``Denoiser`` is already called like a pedalboard plugin for whole signals,
``denoiser(audio, sample_rate)``, and for streams this module gives
:class:`DenoisingChain`, which runs pedalboard plugins before and after a
``Denoiser`` chunk by chunk, the way pedalboard scripts read files with
``pedalboard.io.AudioFile``::

    from pedalboard import Compressor, Gain, HighpassFilter
    from pedalboard.io import AudioFile
    from seproc import Denoiser
    from seproc.integrations.pedalboard import DenoisingChain

    with AudioFile("noisy.wav") as f, AudioFile(
        "clean.wav", "w", f.samplerate, f.num_channels
    ) as out:
        chain = DenoisingChain(
            Denoiser(sample_rate=f.samplerate, channels=f.num_channels),
            before=[HighpassFilter(80)],
            after=[Compressor(threshold_db=-20), Gain(6)],
        )
        while f.tell() < f.frames:
            out.write(chain.process(f.read(f.samplerate)))
        out.write(chain.flush())

:func:`process_file_with_chain` does exactly that, with the output written to a
temporary file and renamed into place when complete.

Latency follows pedalboard's streaming convention: ``process`` returns audio
*aligned* with the input (the latency of the denoiser and of the plugins is
removed), so the output lags behind what went in, and
:meth:`DenoisingChain.flush` returns the rest; in all, exactly as many samples come
out as went in, sample ``i`` out belonging to sample ``i`` in. A real-time host
that needs exactly as many samples back per callback uses
:meth:`seproc.Denoiser.process` directly and reports ``latency_samples`` to the
host instead (see ``examples/host_loop.py``).

Install with ``pip install 'seproc[pedalboard]'``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from seproc._files import (
    FileResult,
    atomic_output,
    format_for,
    native_path,
    omit_peak_chunk,
    output_subtype,
    sha256_file,
)
from seproc._interface import Setting
from seproc._validation import check_sample_rate
from seproc.denoiser import Denoiser
from seproc.errors import ParameterError, SeprocError, one_line

try:
    import pedalboard
except ImportError as _error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "seproc.integrations.pedalboard needs pedalboard: pip install 'seproc[pedalboard]'"
    ) from _error

__all__ = [
    "DEFAULT_CHUNK_SAMPLES",
    "DEFAULT_PLUGIN_BLOCK_SAMPLES",
    "DenoisingChain",
    "process_file_with_chain",
]

#: Samples read from the file per chunk by :func:`process_file_with_chain`.
DEFAULT_CHUNK_SAMPLES = 65536
#: The fixed block size in which the chain calls pedalboard plugins.
DEFAULT_PLUGIN_BLOCK_SAMPLES = 1024
#: How much silence (in seconds of audio) a plugin chain may need to release its tail.
_MAX_TAIL_S = 30.0
#: soundfile subtypes of ``bit_depth`` as ``pedalboard.io.AudioFile`` takes it (32 is float).
_SUBTYPE_OF_BIT_DEPTH = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
#: soundfile subtypes of ``AudioFile.file_dtype``, for inputs that soundfile cannot read.
_SUBTYPE_OF_FILE_DTYPE = {
    "int8": "PCM_S8",
    "int16": "PCM_16",
    "int24": "PCM_24",
    "int32": "PCM_32",
    "float32": "FLOAT",
    "float64": "DOUBLE",
}


class DenoisingChain:
    """pedalboard plugins, then a seproc ``Denoiser``, then more plugins, streamed.

    Parameters
    ----------
    denoiser : seproc.Denoiser
        The denoiser; its ``sample_rate`` and ``channels`` are the chain's. It is
        reset first, and owned by the chain from then on.
    before, after : pedalboard.Plugin or list of pedalboard.Plugin or None
        Effects to run before and after the denoiser (a ``Pedalboard`` is a
        plugin too). They are reset first and then run with ``reset=False``, so
        their state carries from chunk to chunk.
    plugin_block_samples : int
        The plugins are called with blocks of exactly this many samples, however
        the stream arrives (pedalboard's streaming ``Resample`` goes wrong when
        block sizes vary). Output then arrives in steps of this size.

    Notes
    -----
    Audio arrays are ``(channels, samples)``, like pedalboard's ``AudioFile.read``;
    a 1-D array is accepted when ``channels == 1``. Output is float32.

    ``process(chunk)`` returns the output that is ready, aligned with the input:
    the output so far is never longer than the input so far (it lags by the
    latency plus at most one plugin block), and ``flush()`` returns the rest
    (pedalboard's convention for streaming ``process(..., reset=False)``).
    Chunked output equals :meth:`__call__` on the whole signal.

    The plugins run on fixed blocks of ``plugin_block_samples``: so a very short
    chunk is held until a block is full (pedalboard would also misread the layout
    of a block with fewer samples than channels); every sample still comes out.
    """

    def __init__(
        self,
        denoiser: Denoiser,
        *,
        before: pedalboard.Plugin | Iterable[pedalboard.Plugin] | None = None,
        after: pedalboard.Plugin | Iterable[pedalboard.Plugin] | None = None,
        plugin_block_samples: int = DEFAULT_PLUGIN_BLOCK_SAMPLES,
    ) -> None:
        if not isinstance(denoiser, Denoiser):
            raise ParameterError(
                f"Parameter denoiser must be a seproc.Denoiser, got {type(denoiser).__name__}; "
                "make one with Denoiser(sample_rate=..., channels=...)."
            )
        self._denoiser = denoiser
        block_samples = plugin_block_samples
        if (
            isinstance(block_samples, bool)
            or not isinstance(block_samples, int)
            or block_samples <= denoiser.channels
        ):
            raise ParameterError(
                f"Parameter plugin_block_samples={block_samples!r} must be an integer greater "
                f"than the channel count ({denoiser.channels}); 1024 is a good choice."
            )
        self._before = _PluginStage(_as_board(before, "before"), denoiser, block_samples)
        self._after = _PluginStage(_as_board(after, "after"), denoiser, block_samples)
        self.reset()

    sample_rate = Setting[int]("_denoiser.sample_rate", "The sample rate in Hz (the denoiser's).")
    channels = Setting[int]("_denoiser.channels", "The number of channels (the denoiser's).")
    denoiser = Setting[Denoiser]("_denoiser", "The denoiser in the middle of the chain.")
    before = Setting[pedalboard.Pedalboard | None](
        "_before.board", "The plugins before the denoiser, as one ``Pedalboard`` (or ``None``)."
    )
    after = Setting[pedalboard.Pedalboard | None](
        "_after.board", "The plugins after the denoiser, as one ``Pedalboard`` (or ``None``)."
    )

    @property
    def latency_samples(self) -> int:
        """The denoiser's latency in samples, which the chain removes from its output.

        pedalboard does not report its plugins' latency; it removes it itself, and
        so does the chain.
        """
        return self._denoiser.latency_samples

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Run the next chunk of a stream through the chain.

        Parameters
        ----------
        chunk : np.ndarray [shape=(channels, samples) or (samples,)], float
            The next samples, any number including 0 (``AudioFile.read`` gives
            this layout; pass ``chunk.T`` for a ``(samples, channels)`` array).

        Returns
        -------
        np.ndarray [shape=(channels, n)], float32
            A new array of the ``n`` output samples that are ready (0 while the
            latency fills), aligned with the input: the output so far is a
            prefix of :meth:`__call__`'s.
        """
        block = self._check(chunk, "chunk")
        return self._after.process(self._denoise(self._before.process(block)))

    def flush(self) -> np.ndarray:
        """Return the rest of the output and reset the chain for a new stream.

        Returns
        -------
        np.ndarray [shape=(channels, n)], float32
            The samples still held back; with everything ``process`` returned,
            exactly as many as went in.
        """
        middle = self._denoise(self._before.flush())
        tail = self._denoiser.flush()[:, self._to_skip :]
        middle = np.concatenate([middle, tail], axis=1)
        output = np.concatenate([self._after.process(middle), self._after.flush()], axis=1)
        self.reset()
        return output

    def reset(self) -> None:
        """Forget the stream: reset the denoiser and every plugin."""
        self._denoiser.reset()
        self._before.reset()
        self._after.reset()
        self._to_skip = self._denoiser.latency_samples

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Run a whole signal through the chain, pedalboard style.

        Parameters
        ----------
        audio : np.ndarray [shape=(channels, samples) or (samples,)], float
            The signal.
        sample_rate : int or float
            Its rate in Hz, a whole number (``44100.0`` as pedalboard gives it is
            fine); must equal the chain's ``sample_rate``.

        Returns
        -------
        np.ndarray [shape=(channels, samples)], float32
            The output, sample ``i`` aligned with input sample ``i``.
        """
        if check_sample_rate("sample_rate", sample_rate) != self.sample_rate:
            raise ParameterError(
                f"Parameter sample_rate={sample_rate} differs from the chain's "
                f"{self.sample_rate} Hz; make the Denoiser with sample_rate={sample_rate}."
            )
        block = self._check(audio, "audio")  # names the argument in the error
        self.reset()
        return np.concatenate([self.process(block), self.flush()], axis=1)

    # -- internals ----------------------------------------------------------------------

    def _check(self, chunk: np.ndarray, name: str) -> np.ndarray:
        array = np.asarray(chunk)
        if array.ndim == 1 and self.channels == 1:
            array = array[np.newaxis]
        if array.ndim != 2 or array.shape[0] != self.channels:
            if array.ndim == 2 and array.shape[1] == self.channels:
                fix = f"pass {name}.T if it is (samples, channels)"
            else:
                fix = f"make the chain's Denoiser with channels={_channels_of(array)}"
            raise ParameterError(
                f"Expected {self.channels}-channel audio of shape (channels, samples) for "
                f"{name}, got shape {array.shape}; {fix}."
            )
        if not np.issubdtype(array.dtype, np.floating):
            raise ParameterError(
                f"Parameter {name} has dtype {array.dtype}; pass float audio in [-1, 1] "
                "(pedalboard.io.AudioFile.read returns float32)."
            )
        return np.ascontiguousarray(array, dtype=np.float32)

    def _denoise(self, block: np.ndarray) -> np.ndarray:
        """Denoise ``block`` and drop what is still the denoiser's latency."""
        if block.shape[1] == 0:
            return block
        output = self._denoiser.process(block)
        skip = min(self._to_skip, output.shape[1])
        self._to_skip -= skip
        return output[:, skip:]


class _PluginStage:
    """One pedalboard board, fed fixed-size blocks with ``reset=False``.

    pedalboard's streaming depends on how a stream is cut into calls: its
    ``Resample`` goes wrong when a stream's first call has another length than
    the rest. So the stage cuts whatever arrives into blocks of exactly
    ``block_samples`` (holding the remainder for the next call), which also keeps
    pedalboard from misreading the layout of very short blocks. pedalboard
    returns fewer samples than it was given while a plugin's latency fills;
    ``flush`` feeds silence, in the same blocks, until every sample given has
    come back.
    """

    def __init__(
        self, board: pedalboard.Pedalboard | None, denoiser: Denoiser, block_samples: int
    ) -> None:
        self.board = board
        self._sample_rate = denoiser.sample_rate
        self._channels = denoiser.channels
        self._block_samples = block_samples
        self._pending = np.zeros((self._channels, block_samples), np.float32)
        self.reset()

    def reset(self) -> None:
        if self.board is not None:
            self.board.reset()
        self._filled = 0
        self._given = 0
        self._returned = 0

    def process(self, block: np.ndarray) -> np.ndarray:
        if self.board is None:
            return block
        pieces = []
        done = 0
        n = block.shape[1]
        while done < n:
            take = min(self._block_samples - self._filled, n - done)
            self._pending[:, self._filled : self._filled + take] = block[:, done : done + take]
            self._filled += take
            done += take
            if self._filled == self._block_samples:
                pieces.append(self._run_pending())
        return _concat(pieces, self._channels)

    def flush(self) -> np.ndarray:
        if self.board is None:
            return np.zeros((self._channels, 0), np.float32)
        self._given += self._filled  # the real samples still pending; zeros follow
        pieces = []
        silence_samples = self._block_samples - self._filled
        limit = int(_MAX_TAIL_S * self._sample_rate)
        while self._returned < self._given:
            if silence_samples > limit:
                raise SeprocError(
                    f"The plugins {self.board} still held audio back after "
                    f"{_MAX_TAIL_S:.0f} s of silence; remove the plugin that never "
                    "returns its tail."
                )
            self._pending[:, self._filled :] = 0.0
            self._filled = self._block_samples
            pieces.append(self._run_pending(counted=False))
            silence_samples += self._block_samples
        return _concat(pieces, self._channels)

    def _run_pending(self, counted: bool = True) -> np.ndarray:
        output = self.board.process(self._pending, self._sample_rate, reset=False)
        output = np.asarray(output, dtype=np.float32).reshape(self._channels, -1)
        self._filled = 0
        if counted:
            self._given += self._block_samples
        keep = min(output.shape[1], self._given - self._returned)
        self._returned += keep
        return output[:, :keep]


def _concat(pieces: list[np.ndarray], channels: int) -> np.ndarray:
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate([*pieces, np.zeros((channels, 0), np.float32)], axis=1)


def _channels_of(array: np.ndarray) -> int:
    return 1 if array.ndim < 2 else int(min(array.shape))


def _as_board(
    plugins: pedalboard.Plugin | Iterable[pedalboard.Plugin] | None, name: str
) -> pedalboard.Pedalboard | None:
    if plugins is None:
        return None
    if isinstance(plugins, pedalboard.Pedalboard):
        return plugins
    if isinstance(plugins, pedalboard.Plugin):
        return pedalboard.Pedalboard([plugins])
    try:
        items = list(plugins)
    except TypeError:
        items = None
    if items is None or not all(isinstance(item, pedalboard.Plugin) for item in items):
        raise ParameterError(
            f"Parameter {name} must be a pedalboard plugin, a list of them, or None; got "
            f"{plugins!r}."
        )
    return pedalboard.Pedalboard(items) if items else None


def process_file_with_chain(
    src: str | Path,
    dst: str | Path,
    *,
    before: pedalboard.Plugin | Iterable[pedalboard.Plugin] | None = None,
    after: pedalboard.Plugin | Iterable[pedalboard.Plugin] | None = None,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    chunk_samples: int = DEFAULT_CHUNK_SAMPLES,
    bit_depth: int | None = None,
    postfilter: bool = True,
    denoiser: Denoiser | None = None,
) -> FileResult:
    """Read a file with ``pedalboard.io.AudioFile``, run a chain, write another file.

    ``before`` plugins, a denoiser, then ``after`` plugins, chunk by chunk with
    their state carried over, latency compensated; the output has the input's
    sample rate, channel count, length and (where ``dst``'s format has it) subtype:
    16-, 24- and 32-bit PCM and float files stay what they were, as with the
    ``seproc`` command. It is written with soundfile (``AudioFile`` writes 32-bit
    PCM as float and defaults to 16 bits) to a temporary file beside ``dst`` and
    renamed into place when complete.

    Parameters
    ----------
    src : str or Path
        Any file ``pedalboard.io.AudioFile`` reads.
    dst : str or Path
        The output; its extension picks the format (any that soundfile writes:
        .wav, .flac, .ogg, .aiff, ...). Its folder must exist, and it must not be
        ``src``.
    before, after : pedalboard.Plugin or list of pedalboard.Plugin or None
        As for :class:`DenoisingChain`.
    model, attenuation_limit_db
        As for :class:`seproc.Denoiser`.
    chunk_samples : int
        Samples read per chunk.
    bit_depth : int or None
        Bits per sample of the output, as ``AudioFile`` takes it: 16 or 24 (PCM)
        or 32 (float). ``None`` keeps the input's subtype.
    postfilter : bool
        As for :class:`seproc.Denoiser`: ``False`` applies the model's raw gains.
    denoiser : seproc.Denoiser or None
        A denoiser to reuse when its rate and channel count match the file's.

    Returns
    -------
    seproc.api.FileResult

    Raises
    ------
    ParameterError
        If ``dst`` is ``src`` or an argument is invalid.
    SeprocError
        If the input cannot be read or the output cannot be written.
    """
    from pedalboard.io import AudioFile

    src_path, dst_path = Path(src), Path(dst)
    if dst_path.exists() and dst_path.resolve() == src_path.resolve():
        raise ParameterError(f"Output {dst_path} is the input file; seproc never overwrites input.")
    if isinstance(chunk_samples, bool) or not isinstance(chunk_samples, int) or chunk_samples < 1:
        raise ParameterError(f"Parameter chunk_samples={chunk_samples!r} must be an integer >= 1.")
    if bit_depth is not None and bit_depth not in _SUBTYPE_OF_BIT_DEPTH:
        raise ParameterError(
            f"Parameter bit_depth={bit_depth!r} must be 16, 24, 32 (float) or None (keep the "
            "input's)."
        )
    out_format = format_for(dst_path)
    started = time.perf_counter()
    try:
        reader = AudioFile(str(src_path))
    except (OSError, RuntimeError, ValueError) as error:
        raise SeprocError(f"Cannot read {src_path}: {one_line(error)}") from None
    with reader:
        sample_rate = round(reader.samplerate)
        channels = reader.num_channels
        requested = None if bit_depth is None else _SUBTYPE_OF_BIT_DEPTH[bit_depth]
        subtype = output_subtype(dst_path, _input_subtype(src_path, reader.file_dtype), requested)
        if denoiser is None or (denoiser.sample_rate, denoiser.channels) != (sample_rate, channels):
            denoiser = Denoiser(
                model,
                sample_rate=sample_rate,
                channels=channels,
                attenuation_limit_db=attenuation_limit_db,
                max_block_samples=chunk_samples,
                postfilter=postfilter,
            )
        chain = DenoisingChain(denoiser, before=before, after=after)
        frames = 0
        with (
            atomic_output(dst_path) as temporary,
            sf.SoundFile(
                native_path(temporary),
                mode="w",
                samplerate=sample_rate,
                channels=channels,
                subtype=subtype,
                format=out_format,
            ) as writer,
        ):
            omit_peak_chunk(writer)
            while reader.tell() < reader.frames:
                chunk = reader.read(chunk_samples)
                if chunk.shape[-1] == 0:
                    break
                frames += chunk.shape[-1]
                writer.write(chain.process(chunk).T)
            writer.write(chain.flush().T)
    return FileResult(
        src=src_path,
        dst=dst_path,
        sample_rate=sample_rate,
        channels=channels,
        duration_s=frames / sample_rate,
        processing_s=time.perf_counter() - started,
        input_sha256=sha256_file(src_path),
        output_sha256=sha256_file(dst_path),
    )


def _input_subtype(src: Path, file_dtype: str) -> str:
    """Return ``src``'s soundfile subtype, or the nearest one to pedalboard's ``file_dtype``."""
    try:
        return sf.info(str(src)).subtype
    except (sf.LibsndfileError, RuntimeError):
        return _SUBTYPE_OF_FILE_DTYPE.get(file_dtype, "PCM_16")

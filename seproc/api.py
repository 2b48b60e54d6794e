"""One-shot functions beside the :class:`~seproc.Denoiser`: ``denoise`` and ``process_file``.

Both compensate the latency, so output sample ``i`` corresponds to input sample ``i``,
and both share their defaults with ``Denoiser`` (a test keeps them identical). The file
work itself (planning, atomic writes, formats) is in the private ``seproc._files``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from seproc._files import (  # noqa: F401  (the file helpers' names from before seproc._files)
    DEFAULT_FILE_BLOCK_SAMPLES,
    DenoiseSettings,
    FileResult,
    check_readable,
    denoise_file,
    file_kind,
    native_path,
    os_error_reason,
    remove_stale_temporaries,
    sha256_file,
    temporary_prefix,
)
from seproc._validation import check_channels_first
from seproc.denoiser import Denoiser
from seproc.errors import ParameterError

__all__ = ["FileResult", "denoise", "process_file"]


def denoise(
    audio: np.ndarray,
    sample_rate: int | float,
    *,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    num_threads: int = 1,
    postfilter: bool = True,
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
    postfilter : bool
        Apply the gain post-filter the model file carries (``False``: the raw model
        gains); as for :class:`~seproc.Denoiser`.

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
        postfilter=postfilter,
    )
    return denoiser(array, sample_rate)


def process_file(
    src: str | Path,
    dst: str | Path,
    *,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    num_threads: int = 1,
    block_samples: int = DEFAULT_FILE_BLOCK_SAMPLES,
    subtype: str | None = None,
    postfilter: bool = True,
    denoiser: Denoiser | None = None,
    on_block: Callable[[int], object] | None = None,
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
    postfilter : bool
        As for :class:`~seproc.Denoiser`: ``False`` applies the model's raw gains.
    denoiser : Denoiser or None
        A denoiser to reuse (batch workers load their model once). It is used
        when its ``sample_rate`` and ``channels`` match the file's, and is reset
        first; otherwise a new one is made from ``model`` and the other settings.
    on_block : callable or None
        Called after each block with the number of input samples it held, e.g. a
        progress bar's ``update``; it sees the file's progress, nothing else.

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
    settings = DenoiseSettings(
        model=model,
        attenuation_limit_db=attenuation_limit_db,
        num_threads=num_threads,
        block_samples=block_samples,
        subtype=subtype,
        postfilter=postfilter,
    )
    return denoise_file(src, dst, settings, denoiser=denoiser, on_block=on_block)

"""Argument and audio-block validation shared by every seproc object.

Each check raises :class:`~seproc.errors.ParameterError` with a message that names the
argument, says what arrived, the rule, and the fix.
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

from seproc import _kernels
from seproc.errors import ParameterError

__all__ = [
    "MAX_SAMPLE_RATE_HZ",
    "MIN_SAMPLE_RATE_HZ",
    "as_audio_block",
    "as_output_block",
    "as_signal",
    "check_channels_first",
    "check_finite",
    "check_float_dtype",
    "check_int",
    "check_positive_int",
    "check_sample_rate",
    "check_stream_buffer",
    "max_threads",
    "positive_int_argument",
]

#: More channels than this in one array is taken for a ``(samples, channels)`` array.
MAX_CHANNELS = 64
MIN_SAMPLE_RATE_HZ = 8000
"""The lowest sample rate, host or model, that seproc runs at."""
MAX_SAMPLE_RATE_HZ = 96000
"""The highest sample rate, host or model, that seproc runs at."""

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_DTYPE_KINDS = {"float": "f", "complex": "c"}


def check_int(
    name: str, value: object, minimum: int, maximum: int | None = None, why: str = ""
) -> int:
    """Return ``value`` as an ``int`` if it is an integer in ``[minimum, maximum]``.

    Parameters
    ----------
    name : str
        The argument's name, for the message.
    value : object
        What arrived.
    minimum : int
        The smallest value allowed.
    maximum : int or None
        The largest value allowed; ``None`` for no upper bound.
    why : str
        Appended to the message when ``value`` is above ``maximum`` (the reason
        for the bound, and the fix).

    Raises
    ------
    ParameterError
        If ``value`` is not an integer (bools are not) or is out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(
            f"Parameter {name}={value!r} must be an integer >= {minimum}, "
            f"got {type(value).__name__}."
        )
    if value < minimum:
        raise ParameterError(f"Parameter {name}={value!r} must be an integer >= {minimum}.")
    if maximum is not None and value > maximum:
        raise ParameterError(f"Parameter {name}={value!r} must be an integer <= {maximum}{why}.")
    return int(value)


def max_threads() -> int:
    """Return the most threads one onnxruntime run may use: this machine's CPU count.

    More threads than CPUs only adds contention; far more (thousands) hangs or crashes
    onnxruntime's thread pool.
    """
    return os.cpu_count() or 1


def positive_int_argument(text: str) -> int:
    """Parse a command-line integer >= 1 (an ``argparse`` ``type=``).

    Raises
    ------
    argparse.ArgumentTypeError
        If ``text`` is not an integer >= 1; argparse turns it into a usage error.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 1")
    return value


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` as an ``int`` if it is an integer ``>= 1`` (see :func:`check_int`)."""
    return check_int(name, value, 1)


def check_sample_rate(name: str, value: object, minimum: int = 1) -> int:
    """Return a sample rate in Hz as an ``int``; integral floats are accepted.

    pedalboard's ``AudioFile.samplerate`` is a float (``44100.0``) and numpy hands
    out scalars (``np.float64(48000)``): both are taken as the whole number they hold.

    Parameters
    ----------
    name : str
        The argument's name, for error messages.
    value : int, float, numpy integer or numpy floating
        The rate in Hz.
    minimum : int
        The lowest rate accepted.

    Returns
    -------
    int

    Raises
    ------
    ParameterError
        If ``value`` is not a number (bools are not), is not a whole number of Hz
        (``44100.5``, NaN, Inf), or is below ``minimum``.
    """
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise ParameterError(
                f"Parameter {name}={value!r} must be a whole number of Hz (44100 or 44100.0), "
                "got a fractional or non-finite rate; pass the file's nominal rate, for "
                f"example round({name}), and resample first if the audio really runs at "
                "another rate."
            )
        if value < minimum:
            raise ParameterError(
                f"Parameter {name}={value!r} must be a whole number of Hz >= {minimum}."
            )
        return int(value)
    return check_int(name, value, minimum)


def check_channels_first(array: np.ndarray, name: str) -> None:
    """Refuse a 2-D array that looks like ``(samples, channels)``, before any allocation.

    A ``(channels, samples)`` array has few channels: more than :data:`MAX_CHANNELS`,
    or more channels than samples (an empty signal aside), means the axes are swapped,
    as in soundfile's ``sf.read`` output.

    Parameters
    ----------
    array : np.ndarray
        The audio; only 2-D arrays are checked.
    name : str
        The argument's name, for error messages.

    Raises
    ------
    ParameterError
        With the ``.T`` fix in the message.
    """
    if array.ndim != 2:
        return
    channels, samples = array.shape
    if channels > MAX_CHANNELS or 0 < samples < channels:
        raise ParameterError(
            f"Parameter {name} has shape {array.shape}, read as {channels} channels of "
            f"{samples} samples; seproc takes (channels, samples) with at most {MAX_CHANNELS} "
            f"channels and no more channels than samples. Pass {name}.T if it is "
            "(samples, channels), as soundfile's sf.read returns."
        )


def check_float_dtype(name: str, dtype: object) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64.

    Raises
    ------
    ParameterError
        For any other dtype, or something that is not a dtype.
    """
    try:
        resolved = np.dtype(dtype)  # type: ignore[call-overload]
    except TypeError:
        resolved = None
    if resolved is None or dtype is None or resolved not in _FLOAT_DTYPES:
        raise ParameterError(f"Parameter {name}={dtype!r} must be np.float32 or np.float64.")
    return resolved


def _as_float_array(value: object, name: str) -> np.ndarray:
    """Turn ``value`` into a float32/float64 array, or explain what is wrong with it."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as error:
        raise ParameterError(
            f"Parameter {name} must be a float32 or float64 numpy array of audio, "
            f"got {type(value).__name__} ({error})."
        ) from None
    kind = array.dtype.kind
    if kind == "b":
        raise ParameterError(
            f"Parameter {name} is a bool array; audio must be float32 or float64 in [-1, 1]."
        )
    if kind in "iu":
        raise ParameterError(
            f"Parameter {name} has integer dtype {array.dtype} (PCM); audio must be float32 "
            f"or float64 in [-1, 1]: convert int16 with {name}.astype(np.float32) / 32768."
        )
    if kind == "c":
        raise ParameterError(
            f"Parameter {name} is complex ({array.dtype}); audio must be real float32 or "
            f"float64. Pass {name}.real if the imaginary part is zero."
        )
    if kind == "f" and array.dtype not in _FLOAT_DTYPES:
        raise ParameterError(
            f"Parameter {name} has dtype {array.dtype}; audio must be float32 or float64: "
            f"convert with {name}.astype(np.float32)."
        )
    if kind != "f":
        raise ParameterError(
            f"Parameter {name} must be a float32 or float64 numpy array of audio, got "
            f"{type(value).__name__} with dtype {array.dtype}."
        )
    return array


def as_audio_block(block: object, channels: int, *, name: str) -> tuple[np.ndarray, bool]:
    """Return ``block`` as a 2-D ``(channels, samples)`` float array, and whether it was 1-D.

    Parameters
    ----------
    block : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
        The audio; 1-D only when ``channels == 1``. Not copied when already a float
        array (the result may be a view, and need not be contiguous).
    channels : int
        The channel count the caller expects.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    block2d : np.ndarray [shape=(channels, samples)], float32 or float64
    was_1d : bool

    Raises
    ------
    ParameterError
        For non-arrays, integer/bool PCM, complex or other dtypes, 0-d or 3-D+ arrays, a
        wrong channel count, or a ``(samples, channels)`` array. Finiteness is not
        checked here: see :func:`check_finite`.
    """
    array = _as_float_array(block, name)
    if array.ndim == 1:
        if channels != 1:
            raise ParameterError(
                f"Parameter {name} is 1-D with shape {array.shape}, but {channels}-channel "
                f"audio must be 2-D of shape (channels, samples) = ({channels}, samples)."
            )
        return array[np.newaxis], True
    if array.ndim != 2:
        raise ParameterError(
            f"Parameter {name} must be audio of shape (channels, samples) or (samples,), "
            f"got a {array.ndim}-D array of shape {array.shape}."
        )
    if array.shape[0] == channels:
        return array, False
    if array.shape[1] == channels:
        raise ParameterError(
            f"Expected {channels}-channel audio of shape (channels, samples) for parameter "
            f"{name}, got shape {array.shape}; pass {name}.T if it is (samples, channels)."
        )
    raise ParameterError(
        f"Expected {channels}-channel audio of shape (channels, samples) for parameter "
        f"{name}, got shape {array.shape} ({array.shape[0]} channels)."
    )


def as_signal(signal: object, *, name: str) -> tuple[np.ndarray, bool]:
    """Return a whole signal as a 2-D ``(channels, samples)`` float array, and ``was_1d``.

    Like :func:`as_audio_block` for any channel count, and the signal must be finite.

    Raises
    ------
    ParameterError
        As :func:`as_audio_block`, and when the signal holds NaN or Inf.
    """
    array = _as_float_array(signal, name)
    if array.ndim not in (1, 2):
        raise ParameterError(
            f"Parameter {name} must be audio of shape (channels, samples) or (samples,), "
            f"got a {array.ndim}-D array of shape {array.shape}."
        )
    block2d = array[np.newaxis] if array.ndim == 1 else array
    if not check_finite(block2d):
        raise ParameterError(
            f"Parameter {name} holds NaN or Inf values; pass finite audio "
            f"(np.nan_to_num({name}) replaces them)."
        )
    return block2d, array.ndim == 1


def check_finite(arr: np.ndarray) -> bool:
    """Return True when every value of ``arr`` is finite (numba kernel, no copy).

    Parameters
    ----------
    arr : np.ndarray, 1-D or 2-D (any layout), or N-D C-contiguous
        Real or complex values.
    """
    if arr.ndim == 2:
        return bool(_kernels.all_finite(arr))
    if arr.ndim == 1:
        return bool(_kernels.all_finite(arr[np.newaxis]))
    if arr.flags.c_contiguous:
        return bool(_kernels.all_finite(arr.reshape(1, -1)))
    return bool(np.isfinite(arr).all())


def as_output_block(
    out: object, block: np.ndarray, channels: int, was_1d: bool, *, name: str = "out"
) -> np.ndarray:
    """Return ``out`` as a 2-D ``(channels, samples)`` array that a call may write into.

    Checked before the caller changes any state, so a refused ``out`` leaves the
    stream as it was.

    Parameters
    ----------
    out : object
        What the caller passed as the output array.
    block : np.ndarray [shape=(channels, samples)]
        The input block (already validated by :func:`as_audio_block`).
    channels : int
        The channel count.
    was_1d : bool
        Whether the caller's block was 1-D; a 1-D ``out`` is then accepted.
    name : str
        The argument's name, for error messages.

    Returns
    -------
    np.ndarray [shape=(channels, samples)], float32 or float64, writeable

    Raises
    ------
    ParameterError
        If ``out`` is not a numpy array (a list, say), has the wrong shape or dtype,
        is read-only, or overlaps ``block`` without being ``block`` itself (in-place
        processing, ``out=block``, is allowed).
    """
    n = block.shape[1]
    if not isinstance(out, np.ndarray):
        raise ParameterError(
            f"Parameter {name} must be a writeable numpy array of shape ({channels}, {n}), "
            f"got {type(out).__name__}; pass np.empty(({channels}, {n}), np.float32) or None."
        )
    target = out[np.newaxis] if (was_1d and out.ndim == 1) else out
    if target.shape != (channels, n) or target.dtype not in _FLOAT_DTYPES:
        raise ParameterError(
            f"Parameter {name} must be a float32 or float64 array of shape "
            f"({channels}, {n}) to match the block, got {out.dtype} {out.shape}."
        )
    if not target.flags.writeable:
        raise ParameterError(
            f"Parameter {name} is read-only (out.flags.writeable is False); pass a writeable "
            f"array, e.g. {name}.copy(), or None. The stream state is unchanged."
        )
    if np.may_share_memory(target, block) and not _same_view(target, block):
        raise ParameterError(
            f"Parameter {name} overlaps the block without being the block itself; writing it "
            "would overwrite input not yet read. Pass out=block (in place) or a separate "
            "array. The stream state is unchanged."
        )
    return target


def check_stream_buffer(
    value: object,
    name: str,
    dtype: np.dtype | str,
    channels: int,
    length: int,
    rest: tuple[int, ...] = (),
    example: tuple[int, ...] | None = None,
) -> None:
    """Refuse ``value`` unless it is an array of shape ``(channels, >= length, *rest)``.

    For the arrays a streaming object reads its input from or writes its output into:
    only their first ``length`` columns are used, so a longer, preallocated array fits.

    Parameters
    ----------
    value : object
        What the caller passed.
    name : str
        The argument's name, for error messages.
    dtype : np.dtype or {"float", "complex"}
        The dtype it must have, or the kind of dtype.
    channels : int
        The size its first axis must have.
    length : int
        The least size of its second axis.
    rest : tuple of int
        The sizes of its further axes.
    example : tuple of int or None
        A shape that always fits, named in the message.

    Raises
    ------
    ParameterError
        If ``value`` is not a numpy array of that dtype and shape.
    """
    if (
        isinstance(value, np.ndarray)
        and (
            value.dtype.kind == _DTYPE_KINDS[dtype]
            if isinstance(dtype, str)
            else value.dtype == dtype
        )
        and value.ndim == 2 + len(rest)
        and value.shape[0] == channels
        and value.shape[1] >= length
        and value.shape[2:] == tuple(rest)
    ):
        return
    shape = ", ".join([str(channels), f">= {length}", *map(str, rest)])
    hint = "" if example is None else f", e.g. {example}"
    raise ParameterError(
        f"Parameter {name} must be a {dtype} array of shape ({shape}){hint}; got "
        f"{getattr(value, 'dtype', type(value).__name__)} {getattr(value, 'shape', '')}."
    )


def _same_view(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are the same elements in the same order (in-place processing)."""
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
        and a.dtype == b.dtype
    )

"""All numba-compiled kernels of seproc, in one private module.

Each kernel is small, takes its constants as arguments (numba freezes globals at
compile time), and writes into a buffer that the caller owns, so the streaming hot
path allocates nothing. No global ``fastmath``: it changes NaN/Inf semantics.

Kernels are cached on disk in a per-user folder, never inside the installed package
(numba's default, ``__pycache__`` beside this file, left a folder in site-packages that
outlived ``pip uninstall`` and shadowed a later editable install as an empty namespace
package): ``NUMBA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/seproc/numba``
(``~/.cache/seproc/numba``; ``~/Library/Caches/seproc/numba`` on macOS,
under ``%LOCALAPPDATA%`` on Windows). When that folder cannot be written
(read-only containers, serverless) the kernels compile in memory at every start instead
of failing at import ("cannot cache function", librosa issue 1156); set
``NUMBA_CACHE_DIR`` to a writable folder to pay the compile time once.

seproc sets ``numba.config.CACHE_DIR`` only while it decorates its own kernels and puts
the user's value back, so other packages' numba caching is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


def cache_dir() -> Path:
    """Return the folder for seproc's numba cache: ``NUMBA_CACHE_DIR`` or a per-user one.

    Returns
    -------
    Path
        ``NUMBA_CACHE_DIR`` when set; otherwise the platform's per-user cache folder
        (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
        ``%LOCALAPPDATA%`` on Windows) with ``seproc/numba`` below it.
    """
    if nb.config.CACHE_DIR:
        return Path(nb.config.CACHE_DIR)
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "seproc" / "Cache" / "numba"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "seproc" / "numba"
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "seproc" / "numba"


def _writable(folder: Path) -> bool:
    """Return whether ``folder`` exists or can be made, and takes a new file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


_CACHE_DIR = cache_dir()
_CACHE = _writable(_CACHE_DIR)


@contextlib.contextmanager
def _numba_cache_dir(folder: Path) -> Iterator[None]:
    """Point numba's cache at ``folder`` while a kernel is decorated, then put it back.

    numba picks a kernel's cache folder once, when ``njit(cache=True)`` decorates it,
    from ``numba.config.CACHE_DIR`` first; what it picked is kept by the kernel.
    """
    previous = nb.config.CACHE_DIR
    nb.config.CACHE_DIR = str(folder)
    try:
        yield
    finally:
        nb.config.CACHE_DIR = previous


def _njit(**options: object) -> Callable[[Callable], Callable]:
    """``numba.njit`` cached in :func:`cache_dir` (in memory when it is not writable)."""

    def decorate(function: Callable) -> Callable:
        if not _CACHE:
            return nb.njit(cache=False, **options)(function)
        with _numba_cache_dir(_CACHE_DIR):
            return nb.njit(cache=True, **options)(function)

    return decorate


njit_cached = _njit
"""The decorator of seproc's kernels, for the modules that keep their own
(``seproc._blas_net``, ``seproc._simd``): ``numba.njit`` cached in :func:`cache_dir`."""


# ---------------------------------------------------------------------------
# Framing, windowing and overlap-add (used by seproc.stft)
# ---------------------------------------------------------------------------


@_njit()
def frame_windowed(source, first_start, n_frames, hop, window, pad_left, win_length, rows):
    """Cut ``n_frames`` windowed frames of every channel of ``source`` into ``rows``.

    Frame ``j`` of channel ``c`` goes to row ``j * channels + c``: its window support is
    ``source[c, first_start + j * hop : ... + win_length]``, multiplied by
    ``window[pad_left : pad_left + win_length]`` and written at
    ``rows[r, pad_left : pad_left + win_length]``; the rest of the row's first
    ``len(window)`` values is set to zero.
    """
    channels = source.shape[0]
    n_fft = window.shape[0]
    support = window[pad_left : pad_left + win_length]
    for j in range(n_frames):
        start = first_start + j * hop
        for c in range(channels):
            row = rows[j * channels + c]
            # 1-D views keep the inner loop free of index wraparound checks (it vectorises).
            src = source[c, start : start + win_length]
            dst = row[pad_left : pad_left + win_length]
            for k in range(pad_left):
                row[k] = 0.0
            for i in range(win_length):
                dst[i] = src[i] * support[i]
            for k in range(pad_left + win_length, n_fft):
                row[k] = 0.0


@_njit()
def analysis_push(history, filled, block, hop, window, pad_left, win_length, rows):
    """Append a block to the analysis history and frame every frame it completes.

    ``history[:, :filled]`` holds the samples not yet consumed; the first frame's window
    support starts at ``history[:, 0]``. Returns ``(n_frames, new_filled)``, or
    ``(-1, filled)`` without touching any state when ``block`` holds NaN or Inf.
    """
    channels, n = block.shape
    for c in range(channels):
        for i in range(n):
            if not np.isfinite(block[c, i]):
                return -1, filled
    for c in range(channels):
        src = block[c]
        dst = history[c, filled : filled + n]
        for i in range(n):
            dst[i] = src[i]
    total = filled + n
    n_frames = 0
    if total >= win_length:
        n_frames = (total - win_length) // hop + 1
    frame_windowed(history, 0, n_frames, hop, window, pad_left, win_length, rows)
    consumed = n_frames * hop
    remaining = total - consumed
    if consumed > 0:
        for c in range(channels):
            row = history[c]
            for i in range(remaining):
                row[i] = row[consumed + i]
    return n_frames, remaining


@_njit()
def rows_to_spec(rows, n_frames, n_bins, out, first_frame):
    """Copy FFT output rows (frame-major, channel-minor) into ``out[c, first_frame + j, :]``."""
    channels = out.shape[0]
    for j in range(n_frames):
        for c in range(channels):
            src = rows[j * channels + c]
            dst = out[c, first_frame + j]
            for f in range(n_bins):
                dst[f] = src[f]


@_njit()
def spec_to_rows(spec, first_frame, n_frames, n_bins, rows):
    """Copy ``spec[c, first_frame + j, :]`` into row ``j * channels + c`` of ``rows``."""
    channels = spec.shape[0]
    for j in range(n_frames):
        for c in range(channels):
            src = spec[c, first_frame + j]
            dst = rows[j * channels + c]
            for f in range(n_bins):
                dst[f] = src[f]


@_njit()
def overlap_add(rows, n_frames, hop, synthesis_window, pad_left, win_length, acc, first_sample):
    """Overlap-add ``n_frames`` inverse-FFT rows, weighted by the synthesis window.

    Row ``j * channels + c`` is added to ``acc[c, first_sample + j * hop : ... + win_length]``
    (only its window support). Frames are added in increasing order, so every output
    sample sums its frames in the same order however the frames are batched.
    """
    channels = acc.shape[0]
    support = synthesis_window[pad_left : pad_left + win_length]
    for j in range(n_frames):
        base = first_sample + j * hop
        for c in range(channels):
            src = rows[j * channels + c, pad_left : pad_left + win_length]
            dst = acc[c, base : base + win_length]
            for i in range(win_length):
                dst[i] += src[i] * support[i]


@_njit()
def synthesis_push(rows, n_frames, hop, synthesis_window, pad_left, win_length, acc, out, mute):
    """Overlap-add ``n_frames`` rows into the accumulator and emit the finished samples.

    Writes ``n_frames * hop`` finished samples to ``out[:, :n_frames * hop]`` (its first
    ``mute`` samples as zeros: they lie before the start of the stream), keeps the
    unfinished ``win_length - hop`` samples at the front of ``acc`` and zeroes the rest.
    """
    overlap_add(rows, n_frames, hop, synthesis_window, pad_left, win_length, acc, 0)
    channels = acc.shape[0]
    n_out = n_frames * hop
    keep = win_length - hop
    for c in range(channels):
        row = acc[c]
        dst = out[c]
        for i in range(min(mute, n_out)):
            dst[i] = 0.0
        for i in range(min(mute, n_out), n_out):
            dst[i] = row[i]
        for i in range(keep):
            row[i] = row[n_out + i]
        for i in range(keep, keep + n_out):
            row[i] = 0.0
    return n_out


# ---------------------------------------------------------------------------
# Log-magnitude conversion (used by seproc.features)
# ---------------------------------------------------------------------------


@_njit()
def power_to_db_flat(power, amin, out):
    """``out[i] = 10 * log10(max(power[i], amin))`` over 1-D arrays."""
    for i in range(power.shape[0]):
        out[i] = 10.0 * np.log10(max(power[i], amin))


@_njit()
def amplitude_to_db_flat(amplitude, amin, out):
    """``out[i] = 10 * log10(max(|amplitude[i]| ** 2, amin ** 2))`` over 1-D arrays."""
    floor = amin * amin
    for i in range(amplitude.shape[0]):
        magnitude = abs(amplitude[i])
        out[i] = 10.0 * np.log10(max(magnitude * magnitude, floor))


@_njit()
def db_to_power_flat(db, out):
    """``out[i] = 10 ** (db[i] / 10)`` over 1-D arrays."""
    for i in range(db.shape[0]):
        out[i] = 10.0 ** (0.1 * db[i])


@_njit()
def db_to_amplitude_flat(db, out):
    """``out[i] = sqrt(10 ** (db[i] / 10))`` over 1-D arrays."""
    for i in range(db.shape[0]):
        out[i] = np.sqrt(10.0 ** (0.1 * db[i]))


@_njit(error_model="numpy")
def log_power_features(spec, amin, mean_db, std_db, out, db_out, write_db):
    """Normalised log-power features of a complex ``(frames, n_bins)`` spectrum.

    ``out[t, f] = (10 * log10(max(|spec[t, f]| ** 2, amin)) - mean_db[f]) / std_db[f]``,
    computed in float64; ``db_out`` receives the un-normalised dB when ``write_db``.
    The log is :func:`positive_log2` times ``10 log10(2)`` (a loop that vectorises; a
    library ``log10`` per bin does not): within 1e-11 dB of ``log10``, the same float32
    features but where one lies that close to a rounding boundary. ``amin`` must be a
    normal float64 (> 2.2e-308; the power of a float32 spectrum is 0 or normal).
    """
    n_frames, n_bins = spec.shape
    for t in range(n_frames):
        row = spec[t]
        features = out[t]
        for f in range(n_bins):
            value = row[f]
            re = np.float64(value.real)
            im = np.float64(value.imag)
            db = _DB_PER_LOG2 * positive_log2(max(re * re + im * im, amin))
            features[f] = (db - mean_db[f]) / std_db[f]
        if write_db:
            for f in range(n_bins):
                value = row[f]
                re = np.float64(value.real)
                im = np.float64(value.imag)
                db_out[t, f] = _DB_PER_LOG2 * positive_log2(max(re * re + im * im, amin))


# ---------------------------------------------------------------------------
# Polyphase resampling (used by seproc.resample)
# ---------------------------------------------------------------------------


# Only reassociation and contraction (FMA) are allowed, so that the dot product below
# vectorises; NaN and Inf keep their IEEE meaning ("nnan"/"ninf" stay off). The order
# of the sums depends on the tap count alone, which is fixed per resampler, so a stream
# is still bit-identical to one call on the whole signal (tests/test_resample.py).
_DOT_FLAGS = {"reassoc", "contract"}


@_njit(fastmath=_DOT_FLAGS)
def polyphase_resample(history, block, n, taps, up, down, position, out):
    """Resample ``block[:, :n]`` by ``up / down`` with a polyphase filter; return the state.

    ``history`` is ``(channels, n_taps - 1 + capacity)``: its first ``n_taps - 1``
    columns hold the last input samples of the previous call (zeros at the start of
    a stream); ``block[:, :n]`` is copied after them (``n <= capacity``).
    ``taps[phase, j]`` is the prototype filter's sample ``phase + (n_taps - 1 - j) * up``
    (time-reversed polyphase branches, gain included), so output ``m`` is the dot
    product of one branch with ``n_taps`` consecutive input samples, summed in the
    dtype of ``taps``.

    ``position`` is where the next output sample lies on the ``up``-times finer grid,
    relative to ``block[:, 0]``: output ``m`` sits at ``m * down - extra_delay``, and is
    computed once its newest input sample ``floor(position / up)`` has arrived. A
    negative position (only at the start of a stream, with an extra delay) reads
    nothing but the zeros before the stream, so the output is 0.

    Writes the outputs to ``out[:, :count]`` and returns ``(count, next_position)``.
    """
    channels = history.shape[0]
    n_taps = taps.shape[1]
    keep = n_taps - 1
    for c in range(channels):
        for i in range(n):
            history[c, keep + i] = block[c, i]
    limit = n * up
    count = 0
    while position < limit:
        if position < 0:
            for c in range(channels):
                out[c, count] = 0.0
            position += down
            count += 1
            continue
        start = position // up
        phase = position - start * up
        # Outputs that share this input window (upsampling) are summed together, three
        # or two at a time, reading the window once. Which outputs form a group depends
        # on their phases alone, never on the block edges: every output of a window is
        # computable as soon as the first one is.
        if phase + 2 * down < up:
            branch0 = taps[phase]
            branch1 = taps[phase + down]
            branch2 = taps[phase + 2 * down]
            for c in range(channels):
                window = history[c, start : start + n_taps]
                acc0 = branch0[0] * window[0]
                acc1 = branch1[0] * window[0]
                acc2 = branch2[0] * window[0]
                for j in range(1, n_taps):
                    acc0 += branch0[j] * window[j]
                    acc1 += branch1[j] * window[j]
                    acc2 += branch2[j] * window[j]
                out[c, count] = acc0
                out[c, count + 1] = acc1
                out[c, count + 2] = acc2
            position += 3 * down
            count += 3
        elif phase + down < up:
            branch0 = taps[phase]
            branch1 = taps[phase + down]
            for c in range(channels):
                window = history[c, start : start + n_taps]
                acc0 = branch0[0] * window[0]
                acc1 = branch1[0] * window[0]
                for j in range(1, n_taps):
                    acc0 += branch0[j] * window[j]
                    acc1 += branch1[j] * window[j]
                out[c, count] = acc0
                out[c, count + 1] = acc1
            position += 2 * down
            count += 2
        else:
            branch0 = taps[phase]
            for c in range(channels):
                window = history[c, start : start + n_taps]
                acc0 = branch0[0] * window[0]
                for j in range(1, n_taps):
                    acc0 += branch0[j] * window[j]
                out[c, count] = acc0
            position += down
            count += 1
    for c in range(channels):
        for i in range(keep):
            history[c, i] = history[c, n + i]
    return count, position - limit


@_njit(fastmath={"contract"})
def decimate(history, block, n, taps, down, position, phases, out):
    """:func:`polyphase_resample` for ``up == 1`` (48 -> 16 kHz), vectorised over outputs.

    The same arguments and result, with ``phases`` a ``(channels, down, >= (n_taps - 1 +
    capacity) // down + 1)`` scratch buffer. Output ``q`` of the call is ``sum_j taps[0,
    j] * history[p + q * down + j]``: the history is split once into its ``down``
    phases (``phases[c, r, i] = history[c, p + r + i * down]``), after which every tap is
    one multiply-add over a contiguous run of outputs, ``out[q] += taps[j] * phases[r,
    a + q]`` for ``j = a * down + r``. Each output sums its taps in the order ``j = 0, 1,
    ...`` (four taps per pass over the outputs) whether it lands in a SIMD lane or the
    scalar remainder (multiply-adds fused in both), so the result does not depend on the
    block partition. A dot product per
    output, reduced across SIMD lanes, waits on one accumulator: 10 µs for a 10 ms block
    at 48 kHz, against ~3 µs here (``benchmarks/README.md``, issue 20).
    """
    keep = taps.shape[1] - 1
    count, position = decimation_start(history, block, n, keep, down, position, out)
    if position < n:
        n_out = (n - position + down - 1) // down
        for c in range(history.shape[0]):
            split_phases(history[c], n, keep, down, position, n_out, phases[c])
            _phase_sums_in_memory(phases[c], taps[0], down, n_out, out[c, count : count + n_out])
        count += n_out
        position += n_out * down
    keep_history(history, n, keep)
    return count, position - n


@_njit(inline="always")
def decimation_start(history, block, n, keep, down, position, out):
    """Append ``block[:, :n]`` after the history's ``keep`` samples; zeros before the stream.

    The part of :func:`decimate` (and ``seproc._simd.decimate_registers``) before the
    sums: while ``position`` is negative (an extra delay) an output is a zero. Returns
    ``(count, position)`` after those zeros.
    """
    channels = history.shape[0]
    for c in range(channels):
        for i in range(n):
            history[c, keep + i] = block[c, i]
    count = 0
    while position < 0 and position < n:
        for c in range(channels):
            out[c, count] = 0.0
        position += down
        count += 1
    return count, position


@_njit(inline="always")
def split_phases(history, n, keep, down, position, n_out, phases):
    """Split one channel's history into its ``down`` phases for ``n_out`` outputs from ``position``.

    ``phases[r, i] = history[position + r + i * down]``, ``keep // down + n_out`` samples
    per phase (what the outputs read); samples past the history's end, never read, are 0.
    """
    span = keep // down + n_out
    for r in range(down):
        valid = min(span, (keep + n - position - r + down - 1) // down)
        dst = phases[r, :span]
        src = history[position + r :]
        for i in range(valid):
            dst[i] = src[i * down]
        for i in range(valid, span):
            dst[i] = 0.0


@_njit(inline="always", fastmath={"contract"})
def _phase_sums_in_memory(phases, branch, down, n_out, o):
    """``o[q] = sum_j branch[j] * phases[j % down, j // down + q]``, four taps a pass over o."""
    n_taps = branch.shape[0]
    for q in range(n_out):
        o[q] = 0.0
    j = 0
    while j + 4 <= n_taps:  # four taps per pass over the outputs, in tap order
        w0, w1, w2, w3 = branch[j], branch[j + 1], branch[j + 2], branch[j + 3]
        x0 = phases[j % down, j // down : j // down + n_out]
        x1 = phases[(j + 1) % down, (j + 1) // down : (j + 1) // down + n_out]
        x2 = phases[(j + 2) % down, (j + 2) // down : (j + 2) // down + n_out]
        x3 = phases[(j + 3) % down, (j + 3) // down : (j + 3) // down + n_out]
        for q in range(n_out):
            o[q] = o[q] + w0 * x0[q] + w1 * x1[q] + w2 * x2[q] + w3 * x3[q]
        j += 4
    while j < n_taps:
        weight = branch[j]
        xs = phases[j % down, j // down : j // down + n_out]
        for q in range(n_out):
            o[q] += weight * xs[q]
        j += 1


@_njit(inline="always")
def keep_history(history, n, keep):
    """Move the history's last ``keep`` samples (after ``n`` new ones) to its front."""
    for c in range(history.shape[0]):
        for i in range(keep):
            history[c, i] = history[c, n + i]


# ---------------------------------------------------------------------------
# Gain application and gain statistics (used by seproc.denoiser)
# ---------------------------------------------------------------------------


@_njit()
def _clamp_gain(gain, min_gain):
    """Return ``gain`` raised to at least ``min_gain`` and capped at 1 (NaN gives ``min_gain``).

    ``min_gain`` is the attenuation limit, at most 1; a NaN gain comes from a
    misbehaving model.
    """
    if not gain >= min_gain:  # also NaN
        return min_gain
    return min(gain, 1.0)


@intrinsic
def _float64_bits(typingctx, value):
    """Return the IEEE 754 bits of a float64 as an int64 (a bit cast: free, vectorisable)."""
    if value != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_float64(typingctx, bits):
    """Return the float64 whose IEEE 754 bits are an int64 (inverse of :func:`_float64_bits`)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


_MANTISSA_MASK = (1 << 52) - 1
_EXPONENT_ONE = 1023 << 52  # the bits of 1.0
_SQRT2_BITS = 0x3FF6A09E667F3BCD  # the bits of sqrt(2)
_LOG2_E = 1.4426950408889634
_DB_PER_LOG2 = 3.010299956639812  # 10 log10(2)
_LN_2 = 0.6931471805599453


@_njit(inline="always", error_model="numpy")
def positive_log2(value):
    """``log2(value)`` for a positive normal float64, with no library call (vectorises).

    ``value = m * 2 ** k`` with ``m`` in [sqrt(1/2), sqrt(2)) read from the bits;
    ``ln m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)`` (``|s| <= 0.172``), by its series to
    ``s ** 15`` (truncation below 2e-12 of ``ln m``). Zero, negative, subnormal, Inf and
    NaN inputs are the caller's to exclude.
    """
    bits = _float64_bits(value)
    k = (bits >> 52) - 1023
    m_bits = (bits & _MANTISSA_MASK) | _EXPONENT_ONE  # m in [1, 2)
    if m_bits > _SQRT2_BITS:  # m / 2 in [sqrt(1/2), 1), k + 1
        m_bits -= 1 << 52
        k += 1
    m = _bits_float64(m_bits)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 1.0 / 15.0
    series = series * s2 + 1.0 / 13.0
    series = series * s2 + 1.0 / 11.0
    series = series * s2 + 1.0 / 9.0
    series = series * s2 + 1.0 / 7.0
    series = series * s2 + 1.0 / 5.0
    series = series * s2 + 1.0 / 3.0
    ln_m = 2.0 * s + 2.0 * s * s2 * series
    return np.float64(k) + ln_m * _LOG2_E


@_njit(inline="always", error_model="numpy")
def unit_pow(value, exponent):
    """``value ** exponent`` for ``value`` in [0, 1] and ``exponent > 0``, as a float64.

    The power as ``2 ** (exponent * log2(value))`` in float64 arithmetic with no library
    call, so a loop over it vectorises (numba has no vector ``pow`` without SVML):

    - ``log2``: :func:`positive_log2` (a zero ``value`` gives 0 below);
    - ``exp2``: ``y = n + r`` with ``n`` the nearest integer, ``|r| <= 1/2``;
      ``2 ** r = exp(r ln 2)`` by its Taylor polynomial of degree 10 (truncation below
      1e-12); ``2 ** n`` written into the exponent bits. ``y`` is clamped at -1000,
      far below float32's smallest value, so ``n`` stays in float64's range.

    Relative error below 1e-11 before rounding, against ``float64 pow``: stored as
    float32, the result is the correctly rounded one except where that lies within
    ~1e-11 of a rounding boundary, one float32 step apart at most (relative error
    <= 1.2e-7 in all; ``tests/test_postfilter.py`` holds it to 1e-6 over [1e-4, 1],
    exponents 0.5-3). Exact for ``value`` 1 (gives 1), 0 (gives 0) and powers of two
    with an integer ``exponent * log2(value)``. Subnormal float32 inputs are normal in
    float64 and need no special case.
    """
    power = exp2(exponent * positive_log2(value))
    return power if value > 0.0 else 0.0


@_njit(inline="always", error_model="numpy")
def exp2(y):
    """``2 ** y`` for a float64 ``y``, with no library call (vectorises; see :func:`unit_pow`).

    ``y`` is clamped to [-1000, 1000], so results stay normal float64 numbers: below
    float32's range at the bottom, above it at the top (Inf once stored as float32).
    Relative error below 1e-11; NaN is the caller's to exclude.
    """
    y = min(max(y, -1000.0), 1000.0)
    n = np.floor(y + 0.5)
    r = (y - n) * _LN_2
    power = 1.0 / 3628800.0
    power = power * r + 1.0 / 362880.0
    power = power * r + 1.0 / 40320.0
    power = power * r + 1.0 / 5040.0
    power = power * r + 1.0 / 720.0
    power = power * r + 1.0 / 120.0
    power = power * r + 1.0 / 24.0
    power = power * r + 1.0 / 6.0
    power = power * r + 0.5
    power = power * r + 1.0
    power = power * r + 1.0
    scale = _bits_float64((np.int64(n) + 1023) << 52)  # 2 ** n
    return power * scale


@_njit(inline="always", error_model="numpy")
def exp_f64(x):
    """``exp(x)`` as :func:`exp2` of ``x log2(e)``, in float64 (vectorises; no libm call)."""
    return exp2(x * _LOG2_E)


@_njit(error_model="numpy")
def release_gains(gains, held, factor, exponent):
    """Post-filter a mask model's gains in place: a release on each bin, then an exponent.

    For each row ``t`` of ``gains`` (frames in stream order) and bin ``f``::

        held[f] = max(gains[t, f], factor * held[f])
        gains[t, f] = held[f] ** exponent

    so a bin's gain may fall by at most ``factor`` per frame and rises at once.
    ``held`` (``(n_bins,)``, float32, zeros at the start of a stream) carries the
    stream's state from call to call, so any split of the frames into calls gives the
    same gains. A NaN gain counts as 0 and a gain above 1 (outside the format) as 1,
    so ``held`` stays within [0, 1]. With ``exponent == 1`` no power is taken and the
    output is the held gain bit for bit.

    The power is :func:`unit_pow` (vectorised; the correctly rounded float32 of
    ``float64(held) ** exponent`` but for at most one float32 step, relative error
    <= 1.2e-7), at a third of the cost of the library ``pow``; ``exponent`` must be > 0
    (the format's).
    """
    n_frames, n_bins = gains.shape
    raise_power = exponent != 1.0
    for t in range(n_frames):
        row = gains[t]
        for f in range(n_bins):
            value = factor * held[f]
            gain = row[f]
            if gain > value:  # NaN is never greater: it counts as 0
                value = min(gain, 1.0)
            held[f] = value
        if raise_power:
            for f in range(n_bins):
                row[f] = unit_pow(np.float64(held[f]), exponent)
        else:
            for f in range(n_bins):
                row[f] = held[f]


@_njit()
def apply_mask_gain(spec, model_out, min_gain, band_start, band_stop, activity):
    """Apply a mask model's gain to a spectrum in place and measure speech activity.

    ``spec`` is complex ``(frames, n_bins)``; ``model_out`` the graph's gain of the
    same shape; every gain is raised to at least ``min_gain`` (the attenuation
    limit), and a NaN gain (a misbehaving model) counts as ``min_gain``.
    ``activity[t]`` receives the share of frame ``t``'s energy in bins
    ``band_start:band_stop`` that the gain keeps (1 when the frame is silent).
    """
    n_frames, n_bins = spec.shape
    for t in range(n_frames):
        kept = 0.0
        total = 0.0
        for f in range(n_bins):
            gain = _clamp_gain(model_out[t, f], min_gain)
            value = spec[t, f]
            if band_start <= f < band_stop:
                power = value.real * value.real + value.imag * value.imag
                total += power
                kept += gain * gain * power
            spec[t, f] = value * gain
        activity[t] = kept / total if total > 0.0 else 1.0


@_njit()
def apply_noise_subtraction(spec, noise_db, min_gain, band_start, band_stop, activity):
    """Subtract a predicted noise magnitude from a spectrum in place (seed formulation).

    ``|S| = max(|X| - 10^(noise_db / 20), 0)`` with the noisy phase, i.e. the gain
    ``max(0, 1 - |N| / |X|)``, raised to at least ``min_gain`` (a NaN from the model
    counts as ``min_gain``). ``activity`` as in
    :func:`apply_mask_gain`.
    """
    n_frames, n_bins = spec.shape
    for t in range(n_frames):
        kept = 0.0
        total = 0.0
        for f in range(n_bins):
            value = spec[t, f]
            power = value.real * value.real + value.imag * value.imag
            magnitude = np.sqrt(power)
            noise_magnitude = 10.0 ** (noise_db[t, f] / 20.0)
            gain = 0.0
            if magnitude > 0.0:
                gain = max(1.0 - noise_magnitude / magnitude, 0.0)
            gain = _clamp_gain(gain, min_gain)
            if band_start <= f < band_stop:
                total += power
                kept += gain * gain * power
            spec[t, f] = value * gain
        activity[t] = kept / total if total > 0.0 else 1.0


@_njit()
def all_within(block, limit):
    """Return True when every value of a 2-D array is finite and ``abs(value) <= limit``.

    NaN fails every comparison and Inf exceeds any finite ``limit``, so one pass checks
    both, and with a ``limit`` below the float32 maximum it also catches values that
    would overflow to Inf in the float32 stream or its spectra.
    """
    channels, samples = block.shape
    for c in range(channels):
        for i in range(samples):
            if not abs(block[c, i]) <= limit:
                return False
    return True


@_njit()
def copy_flushing_tiny(source, target, threshold):
    """Copy ``source`` into ``target`` (same shape), writing 0 where ``abs(value) < threshold``.

    The denormal guard: near-silence below ``threshold`` enters the stream as exact
    zeros, so no subnormal float reaches the stream state (arithmetic on subnormals
    costs up to ~100x per operation on some x86 CPUs).
    """
    channels, samples = source.shape
    for c in range(channels):
        for i in range(samples):
            value = source[c, i]
            if abs(value) < threshold:
                target[c, i] = 0.0
            else:
                target[c, i] = value


@_njit()
def copy_flushing_tiny_checked(source, target, threshold, limit):
    """:func:`copy_flushing_tiny` that also returns :func:`all_within`'s answer for ``limit``.

    One pass over the block instead of two (a real-time host's callback checks and
    copies every block); ``target`` is written whatever the answer, so it must be
    scratch that the caller may leave as it is when the block is refused.
    """
    channels, samples = source.shape
    bad = 0
    for c in range(channels):
        for i in range(samples):
            value = source[c, i]
            magnitude = abs(value)
            bad += not magnitude <= limit
            target[c, i] = 0.0 if magnitude < threshold else value
    return bad == 0


@_njit()
def all_finite(block):
    """Return True when every value of a 2-D array is finite."""
    channels, samples = block.shape
    for c in range(channels):
        for i in range(samples):
            if not np.isfinite(block[c, i]):
                return False
    return True


@_njit()
def ring_copy(source, source_pos, target, target_pos, n):
    """Copy ``n`` samples of every channel from ``source`` to ``target``, both rings.

    Sample ``i`` goes from ``source[:, (source_pos + i) % width]`` to
    ``target[:, (target_pos + i) % width]``, each with its own width
    (``shape[1]``); returns ``(source_pos, target_pos)`` after the ``n`` samples.
    A flat block is a ring read or written from 0 that never wraps (its width is
    at least ``n``), so one kernel appends a block to a ring buffer
    (``ring_copy(block, 0, ring, write_pos, n)``) and takes it out again
    (``ring_copy(ring, read_pos, block, 0, n)``).
    """
    channels = target.shape[0]
    source_width = source.shape[1]
    target_width = target.shape[1]
    # In runs that wrap neither ring: each run is a plain copy of 1-D views, which
    # vectorises (an element at a time with a wrap test per sample did not).
    while n > 0:
        run = min(n, source_width - source_pos, target_width - target_pos)
        for c in range(channels):
            src = source[c, source_pos : source_pos + run]
            dst = target[c, target_pos : target_pos + run]
            for i in range(run):
                dst[i] = src[i]
        n -= run
        source_pos += run
        if source_pos == source_width:
            source_pos = 0
        target_pos += run
        if target_pos == target_width:
            target_pos = 0
    return source_pos, target_pos


# ---------------------------------------------------------------------------
# Full-band gains at host rates above the model's (used by seproc.highband)
# ---------------------------------------------------------------------------


@_njit()
def apply_fullband_gain(
    spec, model_gain, min_gain, band_start, band_stop, activity, ref_start, model_stop
):
    """Apply a model's gain in the band it hears and a derived gain above it, in place.

    ``spec`` is a host-rate spectrum ``(frames, n_host_bins)`` whose first
    ``model_gain.shape[1]`` bins are the model's bins (same bin spacing). Bins below
    ``model_stop`` take the model's gain (raised to ``min_gain``, NaN counts as
    ``min_gain``, capped at 1), and ``activity`` is measured there as in
    :func:`apply_mask_gain`.

    Every bin from ``model_stop`` up takes the share of the noisy amplitude in bins
    ``ref_start:model_stop`` that the model keeps, ``sqrt(sum g^2 |X|^2 / sum |X|^2)``
    (1 for a silent frame), raised to ``min_gain``: the model's own decision about the
    top of the band it hears. (The model's last bins below its Nyquist frequency see
    the resampler's roll-off, not the host's signal, so they take the derived gain too.)
    """
    n_frames = spec.shape[0]
    for t in range(n_frames):
        kept = 0.0
        total = 0.0
        ref_kept = 0.0
        ref_total = 0.0
        for f in range(model_stop):
            gain = _clamp_gain(model_gain[t, f], min_gain)
            value = spec[t, f]
            power = value.real * value.real + value.imag * value.imag
            if band_start <= f < band_stop:
                total += power
                kept += gain * gain * power
            if f >= ref_start:
                ref_total += power
                ref_kept += gain * gain * power
            spec[t, f] = value * gain
        activity[t] = kept / total if total > 0.0 else 1.0
        gain = _clamp_gain(np.sqrt(ref_kept / ref_total) if ref_total > 0.0 else 1.0, min_gain)
        for f in range(model_stop, spec.shape[1]):
            spec[t, f] = spec[t, f] * gain


@_njit()
def delay_line(history, block, n, out):
    """Write ``block[:, :n]`` delayed by ``history.shape[1]`` samples into ``out[:, :n]``.

    ``history`` holds the last ``k`` samples of the stream (zeros at the start) and is
    updated, so consecutive calls delay a stream by exactly ``k`` samples whatever the
    partition.
    """
    channels, k = history.shape
    for c in range(channels):
        for i in range(n):
            out[c, i] = history[c, i] if i < k else block[c, i - k]
        if n >= k:
            for j in range(k):
                history[c, j] = block[c, n - k + j]
        else:
            for j in range(k - n):
                history[c, j] = history[c, j + n]
            for j in range(n):
                history[c, k - n + j] = block[c, j]


# ---------------------------------------------------------------------------
# Pitch filter (used by seproc.pitch)
# ---------------------------------------------------------------------------


@_njit(inline="always", fastmath={"reassoc", "contract"})
def _normalised_correlation(segment, window, segment_energy):
    """``<segment, window> / sqrt(segment_energy * <window, window>)`` in one pass."""
    dot = np.float32(0.0)
    power = np.float32(0.0)
    for i in range(segment.shape[0]):
        dot += segment[i] * window[i]
        power += window[i] * window[i]
    return dot / np.sqrt(np.float64(segment_energy) * np.float64(power) + 1e-20)


@_njit(fastmath={"reassoc", "contract"})
def pitch_lag(x, end, win_length, min_lag, max_lag, decimation, scratch):
    """Return the pitch period (samples) of ``x[end - win_length : end]``, searched in the past.

    The lag ``L`` in ``[min_lag, max_lag]`` that maximises the normalised correlation of
    the segment with ``x[end - win_length - L : end - L]`` (``x``: the stream high-passed,
    :func:`pitch_frames`): searched first on the signal summed over ``decimation``
    samples (``scratch``, float32, ``seproc.pitch.lag_scratch_samples`` long: the summed
    segment, its past and the correlation per coarse lag), where the shortest integer
    fraction (1/2, 1/3, ...) of the best lag that correlates within 0.85 of it is
    preferred (the true period rather than a multiple), then refined at the full rate
    within ``decimation - 1`` samples. Needs ``end >= win_length + max_lag``; returns
    ``min_lag`` for a silent segment. The sums may be reassociated (they vectorise):
    the result is the same on every call, not bit-equal to a sequential sum.
    """
    d = decimation
    n_small = win_length // d
    coarse_max = max_lag // d
    coarse_min = max(1, -(-min_lag // d))
    start = end - win_length
    past = start - coarse_max * d
    small = scratch[:n_small]
    large = scratch[n_small : 2 * n_small + coarse_max]
    corr = scratch[2 * n_small + coarse_max : 2 * n_small + 2 * coarse_max + 1]
    for i in range(n_small):
        acc = np.float32(0.0)
        for j in range(d):
            acc += x[start + i * d + j]
        small[i] = acc
    for i in range(n_small + coarse_max):
        acc = np.float32(0.0)
        for j in range(d):
            acc += x[past + i * d + j]
        large[i] = acc
    head = small[:n_small]
    energy = np.float32(0.0)
    for i in range(n_small):
        energy += head[i] * head[i]
    best, best_corr = coarse_min, -1.0
    for lag in range(coarse_min, coarse_max + 1):
        window = large[coarse_max - lag : coarse_max - lag + n_small]
        value = _normalised_correlation(head, window, energy)
        corr[lag] = value
        if value > best_corr:
            best, best_corr = lag, value
    if best_corr <= 0.0:
        return min_lag
    for k in range(best // coarse_min, 1, -1):  # the shortest period that fits
        part = int(best / k + 0.5)
        if part >= coarse_min and corr[part] > 0.85 * best_corr:
            best = part
            break
    centre = best * d
    refined, refined_corr = min_lag, -2.0
    segment = x[start:end]
    energy = np.float32(0.0)
    for i in range(win_length):
        energy += segment[i] * segment[i]
    for lag in range(max(min_lag, centre - d + 1), min(max_lag, centre + d - 1) + 1):
        value = _normalised_correlation(segment, x[start - lag : end - lag], energy)
        if value > refined_corr:
            refined, refined_corr = lag, value
    return refined


_HIGHPASS_FLOOR = 1e-30
"""Smaller high-passed samples are 0 in :func:`pitch_frames` (the denormal guard: the
DC blocker's tail after a step decays geometrically and would reach subnormals)."""


@_njit(inline="always")
def _shift_left(x, n, keep):
    """``x[:keep] = x[n : n + keep]`` in place, in runs of ``n`` that do not overlap.

    One forward loop over the overlapping ranges stays scalar (LLVM's runtime check
    finds them overlapping); runs of ``n`` samples, each copied from beyond its end,
    vectorise.
    """
    start = 0
    while start < keep and n > 0:
        stop = min(start + n, keep)
        dst, src = x[start:stop], x[start + n : stop + n]
        for k in range(stop - start):
            dst[k] = src[k]
        start = stop


@_njit()
def pitch_frames(
    history, filtered, block, n, first, count, last, window, rows, scratch, params, pole
):
    """Cut pitch-delayed frames of the frames a block completes, ``count`` at a time.

    ``params`` (int64) holds ``keep, hop, win_length, min_lag, max_lag, decimation,
    next_end``: ``history[c, :keep]`` holds the stream's last ``keep`` samples before
    ``block`` (``keep >= win_length + max_lag``), and the block's first frame ends
    ``next_end`` samples into it, each later one ``hop`` after it. The call with
    ``first == 0`` appends ``block[:, :n]`` to the history, and to ``filtered`` (same
    layout) the same high-passed, ``y[k] = x[k] - x[k - 1] + pole * y[k - 1]`` (a DC
    blocker: the period is searched there, so a low rumble or brown noise, strongly
    correlated over many milliseconds, does not outweigh the voice's periodicity; RNNoise
    whitens by LPC before its search; values below ``_HIGHPASS_FLOOR`` are written as 0).
    For frames ``first`` to
    ``first + count - 1`` of the block, with the frame's pitch period ``L``
    (:func:`pitch_lag`), ``window * x[end - win_length - L : end - L]`` goes to
    ``rows[(i - first) * channels + c, :win_length]`` (frame-major, channel-minor, as
    :func:`rows_to_spec` reads them). The call with ``last`` set (its ``count`` frames
    end the block's) keeps the history's last ``keep`` samples and moves ``next_end``
    on to the next block: one call with ``first = 0``, ``count`` = all frames and
    ``last`` does it all.
    """
    keep, hop, win_length = params[0], params[1], params[2]
    min_lag, max_lag, decimation, first_end = params[3], params[4], params[5], params[6]
    channels = history.shape[0]
    for c in range(channels):
        x = history[c]
        y = filtered[c]
        if first == 0:
            for i in range(n):
                value = block[c, i]
                high = value - x[keep + i - 1] + pole * y[keep + i - 1]
                if abs(high) < _HIGHPASS_FLOOR:  # a decaying tail would go subnormal
                    high = 0.0
                y[keep + i] = high
                x[keep + i] = value
        for i in range(first, first + count):
            end = keep + first_end + i * hop
            lag = pitch_lag(y, end, win_length, min_lag, max_lag, decimation, scratch)
            row = rows[(i - first) * channels + c, :win_length]
            segment = x[end - win_length - lag : end - lag]
            for k in range(win_length):
                row[k] = segment[k] * window[k]
        if last:
            _shift_left(x, n, keep)
            _shift_left(y, n, keep)
    if last:
        params[6] = first_end + (first + count) * hop - n


@_njit(fastmath={"reassoc", "contract"})
def pitch_comb(spec, delayed, gains, n_frames, min_gain, strength, edges, high, bands):
    """RNNoise's pitch filter on frames of a spectrum, in place, before their gains.

    For each frame ``t``, on triangular bands over the first ``delayed.shape[1]`` bins
    (band points at the bins ``edges``, the last one past the last bin; bin ``f`` between
    two points weighs ``high[f]`` towards the upper one): with ``X = spec[t]``,
    ``P = delayed[t]`` (the frame one pitch period earlier) and ``g`` the gains to be
    applied (raised to ``min_gain``), band energies ``Ex``, ``Ep``, correlation
    ``c = Re<X, P> / sqrt(Ex Ep)`` and the gain ``gb = sqrt(<g^2 |X|^2> / Ex)``, the
    comb's strength is 1 where ``c > gb`` and else
    ``sqrt(c^2 (1 - gb^2) / (0.001 + gb^2 (1 - c^2)))`` (clipped to [0, 1]), times
    ``strength * sqrt(Ex / Ep)``; ``X + r P`` (``r`` interpolated per bin) is then scaled
    back to each band's energy ``Ex``. Harmonics line up with their copy one period back
    and gain on the noise between them; where the gains are 1 nothing changes.
    ``bands`` is scratch ``(5, len(edges))`` float64. Band sums may be reassociated.
    """
    n_points = edges.shape[0]
    for t in range(n_frames):
        x_row, p_row, g_row = spec[t], delayed[t], gains[t]
        for j in range(5):
            bands[j, n_points - 1] = 0.0
        bands[0, 0] = bands[1, 0] = bands[2, 0] = bands[3, 0] = 0.0
        for b in range(n_points - 1):
            lo_xx = hi_xx = lo_pp = hi_pp = lo_xp = hi_xp = lo_gx = hi_gx = 0.0
            for f in range(edges[b], edges[b + 1]):
                w = high[f]
                x, p = x_row[f], p_row[f]
                gain = _clamp_gain(g_row[f], min_gain)
                xx = x.real * x.real + x.imag * x.imag
                pp = p.real * p.real + p.imag * p.imag
                xp = x.real * p.real + x.imag * p.imag
                gx = gain * gain * xx
                lo_xx += xx - w * xx
                hi_xx += w * xx
                lo_pp += pp - w * pp
                hi_pp += w * pp
                lo_xp += xp - w * xp
                hi_xp += w * xp
                lo_gx += gx - w * gx
                hi_gx += w * gx
            bands[0, b] += lo_xx
            bands[1, b] += lo_pp
            bands[2, b] += lo_xp
            bands[3, b] += lo_gx
            bands[0, b + 1] = hi_xx
            bands[1, b + 1] = hi_pp
            bands[2, b + 1] = hi_xp
            bands[3, b + 1] = hi_gx
        for b in range(n_points):
            ex, ep = bands[0, b], bands[1, b]
            c = bands[2, b] / np.sqrt(1e-20 + ex * ep)
            g2 = bands[3, b] / (ex + 1e-20)
            if c > np.sqrt(g2):
                r = 1.0
            else:
                r = c * c * (1.0 - g2) / (0.001 + g2 * (1.0 - c * c))
                r = np.sqrt(min(1.0, max(0.0, r)))
            bands[4, b] = strength * r * np.sqrt(ex / (1e-20 + ep))
        bands[1, 0] = 0.0  # from here: the comb's output energy
        for b in range(n_points - 1):
            r_lo, r_hi = bands[4, b], bands[4, b + 1]
            lo_yy = hi_yy = 0.0
            for f in range(edges[b], edges[b + 1]):
                w = high[f]
                y = x_row[f] + np.float32(r_lo + w * (r_hi - r_lo)) * p_row[f]
                x_row[f] = y
                yy = y.real * y.real + y.imag * y.imag
                lo_yy += yy - w * yy
                hi_yy += w * yy
            bands[1, b] += lo_yy
            bands[1, b + 1] = hi_yy
        for b in range(n_points):
            bands[4, b] = np.sqrt(bands[0, b] / (1e-20 + bands[1, b]))
        for b in range(n_points - 1):
            n_lo, n_hi = bands[4, b], bands[4, b + 1]
            for f in range(edges[b], edges[b + 1]):
                x_row[f] = x_row[f] * np.float32(n_lo + high[f] * (n_hi - n_lo))

"""All numba-compiled kernels of seproc, in one private module.

Each kernel is small, takes its constants as arguments (numba freezes globals at
compile time), and writes into a buffer that the caller owns, so the streaming hot
path allocates nothing. No global ``fastmath``: it changes NaN/Inf semantics.

Kernels are cached on disk (``cache=_CACHE``) in the first folder numba can write:
``NUMBA_CACHE_DIR``, ``__pycache__`` beside this file, or ``~/.cache/numba``. On a
read-only install with no writable home (containers, serverless) none is writable and
numba's ``cache=True`` would fail at import ("cannot cache function", librosa issue
1156); the kernels then compile in memory at every start instead. Set
``NUMBA_CACHE_DIR`` to a writable folder to pay the compile time once.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def _cache_is_possible() -> bool:
    """Return whether numba finds a writable cache folder for this module's kernels."""

    def probe() -> int:  # never compiled: numba picks the cache folder at decoration
        return 0

    try:
        nb.njit(cache=True)(probe)
    except RuntimeError:
        return False
    return True


_CACHE = _cache_is_possible()

# ---------------------------------------------------------------------------
# Framing, windowing and overlap-add (used by seproc.stft)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Log-magnitude conversion (used by seproc.features)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Polyphase resampling (used by seproc.resample)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Gain application and gain statistics (used by seproc.denoiser)
# ---------------------------------------------------------------------------


@nb.njit(cache=_CACHE)
def apply_mask_gain(spec, model_out, min_gain, band_start, band_stop, activity):
    """Apply a mask model's gain to a spectrum in place and measure speech activity.

    ``spec`` is complex ``(frames, n_bins)``; ``model_out`` the graph's gain of the
    same shape; every gain is raised to at least ``min_gain`` (the attenuation
    limit). ``activity[t]`` receives the share of frame ``t``'s energy in bins
    ``band_start:band_stop`` that the gain keeps (1 when the frame is silent).
    """
    n_frames, n_bins = spec.shape
    for t in range(n_frames):
        kept = 0.0
        total = 0.0
        for f in range(n_bins):
            gain = max(model_out[t, f], min_gain)
            gain = min(gain, 1.0)
            value = spec[t, f]
            if band_start <= f < band_stop:
                power = value.real * value.real + value.imag * value.imag
                total += power
                kept += gain * gain * power
            spec[t, f] = value * gain
        activity[t] = kept / total if total > 0.0 else 1.0


@nb.njit(cache=_CACHE)
def apply_noise_subtraction(spec, noise_db, min_gain, band_start, band_stop, activity):
    """Subtract a predicted noise magnitude from a spectrum in place (seed formulation).

    ``|S| = max(|X| - 10^(noise_db / 20), 0)`` with the noisy phase, i.e. the gain
    ``max(0, 1 - |N| / |X|)``, raised to at least ``min_gain``. ``activity`` as in
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
            gain = min(max(gain, min_gain), 1.0)
            if band_start <= f < band_stop:
                total += power
                kept += gain * gain * power
            spec[t, f] = value * gain
        activity[t] = kept / total if total > 0.0 else 1.0


@nb.njit(cache=_CACHE)
def all_finite(block):
    """Return True when every value of a 2-D array is finite."""
    channels, samples = block.shape
    for c in range(channels):
        for i in range(samples):
            if not np.isfinite(block[c, i]):
                return False
    return True


@nb.njit(cache=_CACHE)
def ring_write(ring, write_pos, source, n):
    """Append ``source[:, :n]`` to a ring buffer at ``write_pos``; return the new position."""
    channels, capacity = ring.shape
    pos = write_pos
    for i in range(n):
        for c in range(channels):
            ring[c, pos] = source[c, i]
        pos += 1
        if pos == capacity:
            pos = 0
    return pos


@nb.njit(cache=_CACHE)
def ring_read(ring, read_pos, target, n):
    """Move ``n`` samples from a ring buffer at ``read_pos`` into ``target[:, :n]``."""
    channels, capacity = ring.shape
    pos = read_pos
    for i in range(n):
        for c in range(channels):
            target[c, i] = ring[c, pos]
        pos += 1
        if pos == capacity:
            pos = 0
    return pos

"""Mixing clean speech and noise at a requested signal-to-noise ratio."""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def power(signal: np.ndarray) -> float:
    """Mean power of a signal (0 for an empty one)."""
    signal = np.asarray(signal, np.float64)
    return float(np.mean(signal * signal)) if signal.size else 0.0


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """Signal-to-noise ratio of ``clean`` against ``noise`` in dB."""
    return 10.0 * np.log10((power(clean) + _EPS) / (power(noise) + _EPS))


def mix_at_snr(
    clean: np.ndarray, noise: np.ndarray, snr_db_target: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Scale ``noise`` so that ``clean`` over it is ``snr_db_target`` dB, and add them.

    Parameters
    ----------
    clean, noise : np.ndarray [shape=(samples,)]
        Equal-length signals; ``noise`` must not be silent.
    snr_db_target : float
        The requested ratio of clean power to noise power, in dB.

    Returns
    -------
    noisy : np.ndarray [shape=(samples,)], float32
        ``clean + scaled_noise``, computed in float32 so that it equals the sum of the
        returned float32 parts.
    scaled_noise : np.ndarray [shape=(samples,)], float32
    noise_gain : float
        The factor applied to ``noise``.
    """
    clean = np.asarray(clean, np.float32)
    noise = np.asarray(noise, np.float32)
    if clean.shape != noise.shape:
        raise ValueError(f"clean {clean.shape} and noise {noise.shape} must have one shape")
    noise_power = power(noise)
    if noise_power <= _EPS:
        raise ValueError("noise is silent: it cannot be scaled to an SNR")
    noise_gain = float(np.sqrt(power(clean) / (noise_power * 10.0 ** (snr_db_target / 10.0))))
    scaled_noise = (noise * np.float32(noise_gain)).astype(np.float32)
    return (clean + scaled_noise).astype(np.float32), scaled_noise, noise_gain

"""Synthetic speech-like signals and tiny mixture folders for the evaluation tests.

The "speech" is a harmonic voice with a gliding pitch (100 to 220 Hz), formant-like
spectral tilt and syllable-rate on/off envelopes with pauses, so that denoisers which
track speech (RNNoise's VAD, DNSMOS) see something voice-like and noise estimators
see speech-free gaps. Nothing here is read from disk or downloaded.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE_HZ = 16000


def speech_like(seconds: float, *, seed: int = 0, sample_rate: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A voiced, syllabic, non-periodic test signal at about -20 dBFS RMS, float32."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = (
        150
        + 50 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
        + 15 * np.sin(2 * np.pi * 2.3 * t)
    )
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voice = np.zeros(n)
    for k in range(1, 40):
        freq = k * f0
        # two broad "formants" at 500 and 1500 Hz on top of a -6 dB/octave tilt
        weight = (1.0 / k) * (
            1.0 + 2.0 * np.exp(-(((freq - 500) / 300) ** 2)) + np.exp(-(((freq - 1500) / 400) ** 2))
        )
        voice += np.where(freq < sample_rate / 2 - 200, weight * np.sin(k * phase), 0.0)
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)), 0, None) ** 0.7
    pauses = (np.sin(2 * np.pi * 0.4 * t) > -0.6).astype(float)
    envelope = np.convolve(syllables * pauses, np.hanning(321) / np.hanning(321).sum(), "same")
    signal = voice * envelope
    signal *= 0.1 / np.sqrt(np.mean(signal**2))
    return signal.astype(np.float32)


def white_noise(n_samples: int, *, seed: int = 1) -> np.ndarray:
    """Gaussian white noise of unit power, float32."""
    return np.random.default_rng(seed).standard_normal(n_samples).astype(np.float32)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus ``noise`` scaled to ``snr_db``, float32."""
    gain = np.sqrt(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise.astype(np.float64) ** 2))
    return (clean + noise * np.float32(gain * 10 ** (-snr_db / 20))).astype(np.float32)


def write_mixture_set(
    folder: Path, specs: list[tuple[float, str]], *, seconds: float = 2.0
) -> Path:
    """Write a tiny test set in the layout ``training.evaluate`` reads.

    Parameters
    ----------
    folder : Path
        Created if missing; receives ``noisy/``, ``clean/``, ``noise/`` and
        ``manifest.csv``.
    specs : list of (snr_db, noise_type)
        One mixture per entry; ``noise_type`` is ``"white"``, ``"hum"`` (50 Hz and
        harmonics) or ``"rumble"`` (mostly a 12 Hz sine, below hearing).

    Returns
    -------
    Path
        ``folder``.
    """
    (folder / "noisy").mkdir(parents=True, exist_ok=True)
    (folder / "clean").mkdir(parents=True, exist_ok=True)
    (folder / "noise").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (snr_db, noise_type) in enumerate(specs):
        clean = speech_like(seconds, seed=index)
        t = np.arange(clean.size) / SAMPLE_RATE_HZ
        if noise_type == "white":
            noise = white_noise(clean.size, seed=100 + index)
        elif noise_type == "rumble":
            noise = np.sin(2 * np.pi * 12 * t) + 0.1 * white_noise(clean.size, seed=100 + index)
        else:
            noise = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8))
        noise = noise.astype(np.float32)
        noisy = mix(clean, noise, snr_db)
        mixture_id = f"mix{index:03d}"
        sf.write(folder / "noisy" / f"{mixture_id}.wav", noisy, SAMPLE_RATE_HZ, subtype="FLOAT")
        sf.write(folder / "clean" / f"{mixture_id}.wav", clean, SAMPLE_RATE_HZ, subtype="FLOAT")
        sf.write(folder / "noise" / f"{mixture_id}.wav", noisy - clean, SAMPLE_RATE_HZ, "FLOAT")
        rows.append(
            {
                "mixture_id": mixture_id,
                "noisy": f"noisy/{mixture_id}.wav",
                "clean": f"clean/{mixture_id}.wav",
                "snr_db": snr_db,
                "noise_type": noise_type,
            }
        )
    with open(folder / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder

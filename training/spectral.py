"""The runtime's signal path in PyTorch: STFT, log-power features, gain, overlap-add.

Matches ``models/FORMAT.md`` exactly, so the model trains on the features the
runtime computes: square root of a periodic Hann window of ``n_fft = 320``
samples, hop 160, unnormalised transform ``X[f] = sum_n x[n] w[n] e^{-2j pi f n / N}``,
feature ``10 log10(max(|X|^2, 1e-10))`` then per-bin ``(db - mean) / std``.

Framing: the signal is preceded by ``n_fft - hop`` zeros (as a stream starts from
silence) and followed by zeros up to a whole number of hops plus one frame, so
every sample lies under two frames and :func:`istft` inverts :func:`stft`
exactly (``w^2`` of a periodic Hann at 50 % overlap sums to one).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["AMIN", "HOP", "N_FFT", "istft", "log_power_db", "n_frames", "sqrt_hann", "stft"]

N_FFT = 320
HOP = 160
AMIN = 1e-10
SAMPLE_RATE_HZ = 16000


def sqrt_hann(
    n_fft: int = N_FFT, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Square root of the periodic Hann window of ``n_fft`` samples (computed in float64)."""
    n = torch.arange(n_fft, dtype=torch.float64, device=device)
    return torch.sqrt(0.5 - 0.5 * torch.cos(2.0 * math.pi * n / n_fft)).to(dtype)


def n_frames(n_samples: int, hop: int = HOP) -> int:
    """Frames :func:`stft` makes of ``n_samples``: ``ceil(n / hop) + 1``."""
    return -(-n_samples // hop) + 1


def stft(audio: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Complex STFT ``[batch, frames, n_fft // 2 + 1]`` of ``audio [batch, samples]``."""
    n = audio.shape[-1]
    frames = n_frames(n, hop)
    total = (frames - 1) * hop + n_fft
    padded = F.pad(audio, (n_fft - hop, total - (n_fft - hop) - n))
    chunks = padded.unfold(-1, n_fft, hop)
    return torch.fft.rfft(chunks * sqrt_hann(n_fft, audio.device, audio.dtype), n=n_fft, dim=-1)


def istft(spec: torch.Tensor, n_samples: int, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """Inverse of :func:`stft`: windowed overlap-add, trimmed to ``n_samples``."""
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1) * sqrt_hann(n_fft, spec.device, spec.real.dtype)
    batch, n_fr, _ = frames.shape
    total = (n_fr - 1) * hop + n_fft
    out = F.fold(
        frames.transpose(1, 2), output_size=(1, total), kernel_size=(1, n_fft), stride=(1, hop)
    ).reshape(batch, total)
    return out[:, n_fft - hop : n_fft - hop + n_samples]


def log_power_db(spec: torch.Tensor, amin: float = AMIN) -> torch.Tensor:
    """``10 log10(max(|X|^2, amin))`` of a complex spectrum."""
    power = spec.real.square() + spec.imag.square()
    return 10.0 * torch.log10(torch.clamp(power, min=amin))

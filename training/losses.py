"""Training losses: compressed-magnitude spectral loss, multi-resolution STFT loss, SI-SDR.

The total is a weighted sum (weights from the ``[loss]`` table of a config); each
term is also returned on its own so the log shows what each one does:

- ``compressed_mag``: mean squared error of ``|S|^0.3`` (power-law compression
  makes quiet speech count, which PESQ and STOI hear, and does not reward
  suppressing it the way a plain magnitude MSE does);
- ``compressed_complex``: the same on the complex spectrum with compressed
  magnitude (a small weight: with the noisy phase kept it pulls gains down a little);
- ``mrstft``: spectral convergence + compressed-magnitude L1 at STFT sizes other than the
  model's (256/64, 512/128, 1024/256), so the output is right at several resolutions;
- ``sisdr``: negative scale-invariant SDR of the resynthesised waveform, in dB
  (items without speech are left out of it);
- ``noise_db``: for ``noise_subtraction`` models, the seed's loss: mean squared error
  of the predicted noise log-power against the true one (normalised by the feature std).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["LossConfig", "compressed_loss", "mrstft_loss", "si_sdr", "total_loss"]

_EPS = 1e-8


@dataclass
class LossConfig:
    """Loss weights and settings (the ``[loss]`` table of a training config)."""

    compression: float = 0.3
    compressed_mag: float = 3.0
    compressed_complex: float = 0.3
    mrstft: float = 0.5
    sisdr: float = 0.01
    noise_db: float = 0.0
    mrstft_sizes: list[tuple[int, int]] = field(
        default_factory=lambda: [(256, 64), (512, 128), (1024, 256)]
    )


def compressed_loss(
    estimate: torch.Tensor, target: torch.Tensor, compression: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compressed-magnitude and compressed-complex MSE of two complex spectra."""
    half = compression / 2.0
    mag_e = (estimate.real.square() + estimate.imag.square() + _EPS) ** half
    mag_t = (target.real.square() + target.imag.square() + _EPS) ** half
    mag_loss = torch.mean((mag_e - mag_t) ** 2)
    # unit phasors times the compressed magnitude
    abs_e = torch.sqrt(estimate.real.square() + estimate.imag.square() + _EPS)
    abs_t = torch.sqrt(target.real.square() + target.imag.square() + _EPS)
    ce = estimate * (mag_e / abs_e)
    ct = target * (mag_t / abs_t)
    complex_loss = torch.mean((ce - ct).abs().square())
    return mag_loss, complex_loss


def mrstft_loss(
    estimate: torch.Tensor,
    target: torch.Tensor,
    sizes: list[tuple[int, int]],
    compression: float = 0.3,
) -> torch.Tensor:
    """Multi-resolution STFT loss of two waveforms ``[batch, samples]``.

    Spectral convergence plus the L1 distance of power-law compressed magnitudes
    (instead of the usual log magnitudes, whose L1 is dominated by inaudible bins
    far below the speech level).
    """
    total = estimate.new_zeros(())
    half = compression / 2.0
    for n_fft, hop in sizes:
        window = torch.hann_window(n_fft, device=estimate.device)
        se = torch.stft(estimate, n_fft, hop, window=window, return_complex=True)
        st = torch.stft(target, n_fft, hop, window=window, return_complex=True)
        pe = se.real.square() + se.imag.square() + _EPS
        pt = st.real.square() + st.imag.square() + _EPS
        sc = torch.linalg.norm(pt.sqrt() - pe.sqrt()) / (torch.linalg.norm(pt.sqrt()) + 1e-3)
        compressed = torch.mean(torch.abs(pt**half - pe**half))
        total = total + sc + compressed
    return total / len(sizes)


def si_sdr(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per item of ``[batch, samples]`` (zero-mean signals)."""
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    target = target - target.mean(dim=-1, keepdim=True)
    scale = (estimate * target).sum(-1, keepdim=True) / (
        target.square().sum(-1, keepdim=True) + _EPS
    )
    projection = scale * target
    noise = estimate - projection
    return 10.0 * torch.log10(
        (projection.square().sum(-1) + _EPS) / (noise.square().sum(-1) + _EPS)
    )


def total_loss(
    config: LossConfig,
    *,
    estimate_spec: torch.Tensor,
    clean_spec: torch.Tensor,
    estimate_wave: torch.Tensor,
    clean_wave: torch.Tensor,
    has_speech: torch.Tensor,
    noise_db_pred: torch.Tensor | None = None,
    noise_db_true: torch.Tensor | None = None,
    feature_std_db: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the terms; returns the total and every term as a float."""
    terms: dict[str, torch.Tensor] = {}
    zero = estimate_wave.new_zeros(())
    if config.compressed_mag or config.compressed_complex:
        mag, cplx = compressed_loss(estimate_spec, clean_spec, config.compression)
        terms["compressed_mag"], terms["compressed_complex"] = mag, cplx
    if config.mrstft:
        terms["mrstft"] = mrstft_loss(
            estimate_wave, clean_wave, config.mrstft_sizes, config.compression
        )
    if config.sisdr:
        if bool(has_speech.any()):
            values = si_sdr(estimate_wave[has_speech], clean_wave[has_speech])
            terms["sisdr"] = -values.mean()
        else:
            terms["sisdr"] = zero
    if config.noise_db:
        if noise_db_pred is None or noise_db_true is None or feature_std_db is None:
            raise ValueError("the noise_db loss needs the predicted and true noise dB")
        terms["noise_db"] = torch.mean(((noise_db_pred - noise_db_true) / feature_std_db) ** 2)
    total = zero
    for name, value in terms.items():
        total = total + getattr(config, name) * value
    return total, {name: float(value.detach()) for name, value in terms.items()}

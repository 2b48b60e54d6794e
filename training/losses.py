"""Training losses: compressed-magnitude spectral loss, multi-resolution STFT loss, SI-SDR.

The total is a weighted sum (weights from the ``[loss]`` table of a config); each
term is also returned on its own so the log shows what each one does:

- ``compressed_mag``: mean squared error of ``|S|^0.3`` (power-law compression
  makes quiet speech count, which PESQ and STOI hear, and does not reward
  suppressing it the way a plain magnitude MSE does);
- ``over_suppression``: the part of ``compressed_mag`` where the estimate is *below* the
  clean target (speech taken out), counted again: an asymmetric term that makes
  removing voice cost more than leaving noise (Wang et al. 2020, VoiceFilter-Lite),
  aimed at the thin voice that DNSMOS SIG hears;
- ``erb_band``: the same compressed-magnitude MSE on ERB-spaced bands (the mean power of
  each of ``erb_bands`` bands, at least two bins wide: 32 bands put 20 of them below
  2 kHz, where the per-bin term weighs 40 of 161 bins), so the level of the voice's
  low and middle bands counts as much as the ear makes it count (the band level a mask
  diagnosis found wrong in 300-1000 Hz, ``training.mask_diagnosis``);
- ``compressed_complex``: the same on the complex spectrum with compressed
  magnitude (a small weight: with the noisy phase kept it pulls gains down a little);
- ``mrstft``: spectral convergence + compressed-magnitude L1 at STFT sizes other than the
  model's (256/64, 512/128, 1024/256), so the output is right at several resolutions;
- ``sisdr``: negative scale-invariant SDR of the resynthesised waveform, in dB
  (items without speech are left out of it);
- ``stoi``: negative STOI of the waveform, computed the way STOI is (Taal et al. 2011:
  one-third-octave band envelopes from 150 Hz, 30-frame segments of about 384 ms,
  normalised and clipped at -15 dB SDR, correlation per band and segment) but at
  16 kHz and differentiable, so it can be trained on (Kolbæk et al. 2018); items
  without speech and segments more than 40 dB below an item's loudest frame are left out;
- ``noise_db``: for ``noise_subtraction`` models, the seed's loss: mean squared error
  of the predicted noise log-power against the true one (normalised by the feature std).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch

from training import spectral

__all__ = [
    "LossConfig",
    "compressed_loss",
    "erb_band_loss",
    "erb_band_matrix",
    "mrstft_loss",
    "si_sdr",
    "stoi_approx",
    "total_loss",
]

_EPS = 1e-8


@dataclass
class LossConfig:
    """Loss weights and settings (the ``[loss]`` table of a training config)."""

    compression: float = 0.3
    compressed_mag: float = 3.0
    compressed_complex: float = 0.3
    over_suppression: float = 0.0
    erb_band: float = 0.0
    erb_bands: int = 32
    mrstft: float = 0.5
    sisdr: float = 0.01
    stoi: float = 0.0
    noise_db: float = 0.0
    target_mask_power: float = 0.0
    """When > 0, the terms compare against a shaped target instead of the clean reference:
    the noisy spectrum times the ideal ratio mask ``|S| / |X|`` (clipped to ``[10 **
    (target_floor_db / 20), 1]``) raised to this power, resynthesised
    (:func:`shaped_target`). Above 1 it takes more out where noise dominates; with a
    perfect network on the full-band validation words (``training.evaluate_fullband``'s
    oracle mask) 1.0 scores DNSMOS OVRL 2.98 / BAK 3.80 and 1.5 3.07 / 4.02."""
    target_floor_db: float = -40.0
    """The shaped target's lowest gain, dB."""
    mrstft_sizes: list[tuple[int, int]] = field(
        default_factory=lambda: [(256, 64), (512, 128), (1024, 256)]
    )

    def __post_init__(self) -> None:
        if not self.target_mask_power >= 0:
            raise ValueError(f"[loss] target_mask_power must be >= 0, got {self.target_mask_power}")
        if not self.target_floor_db < 0:
            raise ValueError(f"[loss] target_floor_db must be < 0, got {self.target_floor_db}")


def shaped_target(
    noisy_spec: torch.Tensor, clean_spec: torch.Tensor, power: float, floor_db: float
) -> torch.Tensor:
    """Return the noisy spectrum times ``clip(|S| / |X|, floor, 1) ** power``, no gradient.

    ``power = 1`` is the ideal ratio mask with the noisy phase (the oracle that
    ``training.evaluate.oracle_mask`` resynthesises); larger powers suppress bins where
    noise dominates further, keeping those where speech does.
    """
    if power <= 0:
        raise ValueError(f"power must be > 0, got {power}")
    with torch.no_grad():
        ratio = clean_spec.abs() / noisy_spec.abs().clamp_min(1e-12)
        gain = ratio.clamp(10.0 ** (floor_db / 20.0), 1.0) ** power
        return noisy_spec * gain


def compressed_loss(
    estimate: torch.Tensor, target: torch.Tensor, compression: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compressed-magnitude, compressed-complex and over-suppression MSE of two spectra.

    The third value is the mean of the squared compressed-magnitude shortfall
    ``max(|S|^c - |Ŝ|^c, 0)^2``: the estimate's missing speech, not its excess noise.
    """
    half = compression / 2.0
    mag_e = (estimate.real.square() + estimate.imag.square() + _EPS) ** half
    mag_t = (target.real.square() + target.imag.square() + _EPS) ** half
    mag_loss = torch.mean((mag_e - mag_t) ** 2)
    shortfall_loss = torch.mean(torch.clamp(mag_t - mag_e, min=0.0) ** 2)
    # unit phasors times the compressed magnitude
    abs_e = torch.sqrt(estimate.real.square() + estimate.imag.square() + _EPS)
    abs_t = torch.sqrt(target.real.square() + target.imag.square() + _EPS)
    ce = estimate * (mag_e / abs_e)
    ct = target * (mag_t / abs_t)
    complex_loss = torch.mean((ce - ct).abs().square())
    return mag_loss, complex_loss, shortfall_loss


def erb_band_matrix(
    n_bins: int, sample_rate_hz: int, n_bands: int, min_bins: int = 2
) -> torch.Tensor:
    """Rectangular ERB-spaced bands over ``n_bins`` STFT bins: ``[n_bins, bands]``.

    Band edges are equally spaced on the ERB-rate scale (Glasberg and Moore 1990,
    ``21.4 log10(1 + 0.00437 f)``) from 0 Hz to Nyquist, rounded to bins and widened to
    at least ``min_bins`` bins (so the lowest bands are ``min_bins`` wide and there may
    be fewer than ``n_bands``). Each bin belongs to one band; each column averages its
    band (weights ``1 / width``).
    """
    if n_bins < 2 or n_bands < 1 or min_bins < 1:
        raise ValueError(
            f"need n_bins >= 2, n_bands >= 1, min_bins >= 1; got {n_bins}, {n_bands}, {min_bins}"
        )
    nyquist_hz = sample_rate_hz / 2.0
    top = 21.4 * math.log10(1.0 + 0.00437 * nyquist_hz)
    edges = [0]
    for k in range(1, n_bands + 1):
        hz = (10.0 ** (top * k / n_bands / 21.4) - 1.0) / 0.00437
        edge = max(round(hz / nyquist_hz * (n_bins - 1)), edges[-1] + min_bins)
        if edge >= n_bins:
            break
        edges.append(edge)
    if n_bins - edges[-1] < min_bins and len(edges) > 1:
        edges.pop()
    edges.append(n_bins)
    matrix = torch.zeros(n_bins, len(edges) - 1)
    for band, (lo, hi) in enumerate(itertools.pairwise(edges)):
        matrix[lo:hi, band] = 1.0 / (hi - lo)
    return matrix


def erb_band_loss(
    estimate: torch.Tensor, target: torch.Tensor, bands: torch.Tensor, compression: float
) -> torch.Tensor:
    """MSE of the compressed band magnitudes ``(mean power in band)^(c/2)`` of two spectra.

    ``estimate``, ``target``: complex ``[..., frames, bins]``; ``bands``:
    :func:`erb_band_matrix`.
    """
    half = compression / 2.0
    power_e = (estimate.real.square() + estimate.imag.square()) @ bands
    power_t = (target.real.square() + target.imag.square()) @ bands
    return torch.mean(((power_e + _EPS) ** half - (power_t + _EPS) ** half) ** 2)


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


# STOI's constants (pystoi), with frames of the same duration at 16 kHz
_STOI_WINDOW_SAMPLES = 410  # 25.6 ms (256 samples at STOI's 10 kHz)
_STOI_HOP_SAMPLES = 205
_STOI_N_FFT = 512
_STOI_BANDS = 15
_STOI_LOWEST_CENTRE_HZ = 150.0
_STOI_SEGMENT_FRAMES = 30
_STOI_CLIP_DB = -15.0
_STOI_DYNAMIC_RANGE_DB = 40.0
_STOI_FLOOR = 1e-10


def _third_octave_matrix(n_fft: int, sample_rate_hz: int, device: torch.device) -> torch.Tensor:
    """``[bands, bins]`` 0/1 matrix of STOI's one-third-octave bands (pystoi ``thirdoct``)."""
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate_hz / n_fft
    centres = _STOI_LOWEST_CENTRE_HZ * 2.0 ** (torch.arange(_STOI_BANDS, dtype=torch.float64) / 3)
    matrix = torch.zeros(_STOI_BANDS, freqs.numel(), dtype=torch.float64)
    for band, centre in enumerate(centres):
        low = int(torch.argmin((freqs - centre * 2.0 ** (-1 / 6)).abs()))
        high = int(torch.argmin((freqs - centre * 2.0 ** (1 / 6)).abs()))
        matrix[band, low:high] = 1.0
    return matrix.to(device=device, dtype=torch.float32)


def stoi_approx(
    estimate: torch.Tensor, target: torch.Tensor, sample_rate_hz: int = 16000
) -> torch.Tensor:
    """Differentiable STOI of waveforms ``[batch, samples]``: one value per item.

    Parameters
    ----------
    estimate, target : torch.Tensor [shape=(batch, samples)]
        Processed and clean signals; each item should be longer than 30 frames
        (about 0.4 s).
    sample_rate_hz : int
        Their rate; the frames keep STOI's durations (25.6 ms, hop 12.8 ms).

    Returns
    -------
    torch.Tensor [shape=(batch,)]
        Mean correlation over bands and segments, after dropping the frames more than
        40 dB below the item's loudest (an item with fewer than 30 such frames gets 0).
        Close to ``pystoi.stoi``, which works at 10 kHz and rebuilds the signal from the
        kept frames before its second STFT.
    """
    scale = sample_rate_hz / 16000
    win_length = round(_STOI_WINDOW_SAMPLES * scale)
    hop = round(_STOI_HOP_SAMPLES * scale)
    n_fft = max(_STOI_N_FFT, 1 << (win_length - 1).bit_length())
    window = torch.hann_window(win_length + 2, device=estimate.device)[1:-1]
    bands = _third_octave_matrix(n_fft, sample_rate_hz, estimate.device)

    def band_power(wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            wave, n_fft, hop, win_length, window=window, center=False, return_complex=True
        )
        return torch.einsum("kf,bft->bkt", bands, spec.real.square() + spec.imag.square())

    def envelopes(wave: torch.Tensor) -> torch.Tensor:
        # a floor 100 dB below the signal's loudest band keeps sqrt differentiable
        # without flattening quiet bands, at any level (STOI is scale-invariant)
        power = band_power(wave)
        floor = _STOI_FLOOR * power.detach().amax((-1, -2), keepdim=True) + 1e-30
        return torch.sqrt(power + floor)

    x = envelopes(target)  # [batch, bands, frames]
    y = envelopes(estimate)
    # STOI's silent-frame rule: keep the frames within 40 dB of the target's loudest
    frames = target.unfold(-1, win_length, hop)[:, : x.shape[-1]] * window
    energy_db = 10 * torch.log10(frames.square().sum(-1) + _EPS)
    active = energy_db > energy_db.amax(-1, keepdim=True) - _STOI_DYNAMIC_RANGE_DB
    clip = 1.0 + 10.0 ** (-_STOI_CLIP_DB / 20.0)
    values = []
    for item in range(x.shape[0]):
        keep = active[item]
        if int(keep.sum()) < _STOI_SEGMENT_FRAMES:
            values.append(x.new_zeros(()))
            continue
        x_seg = x[item][:, keep].unfold(-1, _STOI_SEGMENT_FRAMES, 1)  # [bands, segments, 30]
        y_seg = y[item][:, keep].unfold(-1, _STOI_SEGMENT_FRAMES, 1)
        alpha = torch.linalg.norm(x_seg, dim=-1, keepdim=True) / torch.linalg.norm(
            y_seg, dim=-1, keepdim=True
        )
        y_clipped = torch.minimum(alpha * y_seg, clip * x_seg)
        xc = x_seg - x_seg.mean(-1, keepdim=True)
        yc = y_clipped - y_clipped.mean(-1, keepdim=True)
        corr = (xc * yc).sum(-1) / (
            torch.linalg.norm(xc, dim=-1) * torch.linalg.norm(yc, dim=-1)
        ).clamp_min(1e-30)
        values.append(corr.mean())
    return torch.stack(values)


_ERB_CACHE: dict[tuple[int, int, str], torch.Tensor] = {}


def _erb_bands(n_bins: int, n_bands: int, device: torch.device) -> torch.Tensor:
    key = (n_bins, n_bands, str(device))
    if key not in _ERB_CACHE:
        bands = erb_band_matrix(n_bins, spectral.SAMPLE_RATE_HZ, n_bands)
        _ERB_CACHE[key] = bands.to(device)
    return _ERB_CACHE[key]


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
    if config.compressed_mag or config.compressed_complex or config.over_suppression:
        mag, cplx, shortfall = compressed_loss(estimate_spec, clean_spec, config.compression)
        terms["compressed_mag"], terms["compressed_complex"] = mag, cplx
        if config.over_suppression:
            terms["over_suppression"] = shortfall
    if config.erb_band:
        bands = _erb_bands(clean_spec.shape[-1], config.erb_bands, clean_spec.device)
        terms["erb_band"] = erb_band_loss(estimate_spec, clean_spec, bands, config.compression)
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
    if config.stoi:
        if bool(has_speech.any()):
            terms["stoi"] = -stoi_approx(estimate_wave[has_speech], clean_wave[has_speech]).mean()
        else:
            terms["stoi"] = zero
    if config.noise_db:
        if noise_db_pred is None or noise_db_true is None or feature_std_db is None:
            raise ValueError("the noise_db loss needs the predicted and true noise dB")
        terms["noise_db"] = torch.mean(((noise_db_pred - noise_db_true) / feature_std_db) ** 2)
    total = zero
    for name, value in terms.items():
        total = total + getattr(config, name) * value
    return total, {name: float(value.detach()) for name, value in terms.items()}

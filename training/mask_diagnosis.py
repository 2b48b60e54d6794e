r"""Where a mask model loses what listeners hear: its gains with the ideal mask swapped in.

On the full-band evaluation's mixtures (``training.evaluate_fullband``, resampled to
16 kHz), the model's gains ``G`` and the ideal ratio mask ``O = |S| / |X|`` (clipped to
the model's floor and 1, the ``oracle-mask`` system) are computed on the model's
frames; each variant below resynthesises the noisy STFT times a mix of the two, and
DNSMOS SIG/BAK/OVRL and PESQ-wb score it:

* ``model``, ``oracle``: ``G`` and ``O`` alone;
* ``max(model,oracle)``: every bin the model suppressed more than the ideal mask gets
  the ideal gain back: what over-suppression (speech taken out) costs;
* ``min(model,oracle)``: every bin it suppressed less gets the ideal gain: what residual
  noise costs;
* ``oracle LO-HI Hz``: the ideal mask in one band, the model's gains elsewhere: where
  in frequency the model's errors cost most;
* for the band :data:`DETAIL_BAND_HZ` (300-1000 Hz, where the shipped model loses most),
  two halves of that swap: ``... smoothed`` takes the ideal mask averaged (in power)
  over :data:`SMOOTH_BINS` bins, its level without the harmonic detail; ``... level``
  keeps the model's gains but scales them per frame to the ideal mask's band energy.

Command (about 3 minutes for the 48 validation mixtures on one core)::

    python -m training.mask_diagnosis --archive /path/to/mcvqoe_intelligibility-1.1.3.tar.gz \
        --model models/seproc-default.onnx --split val --clips-per-talker 2
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

BANDS_HZ = ((0, 300), (300, 1000), (1000, 3000), (3000, 8001))
DETAIL_BAND_HZ = (300, 1000)
SMOOTH_BINS = 5
SCORES = ("pesq_wb", "sig", "bak", "ovrl")


def hybrid_gains(
    model_gain: np.ndarray,
    ideal_gain: np.ndarray,
    bin_hz: float,
    noisy_power: np.ndarray | None = None,
    gain_floor: float = 0.01,
) -> dict[str, np.ndarray]:
    """Return the diagnosis's gain variants (see the module docstring), keyed by name.

    Parameters
    ----------
    model_gain, ideal_gain : np.ndarray [shape=(..., frames, bins)]
        The model's gains and the ideal ratio mask on the same frames.
    bin_hz : float
        The spacing of the bins in Hz (bin ``k`` is at ``k * bin_hz``).
    noisy_power : np.ndarray or None
        The mixture's power on the same frames; given, the ``smoothed`` and ``level``
        variants of :data:`DETAIL_BAND_HZ` are added.
    gain_floor : float
        The lowest gain (amplitude factor) of those two variants: the model's floor.

    Returns
    -------
    dict[str, np.ndarray]
        Name -> gains of the same shape.
    """
    if model_gain.shape != ideal_gain.shape:
        raise ValueError(
            f"model_gain {model_gain.shape} and ideal_gain {ideal_gain.shape} must match"
        )
    freqs_hz = np.arange(model_gain.shape[-1]) * bin_hz
    variants = {
        "model": model_gain,
        "oracle": ideal_gain,
        "max(model,oracle)": np.maximum(model_gain, ideal_gain),
        "min(model,oracle)": np.minimum(model_gain, ideal_gain),
    }
    for lo_hz, hi_hz in BANDS_HZ:
        band = (freqs_hz >= lo_hz) & (freqs_hz < hi_hz)
        mixed = model_gain.copy()
        mixed[..., band] = ideal_gain[..., band]
        variants[f"oracle {lo_hz}-{hi_hz} Hz"] = mixed
    if noisy_power is None:
        return variants
    from scipy.ndimage import uniform_filter1d

    lo_hz, hi_hz = DETAIL_BAND_HZ
    band = (freqs_hz >= lo_hz) & (freqs_hz < hi_hz)
    floor, tiny = gain_floor, 1e-20
    clean_power = ideal_gain**2 * noisy_power
    smoothed = np.sqrt(
        uniform_filter1d(clean_power, SMOOTH_BINS, axis=-1)
        / np.maximum(uniform_filter1d(noisy_power, SMOOTH_BINS, axis=-1), tiny)
    )
    mixed = model_gain.copy()
    mixed[..., band] = np.clip(smoothed[..., band], floor, 1.0)
    variants[f"oracle {lo_hz}-{hi_hz} Hz smoothed"] = mixed
    ideal_energy = clean_power[..., band].sum(axis=-1, keepdims=True)
    model_energy = (model_gain[..., band] ** 2 * noisy_power[..., band]).sum(axis=-1, keepdims=True)
    mixed = model_gain.copy()
    scale = np.sqrt(ideal_energy / np.maximum(model_energy, tiny))
    mixed[..., band] = np.clip(model_gain[..., band] * scale, floor, 1.0)
    variants[f"oracle {lo_hz}-{hi_hz} Hz level"] = mixed
    return variants


def diagnose(
    model_path: Path,
    mixtures: Sequence[dict[str, object]],
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    progress: Callable = iter,
) -> dict[str, dict[str, float]]:
    """Mean scores of every variant over ``mixtures`` (48 kHz ``clean``/``noisy``).

    ``score(clean16, estimate16)`` returns a dict with the keys of :data:`SCORES`.
    """
    import soxr
    import torch

    from training import spectral
    from training.from_onnx import model_from_onnx
    from training.train import load_config

    config = load_config(Path(__file__).parent / "configs" / "cpu-finetune-sig.toml")
    model = model_from_onnx(model_path, config)
    if model.config.formulation != "mask":
        raise ValueError(f"{model_path} is not a mask model; the diagnosis mixes gains")
    bin_hz = 16000 / spectral.N_FFT
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for mixture in progress(mixtures):
        clean = soxr.resample(mixture["clean"], 48000, 16000).astype(np.float32)
        noisy = soxr.resample(mixture["noisy"], 48000, 16000).astype(np.float32)
        with torch.no_grad():
            noisy_spec = spectral.stft(torch.from_numpy(noisy)[None])
            clean_spec = spectral.stft(torch.from_numpy(clean)[None])
            noisy_db = spectral.log_power_db(noisy_spec)
            gain = model((noisy_db - model.feature_mean_db) / model.feature_std_db)[0]
            ideal = torch.clamp(
                clean_spec.abs() / noisy_spec.abs().clamp_min(1e-12), model.gain_floor, 1.0
            )
        power = noisy_spec.abs().square().numpy()
        for name, mixed in hybrid_gains(
            gain.numpy(), ideal.numpy(), bin_hz, power, model.gain_floor
        ).items():
            spec = noisy_spec * torch.from_numpy(mixed)
            estimate = spectral.istft(spec, noisy.size)[0].numpy()
            for key, value in score(clean, estimate).items():
                sums[name][key].append(value)
    return {name: {k: float(np.mean(v)) for k, v in by.items()} for name, by in sums.items()}


def _scorer() -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    from training import metrics

    dnsmos = metrics.Dnsmos(num_threads=1)

    def score(clean: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
        result = dnsmos(estimate)
        return {
            "pesq_wb": metrics.pesq_wb(clean, estimate),
            "sig": result.sig,
            "bak": result.bak,
            "ovrl": result.ovrl,
        }

    return score


def table(means: dict[str, dict[str, float]]) -> str:
    """Format :func:`diagnose`'s means as a markdown table."""
    lines = ["| gains | " + " | ".join(SCORES) + " |", "|---" * (len(SCORES) + 1) + "|"]
    for name, values in means.items():
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:.3f}" for k in SCORES) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the diagnosis and print the table."""
    from tqdm import tqdm

    from training import evaluate_fullband as fullband

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="mcvqoe sdist (.tar.gz)")
    parser.add_argument("--model", type=Path, default=Path("models/seproc-default.onnx"))
    parser.add_argument("--split", choices=("test", "val"), default="val")
    parser.add_argument("--clips-per-talker", type=int, default=2)
    args = parser.parse_args(argv)
    talkers = fullband.read_talker_clips(args.archive)
    mixes = fullband.mixtures(fullband.clean_clips(talkers, args.clips_per_talker, args.split))
    means = diagnose(args.model, mixes, _scorer(), progress=lambda m: tqdm(m, desc="mixtures"))
    print(f"{args.model}, {len(mixes)} {args.split} mixtures\n")
    print(table(means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

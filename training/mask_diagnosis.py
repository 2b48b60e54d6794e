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
SCORES = ("pesq_wb", "stoi", "si_sdr", "sig", "bak", "ovrl")
#: ``--postfilters``: (per-hop release factor, exponent) of the release variants scored
RELEASES = ((0.5, 1.0), (0.7, 1.0), (0.75, 1.2), (0.8, 1.2), (0.8, 1.4), (0.85, 1.0), (0.9, 1.2))


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


def _released(gains: np.ndarray, factor: float, exponent: float) -> np.ndarray:
    """``gains [frames, bins]`` through the runtime's release (a copy, from silence)."""
    from seproc._kernels import release_gains

    out = gains.copy()
    release_gains(out, np.zeros(gains.shape[-1], np.float32), factor, exponent)
    return out


def _as_variants(
    variants: dict[str, np.ndarray], gain_floor: float, shape: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """Return the variants clipped to ``[gain_floor, 1]``, float32, in the caller's ``shape``."""
    return {
        name: np.clip(v, gain_floor, 1.0).astype(np.float32).reshape(shape)
        for name, v in variants.items()
    }


def postfilter_gains(
    model_gain: np.ndarray,
    ideal_gain: np.ndarray,
    bin_hz: float,
    noisy_power: np.ndarray | None = None,
    gain_floor: float = 0.01,
) -> dict[str, np.ndarray]:
    """Blind post-filters of the model's gains ``[frames, bins]`` (the clean voice unknown).

    What run 8 chose the runtime's post-filter from (``models/README.md``): exponents,
    PercepNet's ``g sin(pi g / 2)`` with the frame's energy kept, a speech-presence gate,
    smoothing across bins and over time, the runtime's release
    (:func:`seproc._kernels.release_gains`, :data:`RELEASES`) and an 18 dB attenuation
    limit. ``ideal_gain`` is not used (the signature is :func:`hybrid_gains`'s);
    ``noisy_power`` is needed for the energy-keeping and gating variants.
    """
    from scipy.ndimage import median_filter

    shape = np.shape(model_gain)  # one clip: [frames, bins], or [1, frames, bins]
    g = np.asarray(model_gain, np.float32).reshape(-1, shape[-1])
    power = np.ones_like(g) if noisy_power is None else np.asarray(noisy_power).reshape(g.shape)
    freqs_hz = np.arange(g.shape[-1]) * bin_hz

    def smoothed(a: float) -> np.ndarray:
        out = g.copy()
        for t in range(1, len(out)):
            out[t] = a * out[t - 1] + (1 - a) * g[t]
        return out

    warped = g * np.sin(np.pi / 2 * g)
    kept = (g**2 * power).sum(-1, keepdims=True) / np.maximum(
        (warped**2 * power).sum(-1, keepdims=True), 1e-20
    )
    speech = (freqs_hz >= 300) & (freqs_hz < 3000)
    presence = np.sqrt(
        (g[:, speech] ** 2 * power[:, speech]).sum(-1) / np.maximum(power[:, speech].sum(-1), 1e-20)
    )
    gate = 0.3 + 0.7 * np.clip(presence / 0.15, 0, 1)[:, None]
    variants = {
        "model": g,
        "g sin(pi g/2), energy kept": np.minimum(warped * np.sqrt(kept), 1.0),
        "g^1.5": g**1.5,
        "g^0.8": g**0.8,
        "speech-presence gate": g * gate,
        "max over +-1 bin": np.maximum(g, np.maximum(np.roll(g, 1, -1), np.roll(g, -1, -1))),
        "median over 3 bins": median_filter(g, size=(1, 3)),
        "0.3 g[t-1] + 0.7 g[t]": smoothed(0.3),
        **{f"release {a} then ^{p}": _released(g, a, p) for a, p in RELEASES},
        "attenuation limit 18 dB": np.maximum(g, 10 ** (-18 / 20)),
    }
    return _as_variants(variants, gain_floor, shape)


#: ``--residual``: (over-subtraction beta, exponent) of the noise-estimate post-filters
RESIDUAL = ((0.25, 0.5), (0.5, 1.0), (1.0, 1.0), (1.0, 0.5), (2.0, 0.5))
#: the shipped model's release (150 dB/s: the factor per 10 ms hop), under every
#: ``--residual`` variant
SHIPPED_RELEASE = 10 ** (-150 * 0.01 / 20)


def noise_estimate(
    power: np.ndarray, gain: np.ndarray, smoothing: float = 0.9, absence_power: float = 1.0
) -> np.ndarray:
    """Per-bin noise power of the noisy ``power [frames, bins]``, the model's gains as presence.

    Recursive averaging where the model hears noise: ``N[t] = N[t-1] + (1 - a) (1 -
    g[t]**2)**k (P[t] - N[t-1])`` (``a = smoothing`` per frame, 0.9: ~100 ms; ``k =
    absence_power``, larger: only bins the model clearly removes update it), started at
    the first frame's power: a bin the model passes (``g = 1``) leaves the estimate as it
    was. Causal, one state per bin: a runtime could run it per frame.
    """
    estimate = np.empty_like(power)
    current = power[0].copy()
    for t in range(len(power)):
        weight = (1 - gain[t] ** 2) ** absence_power
        current += (1 - smoothing) * weight * (power[t] - current)
        estimate[t] = current
    return estimate


def residual_gains(
    model_gain: np.ndarray,
    ideal_gain: np.ndarray,
    bin_hz: float,
    noisy_power: np.ndarray | None = None,
    gain_floor: float = 0.01,
) -> dict[str, np.ndarray]:
    """Post-filters against the noise the model leaves (issue 19's "residual-noise shaping").

    On top of the shipped release (:data:`SHIPPED_RELEASE`), each variant multiplies the
    gains by a spectral-subtraction gain from :func:`noise_estimate`: ``w = max(floor, 1 -
    beta * N / P) ** exponent`` (:data:`RESIDUAL`): bins the noise dominates lose more,
    bins the voice dominates keep the model's gain. The signature is :func:`hybrid_gains`'s
    (``ideal_gain`` unused).
    """
    shape = np.shape(model_gain)
    g = np.asarray(model_gain, np.float32).reshape(-1, shape[-1])
    power = np.asarray(noisy_power, np.float64).reshape(g.shape)
    released = _released(g, SHIPPED_RELEASE, 1.0)
    variants = {"model": g, "shipped release": released}
    for k in (1.0, 4.0):
        noise = noise_estimate(power, g.astype(np.float64), absence_power=k)
        ratio = noise / np.maximum(power, 1e-20)
        for beta, exponent in RESIDUAL:
            w = np.maximum(gain_floor, 1.0 - beta * ratio) ** exponent
            variants[f"release, residual k {k:g} beta {beta} ^{exponent}"] = released * w
    return _as_variants(variants, gain_floor, shape)


def diagnose(
    model_path: Path,
    mixtures: Sequence[dict[str, object]],
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    progress: Callable = iter,
    variants: Callable[..., dict[str, np.ndarray]] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean scores of every variant over ``mixtures`` (48 kHz ``clean``/``noisy``).

    ``variants`` makes the gains to score (:func:`hybrid_gains` by default, or
    :func:`postfilter_gains`).

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
        for name, mixed in (variants or hybrid_gains)(
            gain.numpy().reshape(power.shape), ideal.numpy(), bin_hz, power, model.gain_floor
        ).items():
            spec = noisy_spec * torch.from_numpy(mixed)
            estimate = spectral.istft(spec, noisy.size)[0].numpy()
            for key, value in score(clean, estimate).items():
                sums[name][key].append(value)
    return {name: {k: float(np.mean(v)) for k, v in by.items()} for name, by in sums.items()}


def score_checkpoints(
    checkpoints: Sequence[Path],
    mixtures: Sequence[dict[str, object]],
    score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    release_db_per_s: float = 150.0,
    progress: Callable = iter,
) -> dict[str, dict[str, float]]:
    """Mean scores of PyTorch checkpoints over ``mixtures``, end to end at 16 kHz.

    For models that have no runtime yet (run 16's deep filter): each checkpoint's signal
    path as in training (``training.train.forward_batch``: the training STFT, the mask,
    the deep filter where the model has one), once with its raw gains and once with
    the runtime's release at ``release_db_per_s`` (the shipped 150 dB/s) on them; no
    pitch filter. Keys ``"<checkpoint parent>/<name>, raw"`` and ``", release R"``.
    """
    import soxr
    import torch

    from training.train import forward_batch, load_model

    models = {}
    for path in checkpoints:
        model, _ = load_model(path)
        model.eval()
        models[f"{path.parent.name}/{path.name}"] = model
    sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for mixture in progress(mixtures):
        clean = soxr.resample(mixture["clean"], 48000, 16000).astype(np.float32)
        noisy = soxr.resample(mixture["noisy"], 48000, 16000).astype(np.float32)
        wave = torch.from_numpy(noisy)[None]
        for name, model in models.items():
            for release in (0.0, release_db_per_s):
                model.config.postfilter_release_db_per_s = release
                with torch.no_grad():
                    estimate = forward_batch(model, wave)[1][0].numpy()
                label = f"{name}, raw" if release == 0 else f"{name}, release {release:g}"
                for key, value in score(clean, estimate).items():
                    sums[label][key].append(value)
    return {name: {k: float(np.mean(v)) for k, v in by.items()} for name, by in sums.items()}


def _scorer() -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    from training import metrics

    dnsmos = metrics.Dnsmos(num_threads=1)

    def score(clean: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
        result = dnsmos(estimate)
        return {
            "pesq_wb": metrics.pesq_wb(clean, estimate),
            "stoi": metrics.stoi(clean, estimate),
            "si_sdr": metrics.si_sdr(clean, estimate),
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
    parser.add_argument(
        "--postfilters",
        action="store_true",
        help="score blind post-filters of the model's gains (run 8), not the ideal-mask swaps",
    )
    parser.add_argument(
        "--checkpoints",
        type=Path,
        nargs="+",
        help="score these PyTorch checkpoints end to end instead (run 16's deep filter)",
    )
    parser.add_argument(
        "--residual",
        action="store_true",
        help="score the noise-estimate post-filters (run 15) on the shipped release",
    )
    args = parser.parse_args(argv)
    talkers = fullband.read_talker_clips(args.archive)
    mixes = fullband.mixtures(fullband.clean_clips(talkers, args.clips_per_talker, args.split))
    if args.checkpoints:
        means = score_checkpoints(
            args.checkpoints, mixes, _scorer(), progress=lambda m: tqdm(m, desc="mixtures")
        )
        print(f"{len(mixes)} {args.split} mixtures, PyTorch signal path\n")
        print(table(means))
        return 0
    means = diagnose(
        args.model,
        mixes,
        _scorer(),
        progress=lambda m: tqdm(m, desc="mixtures"),
        variants=(
            residual_gains
            if args.residual
            else postfilter_gains
            if args.postfilters
            else hybrid_gains
        ),
    )
    print(f"{args.model}, {len(mixes)} {args.split} mixtures\n")
    print(table(means))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

r"""Full-band (48 kHz) evaluation on real full-band voices, side by side with the peers.

The set: NIST Modified Rhyme Test recordings of talkers F3 and M3 (48 kHz, speech to
~20 kHz, DNSMOS OVRL about 3; ``shared/DATA.md``), read from the PyPI sdist
``mcvqoe-intelligibility==1.1.3`` (``pip download --no-deps --no-binary
mcvqoe-intelligibility mcvqoe-intelligibility==1.1.3``). No seproc model has trained on
these voices. Three consecutive words of one talker make one clean clip (about 6 s);
each clip is mixed with full-band noises generated at 48 kHz (white, pink, amplitude-
modulated pink, HVAC-like hum and hiss) at 0, 5 and 10 dB SNR, measured over the band.
Clips come from two disjoint word sets: ``test`` (the tables) and ``val`` (the only
one used to choose the high band's settings).

Every system gets the 48 kHz noisy clip and returns 48 kHz: seproc through
``Denoiser(sample_rate=48000)`` (the full-band path), ``seproc-16k`` the same model
between ``soxr`` resamplers at 16 kHz (what 48 kHz users got before the full-band
path), RNNoise and DeepFilterNet3 natively at 48 kHz, NSNet2 and noisereduce at
16 kHz between ``soxr`` resamplers.

Scores:

* at 16 kHz (``soxr`` down): PESQ-wb, STOI, SI-SDR, DNSMOS SIG/BAK/OVRL;
* at 48 kHz, with ``--visqol``: ViSQOL v3 in audio mode (``visqol-python``), the
  full-band perceptual score (MOS-LQO, about 1 to 4.75);
* at 48 kHz: log-spectral distance (dB) per band 0-4, 4-8, 8-12, 12-20 kHz against
  the clean clip, over the frames where the clean clip is within 50 dB of its loudest
  frame (2048-sample Hann frames, hop 512, power floored at 1e-10).

Command (about 10 minutes on 2 cores)::

    python -m training.evaluate_fullband --archive /path/to/mcvqoe_intelligibility-1.1.3.tar.gz \\
        --out models/eval/fullband
"""

from __future__ import annotations

import argparse
import io
import json
import re
import tarfile
import time
from collections.abc import Sequence
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf

RATE_HZ = 48000
SNRS_DB = (0, 5, 10)
NOISE_TYPES = ("white", "pink", "pink-modulated", "hum-hiss")
LSD_BANDS_HZ = ((0, 4000), (4000, 8000), (8000, 12000), (12000, 20000))
SYSTEMS = (
    "noisy",
    "seproc",
    "seproc-16k",
    "rnnoise",
    "deepfilternet3",
    "nsnet2",
    "noisereduce",
)
# Not run by default: the ideal ratio mask on the model's 16 kHz frames, computed from the
# clean reference (``training.evaluate.oracle_mask``): the mask formulation with a perfect
# network, the ceiling of what the model could score.
ORACLE = "oracle-mask"
_MEMBER = re.compile(r"audio_clips/(F3|M3)_b(\d+)_w(\d+)_orig\.wav$")
_WORDS_PER_CLIP = 3


# -- the set ---------------------------------------------------------------------------


def read_talker_clips(archive: str | Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Read the F3 and M3 recordings from the sdist: talker -> sorted ``(name, audio)``."""
    talkers: dict[str, list[tuple[str, np.ndarray]]] = {"F3": [], "M3": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = _MEMBER.search(member.name)
            if not match or not member.isfile():
                continue
            data = tar.extractfile(member).read()
            audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
            if rate != RATE_HZ:
                raise ValueError(f"{member.name}: {rate} Hz, expected {RATE_HZ}")
            key = (int(match.group(2)), int(match.group(3)))
            talkers[match.group(1)].append((key, member.name.rsplit("/", 1)[1], audio[:, 0]))
    return {t: [(name, audio) for _, name, audio in sorted(clips)] for t, clips in talkers.items()}


def clean_clips(
    talkers: dict[str, list[tuple[str, np.ndarray]]], n_per_talker: int, split: str
) -> list[tuple[str, np.ndarray]]:
    """Concatenate consecutive words into clean clips; ``test`` and ``val`` use disjoint words.

    ``test`` takes word groups from the start of each talker's list, ``val`` from the end.
    """
    out = []
    for talker, clips in sorted(talkers.items()):
        groups = [
            clips[i : i + _WORDS_PER_CLIP]
            for i in range(0, len(clips) - _WORDS_PER_CLIP + 1, _WORDS_PER_CLIP)
        ]
        step = max(1, (len(groups) // 2) // n_per_talker)
        half = groups[: len(groups) // 2] if split == "test" else groups[len(groups) // 2 :]
        for group in half[::step][:n_per_talker]:
            audio = np.concatenate([a for _, a in group]).astype(np.float64)
            audio *= 10 ** (-23 / 20) / (np.sqrt(np.mean(audio**2)) + 1e-12)
            names = "+".join(name.removesuffix("_orig.wav") for name, _ in group)
            out.append((f"{talker}:{names}", audio))
    return out


def make_noise(kind: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Generate ``n_samples`` of one full-band noise type at 48 kHz (unit RMS)."""
    white = rng.standard_normal(n_samples)
    if kind == "white":
        noise = white
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n_samples))
        freqs = np.fft.rfftfreq(n_samples, 1 / RATE_HZ)
        pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(freqs, 20.0)), n_samples)
        pink /= np.sqrt(np.mean(pink**2))
        if kind == "pink":
            noise = pink
        elif kind == "pink-modulated":
            t = np.arange(n_samples) / RATE_HZ
            rate_hz = rng.uniform(0.5, 3.0)
            envelope = 1.0 + 0.8 * np.sin(2 * np.pi * rate_hz * t + rng.uniform(0, 2 * np.pi))
            noise = pink * envelope
        elif kind == "hum-hiss":
            t = np.arange(n_samples) / RATE_HZ
            brown = np.cumsum(rng.standard_normal(n_samples))
            brown -= np.convolve(brown, np.ones(4801) / 4801, mode="same")
            brown /= np.sqrt(np.mean(brown**2))
            hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 6))
            noise = brown + 0.5 * hum / np.sqrt(np.mean(hum**2)) + 0.3 * white
        else:
            raise ValueError(f"unknown noise type {kind!r}; use one of {NOISE_TYPES}")
    return noise / np.sqrt(np.mean(noise**2))


def mixtures(clips: Sequence[tuple[str, np.ndarray]], seed: int = 0) -> list[dict[str, object]]:
    """Every clip with every noise type at every SNR: ``clean``, ``noisy`` and labels."""
    out = []
    for i, (clip_id, clean) in enumerate(clips):
        for j, kind in enumerate(NOISE_TYPES):
            rng = np.random.default_rng([seed, i, j])
            noise = make_noise(kind, clean.size, rng)
            for snr_db in SNRS_DB:
                gain = np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
                noisy = clean + gain * noise
                peak = np.max(np.abs(noisy))
                scale = min(1.0, 0.99 / peak)
                out.append(
                    {
                        "id": f"{clip_id}|{kind}|{snr_db}",
                        "clip": clip_id,
                        "noise": kind,
                        "snr_db": snr_db,
                        "clean": (clean * scale).astype(np.float32),
                        "noisy": (noisy * scale).astype(np.float32),
                    }
                )
    return out


# -- scores -----------------------------------------------------------------------------


def band_lsd_db(clean: np.ndarray, estimate: np.ndarray, bands_hz=LSD_BANDS_HZ) -> dict[str, float]:
    """Log-spectral distance per band (dB) over the clean clip's active frames.

    Parameters
    ----------
    clean, estimate : np.ndarray [shape=(samples,)]
        48 kHz signals, aligned.

    Returns
    -------
    dict
        ``lsd_{lo}_{hi}k`` -> mean over active frames of the RMS over the band's bins
        of ``10 log10(P_clean) - 10 log10(P_estimate)``.
    """
    n_fft, hop = 2048, 512
    window = np.hanning(n_fft)

    def power(x: np.ndarray) -> np.ndarray:
        n = 1 + max(0, (x.size - n_fft) // hop)
        idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]
        frames = np.pad(x, (0, max(0, n_fft - x.size)))[idx] * window
        return np.maximum(np.abs(np.fft.rfft(frames, axis=-1)) ** 2, 1e-10)

    p_ref, p_est = power(np.asarray(clean, np.float64)), power(np.asarray(estimate, np.float64))
    energy = p_ref.sum(axis=1)
    active = energy >= energy.max() * 1e-5
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE_HZ)
    diff_db = 10 * np.log10(p_ref[active]) - 10 * np.log10(p_est[active])
    out = {}
    for lo, hi in bands_hz:
        sel = (freqs >= lo) & (freqs < hi)
        out[f"lsd_{lo // 1000}_{hi // 1000}k"] = float(
            np.mean(np.sqrt(np.mean(diff_db[:, sel] ** 2, axis=1)))
        )
    return out


def bandwidth_hz(audio: np.ndarray, floor_db: float = 60.0) -> float:
    """Highest frequency where the long-term spectrum stays within ``floor_db`` of its peak."""
    n_fft = 4096
    frames = audio[: audio.size // n_fft * n_fft].reshape(-1, n_fft) * np.hanning(n_fft)
    spectrum = np.mean(np.abs(np.fft.rfft(frames, axis=-1)) ** 2, axis=0)
    level_db = 10 * np.log10(spectrum + 1e-20)
    above = np.nonzero(level_db >= level_db.max() - floor_db)[0]
    return float(above[-1] * RATE_HZ / n_fft)


# -- systems ----------------------------------------------------------------------------


class _Systems:
    """Each system as ``name -> function(noisy_48k) -> output_48k``, built once per worker."""

    def __init__(
        self,
        names: Sequence[str],
        attenuation_limit_db: float | None = None,
        model: str | None = None,
        postfilter: bool = True,
    ) -> None:
        import soxr

        from seproc import Denoiser
        from training import peers

        self._soxr = soxr
        self.run = {}
        for name in names:
            if name == "noisy":
                self.run[name] = lambda x: x.copy()
            elif name == "seproc":
                denoiser = Denoiser(
                    model,
                    sample_rate=RATE_HZ,
                    attenuation_limit_db=attenuation_limit_db,
                    postfilter=postfilter,
                )
                self.run[name] = lambda x, d=denoiser: d(x, RATE_HZ)
            elif name == "seproc-16k":
                denoiser16 = Denoiser(
                    model,
                    sample_rate=16000,
                    attenuation_limit_db=attenuation_limit_db,
                    postfilter=postfilter,
                )
                self.run[name] = lambda x, d=denoiser16: self._at_16k(lambda y: d(y, 16000), x)
            elif name == ORACLE:
                self.run[name] = None  # needs the clean reference: _score_mixture runs it
            elif name in ("rnnoise", "deepfilternet3"):
                peer = peers.make_peer(name)
                self.run[name] = peer.denoise_48k
            else:
                peer = peers.make_peer(name)
                self.run[name] = lambda x, p=peer: self._at_16k(p.denoise, x)

    def _at_16k(self, denoise16, x48: np.ndarray) -> np.ndarray:
        x16 = self._soxr.resample(x48, RATE_HZ, 16000).astype(np.float32)
        y48 = self._soxr.resample(np.asarray(denoise16(x16), np.float32), 16000, RATE_HZ)
        out = np.zeros_like(x48)
        n = min(out.size, y48.size)
        out[:n] = y48[:n]
        return out


_WORKER: dict[str, object] = {}


def _init(
    names: Sequence[str],
    with_dnsmos: bool,
    with_visqol: bool,
    attenuation_limit_db: float | None,
    model: str | None,
    postfilter: bool = True,
    oracle_power: float = 1.0,
) -> None:
    from training import metrics

    _WORKER["systems"] = _Systems(names, attenuation_limit_db, model, postfilter)
    _WORKER["oracle_power"] = oracle_power
    _WORKER["dnsmos"] = metrics.Dnsmos() if with_dnsmos else None
    _WORKER["visqol"] = None
    if with_visqol:
        from visqol.api import VisqolApi

        api = VisqolApi()
        api.create(mode="audio")
        _WORKER["visqol"] = api


def _score_mixture(mixture: dict[str, object]) -> list[dict[str, object]]:
    import soxr

    from training import metrics

    systems: _Systems = _WORKER["systems"]  # type: ignore[assignment]
    dnsmos = _WORKER["dnsmos"]
    clean = mixture["clean"]
    clean16 = soxr.resample(clean, RATE_HZ, 16000)
    rows = []
    for name, run in systems.run.items():
        if name == ORACLE:
            from training.evaluate import oracle_mask

            noisy16 = soxr.resample(mixture["noisy"], RATE_HZ, 16000)
            ideal = oracle_mask(
                clean16.astype(np.float32),
                noisy16.astype(np.float32),
                power=_WORKER["oracle_power"],
            )
            output = np.zeros(mixture["noisy"].size, np.float32)
            up = soxr.resample(ideal, 16000, RATE_HZ)
            output[: min(up.size, output.size)] = up[: output.size]
        else:
            output = np.asarray(run(mixture["noisy"]), np.float32)
        out16 = soxr.resample(output, RATE_HZ, 16000)
        row = {k: mixture[k] for k in ("id", "clip", "noise", "snr_db")}
        row["system"] = name
        row.update(band_lsd_db(clean, output))
        if dnsmos is not None:
            row["pesq_wb"] = metrics.pesq_wb(clean16, out16)
            row["stoi"] = metrics.stoi(clean16, out16)
            row["si_sdr_db"] = metrics.si_sdr(clean16, out16)
            scores = dnsmos(out16)
            row.update(sig=scores.sig, bak=scores.bak, ovrl=scores.ovrl)
        if _WORKER["visqol"] is not None:
            result = _WORKER["visqol"].measure_from_arrays(
                clean.astype(np.float64), output.astype(np.float64), RATE_HZ
            )
            row["visqol_audio"] = float(result.moslqo)
        rows.append(row)
    return rows


def run(
    mixes: Sequence[dict[str, object]],
    names: Sequence[str],
    *,
    workers: int = 2,
    with_dnsmos: bool = True,
    with_visqol: bool = False,
    attenuation_limit_db: float | None = None,
    model: str | None = None,
    postfilter: bool = True,
    oracle_power: float = 1.0,
) -> list[dict[str, object]]:
    """Score every system on every mixture, in ``workers`` processes.

    ``postfilter=False`` runs seproc on the model's raw gains (``--no-postfilter``);
    ``oracle_power`` raises the oracle mask to a power (``--oracle-power``).
    """
    try:
        from tqdm import tqdm
    except ImportError:  # progress is optional

        def tqdm(iterable, **_):
            return iterable

    rows: list[dict[str, object]] = []
    with Pool(
        workers,
        _init,
        (
            tuple(names),
            with_dnsmos,
            with_visqol,
            attenuation_limit_db,
            model,
            postfilter,
            oracle_power,
        ),
    ) as pool:
        for part in tqdm(
            pool.imap(_score_mixture, mixes), total=len(mixes), desc="mixtures", unit="mix"
        ):
            rows.extend(part)
    return rows


# -- white noise through the Denoiser: the band table ------------------------------------


def white_noise_band_table(seconds: float = 4.0) -> list[dict[str, object]]:
    """Output level relative to the input per band, white noise at 44.1 and 48 kHz.

    Rows for ``attenuation_limit_db`` 0 (bypass), 12 and ``None`` (default), and the
    bypass error (output minus the delayed input) relative to the input.
    """
    from seproc import Denoiser

    bands = ((0, 4000), (4000, 8000), (8000, 9000), (9000, 12000), (12000, 20000))
    rows = []
    for rate in (44100, 48000):
        x = (0.1 * np.random.default_rng(1).standard_normal(int(seconds * rate))).astype(np.float32)
        for limit in (0, 12, None):
            y = Denoiser(sample_rate=rate, attenuation_limit_db=limit)(x, rate)
            spec_x = np.abs(np.fft.rfft(x)) ** 2
            spec_y = np.abs(np.fft.rfft(y)) ** 2
            freqs = np.fft.rfftfreq(x.size, 1 / rate)
            row: dict[str, object] = {"rate_hz": rate, "attenuation_limit_db": limit}
            for lo, hi in bands:
                sel = (freqs >= lo) & (freqs < hi)
                row[f"{lo / 1000:g}-{hi / 1000:g} kHz"] = float(
                    10 * np.log10(spec_y[sel].sum() / spec_x[sel].sum())
                )
            row["error_db"] = float(10 * np.log10(np.sum((y - x) ** 2) / np.sum(x**2)))
            rows.append(row)
    return rows


# -- report ------------------------------------------------------------------------------


def _bootstrap_ci(diffs: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple:
    """Mean and 95 % bootstrap interval of per-mixture differences."""
    diffs = diffs[np.isfinite(diffs)]
    if diffs.size == 0:
        return float("nan"), float("nan"), float("nan")
    means = diffs[rng.integers(0, diffs.size, (n, diffs.size))].mean(axis=1)
    return float(diffs.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _table(rows, systems, metrics_, group=None) -> list[str]:
    groups = sorted({r[group] for r in rows}) if group else [None]
    lines = []
    head = ["system"] + ([group] if group else []) + list(metrics_)
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for g in groups:
        for system in systems:
            sel = [r for r in rows if r["system"] == system and (g is None or r[group] == g)]
            if not sel:
                continue
            cells = [system] + ([str(g)] if group else [])
            for m in metrics_:
                vals = np.array([r[m] for r in sel if m in r], float)
                vals = vals[np.isfinite(vals)]
                cells.append(f"{vals.mean():.3f}" if vals.size else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(rows, reference, band_rows, header: Sequence[str]) -> str:
    """Write the markdown report: means, per SNR, per noise, paired CIs, LSD, band table."""
    systems = [s for s in (*SYSTEMS, ORACLE) if any(r["system"] == s for r in rows)]
    names = ("pesq_wb", "stoi", "si_sdr_db", "sig", "bak", "ovrl", "visqol_audio")
    quality = [m for m in names if m in rows[0]]
    lsd = [k for k in rows[0] if k.startswith("lsd_")]
    lines = list(header)
    lines += ["", "## Clean references", ""]
    lines += [f"- {k}: {v}" for k, v in reference.items()]
    if quality:
        lines += ["", "## All mixtures (16 kHz metrics)", "", *_table(rows, systems, quality)]
        lines += ["", "## Per SNR", "", *_table(rows, systems, quality, "snr_db")]
        lines += ["", "## Per noise type", "", *_table(rows, systems, quality, "noise")]
        if "seproc" in systems:  # paired differences need seproc's rows
            lines += ["", "## seproc minus each peer, mean and 95 % bootstrap interval", ""]
            lines += [
                "| peer | SNR | " + " | ".join(quality) + " |",
                "|" + "---|" * (len(quality) + 2),
            ]
            rng = np.random.default_rng(0)
            by_id = {(r["id"], r["system"]): r for r in rows}
            ids = sorted({r["id"] for r in rows})
            for peer in systems:
                if peer == "seproc":
                    continue
                for snr in (*SNRS_DB, "all"):
                    cells = [peer, str(snr)]
                    for m in quality:
                        d = np.array(
                            [
                                by_id[(i, "seproc")][m] - by_id[(i, peer)][m]
                                for i in ids
                                if (i, peer) in by_id
                                and (snr == "all" or by_id[(i, peer)]["snr_db"] == snr)
                            ]
                        )
                        mean, lo, hi = _bootstrap_ci(d, rng)
                        cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
                    lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Log-spectral distance to the clean clip at 48 kHz (dB, lower is better)", ""]
    lines += _table(rows, systems, lsd)
    lines += ["", "## White noise through the Denoiser: output level per band (dB re input)", ""]
    keys = list(band_rows[0])
    lines += ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in band_rows:
        lines.append(
            "| "
            + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in r.values())
            + " |"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="mcvqoe sdist (.tar.gz)")
    parser.add_argument("--out", type=Path, default=Path("models/eval/fullband"))
    parser.add_argument("--split", choices=("test", "val"), default="test")
    parser.add_argument("--clips-per-talker", type=int, default=4)
    parser.add_argument(
        "--systems",
        nargs="+",
        default=list(SYSTEMS),
        choices=(*SYSTEMS, ORACLE),
        help=f"systems to score (default: all but {ORACLE}, which needs the clean reference)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-dnsmos", action="store_true", help="LSD only (fast)")
    parser.add_argument("--model", default=None, help="seproc ONNX model (default: bundled)")
    parser.add_argument(
        "--attenuation-limit-db", type=float, default=None, help="seproc's attenuation limit"
    )
    parser.add_argument(
        "--no-postfilter",
        dest="postfilter",
        action="store_false",
        help="run seproc on the model's raw gains, without the gain post-filter a format-2 "
        "model carries (for A/B)",
    )
    parser.add_argument(
        "--oracle-power",
        type=float,
        default=1.0,
        help="raise the oracle-mask system's ideal ratio mask to this power (> 0)",
    )
    parser.add_argument(
        "--visqol",
        action="store_true",
        help="also ViSQOL v3 audio mode at 48 kHz (visqol-python; ~3 s per clip and system)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build the set, run the systems, write ``results.jsonl`` and ``README.md``."""
    args = parse_args(argv)
    start = time.time()
    talkers = read_talker_clips(args.archive)
    clips = clean_clips(talkers, args.clips_per_talker, args.split)
    mixes = mixtures(clips)
    rows = run(
        mixes,
        args.systems,
        workers=args.workers,
        with_dnsmos=not args.no_dnsmos,
        with_visqol=args.visqol,
        attenuation_limit_db=args.attenuation_limit_db,
        model=args.model,
        postfilter=args.postfilter,
        oracle_power=args.oracle_power,
    )
    reference: dict[str, object] = {
        "clips": f"{len(clips)} ({', '.join(c for c, _ in clips)})",
        "bandwidth_hz (60 dB), median": float(np.median([bandwidth_hz(a) for _, a in clips])),
    }
    if not args.no_dnsmos:
        import soxr

        from training import metrics

        dnsmos = metrics.Dnsmos()
        scores = [dnsmos(soxr.resample(a, RATE_HZ, 16000)) for _, a in clips]
        reference["DNSMOS SIG/BAK/OVRL"] = "/".join(
            f"{np.mean([getattr(s, k) for s in scores]):.2f}" for k in ("sig", "bak", "ovrl")
        )
    band_rows = white_noise_band_table()
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "results.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    header = [
        f"# Full-band evaluation ({args.split}): {len(mixes)} mixtures at 48 kHz",
        "",
        f"Command: `python -m training.evaluate_fullband --archive ARCHIVE --split {args.split}"
        f" --clips-per-talker {args.clips_per_talker}"
        + (" --visqol" if args.visqol else "")
        + ("" if args.postfilter else " --no-postfilter")
        + (f" --model {args.model}" if args.model else "")
        + (
            f" --attenuation-limit-db {args.attenuation_limit_db:g}"
            if args.attenuation_limit_db is not None
            else ""
        )
        + "`"
        + f"; {time.time() - start:.0f} s on this machine.",
    ]
    text = report(rows, reference, band_rows, header)
    (args.out / "README.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

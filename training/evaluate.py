r"""Evaluate seproc against its peers, side by side, in one command.

Usage::

    python -m training.evaluate --sets data/mixtures/test_real data/mixtures/test_tts \\
        --model models/seproc-default.onnx [--seed-model PATH] --out models/eval/ \\
        [--systems noisy seproc rnnoise ...] [--limit N] [--no-dnsmos]

Every mixture of every set goes through every system (``training/peers.py``); each
output is scored against the clean reference with PESQ-wb, STOI and SI-SDR, and on its
own with DNSMOS SIG/BAK/OVRL (``training/metrics.py``). Each system's real-time factor
is measured on one core. Written to ``--out``:

- ``results.csv``: one row per clip and system (appended as the run goes, so an
  interrupted run keeps what it scored; ``--summarize-only`` rebuilds the rest from it);
- ``summary.md``: mean metrics per set, SNR and system; per noise type; paired
  differences between the shipped model and each peer with 95 % confidence intervals;
  the issue's acceptance checks; real-time factors;
- ``summary.png``: bar charts of the means per set, SNR and system.

A test set is a folder with a manifest (``manifest.csv``, ``manifest.jsonl`` or
``manifest.json``) with one row per mixture naming its noisy and clean files (paths
relative to the folder), its SNR in dB and its noise type; see :func:`read_set`.
``--limit N`` keeps ``N`` mixtures per set and SNR, taken in turn from each noise type.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training import metrics, peers

if TYPE_CHECKING:
    from seproc.stft import STFT

SAMPLE_RATE_HZ = 16000
METRICS = ("pesq_wb", "stoi", "si_sdr_db", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
METRIC_TITLES = {
    "pesq_wb": "PESQ-wb",
    "stoi": "STOI",
    "si_sdr_db": "SI-SDR (dB)",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "dnsmos_ovrl": "DNSMOS OVRL",
}
CSV_FIELDS = (
    "set",
    "mixture_id",
    "snr_db",
    "noise_type",
    "duration_s",
    "system",
    *METRICS,
    "process_s",
)
SHIPPED = "seproc"
ACCEPTANCE_PEERS = ("noisy", "noisereduce", "rnnoise", "nsnet2")

_ALIASES = {
    "noisy": ("noisy", "noisy_path", "noisy_file", "noisy_wav"),
    "clean": ("clean", "clean_path", "clean_file", "clean_wav"),
    "snr_db": ("snr_db", "snr", "target_snr_db", "snr_db_target"),
    "noise_type": ("noise_type", "noise_group", "noise_kind", "noise_category", "noise"),
    "mixture_id": ("mixture_id", "id", "mix_id", "name", "clip_id"),
}


@dataclass(frozen=True)
class Mixture:
    """One test mixture: where its files are and how it was made."""

    set_name: str
    mixture_id: str
    noisy_path: Path
    clean_path: Path
    snr_db: float
    noise_type: str


def _pick(row: dict, field: str, manifest: Path, required: bool = True) -> object:
    for key in _ALIASES[field]:
        if key in row and row[key] not in (None, ""):
            return row[key]
    if required:
        raise ValueError(
            f"{manifest}: a row lacks {field!r} (looked for {', '.join(_ALIASES[field])}); "
            f"its keys are {sorted(row)}"
        )
    return None


def _manifest_rows(folder: Path) -> tuple[Path, list[dict]]:
    for name in ("manifest.csv", "manifest.jsonl", "manifest.json"):
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".csv"):
            with open(path, newline="") as handle:
                return path, list(csv.DictReader(handle))
        if name.endswith(".jsonl"):
            with open(path) as handle:
                return path, [json.loads(line) for line in handle if line.strip()]
        data = json.loads(path.read_text())
        if isinstance(data, dict):
            data = data.get("mixtures", data.get("items", data.get("rows")))
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a list of mixtures (or {{'mixtures': [...]}})")
        return path, data
    raise FileNotFoundError(
        f"{folder} has no manifest.csv, manifest.jsonl or manifest.json; build the test "
        "sets first (python -m training.data ...)"
    )


def read_set(folder: str | Path) -> list[Mixture]:
    """Read one test set's manifest.

    Each row needs the noisy and the clean file (relative to the folder or absolute),
    the SNR in dB and the noise type; common spellings of those keys are accepted
    (``noisy``/``noisy_path``, ``clean``/``clean_path``, ``snr_db``/``snr``,
    ``noise_type``/``noise_group``, ``mixture_id``/``id``). Without file columns, a row
    with an ``id`` names ``noisy/{id}.wav`` and ``clean/{id}.wav`` (the layout that
    ``python -m training.data`` writes).
    """
    folder = Path(folder)
    manifest, rows = _manifest_rows(folder)
    mixtures = []
    for index, row in enumerate(rows):
        mixture_id = _pick(row, "mixture_id", manifest, required=False)
        # without path columns the files are noisy/{id}.wav and clean/{id}.wav
        has_paths = mixture_id is None or any(k in row for k in _ALIASES["noisy"])
        noisy = Path(str(_pick(row, "noisy", manifest)) if has_paths else f"noisy/{mixture_id}.wav")
        clean = Path(str(_pick(row, "clean", manifest)) if has_paths else f"clean/{mixture_id}.wav")
        mixtures.append(
            Mixture(
                set_name=folder.name,
                mixture_id=str(mixture_id) if mixture_id is not None else f"{index:05d}",
                noisy_path=noisy if noisy.is_absolute() else folder / noisy,
                clean_path=clean if clean.is_absolute() else folder / clean,
                snr_db=float(_pick(row, "snr_db", manifest)),  # type: ignore[arg-type]
                noise_type=str(_pick(row, "noise_type", manifest)),
            )
        )
    return mixtures


def limit_mixtures(mixtures: Sequence[Mixture], limit: int | None) -> list[Mixture]:
    """Keep ``limit`` mixtures per (set, SNR), taken in turn from each noise type.

    The result interleaves sets and SNRs (one of each in turn), so that a run cut
    short still covers every set and SNR about equally.
    """
    strata: dict[tuple[str, float], dict[str, list[Mixture]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for mixture in mixtures:
        strata[(mixture.set_name, mixture.snr_db)][mixture.noise_type].append(mixture)
    chosen: dict[tuple[str, float], list[Mixture]] = {}
    for key, by_noise in strata.items():
        queues = [list(by_noise[noise]) for noise in sorted(by_noise)]
        picked: list[Mixture] = []
        while any(queues) and (limit is None or len(picked) < limit):
            for queue in queues:
                if queue and (limit is None or len(picked) < limit):
                    picked.append(queue.pop(0))
        chosen[key] = picked
    order: list[Mixture] = []
    keys = sorted(chosen, key=lambda k: (k[1], k[0]))
    depth = max((len(v) for v in chosen.values()), default=0)
    for i in range(depth):
        order.extend(chosen[k][i] for k in keys if i < len(chosen[k]))
    return order


def infrasonic_note(mixtures: Sequence[Mixture], cutoff_hz: float = 50.0) -> str | None:
    """Say which noise types put most of their energy below ``cutoff_hz``, if any.

    Reads each mixture's noise from ``noise/{id}.wav`` beside ``noisy/`` where it exists.
    Energy that low is barely audible, but it counts fully in the nominal SNR and in
    SI-SDR (a system that leaves it in loses SI-SDR without sounding worse), while
    PESQ and DNSMOS hardly see it.
    """
    shares: dict[str, list[float]] = defaultdict(list)
    for mixture in mixtures:
        path = mixture.noisy_path.parent.parent / "noise" / mixture.noisy_path.name
        if not path.is_file():
            continue
        noise = load_audio(path)
        if noise.size == 0:
            continue
        power = np.abs(np.fft.rfft(noise)) ** 2
        freqs = np.fft.rfftfreq(noise.size, 1.0 / SAMPLE_RATE_HZ)
        total = power.sum()
        if total > 0:
            shares[mixture.noise_type].append(float(power[freqs < cutoff_hz].sum() / total))
    low = {k: float(np.median(v)) for k, v in shares.items() if np.median(v) > 0.5}
    if not low:
        return None
    n_low = sum(len(shares[k]) for k in low)
    n_all = sum(len(v) for v in shares.values())
    kinds = ", ".join(f"{k} ({100 * v:.0f} %)" for k, v in sorted(low.items()))
    return (
        f"{n_low} of {n_all} mixtures have noise types whose energy lies mostly below "
        f"{cutoff_hz:g} Hz (median share: {kinds}). Their nominal SNR counts that nearly "
        "inaudible energy, so they sound cleaner than their SNR says; SI-SDR penalises a "
        "system that leaves it in (PESQ and DNSMOS hardly do). See the per-noise-type tables."
    )


def load_audio(path: Path) -> np.ndarray:
    """Read a mono 16 kHz float32 signal (a stereo file is averaged, other rates resampled)."""
    import soundfile as sf

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        import soxr

        audio = soxr.resample(audio, rate, SAMPLE_RATE_HZ)
    return np.ascontiguousarray(audio, dtype=np.float32)


def score(clean: np.ndarray, output: np.ndarray, dnsmos: metrics.Dnsmos | None) -> dict[str, float]:
    """All metrics of one output against its clean reference (DNSMOS NaN when off)."""
    result = {
        "pesq_wb": metrics.pesq_wb(clean, output),
        "stoi": metrics.stoi(clean, output),
        "si_sdr_db": metrics.si_sdr(clean, output),
        "dnsmos_sig": math.nan,
        "dnsmos_bak": math.nan,
        "dnsmos_ovrl": math.nan,
    }
    if dnsmos is not None:
        scores = dnsmos(output)
        result.update(dnsmos_sig=scores.sig, dnsmos_bak=scores.bak, dnsmos_ovrl=scores.ovrl)
    return result


def build_systems(
    names: Iterable[str],
    model: Path | None,
    seed_model: Path | None,
    postfilter: bool = True,
) -> tuple[list[peers.Peer], list[str]]:
    """Build the requested peers; return them and notes on any that were skipped.

    ``postfilter=False`` runs the seproc rows on their models' raw gains (``--no-postfilter``).
    """
    systems: list[peers.Peer] = []
    notes: list[str] = []
    for name in names:
        if name == "seproc-seed" and (seed_model is None or not Path(seed_model).is_file()):
            notes.append(
                f"seproc-seed skipped: no seed (noise-subtraction) model file "
                f"({'--seed-model not given' if seed_model is None else f'{seed_model} missing'})."
            )
            continue
        try:
            systems.append(
                peers.make_peer(name, model=model, seed_model=seed_model, postfilter=postfilter)
            )
        except (ImportError, OSError, FileNotFoundError) as error:
            notes.append(f"{name} skipped: {type(error).__name__}: {error}")
    return systems, notes


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _format(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "–"
    return f"{value:.3f}" if metric == "stoi" else f"{value:.2f}"


def _mean(values: Iterable[float]) -> float:
    array = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    return float(array.mean()) if array.size else math.nan


def read_results(path: Path) -> list[dict]:
    """Read ``results.csv`` back, numbers as floats."""
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key in (*METRICS, "snr_db", "duration_s", "process_s"):
                row[key] = float(row[key]) if row.get(key) not in (None, "") else math.nan
            rows.append(row)
    return rows


def _systems_in(rows: Sequence[dict]) -> list[str]:
    present = {row["system"] for row in rows}
    ordered = [name for name in peers.PEER_NAMES if name in present]
    return ordered + sorted(present - set(ordered))


def _paired(rows: Sequence[dict], set_name: str, metric: str, a: str, b: str) -> np.ndarray:
    """Per-clip differences ``a - b`` over clips that both systems scored."""
    values: dict[str, dict[str, float]] = defaultdict(dict)
    for row in rows:
        if row["set"] == set_name and row["system"] in (a, b):
            values[row["mixture_id"]][row["system"]] = row[metric]
    diffs = [
        v[a] - v[b]
        for v in values.values()
        if a in v and b in v and np.isfinite(v[a]) and np.isfinite(v[b])
    ]
    return np.asarray(diffs, np.float64)


def _ci95(diffs: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of a 95 % t-interval."""
    from scipy import stats

    if diffs.size < 2:
        return (float(diffs.mean()) if diffs.size else math.nan), math.nan
    half = stats.t.ppf(0.975, diffs.size - 1) * diffs.std(ddof=1) / np.sqrt(diffs.size)
    return float(diffs.mean()), float(half)


def summarize(
    rows: Sequence[dict],
    rtf: dict[str, float],
    notes: Sequence[str],
    header: Sequence[str] = (),
    reference: dict[str, dict[str, dict[str, float]]] | None = None,
) -> str:
    """Render ``summary.md`` from result rows, real-time factors and reference DNSMOS."""
    systems = _systems_in(rows)
    sets = sorted({row["set"] for row in rows})
    metrics_present = [m for m in METRICS if any(np.isfinite(row[m]) for row in rows)]
    lines = ["# seproc evaluation", ""]
    lines += list(header)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in notes]
    lines += [
        "",
        "Means over clips. PESQ-wb (ITU-T P.862.2, `pesq`), STOI (`pystoi`), SI-SDR in dB; "
        "DNSMOS P.835 SIG/BAK/OVRL from the `speechmos` wheel's ONNX model (short clips "
        "repeated to 9.01 s). Higher is better everywhere. **Bold**: best system in the column.",
    ]
    groups: dict[tuple[str, float], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["set"], row["snr_db"])].append(row)
    for set_name in sets:
        snrs = sorted({snr for (s, snr) in groups if s == set_name})
        for snr in [*snrs, None]:
            subset = [
                r for r in rows if r["set"] == set_name and (snr is None or r["snr_db"] == snr)
            ]
            n_clips = len({r["mixture_id"] for r in subset})
            title = "all SNRs" if snr is None else f"input SNR {snr:g} dB"
            lines += ["", f"## {set_name}, {title} ({n_clips} clips)", ""]
            lines += _metric_table(subset, systems, metrics_present)
    lines += ["", "## Per noise type (all SNRs)"]
    for set_name in sets:
        subset = [r for r in rows if r["set"] == set_name]
        noise_types = sorted({r["noise_type"] for r in subset})
        for metric in [
            m for m in ("pesq_wb", "stoi", "si_sdr_db", "dnsmos_ovrl") if m in metrics_present
        ]:
            lines += ["", f"### {set_name}: {METRIC_TITLES[metric]} per noise type", ""]
            lines.append("| noise type | clips | " + " | ".join(systems) + " |")
            lines.append("| --- | ---: | " + " | ".join("---:" for _ in systems) + " |")
            for noise in noise_types:
                cells = []
                for system in systems:
                    vals = [
                        r[metric]
                        for r in subset
                        if r["noise_type"] == noise and r["system"] == system
                    ]
                    cells.append(_format(_mean(vals), metric))
                n_clips = len({r["mixture_id"] for r in subset if r["noise_type"] == noise})
                lines.append(f"| {noise} | {n_clips} | " + " | ".join(cells) + " |")
    if SHIPPED in systems:
        lines += _comparison_section(rows, sets, systems, metrics_present)
        lines += _acceptance_section(rows, systems)
    if reference:
        lines += _reference_section(reference)
    lines += ["", "## Real-time factor on one core", ""]
    lines += [
        "CPU seconds per second of audio for one whole clip, process pinned to one core "
        "(`os.sched_setaffinity`), best of the timed runs after a warm-up; includes "
        "resampling to the system's own rate (soxr, 16 ↔ 48 kHz for RNNoise and "
        "DeepFilterNet3) and, for RNNoise, one Python call into its C library per 10 ms "
        "frame. noisereduce is offline (it looks at the whole clip), not a streaming "
        "system. Lower is faster.",
        "",
        "| system | runs at | RTF | × real time |",
        "| --- | ---: | ---: | ---: |",
    ]
    rates = {row["system"]: row.get("sample_rate_hz", "") for row in rows}
    for system in systems:
        if system in rtf and np.isfinite(rtf[system]):
            value = rtf[system]
            speed = f"{1 / value:.0f}×" if value > 0 else "–"
            rate = rates.get(system) or ""
            lines.append(f"| {system} | {rate} | {value:.4f} | {speed} |")
    return "\n".join(lines) + "\n"


def _metric_table(
    subset: Sequence[dict], systems: Sequence[str], metric_names: Sequence[str]
) -> list[str]:
    means = {
        system: {m: _mean(r[m] for r in subset if r["system"] == system) for m in metric_names}
        for system in systems
    }
    best = {
        m: max((means[s][m] for s in systems if np.isfinite(means[s][m])), default=math.nan)
        for m in metric_names
    }
    lines = ["| system | " + " | ".join(METRIC_TITLES[m] for m in metric_names) + " |"]
    lines.append("| --- | " + " | ".join("---:" for _ in metric_names) + " |")
    for system in systems:
        cells = []
        for m in metric_names:
            text = _format(means[system][m], m)
            if np.isfinite(means[system][m]) and means[system][m] == best[m]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return lines


def _comparison_section(
    rows: Sequence[dict], sets: Sequence[str], systems: Sequence[str], metric_names: Sequence[str]
) -> list[str]:
    lines = [
        "",
        f"## {SHIPPED} minus each peer, paired over clips (all SNRs)",
        "",
        "Mean per-clip difference ± half-width of its 95 % t-interval; positive means "
        f"{SHIPPED} is better. An interval that excludes 0 is a clear win or loss.",
    ]
    for set_name in sets:
        lines += ["", f"### {set_name}", ""]
        lines.append("| peer | " + " | ".join(METRIC_TITLES[m] for m in metric_names) + " |")
        lines.append("| --- | " + " | ".join("---:" for _ in metric_names) + " |")
        for peer in systems:
            if peer == SHIPPED:
                continue
            cells = []
            for m in metric_names:
                mean, half = _ci95(_paired(rows, set_name, m, SHIPPED, peer))
                digits = 3 if m == "stoi" else 2
                cells.append(
                    "–" if not np.isfinite(mean) else f"{mean:+.{digits}f} ± {half:.{digits}f}"
                )
            lines.append(f"| {peer} | " + " | ".join(cells) + " |")
    return lines


def _acceptance_section(rows: Sequence[dict], systems: Sequence[str]) -> list[str]:
    real = [r for r in rows if "real" in r["set"]]
    if not real:
        return []
    set_name = real[0]["set"]
    lines = [
        "",
        f"## Acceptance checks (issue 11) on {set_name}",
        "",
        f"At every SNR, {SHIPPED} must beat noisy, noisereduce, RNNoise and NSNet2 on "
        "PESQ-wb, STOI and SI-SDR (mean over clips), and its DNSMOS OVRL must be at least "
        "RNNoise's. DeepFilterNet3 is reported for reference.",
        "",
        "| SNR (dB) | check | " + SHIPPED + " | peer | result |",
        "| ---: | --- | ---: | ---: | --- |",
    ]
    snrs = sorted({r["snr_db"] for r in real if r["set"] == set_name})
    for snr in snrs:
        subset = [r for r in real if r["set"] == set_name and r["snr_db"] == snr]

        def mean_of(system: str, metric: str, subset: list[dict] = subset) -> float:
            return _mean(r[metric] for r in subset if r["system"] == system)

        checks = [(peer, m) for peer in ACCEPTANCE_PEERS for m in ("pesq_wb", "stoi", "si_sdr_db")]
        checks.append(("rnnoise", "dnsmos_ovrl"))
        checks += [("deepfilternet3", m) for m in ("pesq_wb", "stoi", "si_sdr_db", "dnsmos_ovrl")]
        for peer, m in checks:
            if peer not in systems:
                continue
            ours, theirs = mean_of(SHIPPED, m), mean_of(peer, m)
            if not (np.isfinite(ours) and np.isfinite(theirs)):
                continue
            passed = ours >= theirs if m == "dnsmos_ovrl" else ours > theirs
            verdict = ("win" if passed else "LOSS") + (
                " (reference)" if peer == "deepfilternet3" else ""
            )
            lines.append(
                f"| {snr:g} | {METRIC_TITLES[m]} vs {peer} | {_format(ours, m)} | "
                f"{_format(theirs, m)} | {verdict} |"
            )
    return lines


def plot(rows: Sequence[dict], path: Path) -> None:
    """Bar charts of the means: one row of panels per set, one panel per metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = _systems_in(rows)
    sets = sorted({row["set"] for row in rows})
    metric_names = [
        m
        for m in ("pesq_wb", "stoi", "si_sdr_db", "dnsmos_ovrl")
        if any(np.isfinite(row[m]) for row in rows)
    ]
    fig, axes = plt.subplots(
        len(sets),
        len(metric_names),
        figsize=(4.2 * len(metric_names), 3.4 * len(sets)),
        squeeze=False,
    )
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(systems))
    for i, set_name in enumerate(sets):
        snrs = sorted({r["snr_db"] for r in rows if r["set"] == set_name})
        for j, metric in enumerate(metric_names):
            axis = axes[i][j]
            for k, system in enumerate(systems):
                heights = [
                    _mean(
                        r[metric]
                        for r in rows
                        if r["set"] == set_name and r["snr_db"] == snr and r["system"] == system
                    )
                    for snr in snrs
                ]
                axis.bar(
                    np.arange(len(snrs)) + (k - (len(systems) - 1) / 2) * width,
                    heights,
                    width,
                    label=system,
                    color=colors(k % 10),
                )
            axis.set_xticks(np.arange(len(snrs)), [f"{s:g} dB" for s in snrs])
            axis.set_title(f"{set_name}: {METRIC_TITLES[metric]}", fontsize=10)
            axis.grid(axis="y", alpha=0.3)
            if metric == "pesq_wb":
                axis.set_ylim(1.0, None)
            elif metric == "dnsmos_ovrl":
                axis.set_ylim(1.0, None)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


_WORKER: dict = {}
"""The systems and DNSMOS scorer of this process (set once per worker)."""


def _init_worker(
    names: Sequence[str],
    model: Path | None,
    seed_model: Path | None,
    use_dnsmos: bool,
    postfilter: bool = True,
) -> None:
    systems, _ = build_systems(names, model, seed_model, postfilter)
    _WORKER.update(systems=systems, dnsmos=metrics.Dnsmos(num_threads=1) if use_dnsmos else None)


def evaluate_mixture(task: tuple[Mixture, frozenset[str]]) -> list[dict]:
    """Run the systems of this process on one mixture and score each output.

    Parameters
    ----------
    task : (Mixture, frozenset of str)
        The mixture and the names of the systems to run on it.

    Returns
    -------
    list of dict
        One ``results.csv`` row per system.

    Raises
    ------
    RuntimeError
        If a system returns a signal of another length or with non-finite samples.
    """
    mixture, names = task
    noisy = load_audio(mixture.noisy_path)
    clean = load_audio(mixture.clean_path)
    n = min(noisy.size, clean.size)
    noisy, clean = noisy[:n], clean[:n]
    rows = []
    for system in _WORKER["systems"]:
        if system.name not in names:
            continue
        start = time.perf_counter()
        output = system.denoise(noisy)
        elapsed = time.perf_counter() - start
        if output.shape != noisy.shape or not np.all(np.isfinite(output)):
            raise RuntimeError(
                f"{system.name} returned shape {output.shape} (finite: "
                f"{bool(np.all(np.isfinite(output)))}) for {mixture.noisy_path}"
            )
        row: dict[str, object] = {
            "set": mixture.set_name,
            "mixture_id": mixture.mixture_id,
            "snr_db": mixture.snr_db,
            "noise_type": mixture.noise_type,
            "duration_s": round(n / SAMPLE_RATE_HZ, 3),
            "system": system.name,
            "process_s": round(elapsed, 4),
        }
        row.update({k: round(v, 4) for k, v in score(clean, output, _WORKER["dnsmos"]).items()})
        rows.append(row)
    return rows


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.evaluate",
        description="Score seproc and its peers side by side on test mixture sets.",
    )
    parser.add_argument("--sets", nargs="+", type=Path, help="test set folders")
    parser.add_argument("--model", type=Path, help="the shipped seproc ONNX model")
    parser.add_argument("--seed-model", type=Path, help="a noise-subtraction (seed) model")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=list(peers.PEER_NAMES),
        choices=peers.PEER_NAMES,
        help="systems to run (default: all)",
    )
    parser.add_argument("--limit", type=int, help="mixtures per set and SNR (default: all)")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS (faster)")
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes, one mixture each (default 1)"
    )
    parser.add_argument(
        "--no-postfilter",
        dest="postfilter",
        action="store_false",
        help="run the seproc rows on their models' raw gains, without the gain post-filter "
        "a format-2 model carries (for A/B)",
    )
    parser.add_argument(
        "--rtf-seconds",
        type=float,
        default=10.0,
        help="seconds of audio for the real-time-factor measurement (0 to skip)",
    )
    parser.add_argument(
        "--reuse",
        type=Path,
        help="an earlier results.csv on the same sets: its rows are taken for the systems "
        "and clips it has instead of rerunning them (the peers do not depend on the seproc "
        "model, so their scores can be reused); real-time factors are always measured",
    )
    parser.add_argument(
        "--reuse-systems",
        nargs="+",
        default=None,
        metavar="SYSTEM",
        help="take only these systems' rows from --reuse (e.g. the peers, so the seproc rows "
        "of the earlier run are recomputed with the model given now); default: every row",
    )
    parser.add_argument(
        "--summarize-only",
        action="store_true",
        help="rebuild summary.md and the chart from an existing results.csv",
    )
    args = parser.parse_args(argv)
    if not args.sets and not args.summarize_only:
        parser.error("--sets FOLDER [FOLDER ...] is required")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1, got {args.limit}")
    if "seproc" in args.systems and args.model is None and not args.summarize_only:
        parser.error("system 'seproc' needs --model PATH (or leave it out of --systems)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    meta_path = out / "run.json"
    if args.summarize_only:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        rows = read_results(results_path)
        _write_outputs(
            out, rows, meta.get("rtf", {}), meta.get("notes", []), meta.get("header", [])
        )
        return 0

    from tqdm import tqdm

    mixtures: list[Mixture] = []
    for folder in args.sets:
        mixtures.extend(read_set(folder))
    mixtures = limit_mixtures(mixtures, args.limit)
    if not mixtures:
        print("no mixtures to evaluate", file=sys.stderr)
        return 1
    systems, notes = build_systems(args.systems, args.model, args.seed_model, args.postfilter)
    note = infrasonic_note(mixtures)
    if note is not None:
        notes.append(note)
    dnsmos = None if args.no_dnsmos else metrics.Dnsmos(num_threads=1)
    if args.no_dnsmos:
        notes.append("DNSMOS off (--no-dnsmos).")
    command = " ".join(sys.argv[1:] if argv is None else argv)
    header = [
        f"Command: `python -m training.evaluate {command}`",
        "",
        f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{len(mixtures)} mixtures, {len(systems)} systems.",
    ]
    for system in systems:
        if isinstance(system, peers.Seproc):
            header.append(
                f"`{system.name}`: {system.model_path} (sha256 {_sha256(system.model_path)[:12]}, "
                f"formulation {system.formulation}, run by seproc.Denoiser"
                + (f", post-filter {system.postfilter}" if system.postfilter else "")
                + ")."
            )
    rates = {system.name: system.sample_rate_hz for system in systems}
    reused: dict[tuple[str, str, str], dict] = {}
    if args.reuse is not None:
        for row in read_results(args.reuse):
            if args.reuse_systems is None or row["system"] in args.reuse_systems:
                reused[(row["set"], row["mixture_id"], row["system"])] = row
    tasks = []
    n_reused = 0
    for mixture in mixtures:
        todo = frozenset(
            s.name for s in systems if (mixture.set_name, mixture.mixture_id, s.name) not in reused
        )
        n_reused += len(systems) - len(todo)
        tasks.append((mixture, todo))
    if args.reuse is not None:
        header.append(
            f"{n_reused} of {len(mixtures) * len(systems)} clip × system scores were taken from "
            f"{args.reuse}"
            + (f" (systems {', '.join(args.reuse_systems)})" if args.reuse_systems else "")
            + " (same sets; the peers do not depend on the seproc model); "
            "without --reuse the same command recomputes every score."
        )
    meta = {"rtf": {}, "notes": notes, "header": header, "sample_rate_hz": rates}
    meta_path.write_text(json.dumps(meta, indent=2))

    with open(results_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        progress = tqdm(total=len(mixtures), desc="evaluate", unit="mixture")
        if args.jobs == 1:
            _WORKER.update(systems=systems, dnsmos=dnsmos)
            results = map(evaluate_mixture, tasks)
            pool = None
        else:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(
                args.jobs,
                initializer=_init_worker,
                initargs=(
                    [s.name for s in systems],
                    args.model,
                    args.seed_model,
                    dnsmos is not None,
                    args.postfilter,
                ),
            )
            results = pool.imap(evaluate_mixture, tasks)
        try:
            for (mixture, _), mixture_rows in zip(tasks, results, strict=True):
                by_system = {row["system"]: row for row in mixture_rows}
                for system in systems:
                    key = (mixture.set_name, mixture.mixture_id, system.name)
                    row = by_system.get(system.name) or {k: reused[key][k] for k in CSV_FIELDS}
                    writer.writerow(row)
                handle.flush()
                progress.update(1)
        finally:
            if pool is not None:
                pool.terminate()
        progress.close()

    if dnsmos is not None:
        meta["reference_dnsmos"] = reference_dnsmos(mixtures, dnsmos)
        meta_path.write_text(json.dumps(meta, indent=2))
    rtf: dict[str, float] = {}
    if args.rtf_seconds > 0:
        clip = np.concatenate([load_audio(m.noisy_path) for m in mixtures[:8]])
        clip = np.tile(clip, int(np.ceil(args.rtf_seconds * SAMPLE_RATE_HZ / clip.size)))
        clip = clip[: int(args.rtf_seconds * SAMPLE_RATE_HZ)]
        for system in tqdm(systems, desc="real-time factor", unit="system"):
            rtf[system.name] = peers.real_time_factor(system, clip)
    meta["rtf"] = rtf
    meta_path.write_text(json.dumps(meta, indent=2))
    rows = read_results(results_path)
    _write_outputs(out, rows, rtf, notes, header, rates)
    return 0


ORACLE_FLOOR_DB = -40.0
"""Floor of the oracle mask: the shipped model's mask floor."""


@functools.lru_cache(maxsize=4)
def _model_stft(model: Path | None) -> STFT:
    """Return the runtime's STFT (float64) with the framing that ``model`` declares."""
    from seproc.model import OnnxModel
    from seproc.stft import STFT

    info = OnnxModel(model).info
    if info.sample_rate_hz != SAMPLE_RATE_HZ:
        raise ValueError(
            f"model {info.path} runs at {info.sample_rate_hz} Hz; the oracle mask works on "
            f"{SAMPLE_RATE_HZ} Hz clips, so it needs a {SAMPLE_RATE_HZ} Hz model's framing"
        )
    return STFT(
        n_fft=info.n_fft,
        hop_length=info.hop_length,
        win_length=info.win_length,
        window=info.window,
        dtype=np.float64,
    )


def oracle_mask(
    clean: np.ndarray,
    noisy: np.ndarray,
    *,
    floor_db: float = ORACLE_FLOOR_DB,
    model: str | Path | None = None,
    power: float = 1.0,
) -> np.ndarray:
    """Denoise as the shipped formulation would with a perfect network (ideal ratio mask).

    Parameters
    ----------
    clean, noisy : np.ndarray [shape=(samples,)]
        The clean reference and the mixture, 16 kHz, same length.
    floor_db : float
        The mask's floor (a gain in dB, negative).
    model : str or Path or None
        The model whose frames the mask works on; ``None`` is the runtime's bundled
        default (the shipped model: square-root Hann, 320 samples, hop 160).
    power : float
        The clipped mask is raised to this power (> 0): 1 is the ideal ratio mask; above 1
        takes more out where noise dominates (the target of ``[loss] target_mask_power``,
        :func:`training.losses.shaped_target`).

    Returns
    -------
    np.ndarray [shape=(samples,)], float32
        The noisy STFT on the model's frames (``seproc.stft.STFT`` with the model's
        ``n_fft``, ``hop_length``, ``win_length`` and ``window``, ``models/FORMAT.md``)
        times ``|S| / |X|`` per bin, clipped to ``[floor, 1]``, with the noisy phase,
        resynthesised: the ideal ratio mask, the usual upper reference for a magnitude
        mask that is trained to give the clean signal back.

    Raises
    ------
    ValueError
        If ``clean`` and ``noisy`` differ in shape, or the model's rate is not 16 kHz.
    seproc.ModelError
        If ``model`` is not a valid seproc model file.
    """
    clean = np.asarray(clean, np.float64)
    noisy = np.asarray(noisy, np.float64)
    if clean.shape != noisy.shape:
        raise ValueError(
            f"clean {clean.shape} and noisy {noisy.shape} must have the same shape; "
            "trim both to the shorter length first"
        )
    if not power > 0:
        raise ValueError(f"power must be > 0, got {power}")
    stft = _model_stft(None if model is None else Path(model))
    # pad_end: frames past the last sample, so that every sample is fully resynthesised
    noisy_spec = stft.stft(noisy, pad_end=True)
    clean_spec = stft.stft(clean, pad_end=True)
    gain = np.abs(clean_spec) / np.maximum(np.abs(noisy_spec), 1e-12)
    gain = np.clip(gain, 10.0 ** (floor_db / 20.0), 1.0) ** power
    return stft.istft(noisy_spec * gain, length=noisy.size).astype(np.float32)


_REFERENCE_SCORES = ("sig", "bak", "ovrl")


def reference_dnsmos(
    mixtures: Sequence[Mixture], dnsmos: metrics.Dnsmos
) -> dict[str, dict[str, dict[str, float]]]:
    """DNSMOS of the clean references and of the oracle mask's output.

    Returns ``{set: {snr or "all": {sig, bak, ovrl, oracle_sig, oracle_bak,
    oracle_ovrl}}}``. The clean references are what PESQ, STOI and SI-SDR compare
    against; DNSMOS, which hears no reference, can rate a system above them (one that
    also removes the recordings' own room tone or reverberation). The oracle mask
    (:func:`oracle_mask`) shows what the shipped formulation reaches by reproducing
    the references as well as a mask can.
    """
    scores: dict[str, dict[str, list[dict[str, float]]]] = defaultdict(lambda: defaultdict(list))
    for mixture in mixtures:
        clean = load_audio(mixture.clean_path)
        noisy = load_audio(mixture.noisy_path)
        n = min(clean.size, noisy.size)
        ref, oracle = dnsmos(clean), dnsmos(oracle_mask(clean[:n], noisy[:n]))
        value = {name: getattr(ref, name) for name in _REFERENCE_SCORES}
        value.update({f"oracle_{name}": getattr(oracle, name) for name in _REFERENCE_SCORES})
        scores[mixture.set_name][f"{mixture.snr_db:g}"].append(value)
        scores[mixture.set_name]["all"].append(value)
    return {
        set_name: {
            key: {name: round(float(np.mean([v[name] for v in values])), 4) for name in values[0]}
            for key, values in by_snr.items()
        }
        for set_name, by_snr in scores.items()
    }


def _reference_section(reference: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    lines = [
        "",
        "## DNSMOS of the clean references and of an oracle mask",
        "",
        "The clean speech that PESQ, STOI and SI-SDR compare against, scored by DNSMOS alone "
        "(it hears no reference). A system that reproduced the references exactly would get "
        "these scores; one that scores above them also removes what the recordings carry "
        "themselves (room tone, reverberation, codec noise). The oracle mask is the shipped "
        "formulation with a perfect network: the ideal ratio mask |S|/|X| on the model's "
        f"frames, clipped to [{ORACLE_FLOOR_DB:g} dB, 0 dB], noisy phase "
        "(`training.evaluate.oracle_mask`).",
        "",
        "| set | clips' input SNR (dB) | references: SIG | BAK | OVRL "
        "| oracle mask: SIG | BAK | OVRL |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = [*_REFERENCE_SCORES, *(f"oracle_{n}" for n in _REFERENCE_SCORES)]
    for set_name in sorted(reference):
        keys = [*sorted((k for k in reference[set_name] if k != "all"), key=float), "all"]
        for key in keys:
            v = reference[set_name][key]
            cells = [f"{v[n]:.2f}" if n in v else "–" for n in names]
            lines.append(f"| {set_name} | {key} | " + " | ".join(cells) + " |")
    return lines


def _write_outputs(
    out: Path,
    rows: list[dict],
    rtf: dict[str, float],
    notes: Sequence[str],
    header: Sequence[str],
    rates: dict[str, int] | None = None,
) -> None:
    meta_path = out / "run.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if rates is None:
        rates = meta.get("sample_rate_hz", {})
    for row in rows:
        row["sample_rate_hz"] = rates.get(row["system"], "")
    reference = meta.get("reference_dnsmos")
    (out / "summary.md").write_text(summarize(rows, rtf, notes, header, reference))
    plot(rows, out / "summary.png")


if __name__ == "__main__":
    raise SystemExit(main())

"""Score the corpus's speech sources as a listener would check references: DNSMOS and band.

For every split and speech source of the shards, up to ``--clips`` clips (spread evenly
over the source) get DNSMOS P.835 SIG/BAK/OVRL (``training.metrics.Dnsmos``), the
80-300 Hz "body" level relative to 0.3-4 kHz (espeak-ng voices are 6-9 dB thinner than
real speech, ``shared/DATA.md``) and the share of clipped samples. The full-band
evaluation voices (NIST MRT F3/M3, ``training/evaluate_fullband.py``) are scored too when
``--fullband-archive`` is given, with their bandwidth.

Command::

    python -m training.score_sources --data data --clips 24 --out training/source_scores.md
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from training.shards import read_clips

RATE_HZ = 16000


def body_db(audio: np.ndarray, rate_hz: int = RATE_HZ) -> float:
    """Return the 80-300 Hz power relative to 0.3-4 kHz, in dB, over the whole clip."""
    spectrum = np.abs(np.fft.rfft(np.asarray(audio, np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / rate_hz)
    low = spectrum[(freqs >= 80) & (freqs < 300)].sum()
    mid = spectrum[(freqs >= 300) & (freqs < 4000)].sum()
    return float(10 * np.log10((low + 1e-20) / (mid + 1e-20)))


def _spread(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in idx]


def score_clips(clips: Iterable[np.ndarray], dnsmos) -> dict[str, float]:
    """Mean DNSMOS SIG/BAK/OVRL, body level and clipped share of some 16 kHz clips."""
    rows = []
    for audio in clips:
        scores = dnsmos(audio)
        rows.append(
            (
                scores.sig,
                scores.bak,
                scores.ovrl,
                body_db(audio),
                float(np.mean(np.abs(audio) >= 0.99)),
            )
        )
    values = np.array(rows)
    keys = ("sig", "bak", "ovrl", "body_db", "clipped")
    return {"clips": len(rows), **dict(zip(keys, values.mean(axis=0), strict=True))}


def score_shards(data: Path, splits: Sequence[str], n_clips: int) -> list[dict[str, object]]:
    """Score every (split, source) of the speech shards."""
    from training.metrics import Dnsmos

    dnsmos = Dnsmos()
    out = []
    for split in splits:
        by_source: dict[str, list[np.ndarray]] = defaultdict(list)
        for clip in read_clips(data / "shards", split, "speech"):
            by_source[clip.source].append(clip.audio)
        for source, clips in sorted(by_source.items()):
            row = {"split": split, "source": source}
            row.update(score_clips(_spread(clips, n_clips), dnsmos))
            out.append(row)
    return out


def markdown(rows: Sequence[dict[str, object]]) -> str:
    """Format :func:`score_shards` rows as a markdown table."""
    lines = [
        "| split | source | clips scored | DNSMOS SIG | BAK | OVRL "
        "| body 80-300 Hz re 0.3-4 kHz (dB) | clipped samples | bandwidth |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['split']} | {r['source']} | {r['clips']} | {r['sig']:.2f} | {r['bak']:.2f} "
            f"| {r['ovrl']:.2f} | {r['body_db']:+.1f} | {100 * r['clipped']:.3f} % "
            f"| {r.get('bandwidth', '16 kHz shards (0-8 kHz)')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Score the shards (and the full-band evaluation voices) and write a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"])
    parser.add_argument("--clips", type=int, default=24, help="clips scored per source")
    parser.add_argument("--fullband-archive", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = score_shards(args.data, args.splits, args.clips)
    if args.fullband_archive is not None:
        import soxr

        from training import evaluate_fullband as fb
        from training.metrics import Dnsmos

        talkers = fb.read_talker_clips(args.fullband_archive)
        dnsmos = Dnsmos()
        for talker, clips in sorted(talkers.items()):
            chosen = _spread([a for _, a in clips], args.clips)
            row = {"split": "fullband-eval", "source": f"NIST MRT {talker} (48 kHz)"}
            row.update(score_clips([soxr.resample(a, 48000, RATE_HZ) for a in chosen], dnsmos))
            width = np.median([fb.bandwidth_hz(a) for a in chosen])
            row["bandwidth"] = f"{width / 1000:.1f} kHz (60 dB)"
            rows.append(row)
    text = markdown(rows)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

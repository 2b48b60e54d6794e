"""Soak: stream a long signal through ``Denoiser.process`` in random block sizes.

Reports resident memory (RSS) after warm-up and at the end, and the processing time per
model hop in the first and the last 10 % of the stream, so a leak or a slow drift shows::

    python -m benchmarks.soak --minutes 60 --seed 0
    python -m benchmarks.soak --minutes 10 --seed 0 --test-model   # no bundled model needed
    python -m benchmarks.soak --minutes 1 --churn 100              # also build/drop 100 objects

The signal cycles through one-second segments of speech-like tones in noise, noise alone,
near-silence (1e-30), subnormal float32 values (1e-40), digital silence and full-scale
square waves, so the denormal guard and every gain regime are exercised. Every output
block is checked for NaN/Inf and for its length. ``tests/test_soak.py`` runs 20 s of it
in the default test suite.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from seproc.denoiser import Denoiser

HOST_BLOCKS = (32, 64, 128, 256, 441, 480, 512, 1024, 2048, 4096)
SEGMENTS = ("speech", "noise", "near_silence", "subnormal", "silence", "square")


@dataclass(frozen=True)
class SoakReport:
    """What one soak run measured.

    Attributes
    ----------
    audio_s : float
        Seconds of audio streamed.
    blocks : int
        ``process`` calls made.
    sample_rate, channels : int
        The stream's settings.
    rss_after_warm_up_mb, rss_end_mb, rss_peak_mb : float
        Resident memory after the warm-up (first 10 % of the audio, at least 2 s), at
        the end, and the largest sample taken, in MiB.
    rss_growth_mb : float
        ``rss_end_mb - rss_after_warm_up_mb``.
    cpu_us_per_hop_first, cpu_us_per_hop_last : float
        CPU time of the processing thread per model hop (``hop_length`` samples at the
        model rate, 10 ms for the 16 kHz models), over the first and last 10 % of the audio.
    drift_ratio : float
        ``cpu_us_per_hop_last / cpu_us_per_hop_first``.
    real_time_factor : float
        Wall-clock processing time over audio time, whole run.
    non_finite_blocks, wrong_length_blocks : int
        Output blocks with NaN/Inf, and with a length other than the input's (both 0).
    """

    audio_s: float
    blocks: int
    sample_rate: int
    channels: int
    rss_after_warm_up_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    rss_growth_mb: float
    cpu_us_per_hop_first: float
    cpu_us_per_hop_last: float
    drift_ratio: float
    real_time_factor: float
    non_finite_blocks: int
    wrong_length_blocks: int


def rss_mb() -> float:
    """Resident memory of this process in MiB (``/proc/self/statm``; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: ru_maxrss is the peak, in KiB (bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class SignalSource:
    """One-second segments of varied test audio, written into one reused buffer."""

    def __init__(self, sample_rate: int, channels: int, rng: np.random.Generator) -> None:
        self._rate = sample_rate
        self._rng = rng
        self._buffer = np.zeros((channels, sample_rate), np.float32)
        self._t = np.arange(sample_rate) / sample_rate

    def next_second(self) -> np.ndarray:
        rng, buffer, t = self._rng, self._buffer, self._t
        kind = SEGMENTS[rng.integers(len(SEGMENTS))]
        channels = buffer.shape[0]
        if kind == "speech":
            f0 = rng.uniform(90, 250)
            envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 6) * t))
            voice = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
            noise = rng.standard_normal(buffer.shape)
            buffer[:] = 0.1 * envelope * voice + rng.uniform(0.003, 0.05) * noise
        elif kind == "noise":
            buffer[:] = rng.uniform(0.001, 0.2) * rng.standard_normal(buffer.shape)
        elif kind == "near_silence":
            buffer[:] = 1e-30 * rng.standard_normal(buffer.shape)
        elif kind == "subnormal":
            buffer[:] = 1e-40 * rng.standard_normal(buffer.shape)
        elif kind == "silence":
            buffer[:] = 0.0
        else:
            period = int(rng.integers(8, 400))
            square = np.where((np.arange(self._rate) % period) < period // 2, 1.0, -1.0)
            buffer[:] = np.broadcast_to(square, (channels, self._rate))
        return buffer


def block_sizes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Host-like block sizes, with one in four drawn from 0..8192 (zeros included)."""
    host = rng.choice(HOST_BLOCKS, size=n)
    odd = rng.integers(0, 8193, size=n)
    return np.where(rng.random(n) < 0.25, odd, host)


def soak(
    seconds: float,
    *,
    seed: int = 0,
    sample_rate: int = 48000,
    channels: int = 2,
    model: str | Path | None = None,
    progress: bool = False,
) -> SoakReport:
    """Stream ``seconds`` of audio through one Denoiser and measure it (see the module)."""
    rng = np.random.default_rng(seed)
    denoiser = Denoiser(model, sample_rate=sample_rate, channels=channels)
    hop_seconds = denoiser.hop_length / denoiser.model_sample_rate
    source = SignalSource(sample_rate, channels, rng)
    total = int(seconds * sample_rate)
    tenth = max(total // 10, 1)
    warm_up_end = max(tenth, 2 * sample_rate)
    sizes = block_sizes(rng, 4096)
    size_index = 0
    done = 0
    blocks = non_finite = wrong_length = 0
    cpu_first = cpu_last = wall = 0.0
    samples_first = samples_last = 0
    rss_after_warm_up = None
    rss_peak = rss_mb()
    next_report = sample_rate * 60
    second = source.next_second()
    offset = 0
    while done < total:
        size = int(min(sizes[size_index], total - done))
        size_index += 1
        if size_index == len(sizes):
            sizes, size_index = block_sizes(rng, 4096), 0
        if offset + size > sample_rate:  # blocks never straddle segments; shorten this one
            size = sample_rate - offset
        block = second[:, offset : offset + size]
        wall_start, cpu_start = time.perf_counter(), time.thread_time()
        out = denoiser.process(block)
        cpu = time.thread_time() - cpu_start
        wall += time.perf_counter() - wall_start
        blocks += 1
        if out.shape != block.shape:
            wrong_length += 1
        if not np.isfinite(out).all():
            non_finite += 1
        if done < tenth:
            cpu_first += cpu
            samples_first += size
        elif done >= total - tenth:
            cpu_last += cpu
            samples_last += size
        done += size
        offset += size
        if offset == sample_rate:
            second, offset = source.next_second(), 0
            rss_peak = max(rss_peak, rss_mb())
            if rss_after_warm_up is None and done >= warm_up_end:
                rss_after_warm_up = rss_mb()
        if progress and done >= next_report:
            next_report += sample_rate * 60
            print(f"  {done / sample_rate / 60:.0f} min, RSS {rss_mb():.1f} MiB", flush=True)
    rss_end = rss_mb()
    rss_after_warm_up = rss_end if rss_after_warm_up is None else rss_after_warm_up

    def per_hop_us(cpu_s: float, samples: int) -> float:
        hops = samples / sample_rate / hop_seconds
        return 1e6 * cpu_s / hops if hops else 0.0

    first, last = per_hop_us(cpu_first, samples_first), per_hop_us(cpu_last, samples_last)
    return SoakReport(
        audio_s=done / sample_rate,
        blocks=blocks,
        sample_rate=sample_rate,
        channels=channels,
        rss_after_warm_up_mb=round(rss_after_warm_up, 2),
        rss_end_mb=round(rss_end, 2),
        rss_peak_mb=round(max(rss_peak, rss_end), 2),
        rss_growth_mb=round(rss_end - rss_after_warm_up, 2),
        cpu_us_per_hop_first=round(first, 2),
        cpu_us_per_hop_last=round(last, 2),
        drift_ratio=round(last / first, 3) if first else float("nan"),
        real_time_factor=round(wall / (done / sample_rate), 5) if done else 0.0,
        non_finite_blocks=non_finite,
        wrong_length_blocks=wrong_length,
    )


def churn(
    n: int, *, model: str | Path | None = None, sample_rate: int = 48000, channels: int = 2
) -> dict[str, float]:
    """Build and drop ``n`` Denoisers (as a batch worker does per file format).

    Returns RSS after the first 10 % of them and at the end, in MiB, and the growth
    per object in KiB over the rest.
    """
    settled = max(n // 10, 1)
    rss_settled = rss_mb()
    for i in range(n):
        denoiser = Denoiser(model, sample_rate=sample_rate, channels=channels, warm_up=False)
        denoiser.process(np.zeros((channels, 480), np.float32))
        del denoiser
        gc.collect()
        if i + 1 == settled:
            rss_settled = rss_mb()
    rss_end = rss_mb()
    rest = max(n - settled, 1)
    return {
        "objects": n,
        "rss_settled_mb": round(rss_settled, 2),
        "rss_end_mb": round(rss_end, 2),
        "kib_per_object": round(1024 * (rss_end - rss_settled) / rest, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=60.0, help="audio to stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (bundled default)")
    parser.add_argument(
        "--test-model",
        action="store_true",
        help="use the small stateful model of tests/model_factory.py instead of --model",
    )
    parser.add_argument(
        "--churn",
        type=int,
        default=0,
        metavar="N",
        help="afterwards, build and drop N Denoisers and report RSS growth per object",
    )
    args = parser.parse_args(argv)
    model = args.model
    with tempfile.TemporaryDirectory() as folder:
        if args.test_model:
            from tests.model_factory import make_model

            model = make_model(Path(folder) / "soak-test-model.onnx")
        print(
            f"soak: {args.minutes:g} min of {args.channels}-channel audio at "
            f"{args.sample_rate} Hz, seed {args.seed}, model {model or 'bundled default'}",
            flush=True,
        )
        report = soak(
            args.minutes * 60,
            seed=args.seed,
            sample_rate=args.sample_rate,
            channels=args.channels,
            model=model,
            progress=True,
        )
        results = asdict(report)
        if args.churn:
            results["churn"] = churn(
                args.churn, model=model, sample_rate=args.sample_rate, channels=args.channels
            )
    print(json.dumps(results, indent=2))
    ok = report.non_finite_blocks == 0 and report.wrong_length_blocks == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

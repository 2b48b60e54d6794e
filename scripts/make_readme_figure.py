"""Draw the README's before/after spectrogram of the bundled example.

    python scripts/make_readme_figure.py            # writes docs/images/before_after.png
    python scripts/make_readme_figure.py --model PATH --input IN.wav --out FIG.png

Denoises ``examples/noisy_speech.wav`` with the bundled model (or ``--model``) and
plots the two log-power spectrograms one above the other on the same colour scale.
Needs matplotlib.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import soundfile as sf
from PIL import Image

from seproc.api import denoise
from seproc.denoiser import Denoiser
from seproc.model import OnnxModel

REPO = Path(__file__).resolve().parent.parent


def log_spectrogram(audio: np.ndarray, sample_rate: int, n_fft: int = 512) -> np.ndarray:
    """Power in dB of a Hann-windowed STFT, shape (bins, frames), hop n_fft // 4."""
    hop = n_fft // 4
    window = np.hanning(n_fft + 1)[:-1]
    padded = np.pad(audio, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    power = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    return 10 * np.log10(np.maximum(power.T, 1e-10))


def main() -> None:
    """Parse the arguments, denoise the example and save the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(REPO / "examples" / "noisy_speech.wav"))
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "before_after.png"))
    parser.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    args = parser.parse_args()

    noisy, sample_rate = sf.read(args.input, dtype="float32", always_2d=True)
    noisy = noisy[:, 0]  # the first channel
    clean = denoise(noisy, sample_rate, model=args.model)
    probe = Denoiser(args.model, sample_rate=sample_rate, warm_up=False)
    version = OnnxModel(probe.model_path).info.model_version
    label = f"model {version}, causal, {probe.latency_ms:.0f} ms latency"
    before, after = log_spectrogram(noisy, sample_rate), log_spectrogram(clean, sample_rate)
    top = float(np.percentile(before, 99.5))
    seconds = noisy.size / sample_rate

    figure, axes = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True, constrained_layout=True)
    extent = (0.0, seconds, 0.0, sample_rate / 2000)
    for axis, spectrogram, title in [
        (axes[0], before, f"noisy: {Path(args.input).name}"),
        (axes[1], after, f"denoised by seproc ({label})"),
    ]:
        image = axis.imshow(
            spectrogram,
            origin="lower",
            aspect="auto",
            extent=extent,
            cmap="magma",
            vmin=top - 80,
            vmax=top,
            interpolation="nearest",
        )
        axis.set_title(title, loc="left", fontsize=10)
        axis.set_ylabel("kHz")
    axes[1].set_xlabel("seconds")
    figure.colorbar(image, ax=axes, label="power (dB)", shrink=0.9)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=110)
    # A 64-colour palette keeps the picture under a quarter of its RGB size, same look.
    picture = Image.open(buffer).convert("RGB")
    picture.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out, optimize=True
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

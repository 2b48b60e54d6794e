"""A DAW-style host loop: fixed-size buffer callbacks, with the latency reported to the host.

Audio plugin hosts call a plugin with a fixed buffer (here 256 samples at 48 kHz,
stereo) and expect exactly that many samples back. A seproc ``Denoiser`` does that:
``process`` returns as many samples as it gets, ``latency_samples`` later. The plugin
reports that latency once, and the host delays every other track by it (plugin delay
compensation), so the denoised track lines up with the rest of the mix.

This script plays the host: it upsamples the example to 48 kHz stereo, runs the
callback over it buffer by buffer, delay-compensates a dry track, and checks that the
two line up. No allocation happens in the callback (``process(block, out=...)``).

    python examples/host_loop.py [IN.wav] [--buffer 256] [--model PATH]

Runs in the test suite (tests/test_examples.py).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from seproc import Denoiser

HOST_RATE_HZ = 48000


class DenoiserPlugin:
    """What a plugin wrapper does: settings at prepare time, one call per buffer."""

    def __init__(self, sample_rate: int, channels: int, buffer_samples: int, model=None):
        self.denoiser = Denoiser(
            model, sample_rate=sample_rate, channels=channels, max_block_samples=buffer_samples
        )

    @property
    def latency_samples(self) -> int:
        """Reported to the host once (VST3 getLatencySamples, AU kAudioUnitProperty_Latency)."""
        return self.denoiser.latency_samples

    def process_block(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """The audio callback: (channels, buffer_samples) in, same shape out, no allocation."""
        self.denoiser.process(inputs, out=outputs)

    def reset(self) -> None:
        """Transport stop / seek: forget the stream."""
        self.denoiser.reset()


def to_host_format(path: str) -> np.ndarray:
    """Read a file and make it 48 kHz stereo float32, shape (2, samples)."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.T
    if rate != HOST_RATE_HZ:  # simple linear interpolation is enough for a demo input
        t_out = np.arange(int(audio.shape[1] * HOST_RATE_HZ / rate)) / HOST_RATE_HZ
        t_in = np.arange(audio.shape[1]) / rate
        audio = np.stack([np.interp(t_out, t_in, channel) for channel in audio])
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    return np.ascontiguousarray(audio[:2], dtype=np.float32)


def main() -> None:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=str(here / "noisy_speech.wav"))
    parser.add_argument("--buffer", type=int, default=256, help="host buffer size in samples")
    parser.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    args = parser.parse_args()

    track = to_host_format(args.input)
    channels, total = track.shape
    buffer = args.buffer
    plugin = DenoiserPlugin(HOST_RATE_HZ, channels, buffer, args.model)
    latency = plugin.latency_samples
    print(f"plugin reports latency: {latency} samples ({1000 * latency / HOST_RATE_HZ:.2f} ms)")

    # The host's buffers, allocated once; the last buffer is zero-padded like a host does.
    n_buffers = -(-(total + latency) // buffer)  # play on until the latency has drained
    inputs = np.zeros((channels, buffer), np.float32)
    outputs = np.zeros((channels, buffer), np.float32)
    wet = np.zeros((channels, n_buffers * buffer), np.float32)
    callback_ms = np.zeros(n_buffers)
    for i in range(n_buffers):
        start = i * buffer
        piece = track[:, start : start + buffer]
        inputs.fill(0.0)
        inputs[:, : piece.shape[1]] = piece
        began = time.perf_counter()
        plugin.process_block(inputs, outputs)
        callback_ms[i] = 1000 * (time.perf_counter() - began)
        wet[:, start : start + buffer] = outputs

    # Plugin delay compensation: the host shifts the plugin's track back by its latency.
    aligned = wet[:, latency : latency + total]
    budget_ms = 1000 * buffer / HOST_RATE_HZ
    print(
        f"{n_buffers} callbacks of {buffer} samples, budget {budget_ms:.2f} ms each: "
        f"median {np.median(callback_ms):.3f} ms, 99th percentile "
        f"{np.percentile(callback_ms, 99):.3f} ms, slowest {callback_ms.max():.3f} ms"
    )
    # The denoised track must line up with the dry one: the cross-correlation peaks at 0.
    window = min(total, 4 * HOST_RATE_HZ)
    dry, processed = track[0, :window], aligned[0, :window]
    lags = np.arange(-64, 65)
    corr = [float(np.dot(dry[64:-64], np.roll(processed, -lag)[64:-64])) for lag in lags]
    best_lag = int(lags[int(np.argmax(corr))])
    print(f"denoised track vs dry track after compensation: best lag {best_lag} samples")


if __name__ == "__main__":
    main()

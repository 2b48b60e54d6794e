"""Denoise speech inside a pedalboard script: high-pass, seproc, compressor and gain.

Reads the file in chunks with ``pedalboard.io.AudioFile``, the way pedalboard scripts
stream long files, runs the chain chunk by chunk, and writes the result with
``AudioFile``. The denoiser's latency is removed, so the output lines up with the input.

    pip install 'seproc[pedalboard]'
    python examples/pedalboard_chain.py examples/noisy_speech.wav clean.wav

Runs in the test suite (tests/test_examples.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pedalboard import Compressor, Gain, HighpassFilter, Limiter
from pedalboard.io import AudioFile

from seproc import Denoiser
from seproc.integrations.pedalboard import DenoisingChain


def main() -> None:
    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=str(here / "noisy_speech.wav"))
    parser.add_argument("output", nargs="?", default="clean_chain.wav")
    parser.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    parser.add_argument("--chunk-samples", type=int, default=4096)
    args = parser.parse_args()

    with AudioFile(args.input) as source:
        sample_rate, channels = source.samplerate, source.num_channels  # float rates are fine
        # AudioFile writes 16-bit unless told; keep 16/24-bit, write 32-bit and float as float.
        bit_depth = {"int16": 16, "int24": 24}.get(source.file_dtype, 32)
        chain = DenoisingChain(
            Denoiser(args.model, sample_rate=sample_rate, channels=channels),
            before=[HighpassFilter(cutoff_frequency_hz=80)],  # rumble off before denoising
            after=[Compressor(threshold_db=-24, ratio=3), Gain(gain_db=6), Limiter(-1.0)],
        )
        with AudioFile(args.output, "w", sample_rate, channels, bit_depth=bit_depth) as sink:
            while source.tell() < source.frames:
                sink.write(chain.process(source.read(args.chunk_samples)))
            sink.write(chain.flush())  # what the latency still held back
        frames = source.frames

    latency_ms = chain.denoiser.latency_ms
    print(
        f"wrote {args.output}: {frames} samples at {sample_rate} Hz, {channels} channel(s); "
        f"denoiser latency {latency_ms:.1f} ms, compensated"
    )


if __name__ == "__main__":
    main()

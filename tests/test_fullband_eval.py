"""The pieces behind the full-band evaluation, the source scores and the ONNX round trip.

References: ``scipy.signal.welch`` for levels, onnxruntime (through ``OnnxModel``) for
the rebuilt PyTorch model.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from seproc.model import default_model_path
from training import evaluate_fullband as fb
from training import score_sources


def test_band_lsd_is_zero_for_the_clean_clip_and_grows_with_noise_in_its_band():
    rng = np.random.default_rng(0)
    clean = (0.1 * rng.standard_normal(48000)).astype(np.float32)
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in fb.band_lsd_db(clean, clean).values())
    # Noise above 12 kHz only: the 12-20 kHz distance rises, 0-4 kHz stays near 0.
    spectrum = np.fft.rfft(rng.standard_normal(48000))
    spectrum[np.fft.rfftfreq(48000, 1 / 48000) < 12500] = 0
    high = 0.5 * np.fft.irfft(spectrum, 48000).astype(np.float32)
    lsd = fb.band_lsd_db(clean, clean + high)
    assert lsd["lsd_12_20k"] > 3.0
    assert lsd["lsd_0_4k"] < 0.1


@pytest.mark.parametrize("kind", fb.NOISE_TYPES)
def test_mixtures_have_the_requested_snr_over_the_band(kind):
    t = np.arange(3 * 48000) / 48000
    clean = 0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 2 * t))
    for mix in fb.mixtures([("clip", clean)]):
        if mix["noise"] != kind:
            continue
        noise = mix["noisy"].astype(np.float64) - mix["clean"]
        snr = 10 * np.log10(np.mean(mix["clean"].astype(np.float64) ** 2) / np.mean(noise**2))
        assert snr == pytest.approx(mix["snr_db"], abs=0.05)


def test_clips_come_from_the_archive_and_test_and_val_words_are_disjoint(tmp_path):
    archive = tmp_path / "mcvqoe.tar.gz"
    tone = 0.1 * np.sin(2 * np.pi * 300 * np.arange(4800) / 48000)
    with tarfile.open(archive, "w:gz") as tar:
        for talker in ("F3", "M3"):
            for b in (1, 2):
                for w in range(1, 7):
                    data = io.BytesIO()
                    sf.write(data, tone, 48000, format="WAV")
                    info = tarfile.TarInfo(f"pkg/audio_clips/{talker}_b{b}_w{w}_orig.wav")
                    info.size = data.tell()
                    data.seek(0)
                    tar.addfile(info, data)
    talkers = fb.read_talker_clips(archive)
    assert {t: len(c) for t, c in talkers.items()} == {"F3": 12, "M3": 12}
    test = {name for name, _ in fb.clean_clips(talkers, 2, "test")}
    val = {name for name, _ in fb.clean_clips(talkers, 2, "val")}
    words = [set(name.split(":")[1].split("+")) for name in test | val]
    assert len(test) == len(val) == 4  # two clips per talker, two talkers
    test_words = set().union(*[set(n.split(":")[1].split("+")) for n in test])
    val_words = set().union(*[set(n.split(":")[1].split("+")) for n in val])
    assert not test_words & val_words
    assert all(len(w) == 3 for w in words)


def test_bandwidth_finds_where_the_spectrum_ends():
    rng = np.random.default_rng(1)
    spectrum = np.fft.rfft(rng.standard_normal(4 * 48000))
    spectrum[np.fft.rfftfreq(4 * 48000, 1 / 48000) > 6000] *= 1e-5  # -100 dB above 6 kHz
    narrow = np.fft.irfft(spectrum, 4 * 48000)
    assert 5500 < fb.bandwidth_hz(narrow) < 6500


def test_body_level_is_high_for_low_voices_and_low_for_thin_ones():
    t = np.arange(16000) / 16000
    full = np.sin(2 * np.pi * 150 * t) + np.sin(2 * np.pi * 1000 * t)
    thin = 0.1 * np.sin(2 * np.pi * 150 * t) + np.sin(2 * np.pi * 1000 * t)
    assert score_sources.body_db(full) == pytest.approx(0.0, abs=0.5)
    assert score_sources.body_db(thin) == pytest.approx(-20.0, abs=0.5)


def test_the_shipped_onnx_model_rebuilds_in_pytorch():
    pytest.importorskip("torch")
    from training import from_onnx
    from training.train import load_config

    config = load_config(Path(__file__).parent.parent / "training/configs/cpu-finetune.toml")
    model = from_onnx.model_from_onnx(default_model_path(), config)
    assert from_onnx.check_against_onnx(model, default_model_path()) < 1e-4
    totals = from_onnx.training_totals(default_model_path())
    assert totals["step"] > 0 and totals["audio_seconds"] > 0 and totals["seconds_trained"] > 0


def test_oracle_mask_system_scores_the_ideal_mask_against_the_clean_clip():
    """The oracle row: near-perfect speech, the noise well down, report without seproc rows."""
    t = np.arange(2 * 48000) / 48000
    # a voiced, syllable-modulated tone complex: something the 16 kHz metrics can score
    clean = sum(np.sin(2 * np.pi * f0 * t) / k for k, f0 in enumerate((180, 360, 540, 900), 1))
    clean = 0.05 * clean * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))
    mix = next(
        m for m in fb.mixtures([("clip", clean)]) if m["noise"] == "white" and m["snr_db"] == 0
    )
    fb._WORKER.clear()
    fb._init(["noisy", fb.ORACLE], False, False, None, None)  # what each worker runs
    rows = {r["system"]: r for r in fb._score_mixture(mix)}
    assert set(rows) == {"noisy", fb.ORACLE}
    assert rows[fb.ORACLE]["lsd_0_4k"] < rows["noisy"]["lsd_0_4k"] - 5.0
    band_rows = [{"rate_hz": 48000, "attenuation_limit_db": 0, "error_db": -136.0}]
    text = fb.report(list(rows.values()), {}, band_rows, ["# test"])
    assert fb.ORACLE in text and "seproc minus each peer" not in text


def test_mask_diagnosis_variants_mix_the_gains_where_they_say():
    from training.mask_diagnosis import BANDS_HZ, hybrid_gains

    rng = np.random.default_rng(1)
    model, ideal = rng.uniform(0.01, 1, (2, 7, 161))
    variants = hybrid_gains(model, ideal, bin_hz=50.0)
    assert np.array_equal(variants["model"], model)
    assert np.all(variants["max(model,oracle)"] >= model)
    assert np.all(variants["min(model,oracle)"] <= model)
    assert np.array_equal(
        variants["max(model,oracle)"] + variants["min(model,oracle)"], model + ideal
    )
    low = variants[f"oracle {BANDS_HZ[1][0]}-{BANDS_HZ[1][1]} Hz"]  # 300-1000 Hz: bins 6..19
    assert np.array_equal(low[:, 6:20], ideal[:, 6:20])
    assert np.array_equal(low[:, :6], model[:, :6]) and np.array_equal(low[:, 20:], model[:, 20:])
    with pytest.raises(ValueError, match="must match"):
        hybrid_gains(model, ideal[:, :100], bin_hz=50.0)
    # with the mixture's power: the band's level from the ideal mask, or its smoothed shape
    power = rng.uniform(0.1, 10, model.shape)
    variants = hybrid_gains(model, ideal, bin_hz=50.0, noisy_power=power, gain_floor=0.01)
    level = variants["oracle 300-1000 Hz level"]
    band = slice(6, 20)
    scale = level[:, band] / model[:, band]
    unclipped = (level[:, band] > 0.01) & (level[:, band] < 1.0)
    for row, keep in zip(scale, unclipped, strict=True):  # one factor per frame
        assert np.ptp(row[keep]) < 1e-9
    energy = (np.minimum(level, 1.0)[:, band] ** 2 * power[:, band]).sum(axis=1)
    ideal_energy = (ideal[:, band] ** 2 * power[:, band]).sum(axis=1)
    assert np.all(
        energy[unclipped.all(axis=1)] == pytest.approx(ideal_energy[unclipped.all(axis=1)])
    )
    smooth = variants["oracle 300-1000 Hz smoothed"]
    assert np.array_equal(smooth[:, :6], model[:, :6])
    assert np.std(np.diff(smooth[:, band], axis=1)) < np.std(np.diff(ideal[:, band], axis=1))


def test_mask_diagnosis_ideal_gains_beat_the_models_on_pesq():
    from training import metrics
    from training.mask_diagnosis import diagnose

    t = np.arange(3 * 48000) / 48000
    clean = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    clean *= 0.05 * (1 + np.sin(2 * np.pi * 3 * t)) / np.sqrt(np.mean(clean**2))
    mixes = [m for m in fb.mixtures([("clip", clean)]) if m["noise"] == "pink"][:1]

    def score(clean16, estimate16):
        return {"pesq_wb": metrics.pesq_wb(clean16, estimate16)}

    means = diagnose(default_model_path(), mixes, score)
    assert means["oracle"]["pesq_wb"] > means["model"]["pesq_wb"] + 0.3
    # the ideal gains in every band at once would be the oracle; one band helps less
    assert means["oracle 300-1000 Hz"]["pesq_wb"] < means["oracle"]["pesq_wb"]


def test_postfilter_variants_are_blind_and_the_release_is_the_runtime_s():
    from seproc._kernels import release_gains
    from training.mask_diagnosis import RELEASES, postfilter_gains

    rng = np.random.default_rng(4)
    model = (0.01 + 0.99 * rng.random((1, 40, 161))).astype(np.float32)
    power = rng.random((1, 40, 161)).astype(np.float32)
    variants = postfilter_gains(model, np.ones_like(model), bin_hz=50.0, noisy_power=power)
    assert all(
        v.shape == model.shape and v.min() >= 0.01 and v.max() <= 1.0 for v in variants.values()
    )
    np.testing.assert_array_equal(variants["model"], model)
    # the ideal mask is not looked at: another one gives the same variants
    again = postfilter_gains(model, np.zeros_like(model), bin_hz=50.0, noisy_power=power)
    assert all(np.array_equal(again[k], v) for k, v in variants.items())
    factor, exponent = RELEASES[2]
    expected = model[0].copy()
    release_gains(expected, np.zeros(161, np.float32), factor, exponent)
    got = variants[f"release {factor} then ^{exponent}"][0]
    np.testing.assert_array_equal(got, np.clip(expected, np.float32(0.01), 1))  # the floor
    assert np.all(variants["attenuation limit 18 dB"] >= np.float32(10 ** (-18 / 20)))


def test_noise_estimate_follows_the_noise_where_the_model_removes_it():
    """The run-15 estimator: a bin the model passes keeps its estimate, a removed one tracks."""
    from training.mask_diagnosis import noise_estimate

    power = np.full((200, 3), 4.0)
    power[100:, :] = 1.0  # the noise power falls by a factor 4 half-way
    gain = np.zeros((200, 3))
    gain[:, 1] = 1.0  # bin 1: the model passes everything (speech): no update
    gain[:, 2] = 0.5
    estimate = noise_estimate(power, gain, smoothing=0.9, absence_power=1.0)
    assert np.allclose(estimate[99], 4.0) and np.isclose(estimate[-1, 0], 1.0, rtol=1e-3)
    assert np.all(estimate[:, 1] == 4.0)  # started at the first frame, never updated
    # a half gain updates at 0.75 of the rate; absence_power 4 at 0.75 ** 4 of it
    assert estimate[-1, 0] < estimate[-1, 2] < 1.01  # slower, and there
    slow = noise_estimate(power, gain, smoothing=0.9, absence_power=4.0)
    assert slow[110, 2] > estimate[110, 2] > estimate[110, 0]


def test_residual_variants_only_lower_the_shipped_release_gains():
    from seproc._kernels import release_gains
    from training.mask_diagnosis import SHIPPED_RELEASE, residual_gains

    rng = np.random.default_rng(5)
    model = (0.01 + 0.99 * rng.random((1, 60, 161))).astype(np.float32)
    power = rng.random((1, 60, 161)).astype(np.float32) + 0.1
    variants = residual_gains(model, np.ones_like(model), bin_hz=50.0, noisy_power=power)
    released = model[0].copy()
    release_gains(released, np.zeros(161, np.float32), SHIPPED_RELEASE, 1.0)
    np.testing.assert_array_equal(variants["shipped release"][0], released)
    for name, gains in variants.items():
        assert gains.shape == model.shape and gains.min() >= 0.01 and gains.max() <= 1.0
        if name.startswith("release, residual"):
            assert np.all(gains[0] <= released + 1e-7)  # only ever takes more out
            assert np.any(gains[0] < released - 1e-3)

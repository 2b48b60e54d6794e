"""Training, export and the exported model's contract (models/FORMAT.md).

References nobody here wrote: numpy's ``rfft`` of windowed frames and scipy's
``ShortTimeFFT`` for the torch STFT, onnxruntime for the exported graph, and the
runtime's own :class:`seproc.model.OnnxModel` loader.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from training import spectral  # noqa: E402
from training.batches import BatchConfig, ClipPool, Mixer, load_val_clips  # noqa: E402
from training.losses import si_sdr  # noqa: E402
from training.model import (  # noqa: E402
    ModelConfig,
    SeprocNet,
    count_flops_per_frame,
    grow_deep_filter,
    grow_gru,
    grow_refine,
)
from training.shards import Clip, write_shards  # noqa: E402

CONFIGS = Path(__file__).resolve().parent.parent / "training" / "configs"
RATE = 16000


# -- a small synthetic corpus in the shard format ---------------------------------------------
def _speechlike(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Voiced 'syllables': harmonic tones with a gliding pitch and syllable envelopes."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None) ** 2
    return (0.3 * voice * envelope / 3).astype(np.float32)


def _noise(rng: np.random.Generator, kind: str, seconds: float) -> np.ndarray:
    n = int(seconds * RATE)
    white = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.arange(1, len(spectrum) + 1))
        white = np.fft.irfft(spectrum, n)
    elif kind == "hum":
        t = np.arange(n) / RATE
        white = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in range(1, 8)) + 0.05 * white
    return (0.1 * white / np.std(white)).astype(np.float32)


def make_corpus(root: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n_speech in (("train", 12), ("val", 3)):
        speech = [
            Clip(
                _speechlike(rng, rng.uniform(0.4, 1.5)),
                "tts-espeak" if i % 2 else "voices",
                f"spk{i % 3}",
                f"s{i}",
            )
            for i in range(n_speech)
        ]
        noise = [
            Clip(
                _noise(rng, kind, rng.uniform(0.3, 1.2)),
                "recorded" if kind == "hum" else "synthetic",
                kind,
                f"{kind}{i}",
            )
            for i, kind in enumerate(["white", "pink", "hum"] * 2)
        ]
        write_shards(speech, root / "shards", split, "speech")
        write_shards(noise, root / "shards", split, "noise")
    val = root / "mixtures" / "val"
    (val / "noisy").mkdir(parents=True)
    (val / "clean").mkdir(parents=True)
    for i in range(2):
        clean = _speechlike(rng, 1.2)
        noisy = clean + _noise(rng, "pink", 1.2) * 0.5
        soundfile.write(val / "noisy" / f"mix{i}.wav", noisy, RATE, subtype="FLOAT")
        soundfile.write(val / "clean" / f"mix{i}.wav", clean, RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.train import train

    out = tmp_path_factory.mktemp("run")
    train(CONFIGS / "tiny.toml", corpus, out, max_steps=40)
    return out


def _records(out: Path, event: str) -> list[dict]:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


# -- spectral path ----------------------------------------------------------------------------
def test_sqrt_hann_is_the_root_of_scipys_periodic_hann() -> None:
    from scipy.signal import get_window

    expected = np.sqrt(get_window("hann", 320, fftbins=True))
    np.testing.assert_allclose(spectral.sqrt_hann().numpy(), expected, atol=1e-7)


@pytest.mark.parametrize("n_samples", [1, 159, 160, 161, 1000, 4801])
def test_stft_matches_numpy_rfft_of_windowed_frames(n_samples: int) -> None:
    rng = np.random.default_rng(n_samples)
    audio = rng.uniform(-1, 1, n_samples)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320))
    padded = np.concatenate([np.zeros(160), audio, np.zeros(480)])
    frames = spectral.n_frames(n_samples)
    reference = np.stack(
        [np.fft.rfft(padded[i * 160 : i * 160 + 320] * window) for i in range(frames)]
    )
    ours = spectral.stft(torch.from_numpy(audio)[None].double())[0].numpy()
    assert ours.shape == (frames, 161)
    np.testing.assert_allclose(ours, reference, atol=1e-10)
    db = spectral.log_power_db(torch.from_numpy(reference)).numpy()
    np.testing.assert_allclose(db, 10 * np.log10(np.maximum(np.abs(reference) ** 2, 1e-10)))


def test_stft_matches_scipy_short_time_fft() -> None:
    from scipy.signal import ShortTimeFFT

    rng = np.random.default_rng(3)
    audio = rng.uniform(-1, 1, 3200)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(320) / 320))
    sft = ShortTimeFFT(window, hop=160, fs=RATE, fft_mode="onesided", mfft=320, phase_shift=None)
    # scipy's slice p starts at sample p * hop - 160, as our frame p does
    reference = sft.stft(audio).T  # [slices, bins], the first slice is p_min
    ours = spectral.stft(torch.from_numpy(audio)[None].double())[0].numpy()
    start = -sft.p_min
    n = min(len(ours), len(reference) - start)
    assert n >= 20
    np.testing.assert_allclose(ours[:n], reference[start : start + n], atol=1e-10)


@pytest.mark.parametrize("n_samples", [1, 160, 999, 16000])
def test_istft_inverts_stft(n_samples: int) -> None:
    audio = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, (2, n_samples)))
    back = spectral.istft(spectral.stft(audio), n_samples)
    np.testing.assert_allclose(back.numpy(), audio.numpy(), atol=1e-12)


def test_si_sdr_matches_its_definition() -> None:
    rng = np.random.default_rng(2)
    clean = rng.standard_normal(4000)
    clean -= clean.mean()
    noise = rng.standard_normal(4000)
    noise -= noise.mean()
    noise -= clean * (noise @ clean) / (clean @ clean)  # orthogonal to clean
    estimate = 0.5 * clean + 0.1 * noise
    expected = 10 * math.log10(np.sum((0.5 * clean) ** 2) / np.sum((0.1 * noise) ** 2))
    value = si_sdr(torch.from_numpy(estimate)[None], torch.from_numpy(clean)[None])
    assert float(value) == pytest.approx(expected, abs=1e-6)


def test_stoi_approx_follows_pystoi() -> None:
    """The differentiable STOI stays within 0.04 of pystoi's and rises with the SNR."""
    pystoi = pytest.importorskip("pystoi")
    from training.losses import stoi_approx

    rng = np.random.default_rng(5)
    # a voice over a room's faint hiss (60 dB down), as in any recording: the loss floors
    # band powers 100 dB below the loudest, which only digital silence reaches
    voice = _speechlike(rng, 3.0)
    noise = rng.standard_normal(voice.size)
    clean = voice + 1e-3 * np.sqrt(np.mean(voice**2)) * noise[::-1]
    signals = []
    for snr_db in (-5.0, 0.0, 5.0, 15.0):
        gain = np.sqrt(np.mean(clean**2) / np.mean(noise**2)) * 10 ** (-snr_db / 20)
        signals.append(clean + gain * noise)
    from scipy.signal import butter, sosfilt

    signals.append(sosfilt(butter(4, 1000, fs=RATE, output="sos"), clean))  # muffled
    ours = stoi_approx(
        torch.from_numpy(np.stack(signals)).float(),
        torch.from_numpy(np.tile(clean, (len(signals), 1))).float(),
    ).numpy()
    reference = np.array([pystoi.stoi(clean, s, RATE) for s in signals])
    assert np.abs(ours - reference).max() < 0.04, (ours, reference)
    assert np.all(np.diff(ours[:4]) > 0.005)  # -5, 0, 5, 15 dB


def test_stoi_term_is_weighted_differentiable_and_skips_speech_free_items() -> None:
    from training.losses import LossConfig, stoi_approx, total_loss

    rng = np.random.default_rng(6)
    clean = torch.from_numpy(np.stack([_speechlike(rng, 1.0), np.zeros(RATE)])).float()
    estimate = (clean + 0.05 * torch.randn_like(clean)).requires_grad_(True)
    config = LossConfig(compressed_mag=0, compressed_complex=0, mrstft=0, sisdr=0, stoi=2.0)
    total, terms = total_loss(
        config,
        estimate_spec=spectral.stft(estimate),
        clean_spec=spectral.stft(clean),
        estimate_wave=estimate,
        clean_wave=clean,
        has_speech=torch.tensor([True, False]),
    )
    expected = -float(stoi_approx(estimate[:1].detach(), clean[:1])[0])
    assert terms == {"stoi": pytest.approx(expected, abs=1e-6)}
    assert float(total.detach()) == pytest.approx(2.0 * expected, abs=1e-6)
    total.backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all()
    assert float(estimate.grad[0].abs().sum()) > 0
    assert float(estimate.grad[1].abs().sum()) == 0  # the speech-free item is left out


def _total_loss_of(config, estimate: torch.Tensor, clean: torch.Tensor):
    """``total_loss`` of two speech waveforms ``[1, samples]`` on the model's STFT."""
    from training.losses import total_loss

    return total_loss(
        config,
        estimate_spec=spectral.stft(estimate),
        clean_spec=spectral.stft(clean),
        estimate_wave=estimate,
        clean_wave=clean,
        has_speech=torch.tensor([True]),
    )


def test_erb_bands_follow_the_erb_rate_scale_and_partition_the_bins() -> None:
    from training.losses import erb_band_matrix

    bands = erb_band_matrix(161, 16000, 32).numpy()
    assert bands.shape == (161, 32)
    assert np.all((bands > 0).sum(axis=1) == 1)  # every bin in exactly one band
    np.testing.assert_allclose(bands.sum(axis=0), 1.0, rtol=1e-6)  # each band averages
    widths = (bands > 0).sum(axis=0)
    assert widths.min() == 2 and np.all(np.diff(widths) >= 0)  # widen with frequency
    # the ERB-rate scale (Glasberg and Moore 1990) at the band edges: equal steps above
    # the 2-bin minimum
    edges_hz = 50.0 * np.concatenate([[0], np.cumsum(widths)])
    erb_rate = 21.4 * np.log10(1 + 0.00437 * edges_hz)
    steps = np.diff(erb_rate)[widths > 4]
    assert np.ptp(steps) < 0.5 * steps.mean()
    with pytest.raises(ValueError, match="n_bands >= 1"):
        erb_band_matrix(161, 16000, 0)


def test_erb_band_term_weighs_the_low_bands_and_is_trainable() -> None:
    from training.losses import LossConfig, erb_band_loss, erb_band_matrix

    rng = np.random.default_rng(3)
    clean = torch.from_numpy(_speechlike(rng, 1.0)[None]).float()
    clean_spec = spectral.stft(clean)
    bands = erb_band_matrix(161, 16000, 32)
    assert float(erb_band_loss(clean_spec, clean_spec, bands, 0.3)) == pytest.approx(0, abs=1e-9)
    low, high = torch.ones(161), torch.ones(161)
    low[6:20] = 0.5  # halve 300-1000 Hz (14 bins)
    high[100:114] = 0.5  # halve 14 bins around 5-5.7 kHz
    # the same number of bins halved costs more in the low, narrow bands
    loss_low = erb_band_loss(clean_spec * low, clean_spec, bands, 0.3)
    loss_high = erb_band_loss(clean_spec * high, clean_spec, bands, 0.3)
    assert float(loss_low) > 2 * float(loss_high)
    estimate = (clean * 0.5).requires_grad_(True)
    config = LossConfig(compressed_mag=0, compressed_complex=0, mrstft=0, sisdr=0, erb_band=2.0)
    total, terms = _total_loss_of(config, estimate, clean)
    assert set(terms) == {"erb_band"}
    assert float(total.detach()) == pytest.approx(2.0 * terms["erb_band"], rel=1e-6)
    total.backward()
    assert float(estimate.grad.abs().sum()) > 0


def test_over_suppression_counts_only_speech_taken_out() -> None:
    """The asymmetric term: zero for an estimate louder than the target, else the shortfall."""
    from training.losses import LossConfig, compressed_loss

    rng = np.random.default_rng(7)
    clean = torch.from_numpy(_speechlike(rng, 1.0)[None]).float()
    clean_spec = spectral.stft(clean)
    _, _, louder = compressed_loss(clean_spec * 2.0, clean_spec, 0.3)
    assert float(louder) == 0.0  # noise left in is not over-suppression
    mag, _, quieter = compressed_loss(clean_spec * 0.5, clean_spec, 0.3)
    assert float(quieter) > 0.0
    assert float(quieter) == pytest.approx(float(mag), rel=1e-4)  # all of the error is shortfall
    estimate = (clean * 0.5).requires_grad_(True)
    config = LossConfig(
        compressed_mag=1.0, compressed_complex=0, mrstft=0, sisdr=0, over_suppression=3.0
    )
    total, terms = _total_loss_of(config, estimate, clean)
    assert set(terms) == {"compressed_mag", "compressed_complex", "over_suppression"}
    assert float(total.detach()) == pytest.approx(
        terms["compressed_mag"] + 3.0 * terms["over_suppression"], rel=1e-5
    )
    total.backward()
    assert float(estimate.grad.abs().sum()) > 0
    # without the weight the term is neither computed nor logged
    plain_config = LossConfig(compressed_mag=1.0, compressed_complex=0, mrstft=0, sisdr=0)
    _, plain = _total_loss_of(plain_config, clean * 0.5, clean)
    assert "over_suppression" not in plain


def test_shaped_target_is_the_oracle_mask_raised_to_a_power() -> None:
    """Against the evaluation's oracle (numpy, seproc's STFT): power 1 resynthesises the
    same signal; a larger power takes the noise-dominated bins down and keeps the rest."""
    from training.evaluate import oracle_mask
    from training.losses import shaped_target

    rng = np.random.default_rng(3)
    clean = _speechlike(rng, 1.0).astype(np.float32)
    noisy = (clean + 0.05 * rng.standard_normal(clean.size)).astype(np.float32)
    clean_t, noisy_t = (torch.from_numpy(a[None]).double() for a in (clean, noisy))
    noisy_spec, clean_spec = spectral.stft(noisy_t), spectral.stft(clean_t)
    one = spectral.istft(shaped_target(noisy_spec, clean_spec, 1.0, -40.0), clean.size)[0]
    reference = oracle_mask(clean, noisy)
    inner = slice(320, clean.size - 320)  # the two frame their ends differently
    error = one.numpy()[inner] - reference[inner]
    assert float(np.sqrt(np.mean(error**2))) < 1e-4 * float(np.sqrt(np.mean(reference**2)))
    two = shaped_target(noisy_spec, clean_spec, 2.0, -40.0).abs()
    ratio = (clean_spec.abs() / noisy_spec.abs()).clamp(0.01, 1.0)
    np.testing.assert_allclose(two.numpy(), (noisy_spec.abs() * ratio**2).numpy(), rtol=1e-9)
    speech = ratio >= 1.0  # bins the clean signal fills: kept whatever the power
    assert torch.equal(two[speech], noisy_spec.abs()[speech])
    assert bool(
        (two[~speech] < shaped_target(noisy_spec, clean_spec, 1.0, -40.0).abs()[~speech]).all()
    )
    with pytest.raises(ValueError, match="power"):
        shaped_target(noisy_spec, clean_spec, 0.0, -40.0)


def test_training_on_a_shaped_target_and_its_refusals(corpus: Path, tmp_path: Path) -> None:
    from training.train import load_model, train

    text = (
        (CONFIGS / "tiny.toml").read_text().replace("[loss]\n", "[loss]\ntarget_mask_power = 1.5\n")
    )
    assert "target_mask_power = 1.5" in text
    config = tmp_path / "shaped.toml"
    config.write_text(text)
    train(config, corpus, tmp_path / "run", max_steps=2)
    _, payload = load_model(tmp_path / "run" / "last.pt")
    assert payload["step"] == 2
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    losses = [r["loss"] for r in map(json.loads, log) if r.get("event") == "train"]
    assert losses and all(math.isfinite(value) for value in losses)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (CONFIGS / "cpu-noise-subtraction.toml")
        .read_text()
        .replace("[loss]\n", "[loss]\ntarget_mask_power = 1.5\n")
    )
    with pytest.raises(ValueError, match="cannot be combined"):
        train(bad, corpus, tmp_path / "bad", max_steps=1)
    bad.write_text(text.replace("target_mask_power = 1.5", "target_mask_power = -1.0"))
    with pytest.raises(ValueError, match="must be >= 0"):
        train(bad, corpus, tmp_path / "bad", max_steps=1)


# -- data -------------------------------------------------------------------------------------
def test_mixer_items_add_up_and_respect_shares(corpus: Path) -> None:
    speech = ClipPool(corpus / "shards", "train", "speech")
    noise = ClipPool(corpus / "shards", "train", "noise")
    config = BatchConfig(batch_size=4, segment_seconds=0.5)
    mixer = Mixer(speech, noise, config, np.random.default_rng(0))
    again = Mixer(speech, noise, config, np.random.default_rng(0))
    noisy, clean, noise_part = mixer.batch()
    assert noisy.shape == (4, 8000)
    np.testing.assert_allclose(noisy, clean + noise_part, atol=1e-6)
    np.testing.assert_array_equal(again.batch()[0], noisy)
    levels = [20 * np.log10(np.sqrt(np.mean(mixer.item()[0] ** 2))) for _ in range(50)]
    assert min(levels) >= -40.5
    assert max(levels) <= -14.5


def test_mixer_draws_real_voices_and_recorded_noise_at_the_set_shares(corpus: Path) -> None:
    speech = ClipPool(corpus / "shards", "train", "speech")
    noise = ClipPool(corpus / "shards", "train", "noise")
    config = BatchConfig(real_speech_share=1.0, recorded_noise_share=0.0)
    mixer = Mixer(speech, noise, config, np.random.default_rng(0))
    assert set(speech.source[speech.subsets["real"]]) == {"voices"}
    picks = [speech.pick_by_length(mixer.rng, mixer._speech_subset()) for _ in range(200)]
    assert set(speech.source[picks]) == {"voices"}
    noises = [noise.pick_by_group(mixer.rng, mixer._noise_subset()) for _ in range(200)]
    assert set(noise.group[noises]) == {"white", "pink"}
    config.real_speech_share, config.recorded_noise_share = 0.5, 0.5
    picks = [speech.pick_by_length(mixer.rng, mixer._speech_subset()) for _ in range(400)]
    real = np.mean(speech.source[picks] == "voices")
    assert 0.4 < real < 0.6


def test_val_clips_load_from_noisy_and_clean_folders(corpus: Path) -> None:
    clips = load_val_clips(corpus / "mixtures" / "val", 8)
    assert [c.name for c in clips] == ["mix0", "mix1"]
    assert clips[0].noisy.shape == clips[0].clean.shape


# -- model ------------------------------------------------------------------------------------
def test_model_is_causal() -> None:
    model = SeprocNet(ModelConfig(channels=(4, 8), gru_hidden=16)).eval()
    features = torch.randn(1, 30, 161)
    changed = features.clone()
    changed[:, 20:] += 5.0
    with torch.no_grad():
        a, b = model(features)[0], model(changed)[0]
    torch.testing.assert_close(a[:, :20], b[:, :20], rtol=0, atol=0)
    assert float((a[:, 20:] - b[:, 20:]).abs().max()) > 1e-3


def test_mask_is_bounded_by_the_gain_floor() -> None:
    model = SeprocNet(ModelConfig(channels=(4, 8), gru_hidden=16, gain_floor_db=-25)).eval()
    with torch.no_grad():
        gain = model(torch.randn(1, 50, 161) * 50)[0]
    assert float(gain.min()) >= 10 ** (-25 / 20) - 1e-7
    assert float(gain.max()) <= 1.0


def test_grown_refine_head_keeps_the_output_then_sees_single_bins() -> None:
    torch.manual_seed(0)
    model = SeprocNet(ModelConfig(channels=(4, 8), gru_hidden=16)).eval()
    grown = grow_refine(model, 6).eval()
    features = torch.randn(1, 20, 161)
    with torch.no_grad():
        torch.testing.assert_close(grown(features)[0], model(features)[0], rtol=0, atol=0)
        for param in grown.refine.conv3.parameters():
            param.add_(0.1)
        a = grown(features)[0]
        changed = features.clone()
        changed[:, :, 80] += 5.0  # one bin: the refine head reaches 6 bins each side
        b = grown(changed)[0]
    assert float((a - b)[:, :, 74:87].abs().max()) > 1e-4
    assert count_flops_per_frame(grown) > count_flops_per_frame(model)
    with pytest.raises(ValueError, match="already has a refine head"):
        grow_refine(grown, 6)
    with pytest.raises(ValueError, match="refine_channels"):
        ModelConfig(refine_channels=-1)


def test_grown_gru_keeps_the_output_and_its_new_units_learn() -> None:
    torch.manual_seed(0)
    model = SeprocNet(ModelConfig(channels=(4, 8), gru_hidden=16)).eval()
    grown = grow_gru(model, 24).eval()
    assert grown.state_shapes()["gru"] == (1, 1, 24)
    assert count_flops_per_frame(grown) > count_flops_per_frame(model)
    features = torch.randn(1, 30, 161)
    rng_before = torch.get_rng_state()
    with torch.no_grad():
        torch.testing.assert_close(grown(features)[0], model(features)[0], rtol=0, atol=1e-6)
        _, *_, hidden = grown(features)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random stream kept
    assert float(hidden[..., 16:].abs().max()) > 1e-3  # the new units are alive ...
    grown.train()
    grown(features)[0].sum().backward()
    # ... so the zero paths from them to the old units and the expand layer have gradients
    assert float(grown.expand.weight.grad[:, 16:].abs().max()) > 0
    assert float(grown.gru.weight_hh_l0.grad[:16, 16:].abs().max()) > 0
    with pytest.raises(ValueError, match="larger than the model's gru_hidden=24"):
        grow_gru(grown, 24)


def test_grown_deep_filter_keeps_the_output_and_its_head_learns() -> None:
    from training.train import forward_batch

    torch.manual_seed(0)
    model = SeprocNet(ModelConfig(channels=(4, 8), gru_hidden=16)).eval()
    rng_before = torch.get_rng_state()
    grown = grow_deep_filter(model, 2, 40).eval()
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's random stream kept
    assert count_flops_per_frame(grown) > count_flops_per_frame(model)
    noisy = 0.1 * torch.randn(2, 8000)
    with torch.no_grad():
        plain, filtered = forward_batch(model, noisy), forward_batch(grown, noisy)
        raw = grown(torch.randn(1, 7, 161))[0]
    assert raw.shape == (1, 7, 161 + 2 * 2 * 40)  # the gains, then the coefficients
    assert torch.equal(plain[0], filtered[0]) and torch.equal(plain[2], filtered[2])
    grown.train()
    forward_batch(grown, noisy)[1].square().sum().backward()
    assert float(grown.deep_filter.deconv.weight.grad.abs().max()) > 0  # zero, yet it learns
    with pytest.raises(ValueError, match="already has a deep filter"):
        grow_deep_filter(grown, 2, 40)
    for order, bins in ((2, 0), (0, 8), (1, 162)):
        with pytest.raises(ValueError, match="deep_filter_order"):
            ModelConfig(deep_filter_order=order, deep_filter_bins=bins)
    with pytest.raises(ValueError, match="needs formulation='mask'"):
        ModelConfig(formulation="noise_subtraction", deep_filter_order=1, deep_filter_bins=8)


def test_deep_filter_adds_the_weighted_past_frames_to_the_lowest_bins() -> None:
    """``apply_deep_filter`` against a plain loop over frames, bins and past frames."""
    from training.train import apply_deep_filter

    rng = np.random.default_rng(3)
    batch, frames, bins, order, n = 2, 9, 12, 3, 5

    def complex_normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)

    masked, spec = complex_normal(batch, frames, bins), complex_normal(batch, frames, bins)
    coef = rng.standard_normal((batch, frames, 2 * order * n)).astype(np.float32)
    got = apply_deep_filter(
        torch.from_numpy(masked), torch.from_numpy(spec), torch.from_numpy(coef), order
    ).numpy()
    c = coef.reshape(batch, frames, order, 2, n)
    expected = masked.astype(np.complex128)
    for b in range(batch):
        for t in range(frames):
            for k in range(1, order + 1):
                if t - k >= 0:
                    for f in range(n):
                        weight = c[b, t, k - 1, 0, f] + 1j * c[b, t, k - 1, 1, f]
                        expected[b, t, f] += weight * spec[b, t - k, f]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got[..., n:], masked[..., n:])  # the bins above: untouched


def test_a_deep_filter_trains_and_export_refuses_it(corpus: Path, tmp_path: Path) -> None:
    from training.export import export
    from training.train import load_model, train

    text = (CONFIGS / "tiny.toml").read_text()
    text = text.replace("[loss]\n", "deep_filter_order = 2\ndeep_filter_bins = 48\n\n[loss]\n", 1)
    assert "deep_filter_order = 2" in text
    config = tmp_path / "deep-filter.toml"
    config.write_text(text)
    train(config, corpus, tmp_path / "run", max_steps=3)
    model, payload = load_model(tmp_path / "run" / "last.pt")
    assert payload["step"] == 3 and model.config.deep_filter_order == 2
    assert float(model.deep_filter.deconv.weight.detach().abs().max()) > 0  # moved from zero
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    losses = [r["loss"] for r in map(json.loads, log) if r.get("event") == "train"]
    assert losses and all(math.isfinite(value) for value in losses)
    with pytest.raises(ValueError, match="has a deep filter"):
        export(tmp_path / "run" / "last.pt", tmp_path / "df.onnx")
    assert not (tmp_path / "df.onnx").exists()
    # what scores it instead: the training signal path, raw and with the runtime's release
    from training.mask_diagnosis import score_checkpoints

    rng = np.random.default_rng(8)
    clean = _speechlike(rng, 1.0).astype(np.float32)
    mixture = {"clean": np.repeat(clean, 3), "noisy": np.repeat(clean, 3)}
    mixture["noisy"] = mixture["noisy"] + 0.05 * rng.standard_normal(48000).astype(np.float32)
    seen = []

    def score(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
        seen.append(estimate)
        return {"energy": float(np.sum(estimate**2))}

    means = score_checkpoints([tmp_path / "run" / "last.pt"], [mixture], score)
    assert sorted(means) == ["run/last.pt, raw", "run/last.pt, release 150"]
    assert len(seen) == 2 and seen[0].shape == (16000,)
    # the release holds gains up, so the two outputs differ
    assert not np.array_equal(seen[0], seen[1])
    assert means["run/last.pt, release 150"]["energy"] != means["run/last.pt, raw"]["energy"]


# -- training ---------------------------------------------------------------------------------
def test_tiny_training_lowers_the_loss_and_writes_checkpoints(trained: Path, corpus: Path) -> None:
    steps = _records(trained, "train")
    assert steps[0]["step"] == 1
    start = _records(trained, "start")[0]
    assert start["val_noisy"]["pesq"] > 1.0
    losses = [r["loss"] for r in steps]
    assert (trained / "last.pt").is_file()
    assert (trained / "best.pt").is_file()
    val = _records(trained, "val")[-1]
    assert val["step"] == 40
    assert math.isfinite(val["val_si_sdr"])
    end = _records(trained, "end")[-1]
    assert end["step"] == 40
    # the first logged step's loss against the final checkpoint's on the same batches
    assert losses[0] > 0
    assert _final_loss(trained, corpus) < losses[0]


def _final_loss(out: Path, data: Path) -> float:
    """The trained model's loss on the first batch of the run (same seed)."""
    from training.batches import ClipPool as Pool
    from training.losses import total_loss
    from training.train import forward_batch, load_config, load_model

    cfg = load_config(CONFIGS / "tiny.toml")
    model, _ = load_model(out / "last.pt")
    speech, noise = (
        Pool(data / "shards", "train", "speech"),
        Pool(data / "shards", "train", "noise"),
    )
    mixer = Mixer(speech, noise, cfg["batches"], np.random.default_rng(cfg["train"].seed))
    noisy, clean, _ = (torch.from_numpy(a) for a in mixer.batch())
    with torch.no_grad():
        spec, wave, _, _ = forward_batch(model, noisy)
        loss, _ = total_loss(
            cfg["loss"],
            estimate_spec=spec,
            clean_spec=spectral.stft(clean),
            estimate_wave=wave,
            clean_wave=clean,
            has_speech=clean.abs().amax(-1) > 0,
        )
    return float(loss)


# -- export -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(trained: Path) -> Path:
    from training.export import export

    path = trained / "tiny.onnx"
    summary = export(trained / "best.pt", path)
    assert summary["torch_vs_onnx"] <= 1e-4
    return path


def test_exported_model_loads_with_the_runtime_and_carries_the_training_stats(
    trained: Path, exported: Path
) -> None:
    from seproc.model import OnnxModel
    from training.train import load_model

    model, _ = load_model(trained / "best.pt")
    runtime = OnnxModel(exported)
    info = runtime.info
    assert (info.sample_rate_hz, info.n_fft, info.hop_length, info.win_length) == (
        16000,
        320,
        160,
        320,
    )
    assert info.formulation == "mask"
    assert info.gain_floor_db == -25.0
    assert info.lookahead_frames == 0
    np.testing.assert_allclose(info.feature_mean_db, model.feature_mean_db.numpy(), atol=1e-3)
    np.testing.assert_allclose(info.feature_std_db, model.feature_std_db.numpy(), atol=1e-3)
    assert info.state_shapes == {name: shape for name, shape in model.state_shapes(1).items()}


def test_runtime_frame_by_frame_equals_pytorch_whole_sequence(
    trained: Path, exported: Path
) -> None:
    from seproc.model import OnnxModel
    from training.train import load_model

    model, _ = load_model(trained / "best.pt")
    runtime = OnnxModel(exported)
    features = np.random.default_rng(5).standard_normal((90, 161)).astype(np.float32)
    with torch.no_grad():
        reference = model(torch.from_numpy(features)[None])[0][0].numpy()
    state = runtime.new_state()
    whole = np.empty_like(features)
    runtime.run(features, whole, state)
    np.testing.assert_allclose(whole, reference, atol=1e-4, rtol=0)
    state = runtime.new_state()
    streamed = np.empty_like(features)
    for t in range(90):
        runtime.run(features[t : t + 1], streamed[t : t + 1], state)
    np.testing.assert_allclose(streamed, whole, atol=1e-5, rtol=0)
    state = runtime.new_state()
    blocks = np.empty_like(features)
    for t in range(0, 90, 4):
        runtime.run(
            np.ascontiguousarray(features[t : t + 4]), blocks[t : t + 4], state
        )  # batches of consecutive frames
    np.testing.assert_allclose(blocks, whole, atol=1e-5, rtol=0)


def test_parity_check_fails_hard_on_a_mismatch(trained: Path, exported: Path) -> None:
    from training.export import check_parity
    from training.train import load_model

    model, _ = load_model(trained / "best.pt")
    with torch.no_grad():
        model.decoder[-1].deconv.bias += 0.5
    with pytest.raises(AssertionError, match="differs from PyTorch"):
        check_parity(model, exported.read_bytes())


def test_noise_subtraction_config_trains_and_exports_noise_db(corpus: Path, tmp_path: Path) -> None:
    from seproc.model import OnnxModel
    from training.export import export
    from training.train import train

    # the shipped seed config, with its data settings cut down for a test
    text = (CONFIGS / "cpu-noise-subtraction.toml").read_text()
    for old, new in (
        ("stats_items = 256", "stats_items = 8"),
        ("batch_size = 12", "batch_size = 2"),
    ):
        assert old in text
        text = text.replace(old, new)
    config = tmp_path / "seed.toml"
    config.write_text(text)
    train(config, corpus, tmp_path, max_steps=1)
    path = tmp_path / "seed.onnx"
    export(tmp_path / "last.pt", path)
    runtime = OnnxModel(path)
    assert runtime.info.formulation == "noise_subtraction"
    assert runtime.info.output_name == "noise_db"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].name == "noise_db"
    features = np.zeros((3, 161), np.float32)
    noise_db = np.empty_like(features)
    runtime.run(features, noise_db, runtime.new_state())
    # denormalised inside the graph: the output is on the dB scale of the features
    assert float(np.abs(noise_db).max()) > 5.0


@pytest.mark.parametrize("name", ["tiny", "cpu", "gpu", "cpu-noise-subtraction"])
def test_configs_load_and_fit_the_compute_budget(name: str) -> None:
    from training.train import load_config

    cfg = load_config(CONFIGS / f"{name}.toml")
    model = SeprocNet(cfg["model"])
    assert count_flops_per_frame(model) <= 8e6
    if name != "tiny":
        assert cfg["train"].threads >= 1
        assert cfg["model"].gain_floor_db == -25.0


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("cpu-finetune-*.toml")), ids=lambda p: p.stem)
def test_fine_tune_configs_load_and_fit_the_budget_with_the_shipped_floor(path: Path) -> None:
    from training.train import load_config

    cfg = load_config(path)
    assert count_flops_per_frame(SeprocNet(cfg["model"])) <= 8e6
    assert cfg["model"].gain_floor_db == -40.0  # the shipped model's floor (--init keeps it)
    assert cfg["train"].threads == 1


def test_resume_continues_the_step_count_and_the_log(corpus: Path, tmp_path: Path) -> None:
    from training.train import load_model, train

    train(CONFIGS / "tiny.toml", corpus, tmp_path, max_steps=3)
    _, first = load_model(tmp_path / "last.pt")
    train(CONFIGS / "tiny.toml", corpus, tmp_path, max_steps=2, resume=True, learning_rate=1e-4)
    _, second = load_model(tmp_path / "last.pt")
    assert (first["step"], second["step"]) == (3, 5)
    resumed = _records(tmp_path, "resume")
    assert [(r["step"], r["learning_rate"]) for r in resumed] == [(3, 1e-4)]
    assert second["audio_seconds"] == pytest.approx(2 * first["audio_seconds"] * 5 / 6)


def test_runtime_denoise_equals_the_training_signal_path(
    trained: Path, exported: Path, corpus: Path
) -> None:
    """seproc.denoise with the exported file == the PyTorch path the model trained on."""
    import seproc
    from training.train import enhance, load_model

    model, _ = load_model(trained / "best.pt")
    clip = load_val_clips(corpus / "mixtures" / "val", 1)[0]
    noisy = np.concatenate([clip.noisy, clip.noisy[::-1]])[:17000].astype(np.float32)
    ours = enhance(model, noisy)
    runtime = seproc.denoise(noisy, 16000, model=exported)
    assert runtime.shape == noisy.shape
    # the model changes the signal (it is not a bypass), and both paths agree on how
    assert float(np.max(np.abs(ours - noisy))) > 1e-2
    np.testing.assert_allclose(runtime, ours, atol=1e-5, rtol=0)


def test_report_compares_noisy_and_enhanced_by_band(trained: Path, corpus: Path) -> None:
    from training.train import report

    result = report(trained / "best.pt", corpus, 8)
    assert result["step"] == 40
    band = result["all with noise"]
    assert band["clips"] == 2
    assert set(band["noisy"]) == {"pesq", "stoi", "si_sdr"}
    assert band["noisy"]["si_sdr"] != band["enhanced"]["si_sdr"]


def test_fine_tune_from_init_with_loader_workers_and_snapshots(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    """--init starts a new run from trained weights; worker processes mix the batches."""
    from training.train import load_model, train

    config = tmp_path / "workers.toml"
    text = (CONFIGS / "tiny.toml").read_text()
    config.write_text(text + "loader_workers = 2\nsnapshot_minutes = 1e-6\n")
    from training.bundle import weights_only

    start, start_payload = load_model(trained / "last.pt")
    small = tmp_path / "start.pt"
    assert weights_only(trained / "last.pt", small) < (trained / "last.pt").stat().st_size / 2
    out = tmp_path / "run"
    train(config, corpus, out, max_steps=3, init=small, gain_floor_db=-40.0)
    tuned, payload = load_model(out / "last.pt")
    assert payload["step"] == 3  # a new run: the step count starts afresh ...
    # ... while the weights' history goes on
    assert payload["steps_before"] == start_payload["step"] == 40
    assert payload["audio_seconds"] > start_payload["audio_seconds"]
    assert payload["seconds_trained"] > start_payload["seconds_trained"]
    # network and feature statistics kept, the floor changed as asked
    expected = dict(start_payload["model_config"], gain_floor_db=-40.0)
    assert payload["model_config"] == expected
    assert tuned.gain_floor == pytest.approx(0.01)
    changed = [
        name
        for name, value in tuned.state_dict().items()
        if not torch.equal(value, start.state_dict()[name])
    ]
    assert changed  # it trained ...
    moved = max(
        float((value - start.state_dict()[name]).abs().max())
        for name, value in tuned.state_dict().items()
    )
    assert moved < 0.1  # ... from the initial weights, not from a fresh initialisation
    (record,) = _records(out, "start")
    assert record["init"]["from"] == str(small)
    assert sorted(p.name for p in out.glob("snapshot-*.pt")) == [
        "snapshot-1.pt",
        "snapshot-2.pt",
        "snapshot-3.pt",
    ]


def test_fine_tune_grows_the_gru_a_config_asks_for(
    trained: Path, corpus: Path, tmp_path: Path
) -> None:
    from training.train import load_config, load_model, train

    start, _ = load_model(trained / "last.pt")
    hidden = start.config.gru_hidden + 8
    assert load_config(CONFIGS / "tiny.toml")["model"].gru_hidden == start.config.gru_hidden
    config = tmp_path / "wide.toml"
    text = (CONFIGS / "tiny.toml").read_text()
    config.write_text(text.replace(f"gru_hidden = {hidden - 8}", f"gru_hidden = {hidden}"))
    out = tmp_path / "run"
    train(config, corpus, out, max_steps=1, init=trained / "last.pt")
    tuned, payload = load_model(out / "last.pt")
    assert payload["model_config"]["gru_hidden"] == tuned.config.gru_hidden == hidden
    (record,) = _records(out, "start")
    assert record["init"]["gru_hidden"] == hidden
    assert record["flops_per_frame"] > count_flops_per_frame(start)


def test_validation_selects_by_stoi_where_pesq_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from training.train import _score, quality

    rng = np.random.default_rng(3)
    clean = _speechlike(rng, 2.0)
    noisy = clean + 0.05 * rng.standard_normal(len(clean)).astype(np.float32)
    with_pesq = quality(clean, noisy)
    monkeypatch.setitem(sys.modules, "pesq", None)  # import pesq now raises ImportError
    without = quality(clean, noisy)
    assert math.isfinite(with_pesq["pesq"]) and math.isnan(without["pesq"])
    assert without["stoi"] == with_pesq["stoi"]
    assert _score(with_pesq) == with_pesq["pesq"]
    assert _score(without) == without["stoi"]


def _si_sdr_as_train_py_had_it(estimate: np.ndarray, reference: np.ndarray) -> float:
    """train.py's own SI-SDR before it used training.metrics (1e-12 epsilons), verbatim."""
    estimate = np.asarray(estimate, np.float64) - np.mean(estimate)
    reference = np.asarray(reference, np.float64) - np.mean(reference)
    scale = np.dot(estimate, reference) / (np.dot(reference, reference) + 1e-12)
    target = scale * reference
    return float(
        10 * np.log10((np.sum(target**2) + 1e-12) / (np.sum((estimate - target) ** 2) + 1e-12))
    )


def test_validation_si_sdr_is_the_one_train_py_logged_before() -> None:
    """metrics.si_sdr with train.py's epsilon: the same numbers, noise-free clips included."""
    from training.batches import ValClip
    from training.metrics import si_sdr as si_sdr_db
    from training.train import SI_SDR_EPSILON, _mean_quality, quality

    rng = np.random.default_rng(11)
    clean = _speechlike(rng, 2.0)
    noise = _noise(rng, "pink", 2.0)
    clips = [ValClip(f"snr{g}", clean + g * noise, clean) for g in (2.0, 0.5, 0.1)]
    clips.append(ValClip("noise-free", clean.copy(), clean))
    rows = [quality(c.clean, c.noisy) for c in clips]
    for row, clip in zip(rows, clips, strict=True):
        before = _si_sdr_as_train_py_had_it(clip.noisy, clip.clean)
        assert row["si_sdr"] == pytest.approx(before, abs=1e-9)
    # the exact SI-SDR of a noise-free clip is inf; the log keeps a finite value over 100 dB
    assert 100.0 < rows[-1]["si_sdr"] < math.inf
    means = _mean_quality(rows, clips)
    assert math.isfinite(means["si_sdr"])
    assert means["si_sdr_mixed"] == pytest.approx(np.mean([r["si_sdr"] for r in rows[:3]]))
    assert means["si_sdr"] > means["si_sdr_mixed"] + 20  # the noise-free clip dominates
    # load_val_clips drops speech-free clips, but a silent reference still gives train.py's
    # earlier finite value (metrics.si_sdr without an epsilon raises ValueError)
    silent = np.zeros_like(clean)
    assert si_sdr_db(silent, noise, epsilon=SI_SDR_EPSILON) == pytest.approx(
        _si_sdr_as_train_py_had_it(noise, silent), abs=1e-9
    )


def test_logged_noisy_si_sdr_matches_train_pys_earlier_formula(trained: Path, corpus: Path) -> None:
    (start,) = _records(trained, "start")
    clips = load_val_clips(corpus / "mixtures" / "val", 32)
    expected = np.mean([_si_sdr_as_train_py_had_it(c.noisy, c.clean) for c in clips])
    assert start["val_clips"] == len(clips) == 2
    assert start["val_noisy"]["si_sdr"] == pytest.approx(expected, abs=1e-9)


def test_gain_floor_change_needs_init(corpus: Path, tmp_path: Path) -> None:
    from training.train import main, train

    with pytest.raises(ValueError, match="give init"):
        train(CONFIGS / "tiny.toml", corpus, tmp_path, max_steps=1, gain_floor_db=-40.0)
    with pytest.raises(SystemExit):
        main(
            [
                "--config",
                str(CONFIGS / "tiny.toml"),
                "--out",
                str(tmp_path),
                "--gain-floor-db",
                "-40",
            ]
        )


def test_export_with_another_gain_floor_lowers_the_runtimes_floor(
    trained: Path, exported: Path, tmp_path: Path
) -> None:
    """--gain-floor-db at export: metadata and output follow the new floor, all else equal."""
    import seproc
    from seproc.model import OnnxModel
    from training.export import export

    lower = tmp_path / "floor60.onnx"
    summary = export(trained / "best.pt", lower, gain_floor_db=-60.0)
    assert summary["torch_vs_onnx"] <= 1e-4
    assert OnnxModel(lower).info.gain_floor_db == -60.0
    assert OnnxModel(exported).info.gain_floor_db == -25.0
    rng = np.random.default_rng(5)
    noise = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    out_25 = seproc.denoise(noise, 16000, model=exported)
    out_60 = seproc.denoise(noise, 16000, model=lower)
    # the same network; the lower floor can only take more away
    assert float(np.sum(out_60**2)) < float(np.sum(out_25**2))

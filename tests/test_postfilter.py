"""The gain post-filter of format-2 mask models: kernel, metadata, Denoiser, tools, plumbing."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import soundfile as sf

from seproc import Denoiser, _kernels, denoise, process_file
from seproc._files import DenoiseSettings
from seproc.cli import _model_report, _postfilter_line, build_parser
from seproc.cli import main as cli_main
from seproc.errors import ModelError, ParameterError
from seproc.model import OnnxModel, default_model_path
from tests.model_factory import make_model, reference_gain
from tests.streaming import peak_bytes_into_out, stream
from training.postfilter import main as postfilter_main
from training.postfilter import set_postfilter

RELEASE_DB_PER_S = 80.0
EXPONENT = 1.5
SWEEP = [1, 63, 64, 65, 160, 161, 4096, 8193]


def postfilter_reference(
    gains: np.ndarray, factor: float, exponent: float, held: np.ndarray | None = None
) -> np.ndarray:
    """The post-filter of models/FORMAT.md in plain numpy, one frame at a time."""
    held = np.zeros(gains.shape[1], np.float32) if held is None else held.copy()
    out = np.empty_like(gains)
    for t, row in enumerate(gains):
        clean = np.minimum(np.nan_to_num(row, nan=0.0), 1.0)  # NaN counts as 0, above 1 as 1
        held = np.maximum(clean, factor * held.astype(np.float64)).astype(np.float32)
        out[t] = held if exponent == 1.0 else held.astype(np.float64) ** exponent
    return out


def random_gains(frames: int, bins: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gains = rng.uniform(0.0, 1.0, (frames, bins)) ** 3  # many low gains: the release engages
    gains[rng.uniform(size=gains.shape) < 0.05] = np.nan
    return gains.astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("postfilter_models")
    # the shipped weights without the post-filter the shipped file carries (format 1)
    shipped = folder / "shipped-raw.onnx"
    set_postfilter(default_model_path(), shipped, None, None)
    keyed = folder / "shipped-pf.onnx"
    set_postfilter(shipped, keyed, RELEASE_DB_PER_S, EXPONENT)
    plain = make_model(folder / "stateful.onnx")
    plain_keyed = folder / "stateful-pf.onnx"
    set_postfilter(plain, plain_keyed, RELEASE_DB_PER_S, EXPONENT)
    return {"shipped": shipped, "keyed": keyed, "plain": plain, "plain_keyed": plain_keyed}


def noisy_signal(samples, channels=1, seed=0, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 2 * t) > 0)  # bursts
    return (tone + 0.03 * rng.standard_normal((channels, samples))).astype(np.float32)


# -- the kernel ----------------------------------------------------------------------------


@pytest.mark.parametrize("exponent", [1.0, 0.7, EXPONENT])
def test_kernel_matches_the_formula_with_nan_gains(exponent):
    gains = random_gains(300, 161)
    factor = 10 ** (-RELEASE_DB_PER_S * 0.01 / 20)
    expected = postfilter_reference(gains, factor, exponent)
    held = np.zeros(161, np.float32)
    got = gains.copy()
    _kernels.release_gains(got, held, factor, exponent)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(held))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
    # the release engaged: gains held above the model's in many bins
    assert np.mean(got > np.nan_to_num(gains) ** exponent + 1e-3) > 0.2


def test_kernel_gives_the_same_gains_for_any_split_of_the_frames():
    gains = random_gains(200, 161, seed=1)
    whole = gains.copy()
    _kernels.release_gains(whole, np.zeros(161, np.float32), 0.9, EXPONENT)
    held = np.zeros(161, np.float32)
    parts = gains.copy()
    for start, stop in [(0, 1), (1, 2), (2, 50), (50, 51), (51, 200)]:
        _kernels.release_gains(parts[start:stop], held, 0.9, EXPONENT)
    np.testing.assert_array_equal(parts, whole)


@pytest.mark.parametrize("exponent", [0.5, 0.7, 1.2, 1.5, 2.0, 2.37, 3.0])
def test_kernel_power_is_within_1e_6_of_numpys_pow_over_1e_4_to_1(exponent):
    # factor 0: held is the gain itself, so the kernel's output is its power alone
    rng = np.random.default_rng(int(exponent * 100))
    grid = np.geomspace(1e-4, 1.0, 20001)
    values = np.concatenate([grid, rng.uniform(1e-4, 1.0, 20000), [1.0, 0.5, 0.25]])
    x = values.astype(np.float32)[np.newaxis]
    got = x.copy()
    _kernels.release_gains(got, np.zeros(x.shape[1], np.float32), 0.0, exponent)
    exact = x.astype(np.float64) ** exponent
    relative = np.abs(got.astype(np.float64) - exact) / exact
    assert relative.max() <= 1e-6
    # at most one float32 step from numpy's pow rounded to float32, and mostly equal
    rounded = exact.astype(np.float32)
    steps = np.abs(got.view(np.int32).astype(np.int64) - rounded.view(np.int32))
    assert steps.max() <= 1
    assert np.mean(steps == 0) > 0.999
    # exact where the power is: 1 ** e, and 0.5 ** 2, 0.25 ** 0.5 ...
    assert got[0, -3] == 1.0
    if exponent in (0.5, 2.0, 3.0):
        np.testing.assert_array_equal(got[0, -2:], rounded[0, -2:])


@pytest.mark.parametrize("exponent", [0.5, 1.2, 3.0])
def test_kernel_power_of_zero_is_zero_and_of_tiny_gains_stays_accurate(exponent):
    tiny = np.array([[0.0, 1e-30, 1e-38, 1e-40, 1e-45, 1e-10]], np.float32)  # subnormals too
    got = tiny.copy()
    _kernels.release_gains(got, np.zeros(tiny.shape[1], np.float32), 0.0, exponent)
    assert got[0, 0] == 0.0
    exact = tiny.astype(np.float64) ** exponent
    normal = exact >= np.finfo(np.float32).tiny  # a float32 result, not flushed or subnormal
    relative = np.abs(got[normal] - exact[normal]) / exact[normal]
    assert relative.size > 0 and relative.max() <= 1e-6
    np.testing.assert_array_equal(got[~normal] == 0, exact[~normal].astype(np.float32) == 0)


def test_kernel_without_release_or_exponent_returns_the_raw_gains_bit_for_bit():
    gains = np.random.default_rng(2).uniform(0, 1, (50, 161)).astype(np.float32)
    got = gains.copy()
    _kernels.release_gains(got, np.zeros(161, np.float32), 0.0, 1.0)
    np.testing.assert_array_equal(got, gains)


# -- metadata ------------------------------------------------------------------------------


def test_info_reads_the_keys_and_the_release_factor(models):
    info = OnnxModel(models["keyed"]).info
    assert (info.gain_release_db_per_s, info.gain_exponent) == (RELEASE_DB_PER_S, EXPONENT)
    assert info.has_postfilter
    hop_s = info.hop_length / info.sample_rate_hz
    assert info.gain_release_factor == pytest.approx(10 ** (-RELEASE_DB_PER_S * hop_s / 20))
    plain = OnnxModel(models["shipped"]).info
    assert (plain.gain_release_db_per_s, plain.gain_exponent) == (None, 1.0)
    assert not plain.has_postfilter


@pytest.mark.parametrize("key", ["gain_release_db_per_s", "gain_exponent"])
@pytest.mark.parametrize("value", ["0", "-3", "nan", "inf", "fast"])
def test_bad_postfilter_values_raise_model_errors_naming_the_key(tmp_path, key, value):
    path = make_model(tmp_path / "bad.onnx", metadata={"seproc_model_format": "2", key: value})
    with pytest.raises(ModelError, match=rf"{key}={value!r}.*finite number > 0"):
        OnnxModel(path)


@pytest.mark.parametrize("key", ["gain_release_db_per_s", "gain_exponent"])
def test_postfilter_keys_on_a_noise_subtraction_model_raise(tmp_path, key):
    path = make_model(
        tmp_path / "seed.onnx",
        formulation="noise_subtraction",
        metadata={"seproc_model_format": "2", key: "2"},
    )
    with pytest.raises(ModelError, match=rf"{key}.*mask models only"):
        OnnxModel(path)


def test_postfilter_keys_in_a_format_1_file_raise(tmp_path):
    path = make_model(tmp_path / "v1.onnx", metadata={"gain_exponent": "2"})
    with pytest.raises(ModelError, match="gain_exponent needs seproc_model_format='2'"):
        OnnxModel(path)


def test_format_2_without_keys_loads_and_format_3_is_refused(tmp_path):
    v2 = make_model(tmp_path / "v2.onnx", metadata={"seproc_model_format": "2"})
    assert not OnnxModel(v2).info.has_postfilter
    v3 = make_model(tmp_path / "v3.onnx", metadata={"seproc_model_format": "3"})
    with pytest.raises(ModelError, match=r"seproc_model_format='3'.*formats 1 and 2"):
        OnnxModel(v3)


# -- training.postfilter -------------------------------------------------------------------


def test_the_tool_changes_only_the_metadata_and_removes_the_keys_again(models, tmp_path):
    original = onnx.load(str(models["shipped"]))
    keyed = onnx.load(str(models["keyed"]))
    assert keyed.graph.SerializeToString() == original.graph.SerializeToString()
    meta = {e.key: e.value for e in keyed.metadata_props}
    before = {e.key: e.value for e in original.metadata_props}
    assert meta == before | {
        "seproc_model_format": "2",
        "gain_release_db_per_s": "80.0",
        "gain_exponent": "1.5",
    }
    removed = tmp_path / "removed.onnx"
    postfilter_main([str(models["keyed"]), "--out", str(removed), "--release-db-per-s", "0"])
    again = onnx.load(str(removed))
    assert [(e.key, e.value) for e in again.metadata_props] == [
        (e.key, e.value) for e in original.metadata_props
    ]
    assert again.graph.SerializeToString() == original.graph.SerializeToString()


def test_the_tool_refuses_bad_values_and_noise_subtraction_models(tmp_path):
    seed = make_model(tmp_path / "seed.onnx", formulation="noise_subtraction")
    with pytest.raises(ValueError, match="mask models only"):
        set_postfilter(seed, tmp_path / "out.onnx", 50.0)
    with pytest.raises(ValueError, match=r"exponent=0\.0"):
        set_postfilter(seed, tmp_path / "out.onnx", exponent=0.0)
    with pytest.raises(SystemExit):
        postfilter_main([str(seed), "--out", str(tmp_path / "o.onnx"), "--release-db-per-s", "-1"])


# -- the Denoiser --------------------------------------------------------------------------


def test_postfilter_false_on_the_keyed_model_equals_the_model_without_keys(models):
    signal = noisy_signal(16000)
    raw = Denoiser(models["keyed"], postfilter=False)
    assert raw.postfilter is None
    np.testing.assert_array_equal(raw(signal, 16000), Denoiser(models["shipped"])(signal, 16000))


def test_the_postfilter_property_reports_the_active_values(models):
    denoiser = Denoiser(models["keyed"], warm_up=False)
    assert denoiser.postfilter == {
        "gain_release_db_per_s": RELEASE_DB_PER_S,
        "gain_exponent": EXPONENT,
        "release_factor_per_hop": pytest.approx(10 ** (-RELEASE_DB_PER_S * 0.01 / 20)),
        "pitch_filter_strength": None,
    }
    denoiser.postfilter["gain_exponent"] = 9.0  # a copy: the Denoiser keeps its own
    assert denoiser.postfilter["gain_exponent"] == EXPONENT
    with pytest.raises(AttributeError):
        denoiser.postfilter = None
    assert Denoiser(models["shipped"], warm_up=False).postfilter is None


def test_postfilter_must_be_a_bool(models):
    with pytest.raises(ParameterError, match="postfilter='no' must be True"):
        Denoiser(models["keyed"], postfilter="no", warm_up=False)


def _numpy_stft(audio: np.ndarray, n_fft: int = 320, hop: int = 160) -> np.ndarray:
    """The STFT of models/FORMAT.md in float64, ``n_fft - hop`` zeros first, frames first."""
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))
    n_frames = -(-audio.size // hop) + 1
    padded = np.zeros((n_frames - 1) * hop + n_fft)
    padded[n_fft - hop : n_fft - hop + audio.size] = audio
    frames = np.stack([padded[k * hop : k * hop + n_fft] for k in range(n_frames)])
    return np.fft.rfft(frames * window, axis=-1)


def _numpy_resynthesis(spec: np.ndarray, size: int, n_fft: int = 320, hop: int = 160):
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))
    frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window
    signal = np.zeros((frames.shape[0] - 1) * hop + n_fft)
    for k, frame in enumerate(frames):
        signal[k * hop : k * hop + n_fft] += frame
    return signal[n_fft - hop : n_fft - hop + size]


def test_the_keyed_output_equals_a_numpy_reference_of_the_formula(models):
    """The test model's gains in float64 (``reference_gain``), post-filtered, resynthesised."""
    signal = noisy_signal(12007)[0]
    spec = _numpy_stft(signal.astype(np.float64))
    features = (10 * np.log10(np.maximum(np.abs(spec) ** 2, 1e-10)) + 40.0) / 20.0
    raw = reference_gain(features).astype(np.float32)
    factor = OnnxModel(models["plain_keyed"]).info.gain_release_factor
    gains = postfilter_reference(raw, factor, EXPONENT)
    expected = _numpy_resynthesis(spec * gains, signal.size)
    unfiltered = _numpy_resynthesis(spec * raw, signal.size)
    assert np.max(np.abs(expected - unfiltered)) > 1e-2  # the post-filter changes the output
    for model, wanted in ((models["plain_keyed"], expected), (models["plain"], unfiltered)):
        np.testing.assert_allclose(Denoiser(model)(signal, 16000), wanted, rtol=0, atol=2e-5)


def test_the_shipped_model_keyed_equals_its_raw_gains_post_filtered(models):
    """The U-Net's raw gains from onnxruntime, the numpy post-filter, a numpy resynthesis."""
    signal = noisy_signal(16000, seed=4)[0]
    info = OnnxModel(models["shipped"]).info
    model = OnnxModel(models["shipped"])  # onnxruntime: not the Denoiser's engine
    spec = _numpy_stft(signal.astype(np.float64))
    db = 10 * np.log10(np.maximum(np.abs(spec) ** 2, info.feature_amin))
    features = ((db - info.feature_mean_db) / info.feature_std_db).astype(np.float32)
    raw = np.zeros_like(features)
    model.run(features, raw, model.new_state())
    gains = postfilter_reference(raw, OnnxModel(models["keyed"]).info.gain_release_factor, EXPONENT)
    expected = _numpy_resynthesis(spec * gains, signal.size)
    unfiltered = _numpy_resynthesis(spec * raw, signal.size)
    assert np.max(np.abs(expected - unfiltered)) > 1e-2
    got = Denoiser(models["keyed"])(signal, 16000)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-4)


@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("block", [*SWEEP, 480, 481])
def test_any_partition_gives_the_one_shot_output_with_the_postfilter(models, rate, block):
    signal = noisy_signal(rate + 1009, channels=2, rate=rate)
    whole = Denoiser(models["keyed"], sample_rate=rate, channels=2, max_block_samples=65536)
    expected = whole.process(signal)
    streamed = stream(Denoiser(models["keyed"], sample_rate=rate, channels=2), signal, [block])
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-6)


def test_random_partitions_at_48k_give_the_one_shot_output(models):
    rng = np.random.default_rng(11)
    signal = noisy_signal(48000 * 2, rate=48000)
    expected = Denoiser(models["keyed"], sample_rate=48000, max_block_samples=131072).process(
        signal
    )
    unfiltered = Denoiser(models["shipped"], sample_rate=48000, max_block_samples=131072)
    assert np.max(np.abs(expected - unfiltered.process(signal))) > 1e-3
    sizes = list(rng.integers(1, 2000, size=60))
    streamed = stream(Denoiser(models["keyed"], sample_rate=48000), signal, sizes)
    np.testing.assert_allclose(streamed, expected, rtol=0, atol=1e-6)


def test_process_into_out_allocates_nothing_after_warm_up_with_the_postfilter(models):
    denoiser = Denoiser(models["keyed"], sample_rate=48000, channels=2)
    assert denoiser.postfilter is not None
    assert peak_bytes_into_out(denoiser, noisy_signal(4096, channels=2, rate=48000)) < 8 * 1024


@pytest.mark.parametrize("rate", [16000, 48000])
def test_reset_restores_a_fresh_stream_with_the_postfilter(models, rate):
    signal = noisy_signal(rate // 2, rate=rate)
    used = Denoiser(models["keyed"], sample_rate=rate)
    first = used.process(signal).copy()
    used.process(noisy_signal(rate // 3, seed=9, rate=rate))
    used.reset()
    np.testing.assert_array_equal(used.process(signal), first)
    np.testing.assert_array_equal(
        first, Denoiser(models["keyed"], sample_rate=rate).process(signal)
    )


@pytest.mark.parametrize("rate", [16000, 48000])
def test_bypass_is_still_an_exact_delay_with_the_postfilter(models, rate):
    denoiser = Denoiser(models["keyed"], sample_rate=rate, attenuation_limit_db=0)
    assert denoiser.postfilter is not None
    signal = noisy_signal(rate // 2, rate=rate)
    out = np.concatenate([denoiser.process(signal), denoiser.flush()], axis=1)
    latency = denoiser.latency_samples
    np.testing.assert_allclose(out[:, latency:], signal, rtol=0, atol=1e-5)


# -- the public API ------------------------------------------------------------------------


def test_denoise_and_process_file_pass_the_switch_on(models, tmp_path):
    signal = noisy_signal(9001)
    for postfilter in (True, False):
        one_shot = denoise(signal, 16000, model=models["keyed"], postfilter=postfilter)
        streamed = Denoiser(models["keyed"], postfilter=postfilter)
        np.testing.assert_allclose(one_shot, streamed(signal, 16000), rtol=0, atol=1e-6)
        src, dst = tmp_path / "in.wav", tmp_path / f"out-{postfilter}.wav"
        sf.write(src, signal.T, 16000, subtype="FLOAT")
        process_file(src, dst, model=models["keyed"], postfilter=postfilter)
        written, _ = sf.read(dst, dtype="float32", always_2d=True)
        np.testing.assert_allclose(written.T, one_shot, rtol=0, atol=1e-6)
    filtered = denoise(signal, 16000, model=models["keyed"])
    assert np.max(np.abs(filtered - one_shot)) > 1e-3  # one_shot is postfilter=False


def test_file_settings_and_the_cli_pass_the_switch_on(models, tmp_path):
    assert DenoiseSettings(model=models["keyed"]).denoiser(16000, 1).postfilter is not None
    assert (
        DenoiseSettings(model=models["keyed"], postfilter=False).denoiser(16000, 1).postfilter
        is None
    )
    args = build_parser().parse_args(["denoise", "a.wav", "b.wav", "--no-postfilter"])
    assert args.postfilter is False
    assert build_parser().parse_args(["live", "--no-postfilter"]).postfilter is False
    signal = noisy_signal(8000)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, signal.T, 16000, subtype="FLOAT")
    status = cli_main(["denoise", str(src), str(dst), "--model", str(models["keyed"]),
                       "--no-postfilter", "--quiet"])  # fmt: skip
    assert status == 0
    written, _ = sf.read(dst, dtype="float32", always_2d=True)
    expected = denoise(signal, 16000, model=models["keyed"], postfilter=False)
    np.testing.assert_allclose(written.T, expected, rtol=0, atol=1e-6)


def test_info_reports_the_models_postfilter(models):
    report = _model_report(str(models["keyed"]))
    assert report["postfilter"]["gain_release_db_per_s"] == RELEASE_DB_PER_S
    assert report["postfilter"]["gain_exponent"] == EXPONENT
    line = _postfilter_line(report["postfilter"])
    assert "release 80 dB/s" in line and "exponent 1.5" in line
    assert _model_report(str(models["shipped"]))["postfilter"] is None
    bundled = _model_report(None)["postfilter"]  # the bundled model carries one (format 2)
    assert bundled is not None and bundled["gain_release_db_per_s"] > 0
    assert _postfilter_line(None).startswith("none")


def test_training_applies_the_same_post_filter_as_the_runtime():
    """``training.train.release_gains`` (differentiable, for fine-tuning through the
    post-filter) against the runtime kernel on the same gains, and a gradient through it."""
    torch = pytest.importorskip("torch")
    from training import spectral
    from training.train import release_gains

    rng = np.random.default_rng(3)
    gains = (0.01 + 0.99 * rng.random((2, 300, 161))).astype(np.float32)
    trained = release_gains(torch.from_numpy(gains), RELEASE_DB_PER_S, EXPONENT).numpy()
    factor = 10 ** (-RELEASE_DB_PER_S * spectral.HOP / spectral.SAMPLE_RATE_HZ / 20)
    expected = gains.copy()
    for item in expected:
        _kernels.release_gains(item, np.zeros(161, np.float32), factor, EXPONENT)
    np.testing.assert_allclose(trained, expected, rtol=0, atol=1e-6)
    assert np.max(np.abs(trained - gains)) > 0.1  # the release held some bins up
    leaf = torch.from_numpy(gains).requires_grad_()
    release_gains(leaf, RELEASE_DB_PER_S, EXPONENT).sum().backward()
    assert torch.isfinite(leaf.grad).all() and float(leaf.grad.abs().sum()) > 0
    assert release_gains(leaf, 0.0, 1.0) is leaf  # no post-filter: the gains themselves


@pytest.mark.parametrize(
    "fields", [{"postfilter_release_db_per_s": -1.0}, {"postfilter_exponent": 0.0}]
)
def test_a_training_config_refuses_a_bad_post_filter(fields):
    pytest.importorskip("torch")
    from training.model import ModelConfig

    with pytest.raises(ValueError, match="postfilter_"):
        ModelConfig(**fields)

import inspect
import itertools
import threading

import numpy as np
import pytest
import soundfile as sf

import seproc
from seproc import Denoiser, denoise, process_file
from seproc.errors import ModelError, ParameterError, SeprocError
from tests.model_factory import bypass_model, make_model
from tests.streaming import peak_bytes_into_out, stream

HOP = 160
SWEEP = [1, 63, 64, 65, HOP, HOP + 1, 4096, 8193]
RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {
        "stateful": make_model(folder / "stateful.onnx"),
        "bypass": bypass_model(folder / "bypass.onnx"),
        "mute": make_model(folder / "mute.onnx", scale=0.0, bias=-100.0),
        "subtract_nothing": make_model(
            folder / "subtract.onnx", formulation="noise_subtraction", noise_db_value=-200.0
        ),
    }


def noisy_signal(samples, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * rng.standard_normal((channels, samples))).astype(np.float32)


@pytest.mark.parametrize("block", SWEEP)
def test_any_block_size_gives_the_one_shot_output(models, block):
    signal = noisy_signal(20011, channels=2)
    whole = Denoiser(models["stateful"], channels=2, max_block_samples=32768).process(signal)
    streamed = stream(Denoiser(models["stateful"], channels=2), signal, [block])
    assert streamed.shape == signal.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_random_partitions_give_the_one_shot_output(models):
    rng = np.random.default_rng(7)
    signal = noisy_signal(48017)
    whole = Denoiser(models["stateful"], max_block_samples=65536).process(signal)
    for _ in range(3):
        sizes = list(rng.integers(1, 8194, size=40))
        np.testing.assert_allclose(
            stream(Denoiser(models["stateful"]), signal, sizes), whole, atol=1e-6
        )


def test_zero_length_blocks_return_zero_samples(models):
    denoiser = Denoiser(models["stateful"], channels=2)
    assert denoiser.process(np.zeros((2, 0), np.float32)).shape == (2, 0)
    assert Denoiser(models["stateful"]).process(np.zeros(0)).shape == (0,)


def test_bypass_at_model_rate_is_an_exact_delay(models):
    denoiser = Denoiser(models["bypass"], attenuation_limit_db=0)
    signal = noisy_signal(5000)
    out = np.concatenate([denoiser.process(signal), denoiser.flush()], axis=1)
    latency = denoiser.latency_samples
    np.testing.assert_allclose(out[:, latency:], signal, atol=1e-6)
    np.testing.assert_array_equal(out[:, :latency], 0)


@pytest.mark.parametrize("sample_rate", RATES)
def test_impulse_comes_out_exactly_latency_samples_later(models, sample_rate):
    denoiser = Denoiser(models["stateful"], sample_rate=sample_rate, attenuation_limit_db=0)
    impulse = np.zeros((1, sample_rate), np.float32)
    position = sample_rate // 3
    impulse[0, position] = 1.0
    out = stream(denoiser, impulse, [480])
    assert int(np.argmax(np.abs(out[0]))) == position + denoiser.latency_samples
    assert denoiser.latency_ms == pytest.approx(1000 * denoiser.latency_samples / sample_rate)


def test_attenuation_limit_caps_the_removed_noise(models):
    signal = noisy_signal(8000)
    muted = denoise(signal, 16000, model=models["mute"])
    limited = denoise(signal, 16000, model=models["mute"], attenuation_limit_db=12)
    assert np.max(np.abs(muted)) < 1e-6
    np.testing.assert_allclose(limited, signal * 10 ** (-12 / 20), atol=1e-5)


def test_seed_formulation_subtracts_the_predicted_noise(models):
    signal = noisy_signal(8000)
    np.testing.assert_allclose(
        denoise(signal, 16000, model=models["subtract_nothing"]), signal, atol=1e-5
    )


def test_each_channel_has_its_own_state(models):
    signal = noisy_signal(9000, channels=2, seed=3)
    stereo = denoise(signal, 16000, model=models["stateful"])
    for c in range(2):
        mono = denoise(signal[c], 16000, model=models["stateful"])
        np.testing.assert_allclose(stereo[c], mono, atol=1e-6)


def test_reset_makes_the_next_output_equal_a_fresh_objects(models):
    signal = noisy_signal(7000)
    used = Denoiser(models["stateful"])
    used.process(noisy_signal(3333, seed=9))
    used.reset()
    np.testing.assert_array_equal(
        used.process(signal), Denoiser(models["stateful"]).process(signal)
    )


def test_noise_then_reset_then_silence_gives_silence(models):
    denoiser = Denoiser(models["stateful"])
    denoiser.process(noisy_signal(5000))
    denoiser.reset()
    np.testing.assert_array_equal(denoiser.process(np.zeros((1, 5000), np.float32)), 0)


def test_flush_returns_the_held_back_tail(models):
    signal = noisy_signal(6000)
    denoiser = Denoiser(models["stateful"])
    streamed = np.concatenate([denoiser.process(signal).copy(), denoiser.flush()], axis=1)
    np.testing.assert_allclose(
        streamed[:, denoiser.latency_samples :],
        denoise(signal, 16000, model=models["stateful"]),
        atol=1e-6,
    )


def test_pedalboard_style_call_is_aligned(models):
    signal = noisy_signal(6000)
    denoiser = Denoiser(models["stateful"])
    np.testing.assert_allclose(
        denoiser(signal, 16000), denoise(signal, 16000, model=models["stateful"]), atol=1e-6
    )
    with pytest.raises(ParameterError, match="sample_rate=48000 differs"):
        denoiser(signal, 48000)


def test_speech_activity_is_per_frame_and_bounded(models):
    denoiser = Denoiser(models["stateful"], channels=2)
    denoiser.process(noisy_signal(1600, channels=2))
    activity = denoiser.speech_activity
    assert activity.shape == (2, 10)
    assert np.all((activity >= 0) & (activity <= 1))
    denoiser.process(np.zeros((2, 10), np.float32))
    assert denoiser.speech_activity.shape == (2, 0)
    bypass = Denoiser(models["bypass"], attenuation_limit_db=0)
    bypass.process(noisy_signal(1600))
    np.testing.assert_allclose(bypass.speech_activity, 1.0, atol=1e-6)


def test_properties_are_read_only(models):
    denoiser = Denoiser(models["stateful"], sample_rate=48000, channels=2)
    assert (denoiser.sample_rate, denoiser.channels, denoiser.model_sample_rate) == (
        48000,
        2,
        16000,
    )
    for name in ("sample_rate", "channels", "latency_samples", "latency_ms", "model_sample_rate"):
        with pytest.raises(AttributeError):
            setattr(denoiser, name, 1)


def test_process_into_out_allocates_nothing_after_warm_up(models):
    denoiser = Denoiser(models["stateful"], sample_rate=48000, channels=2)
    # One new output array would be 2 * 4096 * 4 = 32 KiB; views and bindings are far smaller.
    assert peak_bytes_into_out(denoiser, noisy_signal(4096, channels=2)) < 8 * 1024


def test_process_without_out_returns_an_array_the_caller_owns(models):
    """Collecting ``process(block)`` results the obvious way gives the one-shot output.

    The default used to return a view of an internal buffer that the next call
    overwrote, so this pattern gave silently wrong audio (errors up to full scale).
    """
    signal = noisy_signal(16000 * 2, channels=2)
    whole = Denoiser(models["stateful"], channels=2, max_block_samples=65536).process(signal)
    denoiser = Denoiser(models["stateful"], channels=2, max_block_samples=8000)
    outs = [denoiser.process(signal[:, i : i + 8000]) for i in range(0, signal.shape[1], 8000)]
    np.testing.assert_allclose(np.concatenate(outs, axis=1), whole, atol=1e-6)
    assert all(out.flags.owndata and out.flags.writeable for out in outs)
    assert not any(np.shares_memory(a, b) for a, b in itertools.pairwise(outs))


def test_process_with_out_returns_out_itself(models):
    denoiser = Denoiser(models["stateful"], channels=2)
    block = noisy_signal(480, channels=2)
    out = np.empty_like(block)
    assert denoiser.process(block, out=out) is out


def test_independent_objects_in_threads_match_sequential(models):
    signals = [noisy_signal(16000, seed=s) for s in range(4)]
    expected = [stream(Denoiser(models["stateful"]), s, [480]) for s in signals]
    results = [None] * 4

    def work(i):
        results[i] = stream(Denoiser(models["stateful"]), signals[i], [480])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("block", "match"),
    [
        (np.zeros((3, 100), np.float32), r"2-channel audio.*got shape \(3, 100\)"),
        (np.zeros((100, 2), np.float32), r"block\.T"),
        (np.zeros((2, 100), np.int16), "integer"),
        (np.zeros((1, 2, 100), np.float32), "3"),
        (np.full((2, 100), np.nan, np.float32), "NaN or Inf"),
        (np.full((2, 100), np.inf, np.float32), "NaN or Inf"),
    ],
)
def test_bad_blocks_raise_parameter_errors_that_say_the_fix(models, block, match):
    denoiser = Denoiser(models["stateful"], channels=2)
    with pytest.raises(ParameterError, match=match):
        denoiser.process(block)


def test_a_bad_block_leaves_the_stream_state_clean(models):
    signal = noisy_signal(4000)
    denoiser = Denoiser(models["stateful"])
    with pytest.raises(ParameterError):
        denoiser.process(np.full((1, 500), np.nan, np.float32))
    np.testing.assert_array_equal(
        denoiser.process(signal), Denoiser(models["stateful"]).process(signal)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sample_rate": 4000}, "sample_rate=4000"),
        ({"sample_rate": 192000}, "sample_rate=192000"),
        ({"sample_rate": 44100.5}, r"sample_rate=44100.5 must be a whole number of Hz"),
        ({"channels": 0}, "channels=0"),
        ({"attenuation_limit_db": -3}, "attenuation_limit_db=-3"),
        ({"attenuation_limit_db": float("nan")}, "attenuation_limit_db=nan"),
        ({"max_block_samples": 0}, "max_block_samples=0"),
    ],
)
def test_bad_settings_raise_parameter_errors(models, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        Denoiser(models["stateful"], **kwargs)


def test_bad_model_files_raise_model_errors(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        Denoiser(tmp_path / "missing.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage")
    with pytest.raises(ModelError, match=r"corrupt\.onnx"):
        Denoiser(corrupt)
    odd = make_model(tmp_path / "odd.onnx", metadata={"sample_rate_hz": "zero"})
    with pytest.raises(ModelError, match="sample_rate_hz"):
        Denoiser(odd)


def test_one_shot_defaults_match_the_object():
    object_defaults = {
        name: p.default for name, p in inspect.signature(Denoiser).parameters.items()
    }
    for function in (denoise, process_file):
        for name, parameter in inspect.signature(function).parameters.items():
            # Required arguments (the audio and its rate) have no default to keep in step.
            if name in object_defaults and parameter.default is not inspect.Parameter.empty:
                assert parameter.default == object_defaults[name], (function.__name__, name)


def test_process_file_is_aligned_and_keeps_format(models, tmp_path):
    signal = noisy_signal(12345, channels=2)
    src = tmp_path / "in.wav"
    sf.write(src, signal.T, 16000, subtype="FLOAT")
    before = src.read_bytes()
    result = process_file(src, tmp_path / "out.wav", model=models["stateful"], block_samples=1000)
    data, rate = sf.read(tmp_path / "out.wav", dtype="float32", always_2d=True)
    assert rate == 16000 and sf.info(tmp_path / "out.wav").subtype == "FLOAT"
    np.testing.assert_allclose(data.T, denoise(signal, 16000, model=models["stateful"]), atol=1e-6)
    assert src.read_bytes() == before
    assert result.duration_s == pytest.approx(12345 / 16000) and result.real_time_factor > 0
    assert list(tmp_path.glob("*.partial")) == []


def test_process_file_keeps_pcm16_and_rate(models, tmp_path):
    src = tmp_path / "in.flac"
    sf.write(src, noisy_signal(22050).T, 22050, subtype="PCM_16")
    process_file(src, tmp_path / "out.flac", model=models["stateful"])
    info = sf.info(tmp_path / "out.flac")
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (
        22050,
        1,
        "PCM_16",
        22050,
    )


def test_process_file_refuses_to_overwrite_its_input(models, tmp_path):
    src = tmp_path / "in.wav"
    sf.write(src, noisy_signal(1000).T, 16000)
    with pytest.raises(ParameterError, match="never overwrites input"):
        process_file(src, src, model=models["stateful"])


def test_process_file_reports_unreadable_input_and_leaves_nothing(models, tmp_path):
    src = tmp_path / "text.wav"
    src.write_text("not audio")
    with pytest.raises(SeprocError, match=r"Cannot read .*text\.wav"):
        process_file(src, tmp_path / "out.wav", model=models["stateful"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.wav"]


def test_denoise_is_exported_at_top_level():
    assert seproc.denoise is denoise and seproc.Denoiser is Denoiser


def test_one_shot_names_audio_in_its_non_finite_error(models):
    signal = noisy_signal(1000)
    signal[0, 10] = np.inf
    with pytest.raises(ParameterError, match=r"Parameter audio holds NaN or Inf"):
        denoise(signal, 16000, model=models["stateful"])


def test_process_file_output_gets_ordinary_file_permissions(models, tmp_path):
    import os

    src = tmp_path / "in.wav"
    sf.write(src, noisy_signal(4000).T, 16000)
    process_file(src, tmp_path / "out.wav", model=models["stateful"])
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out.wav").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("source_width", "source_pos", "target_width", "target_pos", "n"),
    [
        (7, 0, 7, 0, 0),
        (7, 5, 11, 9, 7),
        (64, 60, 5, 3, 12),
        (9, 8, 9, 0, 30),
        (480, 0, 1000, 950, 480),
    ],
)
def test_ring_copy_copies_across_both_wraps_like_modular_indexing(
    source_width, source_pos, target_width, target_pos, n
):
    rng = np.random.default_rng(n)
    source = rng.standard_normal((2, source_width)).astype(np.float32)
    target = rng.standard_normal((2, target_width)).astype(np.float32)
    expected = target.copy()
    for i in range(n):  # later samples overwrite earlier ones where n exceeds the width
        expected[:, (target_pos + i) % target_width] = source[:, (source_pos + i) % source_width]
    positions = seproc._kernels.ring_copy(source, source_pos, target, target_pos, n)
    np.testing.assert_array_equal(target, expected)
    assert positions == ((source_pos + n) % source_width, (target_pos + n) % target_width)

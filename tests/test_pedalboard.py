"""seproc.integrations.pedalboard against the real pedalboard package."""

import time

import numpy as np
import pytest
import soundfile as sf

pedalboard = pytest.importorskip("pedalboard")

from pedalboard import (  # noqa: E402
    Compressor,
    Gain,
    HighpassFilter,
    Pedalboard,
    Resample,
)

from seproc.api import sha256_file  # noqa: E402
from seproc.denoiser import Denoiser  # noqa: E402
from seproc.errors import ParameterError  # noqa: E402
from seproc.integrations.pedalboard import DenoisingChain, process_file_with_chain  # noqa: E402
from tests.model_factory import bypass_model, make_model  # noqa: E402

CHUNKS = [1, 63, 160, 1000, 4096, 8193]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pb_models")
    return {"bypass": bypass_model(folder / "bypass.onnx"), "test": make_model(folder / "m.onnx")}


@pytest.fixture(scope="module")
def denoisers(models):
    made = {}

    def get(name, channels=1, sample_rate=16000):
        key = (name, channels, sample_rate)
        if key not in made:
            made[key] = Denoiser(models[name], sample_rate=sample_rate, channels=channels)
        return made[key]

    return get


def noisy(samples, channels, sample_rate=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    speechy = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (speechy + 0.05 * rng.standard_normal((channels, samples))).astype(np.float32)


def stream(chain, signal, chunk):
    pieces = [chain.process(signal[:, i : i + chunk]) for i in range(0, signal.shape[1], chunk)]
    return np.concatenate([*pieces, chain.flush()], axis=1)


def one_shot_reference(denoiser, before, after, signal, sample_rate):
    """What pedalboard and seproc give on the whole signal, each on its own."""
    middle = Pedalboard(before)(signal, sample_rate) if before else signal
    middle = denoiser(middle, sample_rate)
    return Pedalboard(after)(middle, sample_rate) if after else middle


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("chunk", CHUNKS)
def test_chunked_equals_one_shot(denoisers, channels, chunk):
    denoiser = denoisers("test", channels)
    signal = noisy(12007, channels)
    before = [HighpassFilter(100)]
    after = [Compressor(threshold_db=-20, ratio=4), Gain(3)]
    expected = one_shot_reference(denoiser, before, after, signal, 16000)
    chain = DenoisingChain(denoiser, before=before, after=after)
    streamed = stream(chain, signal, chunk)
    assert streamed.shape == signal.shape
    np.testing.assert_allclose(streamed, expected, atol=2e-5)


def test_output_so_far_is_a_prefix_and_zero_chunks_are_fine(denoisers):
    denoiser = denoisers("test", 2)
    signal = noisy(5000, 2)
    chain = DenoisingChain(denoiser, after=Gain(-6))
    expected = chain(signal, 16000)
    pieces, start = [], 0
    for size in [0, 2, 1, 0, 700, 3, 0, 4294]:
        out = chain.process(signal[:, start : start + size])
        start += size
        pieces.append(out)
        so_far = np.concatenate(pieces, axis=1)
        np.testing.assert_allclose(so_far, expected[:, : so_far.shape[1]], atol=1e-6)
    pieces.append(chain.flush())
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), expected, atol=1e-6)


def test_bypass_chain_gives_the_input_back_aligned(denoisers):
    denoiser = denoisers("bypass", 1)
    signal = np.zeros((1, 4001), np.float32)
    signal[0, 1234] = 1.0
    signal[0, 3000:3100] = np.sin(np.arange(100) / 7.0)
    chain = DenoisingChain(denoiser)
    for chunk in [1, 160, 999]:
        out = stream(chain, signal, chunk)
        assert np.argmax(np.abs(out[0, :2000])) == 1234
        np.testing.assert_allclose(out, signal, atol=1e-5)


@pytest.mark.parametrize("where", ["before", "after"])
def test_plugin_latency_is_compensated_like_pedalboard_does(denoisers, where):
    """pedalboard's Resample holds samples back while streaming; the chain realigns them."""
    denoiser = denoisers("bypass", 1)
    signal = np.zeros((1, 16000), np.float32)
    signal[0, 5000] = 1.0
    plugins = {where: [Resample(target_sample_rate=8000)]}
    reference = one_shot_reference(
        denoiser, plugins.get("before"), plugins.get("after"), signal, 16000
    )
    assert np.argmax(np.abs(reference[0])) == 5000  # pedalboard's own compensation
    for chunk in [63, 1000, 4096]:
        out = stream(DenoisingChain(denoiser, **plugins), signal, chunk)
        assert out.shape == signal.shape
        assert np.argmax(np.abs(out[0])) == 5000
        np.testing.assert_allclose(out, reference, atol=1e-5)


def test_plugins_see_fixed_blocks_however_the_stream_is_cut(denoisers):
    """pedalboard's streaming Resample differs when call sizes vary; the chain hides that."""
    denoiser = denoisers("test", 2)
    signal = noisy(9001, 2)
    before, after = [Resample(target_sample_rate=11025)], [Resample(target_sample_rate=8000)]
    expected = one_shot_reference(denoiser, before, after, signal, 16000)
    chain = DenoisingChain(denoiser, before=before, after=after, plugin_block_samples=512)
    rng = np.random.default_rng(3)
    pieces, start = [], 0
    while start < signal.shape[1]:
        size = int(rng.integers(0, 700))
        pieces.append(chain.process(signal[:, start : start + size]))
        start += size
    out = np.concatenate([*pieces, chain.flush()], axis=1)
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_stays_aligned_through_the_resampling_denoiser(denoisers):
    denoiser = denoisers("bypass", 2, 48000)  # runs at 16 kHz inside: resampled both ways
    rng = np.random.default_rng(5)
    spectrum = np.fft.rfft(rng.standard_normal((2, 48000)), axis=1)
    spectrum[:, np.fft.rfftfreq(48000, 1 / 48000) > 6000] = 0  # well inside the model's band
    signal = (0.2 * np.fft.irfft(spectrum, 48000, axis=1)).astype(np.float32)
    out = stream(DenoisingChain(denoiser, after=[Gain(0.0)]), signal, 480)
    lags = np.arange(-20, 21)
    middle = slice(4800, -4800)
    corr = [np.dot(signal[0, middle], np.roll(out[0], -lag)[middle]) for lag in lags]
    assert lags[int(np.argmax(corr))] == 0
    np.testing.assert_allclose(out[:, middle], signal[:, middle], atol=0.02)


def test_flush_resets_for_the_next_stream(denoisers):
    denoiser = denoisers("test", 1)
    signal = noisy(3000, 1)
    chain = DenoisingChain(denoiser, before=[HighpassFilter(80)], after=[Compressor()])
    first = stream(chain, signal, 500)
    second = stream(chain, signal, 777)
    np.testing.assert_allclose(second, first, atol=1e-6)


def test_process_file_with_chain_keeps_format_and_matches_in_memory(tmp_path, denoisers, models):
    signal = noisy(20011, 2)
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, signal.T, 16000, subtype="PCM_16")
    hash_before = sha256_file(src)
    before, after = [HighpassFilter(80)], [Compressor(threshold_db=-18), Gain(2)]

    result = process_file_with_chain(
        src, dst, before=before, after=after, model=models["test"], chunk_samples=4096
    )

    info = sf.info(str(dst))
    assert (info.samplerate, info.channels, info.frames) == (16000, 2, 20011)
    assert info.subtype == "PCM_16"
    assert result.input_sha256 == hash_before == sha256_file(src)
    assert result.output_sha256 == sha256_file(dst)
    assert result.duration_s == pytest.approx(20011 / 16000)
    read_back, _ = sf.read(str(src), dtype="float32", always_2d=True)
    expected = one_shot_reference(denoisers("test", 2), before, after, read_back.T, 16000)
    written, _ = sf.read(str(dst), dtype="float32", always_2d=True)
    # pedalboard (JUCE) scales to int16 by 32767 where soundfile reads back by 32768:
    # rounding plus that 3e-5 relative scale, hence a few LSB.
    np.testing.assert_allclose(written.T, np.clip(expected, -1, 1), atol=4 / 32768)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "out.wav"]  # no partials


def test_process_file_with_chain_refuses_its_input(tmp_path):
    sf.write(tmp_path / "in.wav", np.zeros(100), 16000)
    with pytest.raises(ParameterError, match="is the input file"):
        process_file_with_chain(tmp_path / "in.wav", tmp_path / "in.wav")


def test_errors_name_the_fix(denoisers):
    chain = DenoisingChain(denoisers("test", 2))
    with pytest.raises(ParameterError, match=r"Expected 2-channel .* pass chunk\.T"):
        chain.process(np.zeros((100, 2), np.float32))
    with pytest.raises(ParameterError, match=r"got shape \(3, 100\); make the chain's Denoiser"):
        chain.process(np.zeros((3, 100), np.float32))
    with pytest.raises(ParameterError, match="dtype int16; pass float audio"):
        chain.process(np.zeros((2, 100), np.int16))
    with pytest.raises(ParameterError, match="differs from the chain's 16000 Hz"):
        chain(np.zeros((2, 100), np.float32), 48000)
    with pytest.raises(ParameterError, match="must be a pedalboard plugin"):
        DenoisingChain(denoisers("test", 2), after=["reverb"])
    with pytest.raises(ParameterError, match="plugin_block_samples=2 must be an integer greater"):
        DenoisingChain(denoisers("test", 2), plugin_block_samples=2)
    with pytest.raises(ParameterError, match=r"must be a seproc\.Denoiser"):
        DenoisingChain(object())


def test_chain_reads_its_settings_back(denoisers):
    denoiser = denoisers("test", 2)
    chain = DenoisingChain(denoiser, before=HighpassFilter(80), after=[Gain(1), Gain(2)])
    assert (chain.sample_rate, chain.channels) == (16000, 2)
    assert chain.denoiser is denoiser
    assert chain.latency_samples == denoiser.latency_samples
    assert isinstance(chain.before, Pedalboard) and len(chain.before) == 1
    assert len(chain.after) == 2
    assert DenoisingChain(denoiser, before=[]).before is None


@pytest.mark.parametrize("shape", [(2205, 2), (44100, 2)])
def test_chain_refuses_samples_by_channels_quickly(denoisers, shape):
    chain = DenoisingChain(denoisers("test", 2))
    audio = np.zeros(shape, np.float32)
    started = time.perf_counter()
    with pytest.raises(ParameterError, match=r"pass audio\.T if it is \(samples, channels\)"):
        chain(audio, 16000)
    with pytest.raises(ParameterError, match=r"pass chunk\.T if it is \(samples, channels\)"):
        chain.process(audio)
    assert time.perf_counter() - started < 1.0


def test_chain_takes_pedalboards_float_rates(denoisers):
    chain = DenoisingChain(denoisers("test", 1))
    signal = noisy(3000, 1)
    expected = chain(signal, 16000)
    np.testing.assert_array_equal(chain(signal, 16000.0), expected)
    np.testing.assert_array_equal(chain(signal, np.float64(16000)), expected)
    with pytest.raises(ParameterError, match=r"sample_rate=16000\.5 must be a whole number"):
        chain(signal, 16000.5)


@pytest.mark.parametrize(
    ("extension", "subtype"),
    [(".wav", s) for s in ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]]
    + [(".flac", "PCM_16"), (".flac", "PCM_24")],
)
def test_process_file_with_chain_keeps_the_subtype(tmp_path, models, extension, subtype):
    src, dst = tmp_path / f"in{extension}", tmp_path / f"out{extension}"
    sf.write(src, noisy(4000, 2).T, 16000, subtype=subtype)
    process_file_with_chain(src, dst, after=[Gain(1)], model=models["test"])
    info = sf.info(str(dst))
    assert (info.subtype, info.samplerate, info.channels, info.frames) == (subtype, 16000, 2, 4000)


@pytest.mark.parametrize(("bit_depth", "subtype"), [(16, "PCM_16"), (24, "PCM_24"), (32, "FLOAT")])
def test_process_file_with_chain_bit_depth_as_audiofile_takes_it(
    tmp_path, models, bit_depth, subtype
):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, noisy(4000, 1).T, 16000, subtype="PCM_32")
    process_file_with_chain(src, dst, model=models["test"], bit_depth=bit_depth)
    assert sf.info(str(dst)).subtype == subtype


def test_process_file_with_chain_refuses_bad_bit_depth_and_format(tmp_path, models):
    src = tmp_path / "in.wav"
    sf.write(src, np.zeros(100), 16000)
    with pytest.raises(ParameterError, match=r"bit_depth=12 must be 16, 24, 32 \(float\) or None"):
        process_file_with_chain(src, tmp_path / "out.wav", model=models["test"], bit_depth=12)
    with pytest.raises(ParameterError, match=r"extension '\.xyz', which soundfile cannot write"):
        process_file_with_chain(src, tmp_path / "out.xyz", model=models["test"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"]

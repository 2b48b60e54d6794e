"""Every entry point takes audio and rates the way soundfile and pedalboard users hold them.

soundfile's ``sf.read`` returns ``(samples, channels)``: each entry point refuses that
layout at once, with the ``.T`` fix, instead of reading it as thousands of channels.
pedalboard's ``AudioFile.samplerate`` and numpy hand out float rates: integral ones
are taken, fractional ones refused.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import pytest

from seproc import Denoiser, denoise
from seproc.errors import ParameterError
from seproc.resample import StreamResampler, resample
from tests.model_factory import make_model

# 0.05 s and 1 s of stereo at 44.1 kHz, as sf.read returns them: the two cases.
SAMPLE_MAJOR = [(2205, 2), (44100, 2)]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("entry_models") / "m.onnx")


def refused_quickly(call, array, match):
    """Assert ``call(array)`` raises ParameterError(match) in < 1 s, allocating < 1 MB."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ParameterError, match=match):
            call(array)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 1_000_000


@pytest.mark.parametrize("shape", SAMPLE_MAJOR)
def test_denoise_refuses_samples_by_channels(model, shape):
    audio = np.zeros(shape, np.float32)
    refused_quickly(
        lambda a: denoise(a, 44100, model=model), audio, r"Pass audio\.T if it is \(samples"
    )


@pytest.mark.parametrize("shape", SAMPLE_MAJOR)
def test_denoiser_call_refuses_samples_by_channels(model, shape):
    denoiser = Denoiser(model, sample_rate=44100, channels=2, warm_up=False)
    audio = np.zeros(shape, np.float32)
    refused_quickly(lambda a: denoiser(a, 44100), audio, r"pass audio\.T if it is \(samples")


def test_denoise_still_takes_channels_by_samples(model):
    audio = np.zeros((2, 2205), np.float32)
    assert denoise(audio, 44100, model=model).shape == (2, 2205)


@pytest.mark.parametrize("rate", [44100.0, np.float64(44100), np.int64(44100)])
def test_integral_float_and_numpy_rates_are_taken(model, rate):
    denoiser = Denoiser(model, sample_rate=rate, warm_up=False)
    assert denoiser.sample_rate == 44100 and type(denoiser.sample_rate) is int
    audio = np.zeros(441, np.float32)
    assert denoiser(audio, rate).shape == (441,)
    assert denoise(audio, rate, model=model).shape == (441,)


def test_float_rate_48000_from_numpy(model):
    denoiser = Denoiser(model, sample_rate=np.float64(48000), warm_up=False)
    assert denoiser.sample_rate == 48000
    assert denoiser.latency_samples == Denoiser(model, sample_rate=48000).latency_samples


def test_fractional_rates_are_refused_everywhere(model):
    match = r"Parameter sample_rate=44100\.5 must be a whole number of Hz"
    with pytest.raises(ParameterError, match=match):
        Denoiser(model, sample_rate=44100.5)
    with pytest.raises(ParameterError, match=match):
        denoise(np.zeros(100, np.float32), 44100.5, model=model)
    denoiser = Denoiser(model, sample_rate=44100, warm_up=False)
    with pytest.raises(ParameterError, match=match):
        denoiser(np.zeros(100, np.float32), 44100.5)
    with pytest.raises(ParameterError, match=r"in_rate_hz=44100\.5 must be a whole number"):
        StreamResampler(44100.5, 16000, channels=1, max_block_samples=64)
    with pytest.raises(ParameterError, match=r"out_rate_hz=16000\.5 must be a whole number"):
        resample(np.zeros(100, np.float32), 44100, 16000.5)


def test_resampler_takes_float_rates():
    kwargs = {"channels": 1, "max_block_samples": 64}
    taken = StreamResampler(44100.0, np.float64(16000), **kwargs)
    assert taken.ratio == StreamResampler(44100, 16000, **kwargs).ratio
    assert taken.in_rate_hz == 44100 and type(taken.in_rate_hz) is int

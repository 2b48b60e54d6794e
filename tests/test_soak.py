"""The soak in reduced form: 20 s of audio in random blocks, in the default suite.

The full run is a command (``python -m benchmarks.soak --minutes 60 --seed 0``); its
last figures are in benchmarks/README.md, section "Soak".
"""

from __future__ import annotations

import pytest

from benchmarks.soak import soak
from tests.model_factory import make_model


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("soak") / "stateful.onnx")


def test_twenty_seconds_of_random_blocks_stay_finite_and_flat(model):
    report = soak(20.0, seed=0, sample_rate=48000, channels=2, model=model)
    assert report.audio_s == pytest.approx(20.0)
    assert report.blocks > 300
    assert report.non_finite_blocks == 0
    assert report.wrong_length_blocks == 0
    # About 550 calls (mean block ~1700 samples): a leak of 8 KiB per call, or any that
    # grows with the audio (buffers), would show. Measured here: 0.2-1.7 MiB, flat over
    # 3 minutes (benchmarks/README.md).
    assert report.rss_growth_mb < 4.0
    assert report.cpu_us_per_hop_first > 0 and report.cpu_us_per_hop_last > 0

"""Log-magnitude conversion and features against librosa."""

from __future__ import annotations

import tracemalloc

import librosa
import numpy as np
import pytest

from seproc.errors import ParameterError
from seproc.features import (
    LogPowerFeatures,
    amplitude_to_db,
    db_to_amplitude,
    db_to_power,
    power_to_db,
)


def spectrum(shape, seed=0, dtype=np.complex64):
    rng = np.random.default_rng(seed)
    spec = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    spec *= 10.0 ** rng.uniform(-8, 2, size=shape)  # cover the floor and loud bins
    spec[..., 0] = 0.0  # exact zeros hit the floor
    return spec.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amin", [1e-10, 1e-5])
def test_power_to_db_matches_librosa(dtype, amin):
    power = (np.abs(spectrum((40, 161), seed=1)) ** 2).astype(dtype)
    expected = librosa.power_to_db(power, ref=1.0, amin=amin, top_db=None)
    result = power_to_db(power, amin)
    assert result.dtype == dtype and result.shape == power.shape
    np.testing.assert_allclose(result, expected, atol=1e-4 if dtype == np.float32 else 1e-10)
    out = np.empty(power.shape, np.float64)
    assert power_to_db(power, amin, out=out) is out
    np.testing.assert_allclose(out, expected, atol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("amin", [1e-5, 1e-3])
def test_amplitude_to_db_matches_librosa(dtype, amin):
    values = spectrum((3, 30, 65), seed=2, dtype=np.complex128)
    amplitude = (np.abs(values) if np.dtype(dtype).kind == "f" else values).astype(dtype)
    expected = librosa.amplitude_to_db(np.abs(amplitude), ref=1.0, amin=amin, top_db=None)
    result = amplitude_to_db(amplitude, amin)
    assert result.shape == amplitude.shape
    np.testing.assert_allclose(result, expected, atol=1e-4)


def test_db_round_trips_match_librosa():
    db = np.linspace(-120, 40, 1001)
    np.testing.assert_allclose(db_to_power(db), librosa.db_to_power(db, ref=1.0), rtol=1e-12)
    np.testing.assert_allclose(
        db_to_amplitude(db), librosa.db_to_amplitude(db, ref=1.0), rtol=1e-12
    )
    power = db_to_power(db.astype(np.float32))
    assert power.dtype == np.float32
    np.testing.assert_allclose(power_to_db(power, 1e-30), db, atol=1e-4)
    np.testing.assert_allclose(amplitude_to_db(db_to_amplitude(db), 1e-30), db, atol=1e-9)


def test_log_power_features_match_librosa_normalised():
    n_bins = 161
    rng = np.random.default_rng(3)
    mean_db = rng.uniform(-80, -20, n_bins)
    std_db = rng.uniform(5, 20, n_bins)
    spec = spectrum((2, 25, n_bins), seed=4)
    features = LogPowerFeatures(mean_db, std_db, amin=1e-10)
    assert features.n_bins == n_bins and features.amin == 1e-10
    db = librosa.power_to_db(
        np.abs(spec.astype(np.complex128)) ** 2, ref=1.0, amin=1e-10, top_db=None
    )
    expected = (db - mean_db) / std_db
    out = np.empty(spec.shape, np.float32)
    db_out = np.empty(spec.shape, np.float32)
    features.compute(spec, out, db_out)
    np.testing.assert_allclose(db_out, db, atol=1e-4)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    out2 = np.empty((25, n_bins), np.float32)
    features.compute(spec[1], out2)
    np.testing.assert_array_equal(out2, out[1])


def test_features_compute_does_not_allocate():
    features = LogPowerFeatures(np.zeros(161), np.ones(161))
    spec = spectrum((4, 161), seed=5)
    out = np.empty((4, 161), np.float32)
    features.compute(spec, out)
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(1000):
            features.compute(spec, out)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 1024
    assert peak - before < 2048


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros((2, 3)), np.ones(3)), {}, r"mean_db must be a non-empty finite 1-D"),
        ((np.zeros(3), np.ones(4)), {}, r"std_db must be a finite 1-D array of 3 values > 0"),
        ((np.zeros(3), np.array([1.0, 0.0, 1.0])), {}, r"std_db must be .* > 0"),
        ((np.array([0.0, np.nan, 0.0]), np.ones(3)), {}, r"mean_db must be a non-empty finite"),
        ((np.zeros(3), np.ones(3)), {"amin": 0.0}, r"amin=0.0 must be a finite number > 0"),
        ((np.zeros(3), np.ones(3)), {"dtype": np.int32}, r"dtype=.* must be np.float32"),
    ],
)
def test_bad_feature_settings_raise(args, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        LogPowerFeatures(*args, **kwargs)


def test_bad_compute_arguments_raise():
    features = LogPowerFeatures(np.zeros(161), np.ones(161))
    spec = spectrum((4, 161))
    with pytest.raises(ParameterError, match=r"shape \(frames, 161\)"):
        features.compute(np.abs(spec), np.empty((4, 161), np.float32))
    with pytest.raises(ParameterError, match=r"spec must be a complex array"):
        features.compute(spectrum((4, 160)), np.empty((4, 160), np.float32))
    with pytest.raises(ParameterError, match=r"out must be a float array of shape \(4, 161\)"):
        features.compute(spec, np.empty((3, 161), np.float32))
    with pytest.raises(ParameterError, match=r"Parameter db_out must be a float array"):
        features.compute(spec, np.empty((4, 161), np.float32), np.empty((4, 161), np.complex64))
    with pytest.raises(ParameterError, match=r"amin=-1 must be a finite number > 0"):
        power_to_db(np.ones(3), -1)
    with pytest.raises(ParameterError, match=r"Parameter out must be a C-contiguous float array"):
        power_to_db(np.ones(3), out=np.empty(4))
    with pytest.raises(ParameterError, match=r"Parameter db must be a real array"):
        db_to_power(np.array(["a"]))
    with pytest.raises(ParameterError, match=r"Parameter power must be a real array"):
        power_to_db(np.ones(3, np.complex64))


def test_log_power_features_refuse_a_subnormal_amin():
    with pytest.raises(ParameterError, match="amin=1e-310 must be at least"):
        LogPowerFeatures(np.zeros(3), np.ones(3), amin=1e-310)


def test_log_power_features_equal_numpys_log10_over_the_float32_range():
    """The kernel's vectorised log against numpy's log10, float64 then float32 (any bin)."""
    rng = np.random.default_rng(8)
    magnitude = 10 ** rng.uniform(-22, 3, (400, 257))
    phase = rng.uniform(0, 2 * np.pi, magnitude.shape)
    spec = (magnitude * np.exp(1j * phase)).astype(np.complex64)
    spec[0, :5] = 0  # silence: the floor
    mean, std = rng.normal(0, 20, 257), rng.uniform(5, 25, 257)
    features = LogPowerFeatures(mean, std, amin=1e-10)
    out = np.zeros(spec.shape, np.float32)
    db = np.zeros(spec.shape, np.float32)
    features.compute(spec, out, db_out=db)
    power = spec.real.astype(np.float64) ** 2 + spec.imag.astype(np.float64) ** 2
    expected_db = 10 * np.log10(np.maximum(power, 1e-10))
    np.testing.assert_allclose(db, expected_db.astype(np.float32), rtol=2e-7, atol=0)
    expected = ((expected_db - mean) / std).astype(np.float32)
    assert np.mean(out == expected) > 0.999  # equal but within 1e-11 dB of a rounding edge
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)

"""Audio-block validation: every rejection names the argument and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from seproc._validation import (
    as_audio_block,
    as_signal,
    check_channels_first,
    check_finite,
    check_float_dtype,
    check_int,
    check_positive_int,
    check_sample_rate,
)
from seproc.errors import ParameterError


def test_accepts_float_blocks_without_copying():
    block = np.zeros((2, 100), np.float32)
    result, was_1d = as_audio_block(block, 2, name="block")
    assert result is block and not was_1d
    mono = np.arange(5, dtype=np.float64)
    result, was_1d = as_audio_block(mono, 1, name="block")
    assert was_1d and result.shape == (1, 5) and np.shares_memory(result, mono)
    strided = np.zeros((2, 200), np.float32)[:, ::2]
    assert as_audio_block(strided, 2, name="block")[0] is strided
    listed, _ = as_audio_block([[0.0, 0.5]], 1, name="block")
    np.testing.assert_array_equal(listed, [[0.0, 0.5]])
    empty, _ = as_audio_block(np.zeros((3, 0), np.float32), 3, name="block")
    assert empty.shape == (3, 0)


@pytest.mark.parametrize(
    ("block", "channels", "match"),
    [
        (np.zeros((2, 10), np.int16), 2, r"block has integer dtype int16 .* / 32768"),
        (np.zeros((2, 10), np.uint8), 2, r"block has integer dtype uint8"),
        (np.zeros((2, 10), bool), 2, r"block is a bool array"),
        (np.zeros((2, 10), np.complex64), 2, r"block is complex \(complex64\)"),
        (np.zeros((2, 10), np.float16), 2, r"float16; .*block.astype\(np.float32\)"),
        (np.float32(0.5), 1, r"got a 0-D array"),
        (np.zeros((1, 2, 10), np.float32), 1, r"got a 3-D array of shape \(1, 2, 10\)"),
        (np.zeros(10, np.float32), 2, r"block is 1-D with shape \(10,\), but 2-channel"),
        (np.zeros((100, 2), np.float32), 2, r"got shape \(100, 2\); pass block.T"),
        (np.zeros((3, 100), np.float32), 2, r"Expected 2-channel .* got shape \(3, 100\)"),
        ("abc", 1, r"block must be a float32 or float64 numpy array .* str"),
        (None, 1, r"block must be a float32 or float64 numpy array .* NoneType"),
        ([[0.0, 1.0], [0.0]], 2, r"block must be a float32 or float64 numpy array .* list"),
    ],
)
def test_rejections_name_the_argument_and_fix(block, channels, match):
    with pytest.raises(ParameterError, match=match):
        as_audio_block(block, channels, name="block")


def test_square_block_is_channels_first():
    block = np.zeros((2, 2), np.float32)
    assert as_audio_block(block, 2, name="block")[0] is block


def test_check_finite():
    block = np.zeros((2, 50), np.float32)
    assert check_finite(block)
    assert check_finite(block[0]) and check_finite(block[:, ::3])
    block[1, 49] = np.inf
    assert not check_finite(block)
    assert not check_finite(block.reshape(2, 5, 10))
    assert not check_finite(np.array([0.0, np.nan]))
    assert not check_finite(np.zeros((2, 3, 4)).transpose(2, 1, 0) * np.nan)
    assert check_finite(np.zeros((0, 0), np.float64))


def test_as_signal_rejects_non_finite_and_ndim():
    with pytest.raises(ParameterError, match=r"Parameter x holds NaN or Inf"):
        as_signal(np.array([0.0, np.nan]), name="x")
    with pytest.raises(ParameterError, match=r"Parameter x must be audio .* 0-D"):
        as_signal(np.float64(1.0), name="x")
    x2d, was_1d = as_signal(np.zeros(4), name="x")
    assert x2d.shape == (1, 4) and was_1d


def test_int_and_dtype_checks():
    assert check_int("n", np.int64(5), 0) == 5
    assert check_positive_int("n", 3) == 3
    with pytest.raises(ParameterError, match=r"Parameter n=0 must be an integer >= 1"):
        check_positive_int("n", 0)
    with pytest.raises(ParameterError, match=r"Parameter n=True must be an integer >= 1, got bool"):
        check_positive_int("n", True)
    with pytest.raises(ParameterError, match=r"Parameter n=1.0 must be an integer >= 0, got float"):
        check_int("n", 1.0, 0)
    assert check_float_dtype("dtype", "float64") == np.float64
    with pytest.raises(ParameterError, match=r"Parameter dtype='nope' must be np.float32"):
        check_float_dtype("dtype", "nope")
    with pytest.raises(ParameterError, match=r"Parameter dtype=None must be np.float32"):
        check_float_dtype("dtype", None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(44100, 44100), (44100.0, 44100), (np.float64(48000), 48000), (np.int32(16000), 16000)],
)
def test_sample_rate_takes_whole_numbers_of_any_numeric_type(value, expected):
    result = check_sample_rate("sample_rate", value)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value", [44100.5, np.float32(22050.25), float("nan"), float("inf")])
def test_sample_rate_refuses_fractions_and_non_finite(value):
    with pytest.raises(ParameterError, match=r"Parameter sample_rate=.* must be a whole number"):
        check_sample_rate("sample_rate", value)


def test_sample_rate_refuses_non_numbers_and_low_rates():
    with pytest.raises(ParameterError, match=r"Parameter sample_rate=True must be an integer"):
        check_sample_rate("sample_rate", True)
    with pytest.raises(ParameterError, match=r"Parameter sample_rate='44100' must be an integer"):
        check_sample_rate("sample_rate", "44100")
    with pytest.raises(
        ParameterError, match=r"sample_rate=4000.0 must be a whole number of Hz >= 8000"
    ):
        check_sample_rate("sample_rate", 4000.0, 8000)


@pytest.mark.parametrize("shape", [(2205, 2), (65, 100_000), (3, 2), (44100, 1)])
def test_channels_first_refuses_sample_major_arrays(shape):
    with pytest.raises(ParameterError, match=r"Pass audio\.T if it is \(samples, channels\)"):
        check_channels_first(np.zeros(shape, np.float32), "audio")


@pytest.mark.parametrize("shape", [(2, 2205), (64, 64), (1, 1), (2, 0), (1, 0), (5,), (0, 0)])
def test_channels_first_accepts_channel_major_and_empty_arrays(shape):
    array = np.zeros(shape, np.float32)
    check_channels_first(array, "audio")  # raises on failure
    assert array.shape == shape

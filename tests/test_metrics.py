"""Metrics of the evaluation against first principles and the packages they wrap."""

from __future__ import annotations

import numpy as np
import pytest

from tests.eval_fixtures import SAMPLE_RATE_HZ, mix, speech_like, white_noise
from training import metrics


def _orthogonal_noise(reference: np.ndarray, seed: int = 3) -> np.ndarray:
    """Zero-mean noise made orthogonal to the zero-mean ``reference`` (Gram-Schmidt)."""
    noise = white_noise(reference.size, seed=seed).astype(np.float64)
    noise -= noise.mean()
    ref = reference - reference.mean()
    return noise - (noise @ ref) / (ref @ ref) * ref


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return speech_like(3.0, seed=0).astype(np.float64)


def test_si_sdr_matches_the_definition_for_a_scaled_reference_plus_orthogonal_noise(clean):
    ref = clean - clean.mean()
    noise = _orthogonal_noise(clean)
    for gain in (0.3, 1.0, 2.5):
        for noise_gain in (0.01, 0.5, 3.0):
            estimate = gain * ref + noise_gain * noise
            expected = 10 * np.log10((gain**2 * ref @ ref) / (noise_gain**2 * noise @ noise))
            assert metrics.si_sdr(clean, estimate) == pytest.approx(expected, abs=1e-9)


def test_si_sdr_matches_a_least_squares_projection(clean):
    estimate = mix(clean.astype(np.float32), white_noise(clean.size, seed=9), 3.0)
    ref = clean - clean.mean()
    est = estimate.astype(np.float64) - estimate.mean()
    (alpha,), *_ = np.linalg.lstsq(ref[:, None], est, rcond=None)
    target = alpha * ref
    expected = 10 * np.log10(np.sum(target**2) / np.sum((est - target) ** 2))
    assert metrics.si_sdr(clean, estimate) == pytest.approx(expected, abs=1e-6)
    assert 2.0 < expected < 4.0  # the mixture was made at 3 dB SNR


def test_si_sdr_is_invariant_to_scale_and_offset(clean):
    estimate = mix(clean.astype(np.float32), white_noise(clean.size), 5.0).astype(np.float64)
    base = metrics.si_sdr(clean, estimate)
    assert metrics.si_sdr(clean, 7.0 * estimate) == pytest.approx(base, abs=1e-9)
    assert metrics.si_sdr(clean, -0.2 * estimate) == pytest.approx(base, abs=1e-9)
    assert metrics.si_sdr(0.01 * clean, estimate) == pytest.approx(base, abs=1e-9)
    assert metrics.si_sdr(clean, estimate + 0.3) == pytest.approx(base, abs=1e-9)


def test_si_sdr_orders_estimates_and_handles_extremes(clean):
    noise = white_noise(clean.size)
    better = mix(clean.astype(np.float32), noise, 10.0)
    worse = mix(clean.astype(np.float32), noise, 0.0)
    assert metrics.si_sdr(clean, better) > metrics.si_sdr(clean, worse) + 9.0
    assert metrics.si_sdr(clean, clean) == np.inf
    assert metrics.si_sdr(clean, np.zeros_like(clean)) == -np.inf


def test_si_sdr_rejects_bad_input(clean):
    with pytest.raises(ValueError, match="same length"):
        metrics.si_sdr(clean, clean[:-1])
    with pytest.raises(ValueError, match="silent"):
        metrics.si_sdr(np.zeros(100), np.ones(100))
    with pytest.raises(ValueError, match="must be 1-D"):
        metrics.si_sdr(np.zeros((2, 100)), np.zeros((2, 100)))


def test_si_sdr_with_epsilon_is_finite_at_the_extremes(clean):
    """epsilon (training's validation log): the exact value where energies are normal,
    ``10 log10(|s|^2 / eps)`` for a perfect estimate and no error for a silent reference."""
    estimate = mix(clean.astype(np.float32), white_noise(clean.size, seed=4), 5.0)
    exact = metrics.si_sdr(clean, estimate)
    assert metrics.si_sdr(clean, estimate, epsilon=1e-12) == pytest.approx(exact, abs=1e-9)
    assert metrics.si_sdr(clean, estimate, epsilon=0.0) == exact
    ref = clean - clean.mean()
    perfect = metrics.si_sdr(clean, clean, epsilon=1e-12)
    assert perfect == pytest.approx(10 * np.log10(ref @ ref / 1e-12), abs=1e-6)
    assert 100.0 < perfect < np.inf
    noise = white_noise(1000, seed=6).astype(np.float64)
    noise -= noise.mean()
    silent = metrics.si_sdr(np.zeros(1000), noise, epsilon=1e-12)
    assert silent == pytest.approx(10 * np.log10(1e-12 / (noise @ noise + 1e-12)), abs=1e-9)
    assert metrics.si_sdr(clean, np.zeros_like(clean), epsilon=1e-12) == 0.0
    for bad in (-1e-12, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"epsilon=.* must be a finite number >= 0"):
            metrics.si_sdr(clean, estimate, epsilon=bad)


def test_pesq_of_clean_against_itself_is_the_wideband_maximum(clean):
    # P.862.2 maps the best raw score to 4.644 MOS-LQO.
    assert metrics.pesq_wb(clean, clean) == pytest.approx(4.644, abs=0.01)
    noisy = mix(clean.astype(np.float32), white_noise(clean.size), 5.0)
    assert metrics.pesq_wb(clean, noisy) < 2.5


def test_pesq_matches_the_package_called_directly(clean):
    from pesq import pesq

    noisy = mix(clean.astype(np.float32), white_noise(clean.size), 10.0).astype(np.float64)
    assert metrics.pesq_wb(clean, noisy) == pytest.approx(
        pesq(SAMPLE_RATE_HZ, clean, noisy, "wb"), abs=1e-9
    )


def test_stoi_is_one_for_clean_and_lower_for_noisy(clean):
    assert metrics.stoi(clean, clean) == pytest.approx(1.0, abs=1e-6)
    noisy = mix(clean.astype(np.float32), white_noise(clean.size), -5.0)
    assert metrics.stoi(clean, noisy) < 0.9


@pytest.fixture(scope="module")
def dnsmos() -> metrics.Dnsmos:
    return metrics.Dnsmos()


def test_dnsmos_scores_clean_above_heavy_white_noise(dnsmos, clean):
    noisy = mix(clean.astype(np.float32), white_noise(clean.size), -5.0)
    clean_scores = dnsmos(clean)
    noisy_scores = dnsmos(noisy)
    assert clean_scores.ovrl > noisy_scores.ovrl + 0.3
    assert clean_scores.bak > noisy_scores.bak + 0.5
    for value in (*vars(clean_scores).values(), *vars(noisy_scores).values()):
        assert 1.0 <= value <= 5.0


def test_dnsmos_tiles_a_short_clip_to_one_window(dnsmos, clean):
    short = clean[: SAMPLE_RATE_HZ * 2]
    tiled = np.tile(short, 5)[: int(metrics.DNSMOS_WINDOW_S * SAMPLE_RATE_HZ)]
    assert dnsmos(short) == dnsmos(np.concatenate([tiled, short[: 5 * short.size - tiled.size]]))
    with pytest.raises(ValueError, match="empty"):
        dnsmos(np.zeros(0))


def test_dnsmos_equals_speechmos_on_a_clip_longer_than_one_window(dnsmos):
    pytest.importorskip("librosa")  # speechmos.dnsmos imports it for its P.808 model
    speechmos_dnsmos = pytest.importorskip("speechmos.dnsmos")
    clip = mix(speech_like(10.5, seed=4), white_noise(int(10.5 * SAMPLE_RATE_HZ)), 10.0)
    clip = (0.9 * clip / np.max(np.abs(clip))).astype(np.float32)
    reference = speechmos_dnsmos.run(clip, SAMPLE_RATE_HZ)
    ours = dnsmos(clip)
    assert ours.sig == pytest.approx(reference["sig_mos"], abs=1e-5)
    assert ours.bak == pytest.approx(reference["bak_mos"], abs=1e-5)
    assert ours.ovrl == pytest.approx(reference["ovrl_mos"], abs=1e-5)

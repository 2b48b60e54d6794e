"""Speech-quality metrics for the evaluation: PESQ-wb, STOI, SI-SDR and DNSMOS.

All functions take 16 kHz mono float signals in [-1, 1], shape ``(samples,)``.

- :func:`pesq_wb`: ITU-T P.862.2 wide-band PESQ through the ``pesq`` package
  (MOS-LQO, about 1.04 to 4.64).
- :func:`stoi`: short-time objective intelligibility through ``pystoi`` (0 to 1).
- :func:`si_sdr`: scale-invariant signal-to-distortion ratio in dB (Le Roux et al.,
  "SDR - half-baked or well done?", ICASSP 2019), computed here in numpy.
- :class:`Dnsmos`: Microsoft's DNSMOS P.835 (SIG, BAK, OVRL) from the ONNX files that the
  ``speechmos`` wheel ships, loaded directly with onnxruntime (``speechmos`` is installed
  with ``--no-deps``; nothing is downloaded). DNSMOS scores 9.01 s windows, so a shorter
  clip is repeated until it is long enough, as ``speechmos.dnsmos`` does.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["SAMPLE_RATE_HZ", "Dnsmos", "DnsmosScores", "pesq_wb", "si_sdr", "stoi"]

SAMPLE_RATE_HZ = 16000
DNSMOS_WINDOW_S = 9.01
"""Length of one DNSMOS window in seconds (``speechmos.dnsmos.INPUT_LENGTH``)."""

# Polynomials that map the network's raw P.835 outputs to MOS (speechmos.dnsmos,
# non-personalised model), highest power first as np.poly1d takes them.
_POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
_POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
_POLY_OVRL = (-0.06766283, 1.11546468, 0.04602535)


def _mono(signal: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(signal, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D (samples,), got shape {array.shape}")
    return array


def _pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref = _mono(reference, "reference")
    est = _mono(estimate, "estimate")
    if ref.shape != est.shape:
        raise ValueError(
            f"reference {ref.shape} and estimate {est.shape} must have the same length; "
            "align and trim the estimate first"
        )
    return ref, est


def si_sdr(reference: np.ndarray, estimate: np.ndarray, *, epsilon: float = 0.0) -> float:
    """Scale-invariant signal-to-distortion ratio of ``estimate`` against ``reference``, dB.

    Parameters
    ----------
    reference, estimate : np.ndarray [shape=(samples,)]
        The clean signal and the signal to score, aligned and of equal length.
    epsilon : float
        Added to the reference energy in the projection and to both energies in the
        ratio (``>= 0``). ``0`` (default) is the exact definition; a small value such as
        ``1e-12`` keeps every result finite, as a training log needs: a perfect
        estimate then scores ``10 log10(|s|^2 / epsilon)`` (over 100 dB for speech) and
        a silent reference ``10 log10(epsilon / (|e|^2 + epsilon))``, instead of
        ``inf`` and a ValueError.

    Returns
    -------
    float
        ``10 log10(|a s|^2 / |a s - e|^2)`` with ``a = <e, s> / |s|^2``, after removing
        the mean of both signals. With ``epsilon = 0``: ``-inf`` for a silent estimate,
        ``inf`` for a perfect one.

    Raises
    ------
    ValueError
        If the shapes differ or are not 1-D, if ``epsilon`` is negative or not finite,
        or, with ``epsilon = 0``, if the reference is silent (or constant).

    Notes
    -----
    Invariant to scaling either signal by a non-zero factor (a negative factor on one
    of them flips the projection but not the ratio); with ``epsilon > 0`` only while
    the energies stay well above ``epsilon``.
    """
    if not (math.isfinite(epsilon) and epsilon >= 0.0):
        raise ValueError(f"epsilon={epsilon!r} must be a finite number >= 0")
    ref, est = _pair(reference, estimate)
    ref = ref - ref.mean()
    est = est - est.mean()
    ref_energy = float(np.dot(ref, ref))
    if ref_energy == 0.0 and epsilon == 0.0:
        raise ValueError("reference is silent (or constant): SI-SDR is undefined")
    target = (float(np.dot(est, ref)) / (ref_energy + epsilon)) * ref
    residual = est - target
    target_energy = float(np.dot(target, target)) + epsilon
    residual_energy = float(np.dot(residual, residual)) + epsilon
    if target_energy == 0.0:
        return -math.inf
    if residual_energy == 0.0:
        return math.inf
    return float(10.0 * np.log10(target_energy / residual_energy))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Wide-band PESQ (ITU-T P.862.2) of ``estimate`` against ``reference`` at 16 kHz.

    Returns
    -------
    float
        MOS-LQO, or NaN when PESQ finds no utterance in the reference.
    """
    from pesq import NoUtterancesError, pesq

    ref, est = _pair(reference, estimate)
    try:
        return float(pesq(SAMPLE_RATE_HZ, ref, est, "wb"))
    except NoUtterancesError:
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Short-time objective intelligibility (Taal et al. 2011) through ``pystoi``, 0 to 1."""
    from pystoi import stoi as _stoi

    ref, est = _pair(reference, estimate)
    return float(_stoi(ref, est, SAMPLE_RATE_HZ, extended=False))


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS P.835 scores of one clip (MOS, about 1 to 5).

    Attributes
    ----------
    sig : float
        Speech signal quality (distortion of the voice).
    bak : float
        Background noise quality (how intrusive the residual noise is).
    ovrl : float
        Overall quality.
    """

    sig: float
    bak: float
    ovrl: float


def dnsmos_model_dir() -> Path:
    """Return the folder of DNSMOS ONNX files inside the installed ``speechmos`` wheel.

    Raises
    ------
    FileNotFoundError
        If ``speechmos`` is not installed; the message gives the install command.
    """
    spec = importlib.util.find_spec("speechmos")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "DNSMOS needs the ONNX files of the speechmos wheel; install it with "
            "`pip install --no-deps -r training/requirements-peers-nodeps.txt`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "dnsmos_models"


class Dnsmos:
    """DNSMOS P.835 (non-personalised) on the ONNX model inside the ``speechmos`` wheel.

    Parameters
    ----------
    num_threads : int
        onnxruntime threads for one run.

    Notes
    -----
    Follows ``speechmos.dnsmos.DNSMOS.__call__``: windows of 9.01 s start every second,
    each window's raw outputs go through the P.835 polynomials, and the clip's score is
    the mean over windows. A clip shorter than 9.01 s is repeated just enough times to
    fill one window (``speechmos`` doubles it until it is long enough, which for a 2 s
    clip makes 7 overlapping windows of the same repeated audio at 7 times the cost);
    clips of 9.01 s and more are scored exactly as ``speechmos`` scores them.
    The P.808 model that ``speechmos`` also runs is not needed for SIG/BAK/OVRL
    and is skipped. Samples outside [-1, 1] are clipped (``speechmos`` refuses them).
    """

    def __init__(self, *, num_threads: int = 1) -> None:
        import onnxruntime as ort

        path = dnsmos_model_dir() / "sig_bak_ovr.onnx"
        if not path.is_file():
            raise FileNotFoundError(f"DNSMOS model {path} is missing; reinstall speechmos")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._input_name = self._session.get_inputs()[0].name
        self.window_samples = int(DNSMOS_WINDOW_S * SAMPLE_RATE_HZ)

    def __call__(self, audio: np.ndarray) -> DnsmosScores:
        """Score one 16 kHz clip.

        Parameters
        ----------
        audio : np.ndarray [shape=(samples,)]
            At least one sample, not all zeros; any length (tiled to 9.01 s).

        Returns
        -------
        DnsmosScores
        """
        signal = np.clip(_mono(audio, "audio"), -1.0, 1.0)
        if signal.size == 0:
            raise ValueError("audio is empty: DNSMOS needs at least one sample")
        if signal.size < self.window_samples:
            signal = np.tile(signal, -(-self.window_samples // signal.size))
        n_windows = int(np.floor(signal.size / SAMPLE_RATE_HZ) - DNSMOS_WINDOW_S) + 1
        windows = [
            signal[i * SAMPLE_RATE_HZ : i * SAMPLE_RATE_HZ + self.window_samples]
            for i in range(n_windows)
        ]
        windows = [w for w in windows if w.size == self.window_samples]
        batch = np.stack(windows).astype(np.float32)
        raw = np.concatenate(
            [
                self._session.run(None, {self._input_name: batch[i : i + 1]})[0]
                for i in range(batch.shape[0])
            ]
        ).astype(np.float64)
        sig = np.polyval(_POLY_SIG, raw[:, 0])
        bak = np.polyval(_POLY_BAK, raw[:, 1])
        ovrl = np.polyval(_POLY_OVRL, raw[:, 2])
        return DnsmosScores(sig=float(sig.mean()), bak=float(bak.mean()), ovrl=float(ovrl.mean()))

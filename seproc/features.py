"""Log-magnitude conversion and the model's normalised log-power features.

The dB conversions match librosa's ``power_to_db`` / ``amplitude_to_db`` with
``ref=1.0`` and ``top_db=None`` (same floor ``amin``), and their inverses
``db_to_power`` / ``db_to_amplitude``; all are numba kernels that can write into a
caller-owned ``out`` array.
"""

from __future__ import annotations

import math

import numpy as np

from seproc import _kernels
from seproc._interface import Setting
from seproc._validation import check_float_dtype
from seproc.errors import ParameterError

__all__ = [
    "LogPowerFeatures",
    "amplitude_to_db",
    "db_to_amplitude",
    "db_to_power",
    "power_to_db",
]


def _check_amin(amin: object) -> float:
    if (
        isinstance(amin, (bool, np.bool_))
        or not isinstance(amin, (int, float, np.integer, np.floating))
        or not math.isfinite(amin)
        or amin <= 0
    ):
        raise ParameterError(f"Parameter amin={amin!r} must be a finite number > 0 (e.g. 1e-10).")
    return float(amin)


def _elementwise(kernel, name: str, values: object, out: np.ndarray | None, *args) -> np.ndarray:
    array = np.asarray(values)
    kinds = "fciu" if name == "amplitude" else "fiu"
    if array.dtype.kind not in kinds:
        raise ParameterError(
            f"Parameter {name} must be a {'numeric' if name == 'amplitude' else 'real'} "
            f"array, got {type(values).__name__} with dtype {array.dtype}."
        )
    if array.dtype.kind in "iu":
        array = array.astype(np.float64)
    real_dtype = np.float32 if array.dtype in (np.float32, np.complex64) else np.float64
    if out is None:
        out = np.empty(array.shape, real_dtype)
    elif (
        not isinstance(out, np.ndarray)
        or out.shape != array.shape
        or out.dtype.kind != "f"
        or not out.flags.c_contiguous
    ):
        raise ParameterError(
            f"Parameter out must be a C-contiguous float array of shape {array.shape} "
            f"to match {name}, got {getattr(out, 'dtype', type(out).__name__)} "
            f"{getattr(out, 'shape', '')}."
        )
    flat = np.ascontiguousarray(array).reshape(-1)
    kernel(flat, *args, out.reshape(-1))
    return out


def power_to_db(
    power: np.ndarray, amin: float = 1e-10, out: np.ndarray | None = None
) -> np.ndarray:
    """Convert power to dB: ``10 * log10(max(power, amin))``.

    Equals ``librosa.power_to_db(power, ref=1.0, amin=amin, top_db=None)``.

    Parameters
    ----------
    power : np.ndarray, real, any shape
        Power values (``|X| ** 2``).
    amin : float
        Floor (> 0) applied before the log.
    out : np.ndarray or None
        C-contiguous float array of ``power``'s shape to write into; ``None`` allocates
        (float32 for float32 input, float64 otherwise).

    Returns
    -------
    np.ndarray
        ``out``.
    """
    return _elementwise(_kernels.power_to_db_flat, "power", power, out, _check_amin(amin))


def amplitude_to_db(
    amplitude: np.ndarray, amin: float = 1e-5, out: np.ndarray | None = None
) -> np.ndarray:
    """Convert amplitude to dB: ``10 * log10(max(|amplitude| ** 2, amin ** 2))``.

    Equals ``librosa.amplitude_to_db(amplitude, ref=1.0, amin=amin, top_db=None)``;
    complex input is converted through its magnitude.

    Parameters
    ----------
    amplitude : np.ndarray, real or complex, any shape
    amin : float
        Amplitude floor (> 0).
    out : np.ndarray or None
        As in :func:`power_to_db`.

    Returns
    -------
    np.ndarray
        ``out``.
    """
    return _elementwise(
        _kernels.amplitude_to_db_flat, "amplitude", amplitude, out, _check_amin(amin)
    )


def db_to_power(db: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Convert dB to power: ``10 ** (db / 10)`` (``librosa.db_to_power`` with ``ref=1``)."""
    return _elementwise(_kernels.db_to_power_flat, "db", db, out)


def db_to_amplitude(db: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Convert dB to amplitude: ``10 ** (db / 20)`` (``librosa.db_to_amplitude``, ``ref=1``)."""
    return _elementwise(_kernels.db_to_amplitude_flat, "db", db, out)


class LogPowerFeatures:
    """The model's input features: per-bin normalised log power of a spectrum.

    ``features[t, f] = (10 * log10(max(|X[t, f]| ** 2, amin)) - mean_db[f]) / std_db[f]``,
    computed in float64 and stored in ``dtype``.

    Parameters
    ----------
    mean_db : array-like [shape=(n_bins,)]
        Per-bin mean of the log power in dB (from the model's metadata).
    std_db : array-like [shape=(n_bins,)]
        Per-bin standard deviation in dB, all > 0.
    amin : float
        Power floor before the log (> 0).
    dtype : np.float32 or np.float64
        Dtype of the features.

    Raises
    ------
    ParameterError
        If the statistics are not finite 1-D arrays of one length, a std is <= 0, or
        ``amin`` or ``dtype`` is invalid.

    Examples
    --------
    >>> import numpy as np
    >>> from seproc.features import LogPowerFeatures
    >>> features = LogPowerFeatures(np.full(161, -40.0), np.full(161, 20.0))
    >>> spec = np.ones((3, 161), np.complex64)
    >>> out = np.empty((3, 161), np.float32)
    >>> features.compute(spec, out)
    >>> float(out[0, 0])
    2.0
    """

    def __init__(
        self,
        mean_db: np.ndarray,
        std_db: np.ndarray,
        *,
        amin: float = 1e-10,
        dtype: type | np.dtype = np.float32,
    ) -> None:
        mean = np.array(mean_db, dtype=np.float64)
        std = np.array(std_db, dtype=np.float64)
        if mean.ndim != 1 or mean.size == 0 or not np.isfinite(mean).all():
            raise ParameterError(
                f"Parameter mean_db must be a non-empty finite 1-D array (one value per "
                f"bin), got shape {mean.shape}."
            )
        if std.shape != mean.shape or not np.isfinite(std).all() or (std <= 0).any():
            raise ParameterError(
                f"Parameter std_db must be a finite 1-D array of {mean.size} values > 0 "
                f"(one per bin, like mean_db), got shape {std.shape}."
            )
        mean.flags.writeable = False
        std.flags.writeable = False
        self._mean_db = mean
        self._std_db = std
        self._amin = _check_amin(amin)
        if self._amin < np.finfo(np.float64).tiny:  # the kernel's log reads its bits
            raise ParameterError(
                f"Parameter amin={amin!r} must be at least {np.finfo(np.float64).tiny:.3g} "
                "(a normal float64; e.g. 1e-10)."
            )
        self._dtype = check_float_dtype("dtype", dtype)
        self._no_db = np.zeros((0, 0), self._dtype)

    @property
    def n_bins(self) -> int:
        """Bins per frame."""
        return self._mean_db.size

    mean_db = Setting[np.ndarray]("_mean_db", "Per-bin mean in dB (read-only).")
    std_db = Setting[np.ndarray]("_std_db", "Per-bin standard deviation in dB (read-only).")
    amin = Setting[float]("_amin", "Power floor before the log.")
    dtype = Setting[np.dtype]("_dtype", "Dtype of the features.")

    def fused_args(self) -> tuple:
        """``(amin, mean_db, std_db, no_db)``: what :meth:`compute_frames` passes its kernel."""
        return (self._amin, self._mean_db, self._std_db, self._no_db)

    def compute_frames(self, spec: np.ndarray, out: np.ndarray) -> None:
        """Write the normalised features of ``spec [frames, n_bins]`` into ``out``, unchecked.

        :meth:`compute` without its checks, for an owner (``Denoiser``) whose buffers fit
        by construction: the hot path of a 10 ms callback, where the checks cost as much
        as the kernel.
        """
        _kernels.log_power_features(
            spec, self._amin, self._mean_db, self._std_db, out, self._no_db, False
        )

    def compute(self, spec: np.ndarray, out: np.ndarray, db_out: np.ndarray | None = None) -> None:
        """Write the normalised features of ``spec`` into ``out`` (no allocation).

        Parameters
        ----------
        spec : np.ndarray [shape=(frames, n_bins) or (channels, frames, n_bins)], complex
        out : np.ndarray, float, shape of ``spec``
            Receives the normalised features.
        db_out : np.ndarray or None, float, shape of ``spec``
            Receives the un-normalised log power in dB, when given.

        Raises
        ------
        ParameterError
            On a shape or dtype mismatch.
        """
        if (
            not isinstance(spec, np.ndarray)
            or spec.dtype.kind != "c"
            or spec.ndim not in (2, 3)
            or spec.shape[-1] != self.n_bins
        ):
            raise ParameterError(
                f"Parameter spec must be a complex array of shape (frames, {self.n_bins}) "
                f"or (channels, frames, {self.n_bins}), got "
                f"{getattr(spec, 'dtype', type(spec).__name__)} {getattr(spec, 'shape', '')}."
            )
        for name, target in (("out", out), ("db_out", db_out)):
            if target is None and name == "db_out":
                continue
            if (
                not isinstance(target, np.ndarray)
                or target.dtype.kind != "f"
                or target.shape != spec.shape
            ):
                raise ParameterError(
                    f"Parameter {name} must be a float array of shape {spec.shape} like "
                    f"spec, got {getattr(target, 'dtype', type(target).__name__)} "
                    f"{getattr(target, 'shape', '')}."
                )
        write_db = db_out is not None
        if spec.ndim == 2 and not write_db:
            self.compute_frames(spec, out)
            return
        if spec.ndim == 2:
            _kernels.log_power_features(
                spec,
                self._amin,
                self._mean_db,
                self._std_db,
                out,
                db_out if write_db else self._no_db,
                write_db,
            )
            return
        for c in range(spec.shape[0]):
            _kernels.log_power_features(
                spec[c],
                self._amin,
                self._mean_db,
                self._std_db,
                out[c],
                db_out[c] if write_db else self._no_db,
                write_db,
            )

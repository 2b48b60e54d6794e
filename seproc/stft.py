"""STFT settings, offline and streaming analysis/synthesis, on pre-planned pyfftw transforms.

Conventions (the same for the offline and the streaming transforms, which agree bit for bit):

- Audio is ``(channels, samples)``; a 1-D array is one channel.
- Transform: unnormalised, ``X[f] = sum_n x[n] w[n] exp(-2j pi f n / n_fft)`` over the
  ``n_fft``-sample frame; the ``win_length``-sample window is zero-padded, centred, to
  ``n_fft`` (``pad_left = (n_fft - win_length) // 2``), like librosa.
- Causal framing: frame ``t`` is the window support over input samples
  ``[(t + 1) * hop_length - win_length, (t + 1) * hop_length)``; samples before the start
  of the signal are zeros. A frame is complete, and streamed out, as soon as its last
  sample arrives, so ``n`` samples give ``n // hop_length`` frames.
- Synthesis overlap-adds the inverse transforms weighted by the canonical dual window
  (for sqrt-Hann at 50 % overlap: the sqrt-Hann window itself), so ISTFT(STFT(x)) = x.
  Sample ``m`` is finished once frame ``(m + win_length) // hop_length - 1`` has been added;
  streaming analysis + synthesis therefore delays the signal by exactly
  ``latency_samples = win_length - hop_length``.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
import pyfftw

from seproc import _kernels
from seproc._fftw import PLAN_LOCK, destroy_plans, execute, plan_rows
from seproc._interface import Setting
from seproc._validation import (
    as_audio_block,
    as_signal,
    check_float_dtype,
    check_int,
    check_stream_buffer,
)
from seproc.errors import ParameterError

__all__ = [
    "PLANNER_EFFORTS",
    "STFT",
    "WINDOWS",
    "RowTransforms",
    "StreamingAnalyzer",
    "StreamingSynthesizer",
]

WINDOWS = ("sqrt_hann", "hann")
PLANNER_EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")
_OFFLINE_ROWS = 128
_COMPLEX = {
    np.dtype(np.float32): np.dtype(np.complex64),
    np.dtype(np.float64): np.dtype(np.complex128),
}


def _aligned_rows(n_rows: int, n_cols: int, dtype: np.dtype) -> np.ndarray:
    """Zeroed ``(n_rows, >= n_cols)`` array whose every row starts SIMD-aligned."""
    alignment = pyfftw.simd_alignment
    per = max(1, alignment // dtype.itemsize)
    stride = -(-n_cols // per) * per
    rows = pyfftw.empty_aligned((n_rows, stride), dtype, n=alignment)
    rows.fill(0)
    return rows


def _row_plan(real: np.ndarray, spec: np.ndarray, effort: str, inverse: bool) -> pyfftw.FFTW:
    """One row's pyfftw plan (caller holds ``PLAN_LOCK``)."""
    if inverse:
        return pyfftw.FFTW(
            spec,
            real,
            direction="FFTW_BACKWARD",
            flags=(effort, "FFTW_DESTROY_INPUT"),
            threads=1,
        )
    return pyfftw.FFTW(real, spec, direction="FFTW_FORWARD", flags=(effort,), threads=1)


class RowTransforms:
    """``n_rows`` identical one-frame FFTW plans over the rows of two aligned buffers.

    Every row is planned as the same FFTW problem (same size, strides and alignment), so
    FFTW's wisdom gives every row, in every object of the process, the same algorithm:
    a frame's transform does not depend on how frames are batched, which is what makes
    streaming equal offline bit for bit (and the pitch filter's delayed frames,
    ``seproc.pitch``). Planning happens before any data is written (``FFTW_MEASURE``
    overwrites the arrays it plans on).
    """

    def __init__(self, n_rows: int, n_fft: int, dtype: np.dtype, effort: str, inverse: bool):
        n_bins = n_fft // 2 + 1
        self.n_rows = n_rows
        self.real = _aligned_rows(n_rows, n_fft, dtype)
        self.spec = _aligned_rows(n_rows, n_bins, _COMPLEX[dtype])
        plans = []
        for r in range(n_rows):
            with PLAN_LOCK:
                plan = _row_plan(self.real[r, :n_fft], self.spec[r, :n_bins], effort, inverse)
            plans.append(plan)
        self._plans = plans
        self._execute = [plan.execute for plan in plans]
        self._n_fft = n_fft
        self._effort = effort
        self._inverse = inverse
        self._numba_plans: np.ndarray | None = None
        self.real.fill(0)
        self.spec.fill(0)

    def run(self, n_rows: int) -> None:
        """Transform the first ``n_rows`` rows (unnormalised in both directions)."""
        execute = self._execute
        if n_rows == 1:  # a 10 ms callback's frame: no loop (~0.2 µs a call)
            execute[0]()
            return
        for r in range(n_rows):
            execute[r]()

    def numba_plans(self, n_rows: int) -> np.ndarray | None:
        """Return the first ``n_rows`` rows' plans for numba code (:func:`seproc._fftw.execute`).

        Made once per object (FFTW's ``fftwf_execute`` on the same rows), and used only
        where each gives the same bits as the row's pyfftw plan on a random frame: the
        same FFTW problem with the same flags takes pyfftw's wisdom, but this is checked,
        not assumed. None where FFTW cannot be called from numba here, or a row differs.
        """
        if n_rows > self.n_rows or len(self._execute) != self.n_rows:
            return None  # a batched offline plan, or more rows than planned
        held = self._numba_plans
        if held is not None and held.size >= n_rows + 1:
            return held
        if held is not None:
            destroy_plans(held)
            self._numba_plans = None
        plans = plan_rows(self.real, self.spec, n_rows, self._n_fft, self._effort, self._inverse)
        if plans is None:
            return None
        same = self._same_as_pyfftw(plans, n_rows)
        self.real.fill(0)
        self.spec.fill(0)
        if not same:
            destroy_plans(plans)
            return None
        self._numba_plans = plans
        weakref.finalize(self, destroy_plans, plans).atexit = False
        return plans

    def _same_as_pyfftw(self, plans: np.ndarray, n_rows: int) -> bool:
        """Whether each of numba's ``plans`` transforms a random frame as the row's pyfftw plan."""
        inverse = self._inverse
        width = self._n_fft // 2 + 1 if inverse else self._n_fft
        source, result = (self.spec, self.real) if inverse else (self.real, self.spec)
        rng = np.random.default_rng(0)
        for r in range(n_rows):
            if inverse:
                frame = rng.standard_normal(2 * width).view(np.complex128)
            else:
                frame = rng.standard_normal(width)
            source[r, :width] = frame
            self._execute[r]()
            expected = result[r].copy()
            source[r, :width] = frame  # the inverse destroys its input
            result[r].fill(0)
            execute(plans, r)
            if not np.array_equal(result[r], expected):
                return False
        return True

    @classmethod
    def lend(
        cls, owner: object, n_rows: int, n_fft: int, dtype: np.dtype, effort: str, inverse: bool
    ) -> RowTransforms:
        """Return zeroed transforms for ``owner`` to use alone until it is collected.

        Planning costs tens of microseconds a row (3-5 ms for one whole-file
        :class:`~seproc.Denoiser`'s analyser, synthesiser and pitch filter), so
        transforms whose owner was collected wait, planned, for the next owner asking for
        the same problem (``seproc.denoise`` on file after file plans once). A lent plan
        was made when it was first asked for: where FFTW's wisdom has grown since (another
        plan of that size with more effort), a new plan may pick another algorithm, so a
        lent object's transforms can differ from a new one's in the last float32 bits.
        """
        key = (cls, n_rows, n_fft, np.dtype(dtype), effort, inverse)
        idle = _IDLE_TRANSFORMS.setdefault(key, [])
        try:
            transforms = idle.pop()  # atomic under the GIL: two owners never share one
        except IndexError:
            transforms = cls(n_rows, n_fft, dtype, effort, inverse)
        else:
            transforms.real.fill(0)
            transforms.spec.fill(0)
        weakref.finalize(owner, _return_idle, idle, transforms).atexit = False
        return transforms


# Planned transforms whose owner was collected, by problem (RowTransforms.lend).
_IDLE_TRANSFORMS: dict[tuple, list[RowTransforms]] = {}
_MAX_IDLE = 4  # per problem: what at most that many owners alive at once leave behind


def _return_idle(idle: list[RowTransforms], transforms: RowTransforms) -> None:
    if len(idle) < _MAX_IDLE:
        idle.append(transforms)


class _BatchTransforms(RowTransforms):
    """One FFTW plan over all rows (offline), used only if it equals the one-frame plan.

    Offline transforms run many frames at once; one batched plan saves the per-frame
    Python call (0.22 instead of 0.36 us per 320-point frame here). At construction it
    transforms random rows with both the batched plan and the one-frame plan that the
    streaming objects use; if any bit differs (FFTW chose another algorithm for the
    batch), it falls back to one-frame plans, so offline results always equal streaming
    results bit for bit.
    """

    def __init__(self, n_rows: int, n_fft: int, dtype: np.dtype, effort: str, inverse: bool):
        n_bins = n_fft // 2 + 1
        self.n_rows = n_rows
        self.real = _aligned_rows(n_rows, n_fft, dtype)
        self.spec = _aligned_rows(n_rows, n_bins, _COMPLEX[dtype])
        with PLAN_LOCK:
            if inverse:
                batch = pyfftw.FFTW(
                    self.spec[:, :n_bins],
                    self.real[:, :n_fft],
                    axes=(-1,),
                    direction="FFTW_BACKWARD",
                    flags=(effort, "FFTW_DESTROY_INPUT"),
                    threads=1,
                )
            else:
                batch = pyfftw.FFTW(
                    self.real[:, :n_fft],
                    self.spec[:, :n_bins],
                    axes=(-1,),
                    direction="FFTW_FORWARD",
                    flags=(effort,),
                    threads=1,
                )
        single = RowTransforms(1, n_fft, dtype, effort, inverse)
        rng = np.random.default_rng(0)
        if inverse:
            source = rng.standard_normal((n_rows, 2 * n_bins)).view(np.complex128)
            self.spec[:, :n_bins] = source
            batch.execute()
            result, single_out = self.real[:, :n_fft], single.real[0, :n_fft]
        else:
            source = rng.standard_normal((n_rows, n_fft))
            self.real[:, :n_fft] = source
            batch.execute()
            result, single_out = self.spec[:, :n_bins], single.spec[0, :n_bins]
        same = True
        for r in range(n_rows):
            if inverse:
                single.spec[0, :n_bins] = source[r]
            else:
                single.real[0, :n_fft] = source[r]
            single.run(1)
            same = same and bool(np.array_equal(single_out, result[r]))
        if same:
            self._plans = [batch]
            self._execute = []  # no row plans: numba_plans() gives none
            self.run = self._run_batch  # type: ignore[method-assign]
            self.real.fill(0)
            self.spec.fill(0)
        else:
            super().__init__(n_rows, n_fft, dtype, effort, inverse)

    def _run_batch(self, n_rows: int) -> None:
        self._plans[0].execute()


class STFT:
    """Short-time Fourier transform settings with offline and streaming transforms.

    Parameters
    ----------
    n_fft : int
        FFT size in samples (>= 2); ``n_bins = n_fft // 2 + 1``.
    hop_length : int
        Samples between frames, ``1 <= hop_length <= win_length``. At 16 kHz the default
        160 is 10 ms.
    win_length : int or None
        Window length in samples, ``hop_length <= win_length <= n_fft``; ``None`` means
        ``n_fft``. Shorter windows are zero-padded, centred, to ``n_fft``.
    window : {"sqrt_hann", "hann"}
        Analysis window: the square root of a periodic Hann window (default; the
        synthesis window is then the same shape, a perfectly reconstructing pair at 50 %
        overlap), or a periodic Hann window. Synthesis always uses the canonical dual
        window, so ISTFT(STFT(x)) = x for any hop that leaves no sample uncovered.
    dtype : np.float32 or np.float64
        Real dtype of signals and windows; spectra are complex64 or complex128.
    planner_effort : {"FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE"}
        FFTW planning effort. The first plan of a size is measured once per process
        (about 0.1 s for ``FFTW_MEASURE`` at ``n_fft=320``); later plans reuse FFTW's wisdom.

    Raises
    ------
    ParameterError
        If an argument is out of range; the message names it.

    Notes
    -----
    Framing is causal (see the module docstring): frame ``t`` covers input samples
    ``[(t + 1) * hop_length - win_length, (t + 1) * hop_length)``, zeros before the
    signal, and ``n`` samples give ``n // hop_length`` frames. Streaming analysis then
    synthesis delays the signal by ``latency_samples = win_length - hop_length``; an
    impulse at sample ``i`` comes out at ``i + latency_samples``.

    Bit-exactness between the streaming and offline paths rests on FFTW giving every
    plan of one size the same algorithm, which its in-process wisdom guarantees; calling
    ``pyfftw.forget_wisdom()`` between creating an STFT's streaming objects voids that.
    The numba kernels are cached per user (see :mod:`seproc._kernels`), never in the package.

    The offline methods of one object share a workspace under a lock, so they are safe to
    call from several threads (they then run one at a time). Streaming objects are one
    stream each: do not share one between threads.

    Examples
    --------
    >>> import numpy as np
    >>> from seproc.stft import STFT
    >>> stft = STFT(n_fft=320, hop_length=160)
    >>> x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    >>> spec = stft.stft(x)
    >>> spec.shape
    (100, 161)
    >>> y = stft.istft(stft.stft(x, pad_end=True), length=len(x))
    >>> bool(np.max(np.abs(y - x)) < 1e-5)
    True
    """

    def __init__(
        self,
        n_fft: int = 320,
        hop_length: int = 160,
        win_length: int | None = None,
        window: str = "sqrt_hann",
        dtype: type | np.dtype = np.float32,
        planner_effort: str = "FFTW_MEASURE",
    ) -> None:
        self._n_fft = check_int("n_fft", n_fft, 2)
        self._hop_length = check_int("hop_length", hop_length, 1)
        if win_length is None:
            self._win_length = self._n_fft
        else:
            self._win_length = check_int("win_length", win_length, 1)
        if self._win_length > self._n_fft:
            raise ParameterError(
                f"Parameter win_length={win_length} must be <= n_fft={n_fft}; "
                f"raise n_fft to at least {win_length} or shorten the window."
            )
        if self._hop_length > self._win_length:
            raise ParameterError(
                f"Parameter hop_length={hop_length} must be <= win_length="
                f"{self._win_length}, or frames skip samples; use hop_length <= "
                f"{self._win_length // 2} for a reconstructing overlap."
            )
        if not isinstance(window, str) or window not in WINDOWS:
            raise ParameterError(
                f"Parameter window={window!r} is not supported; use one of {WINDOWS}."
            )
        self._window_name = window
        self._dtype = check_float_dtype("dtype", dtype)
        self._complex_dtype = _COMPLEX[self._dtype]
        if planner_effort not in PLANNER_EFFORTS:
            raise ParameterError(
                f"Parameter planner_effort={planner_effort!r} is not supported; use one of "
                f"{PLANNER_EFFORTS}."
            )
        self._planner_effort = planner_effort
        self._pad_left = (self._n_fft - self._win_length) // 2

        analysis, synthesis = self._window_pair()
        self._window = _frozen(analysis.astype(self._dtype))
        self._synthesis_window = _frozen(synthesis.astype(self._dtype))
        # The inverse FFT is unnormalised: fold 1 / n_fft into the synthesis window.
        self._synthesis_scaled = _frozen((synthesis / self._n_fft).astype(self._dtype))
        self._offline_lock = threading.Lock()
        self._offline_forward: RowTransforms | None = None
        self._offline_inverse: RowTransforms | None = None

    def _window_pair(self) -> tuple[np.ndarray, np.ndarray]:
        win, hop = self._win_length, self._hop_length
        periodic_hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win) / win)
        short = np.sqrt(periodic_hann) if self._window_name == "sqrt_hann" else periodic_hann
        # Canonical dual: w / sum_k w[n + k hop]^2, the least-squares inverse of the frames.
        squares = short**2
        denominator = np.zeros(hop)
        for start in range(0, win, hop):
            part = squares[start : start + hop]
            denominator[: len(part)] += part
        if denominator.min() <= 1e-8:
            raise ParameterError(
                f"Parameter hop_length={hop} leaves samples that no {self._window_name} "
                f"window of win_length={win} covers (the periodic window is 0 at its first "
                f"sample), so the STFT is not invertible; use hop_length < {win}, "
                f"e.g. {max(1, win // 2)}."
            )
        dual = short / np.resize(denominator, win)
        analysis = np.zeros(self._n_fft)
        synthesis = np.zeros(self._n_fft)
        analysis[self._pad_left : self._pad_left + win] = short
        synthesis[self._pad_left : self._pad_left + win] = dual
        return analysis, synthesis

    # -- read-only settings ---------------------------------------------------------------

    n_fft = Setting[int]("_n_fft", "FFT size in samples.")
    hop_length = Setting[int]("_hop_length", "Samples between frames.")
    win_length = Setting[int](
        "_win_length", "Window length in samples (the non-zero support of ``window``)."
    )

    @property
    def n_bins(self) -> int:
        """Frequency bins per frame, ``n_fft // 2 + 1``."""
        return self._n_fft // 2 + 1

    dtype = Setting[np.dtype]("_dtype", "Real dtype of signals and windows (float32 or float64).")
    complex_dtype = Setting[np.dtype](
        "_complex_dtype", "Dtype of spectra (complex64 or complex128)."
    )
    window_name = Setting[str]("_window_name", "The window's name, as passed.")
    window = Setting[np.ndarray](
        "_window", "Analysis window, ``n_fft`` samples, zero-padded centred (read-only)."
    )
    synthesis_window = Setting[np.ndarray](
        "_synthesis_window",
        "Synthesis window (canonical dual of ``window``), ``n_fft`` samples (read-only).",
    )
    planner_effort = Setting[str]("_planner_effort", "FFTW planning effort.")

    @property
    def latency_samples(self) -> int:
        """Delay of streaming analysis followed by synthesis: ``win_length - hop_length``."""
        return self._win_length - self._hop_length

    def n_frames(self, n_samples: int) -> int:
        """Frames that ``n_samples`` samples give: ``n_samples // hop_length``."""
        return check_int("n_samples", n_samples, 0) // self._hop_length

    def __repr__(self) -> str:
        return (
            f"STFT(n_fft={self._n_fft}, hop_length={self._hop_length}, "
            f"win_length={self._win_length}, window={self._window_name!r}, "
            f"dtype=np.{self._dtype.name}, planner_effort={self._planner_effort!r})"
        )

    # -- streaming ------------------------------------------------------------------------

    def analyzer(self, channels: int, max_block_samples: int) -> StreamingAnalyzer:
        """Return a new streaming analyser for this STFT (see :class:`StreamingAnalyzer`)."""
        return StreamingAnalyzer(self, channels, max_block_samples)

    def synthesizer(self, channels: int, max_frames: int) -> StreamingSynthesizer:
        """Return a new streaming synthesiser for this STFT (see :class:`StreamingSynthesizer`)."""
        return StreamingSynthesizer(self, channels, max_frames)

    # -- offline --------------------------------------------------------------------------

    def _workspace(self, channels: int, inverse: bool) -> RowTransforms:
        current = self._offline_inverse if inverse else self._offline_forward
        if current is None or current.n_rows < channels:
            rows = max(_OFFLINE_ROWS, channels)
            current = _BatchTransforms(
                rows, self._n_fft, self._dtype, self._planner_effort, inverse
            )
            if inverse:
                self._offline_inverse = current
            else:
                self._offline_forward = current
        return current

    def stft(self, x: np.ndarray, *, pad_end: bool = False) -> np.ndarray:
        """Analyse a whole signal.

        Parameters
        ----------
        x : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
            The signal; converted to ``dtype``. Must be finite.
        pad_end : bool
            Append ``win_length - 1`` zeros (when ``samples > 0``) so that frames cover
            every sample and ``istft(stft(x, pad_end=True), length=samples)`` restores
            all of ``x``. Without it the result equals the streaming analyser's output
            for the same samples.

        Returns
        -------
        np.ndarray [shape=(channels, n_frames, n_bins) or (n_frames, n_bins)], complex
            ``n_frames = samples // hop_length`` (of the padded length with ``pad_end``).

        Raises
        ------
        ParameterError
            If ``x`` is not 1-D or 2-D float audio, or holds NaN or Inf.
        """
        x2d, was_1d = as_signal(x, name="x")
        channels, n = x2d.shape
        total = n + self._win_length - 1 if (pad_end and n > 0) else n
        n_frames = total // self._hop_length
        history = self.latency_samples
        padded = np.zeros((channels, history + total), self._dtype)
        padded[:, history : history + n] = x2d
        out = np.empty((channels, n_frames, self.n_bins), self._complex_dtype)
        with self._offline_lock:
            forward = self._workspace(channels, inverse=False)
            per_chunk = forward.n_rows // channels
            for first in range(0, n_frames, per_chunk):
                count = min(per_chunk, n_frames - first)
                _kernels.frame_windowed(
                    padded,
                    first * self._hop_length,
                    count,
                    self._hop_length,
                    self._window,
                    self._pad_left,
                    self._win_length,
                    forward.real,
                )
                forward.run(count * channels)
                _kernels.rows_to_spec(forward.spec, count, self.n_bins, out, first)
        return out[0] if was_1d else out

    def istft(self, spec: np.ndarray, length: int | None = None) -> np.ndarray:
        """Synthesise a whole signal from its spectrum (inverse of :meth:`stft`).

        Parameters
        ----------
        spec : np.ndarray [shape=(channels, n_frames, n_bins) or (n_frames, n_bins)], complex
            Converted to ``complex_dtype``.
        length : int or None
            Output samples; ``None`` gives ``n_frames * hop_length``. The output is
            truncated or zero-padded to it.

        Returns
        -------
        np.ndarray [shape=(channels, length) or (length,)], ``dtype``
            Aligned with the analysed signal: ``istft(stft(x))[..., i]`` is ``x[..., i]``.
            The last ``latency_samples`` of the ``n_frames * hop_length`` samples lack the
            frames after the end; use ``stft(x, pad_end=True)`` to restore them.

        Raises
        ------
        ParameterError
            If ``spec`` is not a complex array with ``n_bins`` bins, or ``length`` < 0.
        """
        spec3, was_2d = self._as_spectrum(spec)
        channels, n_frames, _ = spec3.shape
        hop = self._hop_length
        history = self.latency_samples
        acc = np.zeros((channels, n_frames * hop + history), self._dtype)
        with self._offline_lock:
            inverse = self._workspace(channels, inverse=True)
            per_chunk = inverse.n_rows // channels
            for first in range(0, n_frames, per_chunk):
                count = min(per_chunk, n_frames - first)
                _kernels.spec_to_rows(spec3, first, count, self.n_bins, inverse.spec)
                inverse.run(count * channels)
                _kernels.overlap_add(
                    inverse.real,
                    count,
                    hop,
                    self._synthesis_scaled,
                    self._pad_left,
                    self._win_length,
                    acc,
                    first * hop,
                )
        y = acc[:, history:]
        if length is not None:
            length = check_int("length", length, 0)
            if length <= y.shape[1]:
                y = y[:, :length]
            else:
                y = np.concatenate([y, np.zeros((channels, length - y.shape[1]), y.dtype)], 1)
        y = np.ascontiguousarray(y)
        return y[0] if was_2d else y

    def _as_spectrum(self, spec: object) -> tuple[np.ndarray, bool]:
        array = np.asarray(spec)
        if array.dtype.kind != "c" or array.ndim not in (2, 3) or array.shape[-1] != self.n_bins:
            raise ParameterError(
                f"Parameter spec must be a complex array of shape (channels, n_frames, "
                f"{self.n_bins}) or (n_frames, {self.n_bins}), got {array.dtype} {array.shape}."
            )
        array = np.ascontiguousarray(array, self._complex_dtype)
        if not bool(np.isfinite(array).all()):
            raise ParameterError("Parameter spec holds NaN or Inf values; pass a finite spectrum.")
        return (array[np.newaxis], True) if array.ndim == 2 else (array, False)


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.flags.writeable = False
    return array


class StreamingAnalyzer:
    """Streaming STFT analysis: feed blocks of any size, get every frame they complete.

    Made by :meth:`STFT.analyzer`. All buffers and FFT plans are allocated here;
    :meth:`process` allocates nothing.

    Parameters
    ----------
    stft : STFT
        The settings.
    channels : int
        Channels per block.
    max_block_samples : int
        The largest block :meth:`process` accepts.
    """

    def __init__(self, stft: STFT, channels: int, max_block_samples: int) -> None:
        self._stft = stft
        self._channels = check_int("channels", channels, 1)
        self._max_block_samples = check_int("max_block_samples", max_block_samples, 1)
        hop = stft.hop_length
        self._max_frames = (self._max_block_samples + hop - 1) // hop
        self._history = np.zeros(
            (self._channels, stft.win_length - 1 + self._max_block_samples), stft.dtype
        )
        self._forward = RowTransforms.lend(
            self,
            self._channels * self._max_frames,
            stft.n_fft,
            stft.dtype,
            stft.planner_effort,
            False,
        )
        self._args = (hop, stft._window, stft._pad_left, stft.win_length, self._forward.real)
        self._n_bins = stft.n_bins  # read per call (a property lookup there cost ~0.1 µs)
        # the samples held for the next frame: an array, so a fused chunk (seproc._hop)
        # reads and advances the same count as push()
        self._filled_at = np.zeros(1, np.int64)
        self.reset()

    channels = Setting[int]("_channels", "Channels per block.")
    max_block_samples = Setting[int](
        "_max_block_samples", "The largest block :meth:`process` accepts."
    )
    max_frames = Setting[int](
        "_max_frames", "The most frames one :meth:`process` call can complete."
    )

    def reset(self) -> None:
        """Start a new stream: the history becomes ``latency_samples`` zeros."""
        self._history.fill(0)
        self._filled_at[0] = self._stft.latency_samples

    def process(self, block: np.ndarray, out: np.ndarray) -> int:
        """Analyse the next block; write every frame it completes.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
            The next samples (0 to ``max_block_samples``), converted to ``stft.dtype``;
            1-D only when ``channels == 1``.
        out : np.ndarray [shape=(channels, >= frames, n_bins)], ``stft.complex_dtype``
            Receives the completed frames in ``out[:, :frames]``; an array of shape
            ``(channels, max_frames, n_bins)`` always fits.

        Returns
        -------
        int
            ``frames``, the number of frames completed (0 for short blocks).

        Raises
        ------
        ParameterError
            For a bad block (shape, dtype, too long, NaN or Inf) or ``out``; the stream
            state is then unchanged.
        """
        block2d, _ = as_audio_block(block, self._channels, name="block")
        n = block2d.shape[1]
        if n > self._max_block_samples:
            raise ParameterError(
                f"Parameter block has {n} samples, more than max_block_samples="
                f"{self._max_block_samples}; split it, or make an analyzer with a larger "
                "max_block_samples."
            )
        stft = self._stft
        total = int(self._filled_at[0]) + n
        frames = (total - stft.win_length) // stft.hop_length + 1 if total >= stft.win_length else 0
        check_stream_buffer(
            out,
            "out",
            stft.complex_dtype,
            self._channels,
            frames,
            rest=(stft.n_bins,),
            example=(self._channels, self._max_frames, stft.n_bins),
        )
        frames = self.push(block2d, out)
        if frames < 0:
            raise ParameterError(
                "Parameter block holds NaN or Inf values; pass finite audio "
                "(np.nan_to_num(block) replaces them). The stream state is unchanged."
            )
        return frames

    def fused_args(self) -> tuple | None:
        """Return what :meth:`push` works on, for ``seproc._hop``'s one-call chunk.

        ``(history, filled, window, rows, spectra, plans, hop, pad_left, win_length,
        n_bins)``, or None where the FFTs cannot run from numba here
        (:meth:`RowTransforms.numba_plans`).
        """
        forward = self._forward
        plans = forward.numba_plans(forward.n_rows)
        if plans is None:
            return None
        hop, window, pad_left, win_length, real = self._args
        return (
            self._history, self._filled_at, window, real, forward.spec, plans, hop, pad_left,
            win_length, self._n_bins,
        )  # fmt: skip

    def push(self, block2d: np.ndarray, out: np.ndarray) -> int:
        """Analyse the next block, unchecked: :meth:`process` without its checks.

        For an owner (``Denoiser``) whose buffers fit by construction: ``block2d`` is
        ``(channels, <= max_block_samples)``, float32 or float64. Returns the frames
        written, or -1 (state unchanged) where the block holds NaN or Inf.
        """
        filled_at = self._filled_at
        frames, filled = _kernels.analysis_push(self._history, filled_at[0], block2d, *self._args)
        if frames < 0:
            return frames
        filled_at[0] = filled
        if frames:
            forward = self._forward
            forward.run(frames * self._channels)
            _kernels.rows_to_spec(forward.spec, frames, self._n_bins, out, 0)
        return frames


class StreamingSynthesizer:
    """Streaming overlap-add synthesis: frames in, ``hop_length`` finished samples per frame out.

    Made by :meth:`STFT.synthesizer`. All buffers and FFT plans are allocated here;
    :meth:`process` allocates nothing. Output sample ``o`` of the stream corresponds to
    input sample ``o - latency_samples`` of the analysed signal; the first
    ``latency_samples`` outputs after construction or :meth:`reset` lie before the
    stream and are zeros.

    Parameters
    ----------
    stft : STFT
        The settings.
    channels : int
        Channels per spectrum.
    max_frames : int
        The most frames one :meth:`process` call takes.
    """

    def __init__(self, stft: STFT, channels: int, max_frames: int) -> None:
        self._stft = stft
        self._channels = check_int("channels", channels, 1)
        self._max_frames = check_int("max_frames", max_frames, 1)
        self._acc = np.zeros(
            (self._channels, stft.latency_samples + self._max_frames * stft.hop_length),
            stft.dtype,
        )
        self._inverse = RowTransforms.lend(
            self,
            self._channels * self._max_frames,
            stft.n_fft,
            stft.dtype,
            stft.planner_effort,
            True,
        )
        # what push reads per call, looked up once (properties cost ~0.1 µs each)
        self._framing = (
            stft.hop_length,
            stft.n_bins,
            stft._synthesis_scaled,
            stft._pad_left,
            stft.win_length,
        )
        self._mute_at = np.zeros(1, np.int64)  # outputs still before the stream (see above)
        self.reset()

    channels = Setting[int]("_channels", "Channels per spectrum.")
    max_frames = Setting[int]("_max_frames", "The most frames one :meth:`process` call takes.")

    def reset(self) -> None:
        """Start a new stream: clear the overlap-add accumulator."""
        self._acc.fill(0)
        self._mute_at[0] = self._stft.latency_samples

    def process(self, spec: np.ndarray, n_frames: int, out: np.ndarray) -> int:
        """Overlap-add the next frames and write the samples they finish.

        Parameters
        ----------
        spec : np.ndarray [shape=(channels, >= n_frames, n_bins)], complex
            The next frames in ``spec[:, :n_frames]`` (converted to ``stft.complex_dtype``).
        n_frames : int
            Frames to take, 0 to ``max_frames``.
        out : np.ndarray [shape=(channels, >= n_frames * hop_length)], float32 or float64
            Receives the finished samples in ``out[:, :n_frames * hop_length]``.

        Returns
        -------
        int
            ``n_frames * hop_length``, the samples written.

        Raises
        ------
        ParameterError
            For a bad ``spec``, ``n_frames`` or ``out``; the stream state is then unchanged.
        """
        stft = self._stft
        if isinstance(n_frames, (bool, np.bool_)) or not isinstance(n_frames, (int, np.integer)):
            raise ParameterError(f"Parameter n_frames={n_frames!r} must be an integer.")
        if not 0 <= n_frames <= self._max_frames:
            raise ParameterError(
                f"Parameter n_frames={n_frames} must be between 0 and max_frames="
                f"{self._max_frames}; make a synthesizer with a larger max_frames."
            )
        check_stream_buffer(spec, "spec", "complex", self._channels, n_frames, (stft.n_bins,))
        n_samples = n_frames * stft.hop_length
        check_stream_buffer(out, "out", "float", self._channels, n_samples)
        return self.push(spec, n_frames, out)

    def fused_args(self) -> tuple | None:
        """Return what :meth:`push` works on, for ``seproc._hop``'s one-call chunk.

        ``(acc, mute, window, rows, spectra, plans, hop, pad_left, win_length, n_bins)``,
        or None where the FFTs cannot run from numba here.
        """
        inverse = self._inverse
        plans = inverse.numba_plans(inverse.n_rows)
        if plans is None:
            return None
        hop, n_bins, window, pad_left, win_length = self._framing
        return (
            self._acc, self._mute_at, window, inverse.real, inverse.spec, plans, hop, pad_left,
            win_length, n_bins,
        )  # fmt: skip

    def push(self, spec: np.ndarray, n_frames: int, out: np.ndarray) -> int:
        """Overlap-add the next frames, unchecked: :meth:`process` without its checks.

        For an owner (``Denoiser``) whose buffers fit by construction.
        """
        if n_frames == 0:
            return 0
        hop, n_bins, window, pad_left, win_length = self._framing
        inverse = self._inverse
        _kernels.spec_to_rows(spec, 0, n_frames, n_bins, inverse.spec)
        inverse.run(n_frames * self._channels)
        mute = self._mute_at[0]
        _kernels.synthesis_push(
            inverse.real, n_frames, hop, window, pad_left, win_length, self._acc, out, mute
        )
        n_samples = n_frames * hop
        if mute:
            self._mute_at[0] = max(0, mute - n_samples)
        return n_samples

"""A pitch (comb) filter for a mask model's frames: RNNoise's, in streaming form.

A mask model's gains are real and, at 50 Hz bins after its encoder's first halving of
the frequency axis, too coarse to keep the noise between a voice's harmonics out. The
pitch filter adds to each frame ``X`` its copy one pitch period earlier ``P`` (the
stream's samples, windowed like the frame), band by band with a strength set by how
well the two correlate and by how much the gains will remove (Valin, "A Hybrid
DSP/Deep Learning Approach to Real-Time Full-Band Speech Enhancement", 2018, and
RNNoise's ``pitch_filter``), then scales each band back to its energy: the harmonics
add in phase and rise above the noise between them; where the gains keep everything
(``g = 1``) nothing changes. The gains are applied afterwards, as before.

The period is searched per frame in the past only (no look-ahead, no added latency):
50 to 500 Hz, on the stream high-passed at 80 Hz (a one-pole DC blocker, so brown noise
or rumble does not lock the search), coarse on the signal summed to about 4 kHz, then
refined at the stream's rate (:func:`seproc._kernels.pitch_lag`).

:class:`PitchFilter` keeps the history per channel, cuts each frame's delayed copy and
transforms it (pyfftw, planned once); :meth:`PitchFilter.apply` filters a spectrum's
frames in place. It works on the model's frames; at full band the host-rate frames'
first bins are the model's bins (``seproc.highband``), so the same delayed spectrum
filters them (the band energies make the scale of ``P`` irrelevant).
"""

from __future__ import annotations

import numpy as np

from seproc import _kernels
from seproc.stft import STFT, RowTransforms

__all__ = ["MAX_PITCH_HZ", "MIN_PITCH_HZ", "PitchFilter", "band_edges", "lag_scratch_samples"]

MIN_PITCH_HZ = 50.0
"""The lowest pitch searched (the longest period)."""
MAX_PITCH_HZ = 500.0
"""The highest pitch searched (the shortest period)."""
HIGHPASS_HZ = 80.0
"""The corner of the DC blocker the period is searched behind (see ``_kernels.pitch_frames``)."""
GROUP_FRAMES = 8
"""The most frames whose delayed copies one FFTW batch transforms (see PitchFilter)."""
COARSE_RATE_HZ = 4000
"""About the rate of the coarse period search (the stream summed over whole samples)."""
BAND_EDGES_HZ = (
    0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 2800, 3200, 4000, 4800,
    5600, 6800, 8000, 9600, 12000, 15600, 20000,
)  # fmt: skip
"""RNNoise's band points (``eband5ms`` at 48 kHz): the comb's strength is set per band."""


def lag_scratch_samples(win_length: int, max_lag: int, decimation: int) -> int:
    """Return the length of :func:`seproc._kernels.pitch_lag`'s float32 scratch."""
    n_small, coarse_max = win_length // decimation, max_lag // decimation
    return 2 * n_small + 2 * coarse_max + 1


def band_edges(rate_hz: int, n_fft: int) -> np.ndarray:
    """Return the bins of :data:`BAND_EDGES_HZ` below ``rate_hz / 2``, then the bin count.

    Parameters
    ----------
    rate_hz : int
        The frames' sample rate in Hz.
    n_fft : int
        Their FFT size (``n_fft // 2 + 1`` bins).

    Returns
    -------
    np.ndarray [shape=(points,)], int64
        Increasing band points; the last is ``n_fft // 2 + 1`` (the top band's end).
    """
    n_bins = n_fft // 2 + 1
    bins = sorted({round(hz * n_fft / rate_hz) for hz in BAND_EDGES_HZ})
    edges = [b for b in bins if b < n_bins - 1] + [n_bins]
    return np.asarray(edges, np.int64)


def absent_fused_args() -> tuple:
    """Return :meth:`PitchFilter.fused_args`' types with empty arrays: no pitch filter.

    ``seproc._hop`` takes the same argument types with or without the filter (one
    compiled version, not two), and skips it where the Denoiser says it has none.
    """
    f32, c64 = np.float32, np.complex64
    empty2 = np.zeros((0, 0), f32)
    window = np.zeros(0, f32)
    window.flags.writeable = False  # as the filter's (a view of the STFT's frozen window)
    return (
        empty2, empty2.copy(), window, empty2.copy(), np.zeros(0, f32),
        np.zeros(7, np.int64), np.zeros((0, 0), c64), np.zeros(1, np.int64), 0.0, 0, 1,
        np.zeros((0, 0, 0), c64), 0.0, 0.0, np.zeros(0, np.int64), np.zeros(0, np.float64),
        np.zeros((5, 0), np.float64),
    )  # fmt: skip


class PitchFilter:
    """The delayed frames of a stream and the comb that adds them (see the module).

    Parameters
    ----------
    stft : seproc.stft.STFT
        The frames' STFT (the model's): its rate-independent settings and window.
    rate_hz : int
        The stream's sample rate in Hz (the model's).
    channels : int
        Channels per block.
    max_block_samples : int
        The most samples one :meth:`push` appends.
    max_frames : int
        The most frames one :meth:`push` completes.
    strength : float
        Scales the delayed copy's share (1: RNNoise's).
    min_gain : float
        The attenuation limit as a gain, below 1 (at 1, a bypass, make no pitch filter).
    """

    def __init__(
        self,
        stft: STFT,
        rate_hz: int,
        channels: int,
        max_block_samples: int,
        max_frames: int,
        *,
        strength: float = 1.0,
        min_gain: float = 0.0,
    ) -> None:
        if stft.n_fft != stft.win_length:
            raise ValueError(
                f"The pitch filter needs n_fft == win_length, got {stft.n_fft} and "
                f"{stft.win_length}."
            )
        self._hop = stft.hop_length
        self._win_length = stft.win_length
        self._decimation = max(1, rate_hz // COARSE_RATE_HZ)
        d = self._decimation
        self._min_lag = max(d, int(rate_hz / MAX_PITCH_HZ))
        self._max_lag = -(-int(np.ceil(rate_hz / MIN_PITCH_HZ)) // d) * d
        self._keep = self._win_length + self._max_lag
        self._channels = channels
        # frames transformed per FFTW batch: a streaming call's all, an offline call's in
        # groups (each row is a plan, and planning thousands costs more than the groups)
        self._group_frames = min(max_frames, GROUP_FRAMES)
        self._history = np.zeros((channels, self._keep + max_block_samples), np.float32)
        self._filtered = np.zeros_like(self._history)  # high-passed, for the period search
        self._pole = float(np.exp(-2 * np.pi * HIGHPASS_HZ / rate_hz))
        self._window = np.ascontiguousarray(stft.window[: self._win_length], np.float32)
        self._transforms = RowTransforms.lend(
            self,
            channels * self._group_frames,
            stft.n_fft,
            np.dtype(np.float32),
            "FFTW_ESTIMATE",
            False,
        )
        self._n_bins = stft.n_bins
        self._scratch = np.zeros(
            lag_scratch_samples(self._win_length, self._max_lag, d), np.float32
        )
        edges = band_edges(rate_hz, stft.n_fft)
        self._edges = edges
        # each bin's weight towards the band point above it (triangular bands)
        self._high = np.zeros(self._n_bins, np.float64)
        for b in range(edges.size - 1):
            bins = np.arange(edges[b], edges[b + 1])
            self._high[bins] = (bins - edges[b]) / (edges[b + 1] - edges[b])
        self._bands = np.zeros((5, edges.size), np.float64)
        self._comb_args = (float(min_gain), float(strength), edges, self._high, self._bands)
        # the kernel's settings and the end of the next frame in the next block (7th)
        self._params = np.array(
            [self._keep, self._hop, self._win_length, self._min_lag, self._max_lag, d, 0],
            np.int64,
        )
        self._rows = self._transforms.real
        self._run = self._transforms.run
        self._spectra = self._transforms.spec
        self.reset()

    def reset(self) -> None:
        """Start a new stream: the past is silence."""
        self._history.fill(0)
        self._filtered.fill(0)
        self._params[6] = self._hop  # frame 0 ends hop samples into the stream

    def fused_args(self, delayed: np.ndarray) -> tuple | None:
        """Return what :meth:`push` and :meth:`apply` work on, for ``seproc._hop``'s chunk.

        ``(history, filtered, window, rows, scratch, params, spectra, plans, pole, n_bins,
        group_frames, delayed, min_gain, strength, edges, high, bands)``, ``delayed``
        being the caller's buffer of delayed spectra; None where the FFTs cannot run
        from numba here.
        """
        plans = self._transforms.numba_plans(self._transforms.n_rows)
        if plans is None:
            return None
        return (
            self._history, self._filtered, self._window, self._rows, self._scratch,
            self._params, self._spectra, plans, self._pole, self._n_bins, self._group_frames,
            delayed, *self._comb_args,
        )  # fmt: skip

    def push(self, block: np.ndarray, n: int, n_frames: int, out: np.ndarray, first: int) -> None:
        """Append ``block[:, :n]``; write the delayed spectra of the ``n_frames`` it completed.

        The frames are the STFT's: frame ``f`` of the stream ends ``(f + 1) * hop``
        samples in (the streaming analyzer's), so ``n_frames`` is what the analyzer
        returned for the same samples. Their delayed spectra go to
        ``out[c, first : first + n_frames]`` (complex64, ``n_bins`` wide).
        """
        group = self._group_frames
        done = 0
        while True:  # once for a streaming call; batches of `group` frames offline
            count = min(group, n_frames - done)
            last = done + count == n_frames
            _kernels.pitch_frames(
                self._history, self._filtered, block, n, done, count, last, self._window,
                self._rows, self._scratch, self._params, self._pole,
            )  # fmt: skip
            if count:
                self._run(count * self._channels)
                _kernels.rows_to_spec(self._spectra, count, self._n_bins, out, first + done)
            done += count
            if last:
                return

    def apply(
        self, spec: np.ndarray, delayed: np.ndarray, gains: np.ndarray, n_frames: int
    ) -> None:
        """Add the delayed frames to one channel's ``spec[:n_frames]`` in place (the comb).

        Parameters
        ----------
        spec : np.ndarray [shape=(>= n_frames, >= n_bins)], complex64
            The frames the gains will be applied to (model-rate or host-rate: only the
            first ``n_bins`` bins, the model's, are filtered).
        delayed : np.ndarray [shape=(>= n_frames, n_bins)], complex64
            Their delayed copies (:meth:`push`).
        gains : np.ndarray [shape=(>= n_frames, n_bins)], float32
            The gains that will be applied (after the post-filter's release), raised to
            ``min_gain`` here.
        n_frames : int
            Frames to filter.
        """
        _kernels.pitch_comb(spec, delayed, gains, n_frames, *self._comb_args)

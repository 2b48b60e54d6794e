"""Full-band processing: the host-rate framing and the gains above the model's band.

At a host rate above the model's (32, 44.1, 48, 88.2, 96 kHz for the 16 kHz model),
the Denoiser keeps the whole band. It frames the host signal with the model's frame
*durations* (20 ms windows, 10 ms hops): ``n_fft``, ``hop_length`` and ``win_length``
scaled by ``host_rate / model_rate``. The bins are then spaced exactly as the model's
(``host_rate / n_fft_host = model_rate / n_fft``, 50 Hz), so host bin ``k`` *is* model
bin ``k`` for every ``k`` up to the model's Nyquist frequency:

* the model still hears what it was trained on: :class:`ModelRateFrames` resamples
  the host stream to the model's rate and frames it with the model's STFT, and the
  host stream is delayed to line its frames up with those;
* the model's gains apply to host bins up to ``MODEL_BAND_EDGE`` of its Nyquist
  frequency (7.8 kHz for a 16 kHz model) unchanged;
* the bins above get one gain per frame (:class:`HighBandGain`): the model's own
  decision about the top octave of its band. Its last few bins below 8 kHz are among
  them: the resampler in front of the model rolls them off, so the model cannot hear
  the host signal there.

The output is the inverse host-rate STFT: no resampler on the output side, so no band
cut. With every gain at 1 (``attenuation_limit_db=0``) the output is the input
delayed by ``host_delay_samples + win_length_host - 1`` samples over the whole band.

Host rates whose scaled framing is not whole samples (8, 11.025, 22.05 kHz for the
16 kHz model) and rates at or below the model's keep the resampling path.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from seproc import _kernels
from seproc._interface import Setting
from seproc.resample import StreamResampler
from seproc.stft import STFT

__all__ = [
    "MODEL_BAND_EDGE",
    "HighBandGain",
    "ModelRateFrames",
    "host_framing",
]

# The top of the band whose model gains the host spectrum takes, as a share of the
# model's Nyquist frequency. The model hears the host signal through the host -> model
# resampler, which rolls off just below that frequency (16 kHz model: from about 7.4 kHz,
# -20 dB at 7.8 kHz, -98 dB at 8 kHz): above this edge the model's features hold the
# filter's skirt, not the signal, and its gains there let noise through (white noise at
# 48 kHz: -32 dB at 8 kHz against -40 dB elsewhere, a line in the spectrogram). The bins
# above take the share the model keeps in its top octave, from half its Nyquist frequency
# to this edge.
MODEL_BAND_EDGE = 0.975
"""The top octave of the model's band: the share of it the model keeps is the gain of
every bin above (``models/FORMAT.md`` has the alternatives measured against it)."""


def host_framing(
    host_rate_hz: int, model_rate_hz: int, n_fft: int, hop_length: int, win_length: int
) -> tuple[int, int, int] | None:
    """Return the host-rate ``(n_fft, hop_length, win_length)`` with the model's durations.

    Parameters
    ----------
    host_rate_hz, model_rate_hz : int
        The host's and the model's sample rates in Hz.
    n_fft, hop_length, win_length : int
        The model's STFT settings in model samples.

    Returns
    -------
    tuple of int or None
        The settings scaled by ``host_rate_hz / model_rate_hz``; ``None`` when the
        host rate is not above the model's, or when a scaled setting (or the
        window's centring pad) is not a whole number of samples: the Denoiser then
        resamples to the model's rate.
    """
    if host_rate_hz <= model_rate_hz:
        return None
    ratio = Fraction(host_rate_hz, model_rate_hz)
    scaled = [ratio * value for value in (n_fft, hop_length, win_length)]
    pad = ratio * Fraction(n_fft - win_length, 2)
    if any(value.denominator != 1 for value in (*scaled, pad)):
        return None
    return int(scaled[0]), int(scaled[1]), int(scaled[2])


class ModelRateFrames:
    """The model-rate STFT frames of a host stream, aligned with the host-rate frames.

    The model's features come from the signal it was trained on: the host stream
    resampled to the model's rate (anti-aliased, so no noise above the model's band
    leaks into its bins through the window's sidelobes; at 48 kHz that leak cost 0.1
    PESQ-wb), framed like the model's STFT. The resampler's delay is made a whole
    number of host samples, :attr:`host_delay_samples`; delaying the host signal by as
    much before its own STFT lines frame ``t`` at both rates up on the same audio.
    After any number of host samples the model-rate frames are never behind the
    host-rate frames and at most one ahead (enumerated at construction).

    Parameters
    ----------
    host_rate_hz, model_rate_hz : int
        The rates in Hz.
    stft : seproc.stft.STFT
        The model's STFT settings.
    host_hop_samples : int
        The host-rate STFT's hop.
    channels, max_block_samples : int
        As the Denoiser's.
    """

    def __init__(
        self,
        host_rate_hz: int,
        model_rate_hz: int,
        stft: STFT,
        host_hop_samples: int,
        channels: int,
        max_block_samples: int,
    ) -> None:
        probe = StreamResampler(host_rate_hz, model_rate_hz, channels=1, max_block_samples=1)
        up, down = probe.ratio
        # Round the filter's delay up to whole host samples (``up`` fine samples each).
        extra_fine = -(probe.filter_length - 1) // 2 % up
        self._resampler = StreamResampler(
            host_rate_hz,
            model_rate_hz,
            channels=channels,
            max_block_samples=max_block_samples,
            extra_delay_samples=Fraction(extra_fine, down),
        )
        delay = self._resampler.delay_samples * Fraction(host_rate_hz, model_rate_hz)
        assert delay.denominator == 1
        self._host_delay_samples = int(delay)
        self._inner = np.zeros(
            (channels, self._resampler.max_output_samples(max_block_samples)), np.float32
        )
        self._inner_view = self._inner  # the last call's samples (cached: ~0.2 µs a slice)
        self._count_at = np.zeros(1, np.int64)  # their count (an array: seproc._hop sets it too)
        self._analyzer = stft.analyzer(channels=channels, max_block_samples=self._inner.shape[1])
        hop = stft.hop_length
        n = np.arange(down * hop * 2 + 1, dtype=np.int64)
        lead = self._resampler.total_output_samples(n) // hop - n // host_hop_samples
        if lead.min() < 0 or lead.max() > 1:
            raise AssertionError(
                f"model-rate frames lead host frames by {lead.min()}..{lead.max()}"
            )

    host_delay_samples = Setting[int](
        "_host_delay_samples",
        "How many host samples the host signal must be delayed to line the frames up.",
    )
    max_frames = Setting[int](
        "_analyzer.max_frames", "The most model-rate frames one :meth:`process` call completes."
    )
    samples = Setting[np.ndarray](
        "_inner",
        "The model-rate samples of the last :meth:`process` call in their first "
        ":attr:`n_samples` columns (the buffer itself; the next call overwrites it).",
    )

    @property
    def n_samples(self) -> int:
        """How many model-rate samples the last call made."""
        return int(self._count_at[0])

    def reset(self) -> None:
        """Start a new stream."""
        self._resampler.reset()
        self._analyzer.reset()
        self._count_at[0] = 0

    def fused_args(self) -> tuple | None:
        """Return what :meth:`process` works on, for ``seproc._hop``'s one-call chunk.

        ``(resampler, samples, n_samples, analysis)``: the resampler's and the model-rate
        analyser's ``fused_args()`` around the sample buffer and its count; None where the
        analyser's FFTs cannot run from numba here.
        """
        analysis = self._analyzer.fused_args()
        if analysis is None:
            return None
        return (self._resampler.fused_args(), self._inner, self._count_at, analysis)

    def process(self, block: np.ndarray, spec: np.ndarray) -> int:
        """Resample a host block and write the model-rate frames it completes into ``spec``."""
        self._count_at[0] = count = self._resampler.push_into(block, self._inner)
        if self._inner_view.shape[1] != count:
            self._inner_view = self._inner[:, :count]
        return self._analyzer.push(self._inner_view, spec)


class HighBandGain:
    """The gains of a host-rate spectrum: the model's in the band it hears, derived above.

    Parameters
    ----------
    host_rate_hz : int
        The host rate in Hz.
    n_fft : int
        The host-rate FFT size (bins ``n_fft // 2 + 1``, spaced like the model's).
    n_model_bins : int
        The model's bins (``n_fft_model // 2 + 1``): host bins ``[0, n_model_bins)``.
    activity_bins : tuple of int
        Bins whose kept energy share is the speech activity (see
        ``Denoiser.speech_activity``).

    Notes
    -----
    Stateless. With ``min_gain = 1`` every gain is exactly 1 and the spectrum passes
    untouched.
    """

    def __init__(
        self, host_rate_hz: int, n_fft: int, n_model_bins: int, activity_bins: tuple[int, int]
    ) -> None:
        bin_hz = host_rate_hz / n_fft
        last_model_bin = n_model_bins - 1  # the model's Nyquist bin
        self._model_stop = round(MODEL_BAND_EDGE * last_model_bin) + 1
        self._reference_start = last_model_bin // 2
        self._reference_band_hz = (
            self._reference_start * bin_hz,
            (self._model_stop - 1) * bin_hz,
        )
        self._activity_bins = activity_bins

    reference_band_hz = Setting[tuple[float, float]](
        "_reference_band_hz",
        "The first and last model bins (in Hz) whose kept share sets the high band's gain.",
    )

    def fused_args(self) -> tuple[int, int, int, int]:
        """Return :meth:`apply`'s bins: activity start and stop, reference start, model stop."""
        return (*self._activity_bins, self._reference_start, self._model_stop)

    def apply(
        self, spec: np.ndarray, model_gain: np.ndarray, min_gain: float, activity: np.ndarray
    ) -> None:
        """Apply the gains to one channel's frames in place; write their speech activity.

        Parameters
        ----------
        spec : np.ndarray [shape=(frames, n_host_bins)], complex64
            The host-rate frames.
        model_gain : np.ndarray [shape=(frames, n_model_bins)], float32
            The model's gains for those frames.
        min_gain : float
            The attenuation limit as a gain (1 is a bypass).
        activity : np.ndarray [shape=(frames,)], float32
            Receives each frame's speech activity.
        """
        _kernels.apply_fullband_gain(
            spec,
            model_gain,
            min_gain,
            self._activity_bins[0],
            self._activity_bins[1],
            activity,
            self._reference_start,
            self._model_stop,
        )

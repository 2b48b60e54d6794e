"""Streaming polyphase resampling between a host's sample rate and the model's.

Three tools, top to bottom:

* :class:`StreamResampler` - one stream at a fixed rational ratio, block in, block out,
  no allocation per call, the same output bit for bit whatever the block partition;
* :func:`resample` - the one-shot function beside it, delay-compensated;
* :class:`RateBridge` - the pair of resamplers around the Denoiser's model-rate stage,
  with the exact FIFO prefill and an integer end-to-end latency.

Filter design
-------------
The ratio ``out / in`` is reduced by the gcd to ``up / down`` (44100 -> 16000 is
160 / 441). A Kaiser-windowed sinc prototype is designed once, on the ``up``-times
finer grid, and split into ``up`` polyphase branches. Its edges are set by the lower
of the two rates, ``min_rate``:

* passband edge ``0.45 * min_rate`` (90 % of the lower Nyquist frequency), flat
  within 0.1 dB up to there (the Kaiser ripple is ``10 ** (-A / 20)``);
* stopband edge ``0.5 * min_rate`` (the lower Nyquist frequency), attenuation ``A``:
  80 dB for ``quality="high"``, 65 dB for ``quality="low"``. Aliasing (downsampling)
  and imaging (upsampling) are therefore at most ``-A`` dB; the tests hold them
  below -60 dB against ``soxr``.

The filter is symmetric with an odd length ``N``, so its group delay is exactly
``(N - 1) / 2`` fine-grid samples, ``(N - 1) / (2 * down)`` output samples, for every
frequency. About ``100 / min_rate`` seconds of filter (3.1 ms at 16 kHz) per
resampler at ``quality="high"``.

Audio arrays are ``(channels, samples)`` like pedalboard and librosa.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from seproc import _kernels
from seproc._interface import Setting
from seproc._simd import decimate_registers
from seproc._validation import check_int, check_sample_rate
from seproc.errors import ParameterError

__all__ = ["QUALITIES", "RateBridge", "StreamResampler", "resample"]

#: Stopband attenuation in dB of each quality setting.
QUALITIES: dict[str, float] = {"high": 80.0, "low": 65.0}
_PASSBAND_EDGE = 0.45  # times the lower sample rate
_STOPBAND_EDGE = 0.5  # times the lower sample rate
_TAP_MULTIPLE = 8  # branches are padded to a multiple of 8 taps: no scalar SIMD remainder


def _check_quality(quality: object) -> float:
    if not isinstance(quality, str) or quality not in QUALITIES:
        raise ParameterError(
            f"Parameter quality={quality!r} is not one of {sorted(QUALITIES)}; "
            'pass quality="high" (80 dB stopband) or quality="low" (65 dB, shorter delay).'
        )
    return QUALITIES[quality]


def _ratio(in_rate_hz: int, out_rate_hz: int) -> tuple[int, int]:
    g = math.gcd(in_rate_hz, out_rate_hz)
    return out_rate_hz // g, in_rate_hz // g


def _filter_length(up: int, down: int, attenuation_db: float) -> int:
    """Odd length of the Kaiser prototype on the fine grid (1 when ``up == down``)."""
    if up == down:
        return 1
    # Normalised to the fine grid (cycles per sample), the lower rate is 1 / max(up, down).
    transition = (_STOPBAND_EDGE - _PASSBAND_EDGE) / max(up, down)
    # Kaiser (1974): N - 1 = (A - 7.95) / (2.285 * 2 pi * transition width).
    order = math.ceil((attenuation_db - 7.95) / (2.285 * 2.0 * math.pi * transition))
    return order + 1 if order % 2 == 0 else order + 2  # odd: the centre is a sample


def _design_branches(
    up: int, down: int, attenuation_db: float, dtype: np.dtype
) -> tuple[np.ndarray, int]:
    """Design the prototype once; return its polyphase branches ``(up, n_taps)`` and length."""
    length = _filter_length(up, down, attenuation_db)
    if length == 1:
        prototype = np.ones(1)
    else:
        cutoff = 0.5 * (_PASSBAND_EDGE + _STOPBAND_EDGE) / max(up, down)
        beta = 0.1102 * (attenuation_db - 8.7)
        t = np.arange(length) - (length - 1) / 2
        prototype = 2.0 * cutoff * np.sinc(2.0 * cutoff * t) * np.kaiser(length, beta)
        prototype *= up / prototype.sum()  # unit gain at DC for every branch, on average
    n_taps = -(-length // up)
    n_taps = -(-n_taps // _TAP_MULTIPLE) * _TAP_MULTIPLE
    padded = np.zeros(n_taps * up)
    padded[:length] = prototype
    # branches[phase, j] = prototype[phase + (n_taps - 1 - j) * up]
    branches = padded.reshape(n_taps, up)[::-1].T.copy()
    return np.ascontiguousarray(branches, dtype=dtype), length


class StreamResampler:
    """Resample a stream block by block, by a rational ratio, with a polyphase filter.

    Parameters
    ----------
    in_rate_hz, out_rate_hz : int
        Input and output sample rates in Hz. The ratio is reduced by the gcd
        (44100 -> 16000 runs as 160 / 441).
    channels : int
        Number of channels, each resampled independently.
    max_block_samples : int
        The largest input block processed in one pass; the state buffer is sized
        for it. Larger blocks work too, in passes of this size.
    dtype : np.float32 or np.float64
        Precision of the stored input, the filter and the sums (float32 sums of
        ~300 taps stay ~120 dB below the signal).
    quality : {"high", "low"}
        80 dB or 65 dB stopband attenuation; see the module notes.
    extra_delay_samples : int or fractions.Fraction
        Delay added to the filter's own, in output samples; a multiple of
        ``1 / down`` (the fine grid), and ``delay_samples`` must stay >= 0. A
        negative value shortens the delay, e.g. ``-filter_delay_samples`` aligns
        output with input (what :func:`resample` does).

    Raises
    ------
    ParameterError
        If a rate is not a whole number of Hz, ``channels`` or ``max_block_samples``
        is below 1, ``dtype`` or ``quality`` is not one of its values, or
        ``extra_delay_samples`` is off the fine grid or makes the delay negative.

    Notes
    -----
    Output sample ``m`` lies at time ``m / out_rate_hz`` and is
    ``sum_i x[i] * h[m * down - e - i * up]`` where ``h`` is the prototype (gain
    ``up``) and ``e = extra_delay_samples * down``. It is written as soon as its
    newest input sample has arrived, so after ``n`` input samples in total exactly
    ``max(0, ceil((n * up + e) / down))`` samples have come out, whatever the
    partition, and each one equals the one-shot result bit for bit.

    Equal rates with no extra delay are a plain copy.

    Examples
    --------
    >>> import numpy as np
    >>> r = StreamResampler(48000, 16000, channels=1, max_block_samples=480)
    >>> r.process(np.zeros((1, 480), np.float32)).shape
    (1, 160)
    """

    def __init__(
        self,
        in_rate_hz: int,
        out_rate_hz: int,
        *,
        channels: int,
        max_block_samples: int,
        dtype: type | np.dtype = np.float32,
        quality: str = "high",
        extra_delay_samples: int | Fraction = 0,
    ) -> None:
        self._in_rate_hz = check_sample_rate("in_rate_hz", in_rate_hz, 1)
        self._out_rate_hz = check_sample_rate("out_rate_hz", out_rate_hz, 1)
        self._channels = check_int("channels", channels, 1)
        self._max_block_samples = check_int("max_block_samples", max_block_samples, 1)
        self._dtype = np.dtype(dtype)
        if self._dtype not in (np.float32, np.float64):
            raise ParameterError(f"Parameter dtype={dtype!r} must be np.float32 or np.float64.")
        self._quality = quality
        attenuation_db = _check_quality(quality)
        self._up, self._down = _ratio(self._in_rate_hz, self._out_rate_hz)
        self._branches, self._filter_length = _design_branches(
            self._up, self._down, attenuation_db, self._dtype
        )
        if isinstance(extra_delay_samples, bool) or not isinstance(
            extra_delay_samples, (int, np.integer, Fraction)
        ):
            raise ParameterError(
                f"Parameter extra_delay_samples={extra_delay_samples!r} must be an int or a "
                "fractions.Fraction (in output samples)."
            )
        extra = Fraction(extra_delay_samples)
        fine = extra * self._down
        if fine.denominator != 1:
            raise ParameterError(
                f"Parameter extra_delay_samples={extra} is not a multiple of 1/{self._down} "
                f"output samples (the fine grid of {self._in_rate_hz} -> {self._out_rate_hz} Hz); "
                "round it to one."
            )
        self._extra_fine = int(fine)
        self._delay = self.filter_delay_samples + extra
        if self._delay < 0:
            raise ParameterError(
                f"Parameter extra_delay_samples={extra} makes the delay negative; it must be "
                f">= -{self.filter_delay_samples} (the filter's own delay)."
            )
        self._passthrough = self._up == self._down and self._extra_fine == 0
        n_taps = self._branches.shape[1]
        self._history = np.zeros(
            (self._channels, n_taps - 1 + self._max_block_samples), self._dtype
        )
        # Integer decimation (48 or 32 kHz -> 16 kHz) runs vectorised over the outputs on
        # the history split into its phases (_kernels.decimate); other ratios per output.
        self._phases = None
        if self._up == 1 and not self._passthrough:
            span = (n_taps - 1 + self._max_block_samples) // self._down + 1
            self._phases = np.zeros((self._channels, self._down, span), self._dtype)
        # the next output's place in the input (fine samples): an array, so a fused chunk
        # (seproc._hop) reads and advances the same position as _pass()
        self._position_at = np.zeros(1, np.int64)
        # float32 decimation into a C-contiguous out holds each output's sum in a register
        # (seproc._simd.decimate_registers: the same bits as _kernels.decimate)
        self._registers = self._phases is not None and self._dtype == np.float32
        self.reset()

    # -- read-only settings -------------------------------------------------------------

    in_rate_hz = Setting[int]("_in_rate_hz", "Input sample rate in Hz.")
    out_rate_hz = Setting[int]("_out_rate_hz", "Output sample rate in Hz.")
    channels = Setting[int]("_channels", "Number of channels.")
    max_block_samples = Setting[int](
        "_max_block_samples", "The largest input block processed in one pass."
    )
    quality = Setting[str]("_quality", "The quality setting.")

    @property
    def ratio(self) -> tuple[int, int]:
        """``(up, down)``: the reduced ratio ``out_rate_hz / in_rate_hz``."""
        return self._up, self._down

    filter_length = Setting[int](
        "_filter_length", "Length of the prototype filter on the fine grid (odd; 1 at equal rates)."
    )

    @property
    def filter_delay_samples(self) -> Fraction:
        """The symmetric filter's own group delay, in output samples."""
        return Fraction(self._filter_length - 1, 2 * self._down)

    @property
    def delay_samples(self) -> Fraction:
        """Exact group delay, in output samples: filter delay + ``extra_delay_samples``.

        An input impulse at time ``p / in_rate_hz`` peaks in the output at time
        ``p / in_rate_hz + delay_samples / out_rate_hz``.
        """
        return self._delay

    @property
    def delay_ms(self) -> float:
        """``delay_samples`` in milliseconds."""
        return 1000.0 * float(self._delay) / self._out_rate_hz

    # -- streaming ------------------------------------------------------------------------

    def max_output_samples(self, n: int) -> int:
        """Return the most output samples one call with ``n`` input samples can give."""
        return max(0, -(-(n * self._up + max(self._extra_fine, 0)) // self._down))

    def output_samples(self, n: int) -> int:
        """Return exactly how many samples the next call with ``n`` input samples gives."""
        return max(0, -(-(n * self._up - int(self._position_at[0])) // self._down))

    def total_output_samples(self, n_total: int | np.ndarray) -> int | np.ndarray:
        """Return how many samples have come out after ``n_total`` input samples, in all."""
        return np.maximum(0, -(-(np.asarray(n_total) * self._up + self._extra_fine) // self._down))

    def reset(self) -> None:
        """Start a new stream: clear the input history and the output position."""
        self._history.fill(0.0)
        self._position_at[0] = -self._extra_fine

    def process_into(self, block: np.ndarray, out: np.ndarray) -> int:
        """Resample the next block into ``out``, allocating nothing.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, samples)], float
            The next input samples, any number including 0.
        out : np.ndarray [shape=(channels, >= output_samples(samples))], float
            Where the output goes (``out[:, :count]``).

        Returns
        -------
        int
            ``count``, the number of output samples written.

        Raises
        ------
        ParameterError
            If ``block`` or ``out`` has the wrong shape or ``out`` is too short.
        """
        if block.ndim != 2 or block.shape[0] != self._channels:
            raise ParameterError(
                f"Expected {self._channels}-channel audio of shape (channels, samples), got "
                f"shape {block.shape}; pass block.T if it is (samples, channels), or "
                "block[np.newaxis] if it is 1-D mono."
            )
        n = block.shape[1]
        needed = self.output_samples(n)
        if out.ndim != 2 or out.shape[0] != self._channels or out.shape[1] < needed:
            raise ParameterError(
                f"Parameter out has shape {out.shape}; it needs shape ({self._channels}, >= "
                f"{needed}) for this block (size it with max_output_samples({n}))."
            )
        return self.push_into(block, out)

    def push_into(self, block: np.ndarray, out: np.ndarray) -> int:
        """Resample the next block into ``out``, unchecked: :meth:`process_into` without its checks.

        For an owner (``seproc.highband.ModelRateFrames``) whose buffers fit by
        construction: ``block`` is ``(channels, n)`` and ``out`` holds at least
        ``output_samples(n)`` columns. The checks cost about 1 us a call, a sixth of
        resampling a 10 ms block at 48 kHz.
        """
        n = block.shape[1]
        if self._passthrough:
            out[:, :n] = block
            return n
        capacity = self._max_block_samples
        if n <= capacity:  # one pass, no slicing
            return self._pass(block, n, out)
        written = 0
        done = 0
        while True:
            size = min(capacity, n - done)
            written += self._pass(block[:, done : done + size], size, out[:, written:])
            done += size
            if done >= n:
                return written

    def fused_args(self) -> tuple:
        """Return what one pass (:meth:`_pass`) works on, for ``seproc._hop``'s one-call chunk.

        ``(history, branches, up, down, position, phases, decimating)``; ``phases`` is an
        empty buffer where the ratio is not an integer decimation.
        """
        decimating = self._phases is not None
        phases = self._phases if decimating else np.zeros((0, 0, 0), self._dtype)
        return (
            self._history, self._branches, self._up, self._down, self._position_at, phases,
            decimating,
        )  # fmt: skip

    def _pass(self, block: np.ndarray, n: int, out: np.ndarray) -> int:
        """Resample ``block[:, :n]`` (``n <= max_block_samples``) into ``out``; return the count.

        Integer decimation runs vectorised over the outputs (``_kernels.decimate``; float32
        into a C-contiguous ``out``, each output's sum in a register:
        ``_simd.decimate_registers``), other ratios per output
        (``_kernels.polyphase_resample``); the same result either way.
        """
        if (
            self._phases is not None
            and self._registers
            and out.dtype == np.float32
            and out.flags.c_contiguous
        ):
            count, position = decimate_registers(
                self._history, block, n, self._branches, self._down, self._position_at[0],
                self._phases, out,
            )  # fmt: skip
        elif self._phases is not None:
            count, position = _kernels.decimate(
                self._history, block, n, self._branches, self._down, self._position_at[0],
                self._phases, out,
            )  # fmt: skip
        else:
            count, position = _kernels.polyphase_resample(
                self._history, block, n, self._branches, self._up, self._down,
                self._position_at[0], out,
            )  # fmt: skip
        self._position_at[0] = position
        return count

    def process(self, block: np.ndarray) -> np.ndarray:
        """Resample the next block into a new array.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, samples)], float
            The next input samples, any number including 0.

        Returns
        -------
        np.ndarray [shape=(channels, count)], ``dtype``
            The output samples this block completes.
        """
        n = block.shape[1] if block.ndim == 2 else 0
        out = np.empty((self._channels, self.output_samples(n)), self._dtype)
        self.process_into(block, out)
        return out


def resample(
    audio: np.ndarray, in_rate_hz: int, out_rate_hz: int, *, quality: str = "high"
) -> np.ndarray:
    """Resample a whole signal, output aligned with the input (no delay).

    Parameters
    ----------
    audio : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
        The signal.
    in_rate_hz, out_rate_hz : int
        Its rate and the rate wanted, in Hz.
    quality : {"high", "low"}
        As in :class:`StreamResampler`.

    Returns
    -------
    np.ndarray [shape=(channels, round(samples * out_rate_hz / in_rate_hz))]
        Same dtype and dimensionality as ``audio``; ``output[:, m]`` lies at time
        ``m / out_rate_hz``, like ``audio[:, i]`` at ``i / in_rate_hz``.

    Raises
    ------
    ParameterError
        If ``audio`` is not a 1-D or 2-D float array or a rate is not a positive int.

    Examples
    --------
    >>> import numpy as np
    >>> resample(np.zeros(44100, np.float32), 44100, 16000).shape
    (16000,)
    """
    audio = np.asarray(audio)
    if audio.dtype not in (np.float32, np.float64) or audio.ndim not in (1, 2):
        raise ParameterError(
            f"Parameter audio must be a 1-D or (channels, samples) float32/float64 array, got "
            f"{audio.dtype} of shape {audio.shape}; convert integer PCM with "
            "audio.astype(np.float32) / 32768."
        )
    was_1d = audio.ndim == 1
    audio2d = audio[np.newaxis] if was_1d else audio
    in_rate_hz = check_sample_rate("in_rate_hz", in_rate_hz, 1)
    out_rate_hz = check_sample_rate("out_rate_hz", out_rate_hz, 1)
    _check_quality(quality)
    channels, n = audio2d.shape
    n_out = (2 * n * out_rate_hz + in_rate_hz) // (2 * in_rate_hz)  # round half up
    if in_rate_hz == out_rate_hz:
        return audio.copy()
    up, down = _ratio(in_rate_hz, out_rate_hz)
    filter_delay = Fraction(_filter_length(up, down, QUALITIES[quality]) - 1, 2 * down)
    resampler = StreamResampler(
        in_rate_hz,
        out_rate_hz,
        channels=channels,
        max_block_samples=max(1, min(n, 1 << 16)),
        dtype=audio.dtype,
        quality=quality,
        extra_delay_samples=-filter_delay,  # output aligned with input
    )
    # Output n_out - 1 needs input sample floor(((n_out - 1) * down + (N - 1) / 2) / up).
    last = ((n_out - 1) * down + (resampler.filter_length - 1) // 2) // up
    padding = max(0, last + 1 - n)
    out = np.empty((channels, int(resampler.total_output_samples(n + padding))), audio.dtype)
    written = resampler.process_into(audio2d, out)
    resampler.process_into(np.zeros((channels, padding), audio.dtype), out[:, written:])
    result = out[:, :n_out]
    return result[0].copy() if was_1d else result.copy()


class RateBridge:
    """The two resamplers around a model-rate stage, with an exact integer latency.

    The Denoiser's chain for each host block is: ``to_inner`` (host -> model rate),
    a streaming stage that delays its input by ``inner_delay_samples`` and emits
    only whole bursts of ``inner_block_samples`` (after ``N`` samples in, it has put
    out ``floor(N / inner_block_samples) * inner_block_samples``), ``to_outer``
    (model -> host rate), and a FIFO pre-filled with ``prefill_samples`` zeros from
    which each call reads exactly as many samples as arrived.

    Parameters
    ----------
    host_rate_hz, model_rate_hz : int
        The host's and the model's sample rates in Hz.
    channels : int
        Number of channels.
    max_block_samples : int
        The largest host block passed to :meth:`to_inner`.
    inner_delay_samples : int
        The model-rate stage's delay, in model samples (``win_length - hop_length``).
    inner_block_samples : int
        The size of the model-rate stage's bursts, in model samples (``hop_length``).

    Raises
    ------
    ParameterError
        If a rate is not a whole number of Hz, ``channels``, ``max_block_samples`` or
        ``inner_block_samples`` is below 1, or ``inner_delay_samples`` below 0.

    Notes
    -----
    **Integer latency.** On the fine grid of ``G = up * host_rate_hz =
    down * model_rate_hz`` samples per second (``model / host = up / down``), a
    host sample is ``up`` fine samples and a model sample ``down``. ``to_inner``
    delays by ``(N - 1) / 2`` fine samples (its symmetric filter, length ``N``),
    the inner stage by ``inner_delay_samples * down``, and ``to_outer``, which uses
    the same prototype, by ``(N - 1) / 2 + e`` where ``e`` in ``[0, up)`` is its
    extra delay, chosen so that ``N - 1 + inner_delay_samples * down + e`` is a
    multiple of ``up``: the chain delays by a whole number of host samples. Both
    filters are symmetric, so an impulse peaks exactly there (the composite
    response is symmetric up to the stopband leakage of the model-rate sampling).

    **Prefill.** Every stage emits all it can as soon as it can, and the FIFO is
    written before it is read, so after ``n`` host samples in total the FIFO has
    received ``P + produced(n)`` samples and given out ``n``, where

    * ``Z(n) = ceil(n * up / down)``: model samples out of ``to_inner``;
    * ``W(n) = floor(Z(n) / hop) * hop``: samples out of the inner stage;
    * ``produced(n) = ceil((W(n) * down + e) / up)``: host samples out of ``to_outer``.

    These depend on ``n`` alone, not on how ``n`` was cut into blocks, and every
    ``n >= 0`` is reachable (blocks of one sample), so the FIFO never underruns for
    any partition if and only if ``P >= max_n (n - produced(n))``. The deficit is
    periodic: ``n -> n + down * hop`` adds ``up * hop`` to ``Z`` (a whole number of
    bursts) and ``down * hop`` to ``produced``. ``prefill_samples`` is its exact
    maximum over one period ``0 <= n < down * hop``, enumerated at construction
    (at most 70560 values, at 11.025, 22.05 and 44.1 kHz). Adding whole host
    samples to ``e`` moves the deficit and the delay by the same amount, so the
    latency ``prefill + chain delay`` cannot be lowered that way; the bound is
    attained, so the prefill cannot be lowered at all. (A sub-sample extra delay on
    ``to_inner`` instead would shift the burst phase; an offline search over it gains
    at most one host sample, at 11.025 and 44.1 kHz, so ``to_inner`` has none.)

    At equal rates both resamplers are plain copies, ``prefill = hop - 1`` and
    ``latency = hop - 1 + inner_delay_samples`` (319 samples for a 320/160 STFT).

    Latency with ``inner_delay_samples=160, inner_block_samples=160`` and a 16 kHz model
    (``quality="high"`` filters, about 100 samples of the lower rate long):

    =========  =======  =======  =====
    host (Hz)  prefill  latency  ms
    =========  =======  =======  =====
    8000       79       260      32.50
    11025      109      320      29.02
    16000      159      319      19.94
    22050      218      577      26.17
    32000      318      840      26.25
    44100      437      1155     26.19
    48000      477      1259     26.23
    96000      954      2518     26.23
    =========  =======  =======  =====

    Examples
    --------
    >>> bridge = RateBridge(48000, 16000, channels=1, max_block_samples=480,
    ...                     inner_delay_samples=160, inner_block_samples=160)
    >>> bridge.prefill_samples, bridge.latency_samples
    (477, 1259)
    """

    def __init__(
        self,
        host_rate_hz: int,
        model_rate_hz: int,
        *,
        channels: int,
        max_block_samples: int,
        inner_delay_samples: int,
        inner_block_samples: int,
    ) -> None:
        self._host_rate_hz = check_sample_rate("host_rate_hz", host_rate_hz, 1)
        self._model_rate_hz = check_sample_rate("model_rate_hz", model_rate_hz, 1)
        self._channels = check_int("channels", channels, 1)
        self._max_block_samples = check_int("max_block_samples", max_block_samples, 1)
        delay = check_int("inner_delay_samples", inner_delay_samples, 0)
        hop = check_int("inner_block_samples", inner_block_samples, 1)
        self._inner_delay_samples = delay
        self._inner_block_samples = hop
        up, down = _ratio(self._host_rate_hz, self._model_rate_hz)
        length = _filter_length(up, down, QUALITIES["high"])
        extra_fine = -(length - 1 + delay * down) % up
        self._to_inner = StreamResampler(
            self._host_rate_hz,
            self._model_rate_hz,
            channels=self._channels,
            max_block_samples=self._max_block_samples,
        )
        self._max_inner_samples = self._to_inner.max_output_samples(self._max_block_samples)
        # The inner stage emits at most what it got plus hop - 1 held back samples.
        outer_capacity = -(-(self._max_inner_samples + hop - 1) // hop) * hop
        self._to_outer = StreamResampler(
            self._model_rate_hz,
            self._host_rate_hz,
            channels=self._channels,
            max_block_samples=outer_capacity,
            extra_delay_samples=Fraction(extra_fine, up),
        )
        assert self._to_outer.filter_length == self._to_inner.filter_length == length
        chain_fine = length - 1 + delay * down + extra_fine
        assert chain_fine % up == 0
        self._prefill_samples = self._worst_deficit()
        self._latency_samples = self._prefill_samples + chain_fine // up
        self._inner = np.zeros((self._channels, self._max_inner_samples), np.float32)
        self._outer = np.zeros(
            (self._channels, self._to_outer.max_output_samples(outer_capacity)), np.float32
        )
        self._passthrough = self._to_inner._passthrough and self._to_outer._passthrough
        self.reset()

    def _worst_deficit(self) -> int:
        """``max_n (n - produced(n))`` over one period; see the class notes."""
        hop = self._inner_block_samples
        _, down = self._to_inner.ratio
        n = np.arange(down * hop + 1, dtype=np.int64)
        inner = self._to_inner.total_output_samples(n)
        emitted = inner // hop * hop
        produced = self._to_outer.total_output_samples(emitted)
        return int(max(0, np.max(n - produced)))

    # -- read-only settings -------------------------------------------------------------

    host_rate_hz = Setting[int]("_host_rate_hz", "The host's sample rate in Hz.")
    model_rate_hz = Setting[int]("_model_rate_hz", "The model's sample rate in Hz.")
    channels = Setting[int]("_channels", "Number of channels.")
    max_block_samples = Setting[int](
        "_max_block_samples", "The largest host block :meth:`to_inner` takes."
    )
    max_inner_samples = Setting[int](
        "_max_inner_samples", "The most model samples :meth:`to_inner` returns for one host block."
    )

    def max_outer_samples(self, n: int) -> int:
        """Return the most host samples :meth:`to_outer` gives for ``n`` model samples."""
        return self._to_outer.max_output_samples(n)

    prefill_samples = Setting[int](
        "_prefill_samples",
        "Zeros the host-rate FIFO must hold at the start so that it never runs dry.",
    )
    latency_samples = Setting[int](
        "_latency_samples",
        "Host samples from input to output: prefill + both resamplers + inner delay.",
    )

    @property
    def latency_ms(self) -> float:
        """``latency_samples`` in milliseconds."""
        return 1000.0 * self._latency_samples / self._host_rate_hz

    passthrough = Setting[bool](
        "_passthrough", "Whether host and model rate are equal (both ways hand blocks through)."
    )
    inner_resampler = Setting[StreamResampler](
        "_to_inner", "The host -> model resampler (read its ``delay_samples``)."
    )
    outer_resampler = Setting[StreamResampler](
        "_to_outer", "The model -> host resampler (read its ``delay_samples``)."
    )

    # -- streaming ------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: reset both resamplers."""
        self._to_inner.reset()
        self._to_outer.reset()

    def to_inner(self, block: np.ndarray) -> np.ndarray:
        """Resample a host block to the model rate.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, n)], float, ``n <= max_block_samples``
            The next host samples.

        Returns
        -------
        np.ndarray [shape=(channels, k)], float32
            A view of an internal buffer that the next call overwrites (at equal
            rates, ``block`` itself).
        """
        if self._passthrough:  # equal rates: the block itself, nothing to copy
            return block
        count = self._to_inner.process_into(block, self._inner)
        return self._inner[:, :count]

    def to_outer(self, block: np.ndarray) -> np.ndarray:
        """Resample model-rate samples back to the host rate.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, m)], float
            The inner stage's output.

        Returns
        -------
        np.ndarray [shape=(channels, k)], float32
            A view of an internal buffer that the next call overwrites. A block
            longer than the inner stage can emit for one host block makes this
            buffer grow once (an allocation), then stay. At equal rates, ``block``
            itself.
        """
        if self._passthrough:
            return block
        needed = self._to_outer.output_samples(block.shape[1])
        if needed > self._outer.shape[1]:
            self._outer = np.zeros((self._channels, needed), np.float32)
        count = self._to_outer.process_into(block, self._outer)
        return self._outer[:, :count]

"""The Denoiser: a real-time processor object that owns every buffer and all stream state.

The data path of one :meth:`Denoiser.process` call, top to bottom:

1. validate the block and copy it into a float32 input buffer;
2. resample host rate -> model rate (skipped when they are equal); at full-band host
   rates (``seproc.highband``) this resampled copy only feeds the model's features,
   and the signal itself, delayed to line up, is framed at the host rate;
3. streaming STFT analysis: every complete frame of the block;
4. normalised log-power features at the model's rate, one onnxruntime call per
   channel for all frames;
4b. a format-2 mask model's gain post-filter (release, exponent), once per model
   frame as the model produces it (``postfilter=True``);
5. the model's gain (floored by the attenuation limit) applied to the noisy spectrum,
   and at full-band rates one gain per frame for the bins above the model's band;
6. streaming overlap-add synthesis, resample model rate -> host rate (when resampled);
7. a FIFO that turns the chain's frame-sized bursts into exactly as many samples as
   arrived, delayed by a fixed ``latency_samples``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seproc import _kernels
from seproc._hop import compiled_entry, full_band_chunk, model_rate_chunk, pack
from seproc._interface import Setting
from seproc._validation import (
    MAX_SAMPLE_RATE_HZ,
    MIN_SAMPLE_RATE_HZ,
    as_audio_block,
    as_output_block,
    check_sample_rate,
)
from seproc.errors import ModelError, ParameterError
from seproc.features import LogPowerFeatures
from seproc.highband import HighBandGain, ModelRateFrames, host_framing
from seproc.model import OnnxModel
from seproc.pitch import PitchFilter, absent_fused_args
from seproc.resample import RateBridge
from seproc.stft import STFT

__all__ = ["MAX_SAMPLE_RATE_HZ", "MIN_SAMPLE_RATE_HZ", "Denoiser"]

_ACTIVITY_BAND_HZ = (300.0, 4000.0)
_MAX_ABS_SAMPLE = 1e15
"""Larger samples (+300 dBFS) are refused: their power would overflow float32 spectra."""
_FLOAT32 = np.dtype(np.float32)
_FLUSH_BELOW = 1e-30
"""Smaller samples (-600 dBFS) enter the stream as 0: the denormal guard."""
_ONE_FRAME_GRAPH = True
"""Run one-frame model calls on the graph derived for them (``OnnxModel(one_frame_graph=)``);
a switch for benchmarks, which compare both in the same run."""
_ENGINE: str | None = None
"""What evaluates the network (``OnnxModel(engine=)``). ``None`` chooses by measurement
(``benchmarks/README.md``, issue 20): a streaming Denoiser (``warm_up=True``, one thread)
runs every frame on the numba + BLAS engine derived from the model file (0.53-0.60x
onnxruntime's time per 10 ms hop; output within ~1e-7 of it), falling back to
onnxruntime's one-frame graph where the engine refuses the model; an offline one
(``warm_up=False``) or one with more threads runs onnxruntime, whose many-frame calls
cost as little per frame (37 against 36 µs) without the engine's ~0.2 s derivation.
``"onnxruntime"`` / ``"blas"`` force one (benchmarks, tests)."""
_FUSED = True
"""Run a BLAS-engine Denoiser's chunks in one numba call each (``seproc._hop``): the same
kernels, FFTs and network as the Python path, bit for bit, without ~15 calls from Python
between them. A switch for benchmarks and tests, which compare both."""


class _OneFrame(NamedTuple):
    """One channel's views for one-frame calls (a 10 ms callback), taken once."""

    model_spec: np.ndarray  # the model-rate spectrum, frame 0
    features: np.ndarray  # the features, frame 0
    rows: tuple[np.ndarray, np.ndarray]  # the model's output rows 0 and 1 (pending)
    host_spec: np.ndarray  # the host-rate spectrum, frame 0 (full band)
    held: np.ndarray  # the post-filter's state
    activity: np.ndarray  # the speech activity of this channel's frames


class Denoiser:
    """Stream speech denoising: feed blocks of any size, get as many samples back.

    Parameters
    ----------
    model : str or Path or None
        An ONNX model file in seproc's format; ``None`` loads the bundled default.
    sample_rate : int
        The host's sample rate in Hz, 8000 to 96000. Above the model's rate, where
        the model's frames are whole host samples (32, 44.1, 48, 88.2 and 96 kHz for
        the 16 kHz model), the STFT runs at the host rate and the whole band is kept
        and denoised (:attr:`full_band`). At other rates audio is resampled to the
        model's rate and back inside (the resamplers' delay is part of
        ``latency_samples``), and nothing above 8 kHz passes.
    channels : int
        Number of channels; each is denoised with its own state.
    attenuation_limit_db : float or None
        The most the denoiser may attenuate any time-frequency bin, in dB (>= 0).
        ``None`` removes as much noise as the model decides; ``0`` is a bypass
        (the output is the input, delayed: over the whole band where
        :attr:`full_band`, within the model's band where audio is resampled);
        ``12`` keeps some ambience.
    max_block_samples : int
        The largest block :meth:`process` handles without allocating. Larger
        blocks still work; their output array is then allocated for the call.
    num_threads : int
        Threads onnxruntime may use in one run (1 by default; never global).
    warm_up : bool
        Compile the numba kernels and run the model once at construction, so the
        first real :meth:`process` call is as fast as the rest; also build the model
        graph for one-frame calls (``OnnxModel(one_frame_graph=True)``), which makes
        10 ms blocks about 8 % cheaper. ``False`` suits offline use (whole signals,
        many frames per call).
    postfilter : bool
        Apply the gain post-filter that a format-2 mask model's file carries
        (``models/FORMAT.md``: a release of ``gain_release_db_per_s`` on each bin's gain,
        then ``gain_exponent``; and where the file has ``pitch_filter_strength``, the
        pitch (comb) filter on the spectrum before the gains, ``seproc.pitch``), as the
        model's author tuned it. ``False`` applies the model's raw gains to the
        unfiltered spectrum (A/B listening, or a host that smooths on its own). No
        effect on a model without the keys (:attr:`postfilter` is then ``None``).

    Raises
    ------
    ParameterError
        If an argument is out of range.
    ModelError
        If the model file is missing, invalid, or not in seproc's format.

    Notes
    -----
    Audio arrays are ``(channels, samples)``, like pedalboard and librosa; a
    1-D array is accepted when ``channels == 1``. Output is float32.

    Thread safety: one object is one stream. Its methods must not run in two
    threads at once (``process``, ``flush`` and ``reset``, and reading
    ``speech_activity`` while ``process`` runs, share its buffers): lock around
    it, or hand it from thread to thread one at a time. The settings properties
    never change and are safe from any thread. Separate objects share nothing
    and give in threads exactly what they give one after another; onnxruntime
    releases the GIL while the model runs, the numba kernels do not. See docs/RELIABILITY.md.

    Examples
    --------
    >>> import numpy as np
    >>> from seproc import Denoiser
    >>> denoiser = Denoiser(sample_rate=48000, channels=2)
    >>> noisy = np.zeros((2, 48000), np.float32)
    >>> clean = np.concatenate(
    ...     [denoiser.process(noisy[:, i : i + 480]) for i in range(0, 48000, 480)]
    ...     + [denoiser.flush()],
    ...     axis=1,
    ... )[:, denoiser.latency_samples :]
    >>> clean.shape
    (2, 48000)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        attenuation_limit_db: float | None = None,
        max_block_samples: int = 8192,
        num_threads: int = 1,
        warm_up: bool = True,
        postfilter: bool = True,
    ) -> None:
        if not isinstance(postfilter, (bool, np.bool_)):
            raise ParameterError(
                f"Parameter postfilter={postfilter!r} must be True (apply the model's gain "
                "post-filter) or False (the raw model gains)."
            )
        self._sample_rate = check_sample_rate("sample_rate", sample_rate, MIN_SAMPLE_RATE_HZ)
        if self._sample_rate > MAX_SAMPLE_RATE_HZ:
            raise ParameterError(
                f"Parameter sample_rate={sample_rate} is above {MAX_SAMPLE_RATE_HZ} Hz; seproc "
                f"supports {MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz. Resample first."
            )
        self._channels = _check_int("channels", channels, 1)
        self._max_block_samples = _check_int("max_block_samples", max_block_samples, 1)
        self._min_gain = _min_gain(attenuation_limit_db)
        self._attenuation_limit_db = attenuation_limit_db

        # The one-frame graph serves streaming hosts (10 ms blocks: one frame a call); an
        # offline caller (warm_up=False: seproc.denoise, whole files) runs many frames
        # a call and would only pay its ~15 ms of derivation and checking.
        engine = _ENGINE
        if engine is None:
            engine = "blas" if warm_up and num_threads == 1 else "onnxruntime"
        self._model = OnnxModel(
            model,
            num_threads=num_threads,
            one_frame_graph=_ONE_FRAME_GRAPH and warm_up,
            engine=engine,
        )
        info = self._model.info
        if info.lookahead_frames != 0:
            raise ModelError(
                f"Model {info.path} uses lookahead_frames={info.lookahead_frames}; this seproc "
                "runs causal models (lookahead_frames=0) only."
            )
        model_framing = (info.n_fft, info.hop_length, info.win_length)
        framing = None
        if info.formulation == "mask":  # the high bands follow a mask's gains
            framing = host_framing(self._sample_rate, info.sample_rate_hz, *model_framing)
        self._full_band = framing is not None
        n_fft, hop_length, win_length = framing or model_framing
        # The STFT runs at the host rate when the model's framing scales to whole host
        # samples (seproc.highband), else at the model's rate between two resamplers.
        stft_rate_hz = self._sample_rate if self._full_band else info.sample_rate_hz
        self._stft = _stream_stft((n_fft, hop_length, win_length), info.window)
        self._model_stft = (
            _stream_stft(model_framing, info.window) if self._full_band else self._stft
        )
        self._features = LogPowerFeatures(
            info.feature_mean_db, info.feature_std_db, amin=info.feature_amin
        )
        self._model_frames = None
        host_delay_samples = 0
        if self._full_band:
            self._model_frames = ModelRateFrames(
                self._sample_rate,
                info.sample_rate_hz,
                self._model_stft,
                hop_length,
                self._channels,
                self._max_block_samples,
            )
            host_delay_samples = self._model_frames.host_delay_samples
        self._bridge = RateBridge(
            self._sample_rate,
            stft_rate_hz,
            channels=self._channels,
            max_block_samples=self._max_block_samples,
            inner_delay_samples=host_delay_samples + self._stft.latency_samples,
            inner_block_samples=hop_length,
        )
        bin_hz = info.sample_rate_hz / info.n_fft
        self._activity_bins = (
            math.ceil(_ACTIVITY_BAND_HZ[0] / bin_hz),
            min(int(_ACTIVITY_BAND_HZ[1] / bin_hz) + 1, info.n_bins),
        )
        self._postfilter = (
            info.postfilter_settings() if postfilter and info.formulation == "mask" else None
        )
        self._release_factor = info.gain_release_factor
        self._gain_exponent = info.gain_exponent
        # the pitch (comb) filter on the frames before their gains (seproc.pitch)
        self._pitch_strength = None if self._postfilter is None else info.pitch_filter_strength
        self._apply_gain = (
            _kernels.apply_mask_gain
            if info.formulation == "mask"
            else _kernels.apply_noise_subtraction
        )
        self._high_band = None
        if self._full_band:
            self._high_band = HighBandGain(
                self._sample_rate, n_fft, info.n_bins, self._activity_bins
            )
        self._allocate()
        self.reset()
        if warm_up:
            self._warm_up()

    # -- read-only settings -------------------------------------------------------------

    sample_rate = Setting[int]("_sample_rate", "The host sample rate in Hz.")
    channels = Setting[int]("_channels", "The number of channels.")
    model_sample_rate = Setting[int](
        "_model.info.sample_rate_hz", "The model's native sample rate in Hz."
    )
    hop_length = Setting[int]("_model.info.hop_length", "Model-rate samples between STFT frames.")

    @property
    def full_band(self) -> bool:
        """Whether the band above the model's Nyquist frequency is kept and denoised.

        True at host rates above the model's whose frames are whole samples (32, 44.1,
        48, 88.2, 96 kHz for a 16 kHz model): the STFT then runs at the host rate and
        nothing is resampled (see ``seproc.highband``). False at the model's rate and
        at rates that are resampled (8, 11.025, 22.05 kHz), where the output holds
        nothing above ``min(sample_rate, model_sample_rate) / 2``.
        """
        return self._full_band

    latency_samples = Setting[int](
        "_bridge.latency_samples",
        "How many samples (at ``sample_rate``) the output lags the input.",
    )
    latency_ms = Setting[float]("_bridge.latency_ms", "``latency_samples`` in milliseconds.")
    attenuation_limit_db = Setting[float | None](
        "_attenuation_limit_db", "The most any bin is attenuated, in dB; ``None`` when unlimited."
    )
    max_block_samples = Setting[int](
        "_max_block_samples", "The largest block :meth:`process` handles without allocating."
    )
    model_path = Setting[Path]("_model.path", "The model file in use.")

    @property
    def postfilter(self) -> dict[str, float | None] | None:
        """The gain post-filter in use, or ``None`` when the model's raw gains are applied.

        Returns
        -------
        dict or None
            ``{"gain_release_db_per_s": float or None, "gain_exponent": float,
            "release_factor_per_hop": float, "pitch_filter_strength": float or None}``
            from the model file (format 2): how fast a bin's gain may fall in dB per
            second, the exponent on the released gain, the factor a gain may fall by per
            model hop, and the pitch filter's strength (``None``: no pitch filter; see
            ``seproc.pitch``). ``None`` when the model carries
            no post-filter, is not a mask model, or ``postfilter=False`` was passed. A copy.
        """
        return None if self._postfilter is None else dict(self._postfilter)

    @property
    def speech_activity(self) -> np.ndarray:
        """Speech activity of the frames completed by the last :meth:`process` call.

        Returns
        -------
        np.ndarray [shape=(channels, frames)], float32, read-only view
            For each frame, the share of the noisy energy between 300 Hz and
            4 kHz that the denoiser kept: near 1 where the model hears speech,
            near 0 where it removes everything (noise only). A frame is
            ``hop_length`` samples at ``model_sample_rate``; a call may complete
            no frame (short blocks), then this is empty. The view is overwritten
            by the next call: copy it to keep it.
        """
        view = self._activity[:, : self._frames_last_call]
        view.flags.writeable = False
        return view

    # -- streaming ------------------------------------------------------------------------

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Denoise one block of a stream.

        Parameters
        ----------
        block : np.ndarray [shape=(channels, samples) or (samples,)], float32 or float64
            The next samples of the stream, any number including 0; 1-D only
            when ``channels == 1``.
        out : np.ndarray [shape=(channels, samples)] or None
            Where to write the output: a writeable float32 or float64 array that
            does not overlap ``block``, or ``block`` itself (in place): the
            real-time path, which allocates nothing. ``None`` returns a new array
            that the caller owns (one allocation per call).

        Returns
        -------
        np.ndarray [shape like ``block``], float32 unless ``out`` says otherwise
            As many samples as ``block`` has, ``latency_samples`` behind the input:
            ``out`` itself, or a new array when ``out`` is ``None``.

        Raises
        ------
        ParameterError
            If the block has the wrong shape, channel count or dtype (integer PCM),
            or holds NaN, Inf or samples beyond +-1e15, or if ``out`` is not a
            numpy array, is read-only, has the wrong shape or dtype, or overlaps
            the block; the stream state is then unchanged.

        Notes
        -----
        Samples below 1e-30 in magnitude (-600 dBFS) are processed as 0, so
        near-silence never puts subnormal floats, which are slow on some CPUs,
        into the stream state.
        """
        if out is block and self._fused is not None and type(block) is np.ndarray:
            # a host's buffer denoised in place (process(buf, out=buf)): the checks below,
            # cut to what this case needs (~1 µs a call); other arrays take the full path
            if block.ndim == 2 and block.shape[0] == self._channels:
                in_place = block
            elif block.ndim == 1 and self._channels == 1:
                in_place = block[np.newaxis]
            else:
                in_place = None
            if (
                in_place is not None
                and block.dtype == _FLOAT32
                and 0 < in_place.shape[1] <= self._max_block_samples
                and _one_call_layout(in_place.flags)
            ):
                self._fused_process(in_place, in_place)
                return block
        block2d, was_1d = as_audio_block(block, self._channels, name="block")
        n = block2d.shape[1]
        target = self._output_target(out, block, block2d, was_1d)
        if (
            0 < n <= self._max_block_samples
            and self._fused is not None
            and block2d.dtype == _FLOAT32
            and target.dtype == _FLOAT32
            and _one_call_layout(block2d.flags)
            and _one_call_layout(target.flags)
        ):  # the host's callback: one numba call (see _fused_process)
            self._fused_process(block2d, target)
            return target[0] if was_1d else target
        if n <= self._max_block_samples:
            # a host's callback is one chunk: checked while it is copied into the input
            # scratch (one pass, not two), before anything of the stream changes
            copied = _kernels.copy_flushing_tiny_checked(
                block2d, self._chunk_views(n)[0], _FLUSH_BELOW, _MAX_ABS_SAMPLE
            )
            if not copied:
                raise _invalid_samples("block")
        else:
            _check_samples(block2d, "block")
        done = 0
        while done < n:
            size = min(self._max_block_samples, n - done)
            if size != n:  # one of several chunks (a lone chunk was copied above)
                chunk = block2d[:, done : done + size]
                _kernels.copy_flushing_tiny(chunk, self._chunk_views(size)[0], _FLUSH_BELOW)
            self._run_chunk(size)
            written = target if done == 0 else target[:, done:]
            self._read_pos, _ = _kernels.ring_copy(self._fifo, self._read_pos, written, 0, size)
            done += size
        if n == 0:
            self._frames_last_call = 0
        return target[0] if was_1d else target

    def flush(self) -> np.ndarray:
        """Return the ``latency_samples`` of output that the latency still holds back.

        The stream is fed silence until everything that went in has come out;
        the object is then reset, ready for a new stream.

        Returns
        -------
        np.ndarray [shape=(channels, latency_samples)], float32
            A new array (flush is not on the real-time path).
        """
        tail = np.zeros((self._channels, self.latency_samples), np.float32)
        remaining = self.latency_samples
        start = 0
        while remaining > 0:
            size = min(self._max_block_samples, remaining)
            self._input[:, :size] = 0.0
            self._run_chunk(size)
            self._read_pos, _ = _kernels.ring_copy(
                self._fifo, self._read_pos, tail[:, start:], 0, size
            )
            start += size
            remaining -= size
        self.reset()
        return tail

    def reset(self) -> None:
        """Start a new stream: clear every piece of stream state, in one place."""
        self._bridge.reset()
        if self._model_frames is not None:
            self._model_frames.reset()
            self._delay_history.fill(0.0)
        self._pending_frames = 0
        self._held.fill(0.0)
        if self._pitch is not None:
            self._pitch.reset()
        self._analyzer.reset()
        self._synthesizer.reset()
        for state in self._states:
            state.reset()
        self._states_resident = False  # each leaves its BLAS scratch (ModelState.reset)
        self._fifo.fill(0.0)
        self._activity.fill(0.0)
        self._frames_last_call = 0
        self._read_pos = 0
        self._write_pos = self._bridge.prefill_samples

    def __call__(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Denoise a whole signal, pedalboard style: output aligned with the input.

        Resets the stream first, processes ``audio``, flushes, and drops the
        first ``latency_samples``, so ``output[:, i]`` corresponds to
        ``audio[:, i]``.

        Parameters
        ----------
        audio : np.ndarray [shape=(channels, samples) or (samples,)], float
            The signal.
        sample_rate : int
            Its rate; must equal this object's ``sample_rate``.

        Returns
        -------
        np.ndarray [shape like ``audio``], float32
        """
        if check_sample_rate("sample_rate", sample_rate) != self._sample_rate:
            raise ParameterError(
                f"Parameter sample_rate={sample_rate} differs from this Denoiser's "
                f"{self._sample_rate} Hz; make a Denoiser(sample_rate={sample_rate}) instead."
            )
        block2d, was_1d = as_audio_block(audio, self._channels, name="audio")
        _check_samples(block2d, "audio")
        self.reset()
        n = block2d.shape[1]
        output = np.empty((self._channels, n + self.latency_samples), np.float32)
        self.process(block2d, out=output[:, :n])
        output[:, n:] = self.flush()
        aligned = output[:, self.latency_samples :]
        return aligned[0] if was_1d else aligned

    # -- internals ----------------------------------------------------------------------

    def _allocate(self) -> None:
        info = self._model.info
        channels = self._channels
        model_block = self._bridge.max_inner_samples
        self._analyzer = self._stft.analyzer(channels=channels, max_block_samples=model_block)
        max_frames = self._analyzer.max_frames
        self._synthesizer = self._stft.synthesizer(channels=channels, max_frames=max_frames)
        self._input = np.zeros((channels, self._max_block_samples), np.float32)
        self._spec = np.zeros((channels, max_frames, self._stft.n_bins), np.complex64)
        model_frames = max_frames
        if self._model_frames is not None:
            # Model-rate frames may run one ahead of the host's: room for one pending.
            model_frames = self._model_frames.max_frames + 1
            self._model_spec = np.zeros(
                (channels, self._model_frames.max_frames, info.n_bins), np.complex64
            )
            self._delayed = np.zeros((channels, self._max_block_samples), np.float32)
            self._delay_history = np.zeros(
                (channels, self._model_frames.host_delay_samples), np.float32
            )
        self._feature_buffer = np.zeros((channels, model_frames, info.n_bins), np.float32)
        self._model_out = np.zeros((channels, model_frames, info.n_bins), np.float32)
        self._held = np.zeros((channels, info.n_bins), np.float32)  # the post-filter's state
        self._pitch = None
        if self._pitch_strength is not None and self._min_gain < 1.0:  # not in bypass
            # each model frame one pitch period earlier, in the rows of its gains (model_out)
            self._delayed_spec = np.zeros((channels, model_frames, info.n_bins), np.complex64)
            self._delayed_rows = list(self._delayed_spec)
            if self._model_frames is None:
                inner_samples, inner_frames = model_block, max_frames
            else:
                inner_samples = self._model_frames.samples.shape[1]
                inner_frames = self._model_frames.max_frames
            self._pitch = PitchFilter(
                self._model_stft,
                info.sample_rate_hz,
                channels,
                inner_samples,
                inner_frames,
                strength=self._pitch_strength,
                min_gain=self._min_gain,
            )
        self._activity = np.zeros((channels, max_frames), np.float32)
        self._synthesized = np.zeros((channels, max_frames * self._stft.hop_length), np.float32)
        fifo_capacity = self._bridge.prefill_samples + 2 * (
            self._max_block_samples
            + self._bridge.max_outer_samples(max_frames * self._stft.hop_length)
        )
        self._fifo = np.zeros((channels, fifo_capacity), np.float32)
        self._states = [self._model.new_state() for _ in range(channels)]
        # Views for the common calls, taken once: one frame per channel (a 10 ms callback),
        # and the input-sized views of the last chunk size (_chunk_views).
        self._synthesized_one_frame = self._synthesized[:, : self._stft.hop_length]
        self._views_size = -1
        self._views: tuple[np.ndarray, np.ndarray | None] = (self._input, None)
        frame_spec = self._spec if self._model_frames is None else self._model_spec
        self._one_frame = [
            _OneFrame(
                model_spec=frame_spec[c, :1],
                features=self._feature_buffer[c, :1],
                rows=(self._model_out[c, :1], self._model_out[c, 1:2]),
                host_spec=self._spec[c, :1],
                held=self._held[c],
                activity=self._activity[c],
            )
            for c in range(channels)
        ]
        # Before the frame runs: a fused chunk gives the streams' network scratches new homes
        args = self._fused_args()
        self._fused = None if args is None else pack(args)
        self._no_samples = np.zeros((self._channels, 0), np.float32)  # no block, no target
        # the chunk function; after the warm-up its compiled entry point (compiled_entry)
        self._chunk_call = model_rate_chunk if self._model_frames is None else full_band_chunk
        # One-frame calls (a host's 10 ms callback) run on buffers bound once: per channel,
        # the output row 0, and row 1 where a full-band frame waits one call (pending).
        rows = 2 if self._model_frames is not None else 1
        self._frame_runs = [
            [
                self._model.frame_run(
                    self._feature_buffer[c, :1], self._model_out[c, row : row + 1], state
                )
                for row in range(rows)
            ]
            for c, state in enumerate(self._states)
        ]

    def _output_target(
        self, out: object, block: object, block2d: np.ndarray, was_1d: bool
    ) -> np.ndarray:
        """Return where this call writes: ``out`` once validated, else a new array.

        Runs before any state changes, so a refused ``out`` leaves the stream as it was.
        Without ``out`` the caller owns what it gets back (an internal buffer that the
        next call overwrote made collected blocks silently wrong). ``out=block``, the
        real-time path, is the block's own 2-D view once it is known to be writeable
        (the general overlap check reads both arrays' addresses, 3-4 µs a call).
        """
        if out is None:
            return np.empty((self._channels, block2d.shape[1]), np.float32)
        if out is block and isinstance(out, np.ndarray) and out.flags.writeable:
            return block2d
        return as_output_block(out, block2d, self._channels, was_1d)

    def _chunk_views(self, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(input[:, :size], delayed[:, :size])``, kept for the last ``size`` asked.

        A host calls with one block size, so after the first call these views are made
        once, not on every call (each slice costs ~0.2 us).
        """
        if size != self._views_size:
            delayed = None if self._model_frames is None else self._delayed[:, :size]
            self._views = (self._input[:, :size], delayed)
            self._views_size = size
        return self._views

    def _fused_args(self) -> tuple | None:
        """Return the arguments of ``seproc._hop``'s one-call chunk for this Denoiser, or None.

        None where a piece cannot run inside numba here: onnxruntime instead of the BLAS
        engine, FFTW not callable from numba, a resampler between host and STFT rate.
        Built once; every array is the one the Python path (:meth:`_process_chunk`) uses,
        so the two paths share the stream and either may run any chunk.
        """
        if not _FUSED:
            return None
        network = self._model.fused_network(self._states)
        if network is None:  # onnxruntime (a whole-file Denoiser): plan nothing for numba
            return None
        synthesis = self._synthesizer.fused_args()
        has_pitch = self._pitch is not None
        pitch = self._pitch.fused_args(self._delayed_spec) if has_pitch else absent_fused_args()
        if synthesis is None or pitch is None:
            return None
        features = self._features.fused_args()
        limits = (_FLUSH_BELOW, _MAX_ABS_SAMPLE)  # the block's checked copy (fused_process)
        release = self._postfilter is not None
        factor = self._release_factor if release else 0.0
        exponent = self._gain_exponent if release else 0.0
        if self._model_frames is None:
            analysis = self._analyzer.fused_args()
            if analysis is None or not self._bridge.passthrough:
                return None
            mask = self._apply_gain is _kernels.apply_mask_gain
            low, high = self._activity_bins
            gains = (mask, self._min_gain, low, high, release, factor, exponent, self._held)
            buffers = (
                self._spec, self._feature_buffer, self._model_out, self._activity,
                self._synthesized, self._fifo,
            )  # fmt: skip
            return (
                self._input, analysis, has_pitch, pitch, features, network, gains, synthesis,
                buffers, limits,
            )  # fmt: skip
        model_frames = self._model_frames.fused_args()
        host_analysis = self._analyzer.fused_args()
        if model_frames is None or host_analysis is None:
            return None
        gains = (
            self._min_gain, release, factor, exponent, self._held,
            *self._high_band.fused_args(),
        )  # fmt: skip
        host = (self._delay_history, self._delayed, host_analysis)
        buffers = (
            self._spec, self._model_spec, self._feature_buffer, self._model_out, self._activity,
            self._synthesized, self._fifo,
        )  # fmt: skip
        return (
            self._input, model_frames, has_pitch, pitch, features, network, gains, host,
            synthesis, buffers, limits,
        )  # fmt: skip

    def _run_chunk(self, size: int) -> None:
        """Run the chunk in ``self._input[:, :size]``, in one numba call where there is one.

        (A method, not a bound method stored on the object: that would be a reference
        cycle, and a Denoiser in a cycle waits for the garbage collector before its FFT
        plans go back to the pool, so ``seproc.denoise`` planned them again on every call.)
        """
        if self._fused is None:
            self._process_chunk(size)
        else:
            self._fused_chunk(size)

    def _fused_chunk(self, size: int) -> None:
        """Run the chunk in ``self._input[:, :size]`` in one numba call (``seproc._hop``)."""
        if not self._states_resident:  # after a reset: the states into their scratches
            self._model.keep_resident(self._states)
            self._states_resident = True
        none = self._no_samples
        if self._model_frames is None:
            frames, self._write_pos, _ = model_rate_chunk(
                size, self._fused, self._write_pos, 0, none, none
            )
        else:
            frames, self._write_pos, self._pending_frames, _ = full_band_chunk(
                size, self._fused, self._write_pos, self._pending_frames, 0, none, none
            )
        self._frames_last_call = frames

    def _fused_process(self, block2d: np.ndarray, target: np.ndarray) -> None:
        """:meth:`process` of one chunk in one numba call: checked copy in, chunk, copy out.

        For a writeable float32 C-contiguous block and target (a host's own buffer, in
        place or not); the two copies were numba calls of their own (~1 µs each).
        """
        if not self._states_resident:  # after a reset: the states into their scratches
            self._model.keep_resident(self._states)
            self._states_resident = True
        n = block2d.shape[1]
        if self._model_frames is None:
            frames, write_pos, read_pos = self._chunk_call(
                n, self._fused, self._write_pos, self._read_pos, block2d, target
            )
        else:
            frames, write_pos, self._pending_frames, read_pos = self._chunk_call(
                n, self._fused, self._write_pos, self._pending_frames, self._read_pos,
                block2d, target,
            )  # fmt: skip
        if frames < 0:
            raise _invalid_samples("block")
        self._write_pos, self._read_pos = write_pos, read_pos
        self._frames_last_call = frames

    def _process_chunk(self, size: int) -> None:
        if self._model_frames is not None:
            n_frames = self._full_band_frames(size)
        else:
            n_frames = self._model_rate_frames(size)
        self._frames_last_call = n_frames
        self._synthesizer.push(self._spec, n_frames, self._synthesized)
        if n_frames == 1:
            finished = self._synthesized_one_frame
        else:
            finished = self._synthesized[:, : n_frames * self._stft.hop_length]
        outer = self._bridge.to_outer(finished)
        _, self._write_pos = _kernels.ring_copy(
            outer, 0, self._fifo, self._write_pos, outer.shape[1]
        )

    def _run_model(
        self,
        c: int,
        n_frames: int,
        spec: np.ndarray,
        features: np.ndarray,
        rows: np.ndarray,
        run: int,
    ) -> None:
        """Channel ``c``: features of ``spec``, the model into ``rows``, then the post-filter.

        One frame runs on the buffers bound once (``self._frame_runs[c][run]``, whose
        output row is ``rows``), several in one call on the model's state.
        """
        self._features.compute_frames(spec, features)
        if n_frames == 1:
            self._frame_runs[c][run]()
        else:
            self._model.run(features, rows, self._states[c])
        if self._postfilter is not None:
            _kernels.release_gains(
                rows, self._one_frame[c].held, self._release_factor, self._gain_exponent
            )

    def _model_rate_frames(self, size: int) -> int:
        """Resample to the model's rate, analyse, run the model, apply its gains."""
        inner = self._bridge.to_inner(self._chunk_views(size)[0])
        n_frames = self._analyzer.push(inner, self._spec)
        pitch = self._pitch
        if pitch is not None:
            pitch.push(inner, inner.shape[1], n_frames, self._delayed_spec, 0)
        low, high = self._activity_bins
        for c in range(self._channels if n_frames else 0):
            views = self._one_frame[c]
            if n_frames == 1:  # a 10 ms callback: the views bound once
                spec, features, rows = views.model_spec, views.features, views.rows[0]
            else:
                spec = self._spec[c, :n_frames]
                features = self._feature_buffer[c, :n_frames]
                rows = self._model_out[c, :n_frames]
            self._run_model(c, n_frames, spec, features, rows, 0)
            if pitch is not None:
                pitch.apply(spec, self._delayed_rows[c], rows, n_frames)
            self._apply_gain(spec, rows, self._min_gain, low, high, views.activity)
        return n_frames

    def _full_band_frames(self, size: int) -> int:
        """Run the model on model-rate frames; apply its gains to the host-rate frames."""
        block, _ = self._chunk_views(size)
        n_model = self._model_frames.process(block, self._model_spec)
        pending = self._pending_frames
        pitch = self._pitch
        if pitch is not None:
            model_frames = self._model_frames
            pitch.push(
                model_frames.samples, model_frames.n_samples, n_model, self._delayed_spec, pending
            )
        for c in range(self._channels if n_model else 0):
            views = self._one_frame[c]
            if n_model == 1:  # a 10 ms callback: the views bound once
                spec, features, rows = views.model_spec, views.features, views.rows[pending]
            else:
                spec = self._model_spec[c, :n_model]
                features = self._feature_buffer[c, :n_model]
                rows = self._model_out[c, pending : pending + n_model]
            # only the rows just produced: a pending row was post-filtered in its own call
            self._run_model(c, n_model, spec, features, rows, pending)
        _kernels.delay_line(self._delay_history, block, size, self._delayed)
        n_frames = self._analyzer.push(self._chunk_views(size)[1], self._spec)
        for c in range(self._channels if n_frames else 0):
            views = self._one_frame[c]
            if n_frames == 1:
                spec, gains = views.host_spec, views.rows[0]
            else:
                spec, gains = self._spec[c, :n_frames], self._model_out[c, :n_frames]
            if pitch is not None:
                pitch.apply(spec, self._delayed_rows[c], gains, n_frames)
            self._high_band.apply(spec, gains, self._min_gain, views.activity)
        left = pending + n_model - n_frames  # 0 or 1 (ModelRateFrames checks)
        if left and n_frames:
            for c in range(self._channels):
                self._model_out[c, 0] = self._model_out[c, n_frames]
                if pitch is not None:
                    self._delayed_spec[c, 0] = self._delayed_spec[c, n_frames]
        self._pending_frames = left
        return n_frames

    def _warm_up(self) -> None:
        """Compile every kernel signature the hot path can reach, then reset.

        numba compiles one version of a kernel per argument type: dtype, layout (C, F or
        any) and read-only flag, of the block and ``out`` and of the internal slices
        whose layout a block's size selects (shorter than a hop, exactly one buffer,
        several buffers). One call of each kind, on silence, compiles them all, so no
        first call compiles (a 48 kHz stereo host with blocks shorter than a hop used
        to compile for hundreds of ms in its first callback).
        """
        channels, largest = self._channels, self._max_block_samples
        hop = max(1, self.hop_length * self._sample_rate // self.model_sample_rate)  # host
        for size in sorted({0, 1, 2, hop - 1, hop, hop + 1, largest - 1, largest, largest + 1}):
            self.process(np.zeros((channels, size), np.float32))
        for dtype in (np.float32, np.float64):
            for size in sorted({0, 2, largest, largest + 1}):  # 2: a size-1 axis is C and F
                for block in _layouts(np.zeros((channels, size), dtype), read_only=True):
                    self.process(block)
                    if size == 2:  # the copy of a longer block's last chunk of this layout
                        _kernels.copy_flushing_tiny(block, self._chunk_views(2)[0], _FLUSH_BELOW)
                for out in _layouts(np.zeros((channels, size), dtype), read_only=False):
                    self.process(np.zeros((channels, size), np.float32), out=out)
        if self._fused is not None:  # compiled now: skip the dispatcher's lookup per call
            none = self._no_samples
            pending = () if self._model_frames is None else (0,)
            example = (0, self._fused, 0, *pending, 0, none, none)
            self._chunk_call = compiled_entry(self._chunk_call, example)
        self.reset()


def _one_call_layout(flags: np.flagsobj) -> bool:
    """Whether an array of these flags has the one layout the one-call chunk was compiled for."""
    return flags.c_contiguous and flags.writeable and flags.aligned


def _stream_stft(framing: tuple[int, int, int], window: str) -> STFT:
    """Return a float32 STFT of ``(n_fft, hop_length, win_length)``, planned with FFTW_ESTIMATE.

    FFTW_MEASURE times candidate algorithms, so two processes may pick different ones
    and disagree in the last bit; ESTIMATE picks the same one every time, so one input
    gives the same output bytes in every process (the Ray engine and the local one, a
    rerun and the first run).
    """
    n_fft, hop_length, win_length = framing
    return STFT(
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=window,
        dtype=np.float32,
        planner_effort="FFTW_ESTIMATE",
    )


def _layouts(array: np.ndarray, *, read_only: bool) -> list[np.ndarray]:
    """Return ``array`` as C-contiguous, F-contiguous and strided copies (and read-only ones)."""
    channels, samples = array.shape
    variants = []
    for frozen in (False, True) if read_only else (False,):
        wide = np.zeros((channels, 2 * samples), array.dtype)
        for variant in (array.copy(), np.asfortranarray(array), wide[:, ::2]):
            variant.flags.writeable = not frozen
            variants.append(variant)
    return variants


def samples_are_valid(block: np.ndarray) -> bool:
    """Return whether a ``(channels, samples)`` block is finite and within +-1e15."""
    return bool(_kernels.all_within(block, _MAX_ABS_SAMPLE))


def _check_samples(block: np.ndarray, name: str) -> None:
    if not samples_are_valid(block):
        raise _invalid_samples(name)


def _invalid_samples(name: str) -> ParameterError:
    return ParameterError(
        f"Parameter {name} holds NaN or Inf values, or samples beyond +-1e15 (+300 dBFS) "
        "whose power would overflow; pass finite audio in about [-1, 1] "
        f"(np.nan_to_num({name}) replaces NaN and Inf). The stream state is unchanged."
    )


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ParameterError(f"Parameter {name}={value!r} must be an integer >= {minimum}.")
    return int(value)


def _min_gain(attenuation_limit_db: float | None) -> float:
    if attenuation_limit_db is None:
        return 0.0
    if (
        isinstance(attenuation_limit_db, bool)
        or not isinstance(attenuation_limit_db, (int, float, np.floating, np.integer))
        or not math.isfinite(attenuation_limit_db)
        or attenuation_limit_db < 0
    ):
        raise ParameterError(
            f"Parameter attenuation_limit_db={attenuation_limit_db!r} must be None or a finite "
            "number of dB >= 0 (0 is a bypass, 12 keeps some ambience)."
        )
    return float(10.0 ** (-float(attenuation_limit_db) / 20.0))

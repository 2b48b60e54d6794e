"""The ONNX model: loading, metadata validation, streaming state, batched runs.

A seproc model is one stateless ONNX graph (see ``models/FORMAT.md``): normalised
log-power features go in as ``features [1, T, F]``, a gain (or a noise estimate)
comes out per frame and bin, and every piece of streaming state goes in as
``<name>_in`` and comes out as ``<name>_out``. :class:`OnnxModel` owns the
onnxruntime session; :class:`ModelState` holds one stream's state tensors, so the
caller (one per channel) owns all state.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

# onnxruntime 1.32 writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,
# onnxruntime.db} for its telemetry when it loads, and prints a warning into the host's
# stderr where HOME is not writable. ORT_DISABLE_TELEMETRY=1, read once when the library
# loads (setting it later, or calling ort.disable_telemetry_events(), still writes the
# files), stops both. setdefault: a value the user set is kept. See docs/RELIABILITY.md.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort

from seproc._blas_net import BlasNet, blas_resident, build_blas_net, load_state, store_state
from seproc._interface import Setting
from seproc._one_frame import OPSET as _ONE_FRAME_OPSET
from seproc._one_frame import one_frame_graph as _one_frame_graph
from seproc._onnx_proto import read_graph, write_model
from seproc._validation import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, check_int, max_threads
from seproc.errors import ModelError, ParameterError

__all__ = [
    "DEFAULT_MODEL_NAME",
    "FORMULATIONS",
    "POSTFILTER_KEYS",
    "FrameRun",
    "ModelInfo",
    "ModelState",
    "OnnxModel",
    "default_model_path",
]

DEFAULT_MODEL_NAME = "seproc-default.onnx"
FORMULATIONS = {"mask": "gain", "noise_subtraction": "noise_db"}
"""Each formulation and the name of the graph output it produces."""

_FEATURES_INPUT = "features"
_ONE_FRAME_TOLERANCE = 1e-5
"""The most the one-frame graph may differ from the file's graph, in any output or
state element, over the frames checked at load time."""
_ONE_FRAME_CHECK_FRAMES = 16
_BLAS_INT8 = True
"""Whether the BLAS engine holds matrices that lie on an int8 grid as int8 (False: float32,
the same weights; ``benchmarks/ab_models.py --engine blas`` times both)."""
ENGINES = ("onnxruntime", "blas")
"""What may evaluate the network: onnxruntime's session(s), or :mod:`seproc._blas_net`."""
_REQUIRED_KEYS = (
    "seproc_model_format",
    "sample_rate_hz",
    "n_fft",
    "hop_length",
    "win_length",
    "window",
    "feature",
    "feature_amin",
    "feature_mean_db",
    "feature_std_db",
    "formulation",
)
_SUPPORTED_FORMATS = ("1", "2")
"""The ``seproc_model_format`` versions this seproc reads; 2 adds the gain post-filter and
the pitch filter."""
POSTFILTER_KEYS = ("gain_release_db_per_s", "gain_exponent", "pitch_filter_strength")
"""The optional metadata keys of a format-2 mask model's gain post-filter (models/FORMAT.md)."""
_WINDOW_MS = (8.0, 128.0)
"""The shortest and longest STFT window (``win_length``, and ``n_fft`` at most the
longer bound) a model may declare, in ms at its ``sample_rate_hz``: speech models use
10 to 64 ms. The bound catches a wrong ``sample_rate_hz`` (320 samples at a claimed
48 kHz would be 6.7 ms) and bounds the latency the STFT adds."""


def default_model_path() -> Path:
    """Return the path of the bundled default model.

    In an installed wheel the model is package data of ``seproc.models``; in a
    source checkout it is ``models/`` beside the ``seproc/`` folder.
    """
    try:
        path = Path(str(resources.files("seproc.models").joinpath(DEFAULT_MODEL_NAME)))
    except ModuleNotFoundError:
        path = Path(__file__).resolve().parent.parent / "models" / DEFAULT_MODEL_NAME
    if not path.is_file():
        raise ModelError(
            f"The bundled model {DEFAULT_MODEL_NAME} is missing (looked at {path}); "
            "reinstall seproc, or pass model=PATH to an ONNX file."
        )
    return path


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself, validated.

    Attributes
    ----------
    path : Path
        The model file.
    sample_rate_hz : int
        The rate the model runs at.
    n_fft, hop_length, win_length : int
        STFT settings, in samples at ``sample_rate_hz``.
    window : str
        The analysis and synthesis window (``"sqrt_hann"``).
    feature : str
        The feature kind (``"log_power_db"``).
    feature_amin : float
        The power floor applied before the logarithm.
    feature_mean_db, feature_std_db : np.ndarray [shape=(n_bins,)], float32
        Per-bin normalisation of the features (read-only).
    formulation : str
        ``"mask"`` (the graph outputs a gain) or ``"noise_subtraction"`` (the graph
        outputs the noise log-power in dB).
    gain_floor_db : float or None
        The lowest gain a mask model outputs, if it says.
    lookahead_frames : int
        Frames of look-ahead; each adds ``hop_length`` samples of latency.
    model_version, description : str
        Free text from the file.
    gain_release_db_per_s : float or None
        The post-filter's release rate (format 2, mask models): how fast, in dB per
        second, a bin's gain may fall; ``None`` when the file does not say (no release).
    gain_exponent : float
        The post-filter's exponent on the released gain (format 2, mask models); 1 when
        the file does not say.
    pitch_filter_strength : float or None
        The pitch (comb) filter's strength before the gains (format 2, mask models;
        ``seproc.pitch``, 1 is RNNoise's); ``None`` when the file does not say (no comb).
    state_shapes : dict[str, tuple[int, ...]]
        The shape of every state tensor, keyed by its name without ``_in``/``_out``.
    """

    path: Path
    sample_rate_hz: int
    n_fft: int
    hop_length: int
    win_length: int
    window: str
    feature: str
    feature_amin: float
    feature_mean_db: np.ndarray
    feature_std_db: np.ndarray
    formulation: str
    gain_floor_db: float | None
    lookahead_frames: int
    model_version: str
    description: str
    state_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    gain_release_db_per_s: float | None = None
    gain_exponent: float = 1.0
    pitch_filter_strength: float | None = None

    @property
    def n_bins(self) -> int:
        """Frequency bins per frame, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def output_name(self) -> str:
        """The graph output this model's formulation produces."""
        return FORMULATIONS[self.formulation]

    @property
    def has_postfilter(self) -> bool:
        """Whether the file asks for a gain post-filter (any of :data:`POSTFILTER_KEYS`)."""
        return (
            self.gain_release_db_per_s is not None
            or self.gain_exponent != 1.0
            or self.pitch_filter_strength is not None
        )

    @property
    def gain_release_factor(self) -> float:
        """The most a post-filtered gain may fall per model hop, as a factor in [0, 1).

        ``10 ** (-gain_release_db_per_s * hop_length / sample_rate_hz / 20)``; 0 without a
        release rate (the held gain is the model's gain).
        """
        if self.gain_release_db_per_s is None:
            return 0.0
        hop_seconds = self.hop_length / self.sample_rate_hz
        return 10.0 ** (-self.gain_release_db_per_s * hop_seconds / 20.0)

    def postfilter_settings(self) -> dict[str, float | None] | None:
        """Return the gain post-filter as ``Denoiser.postfilter`` and ``seproc info`` report it.

        Returns
        -------
        dict or None
            ``{"gain_release_db_per_s", "gain_exponent", "release_factor_per_hop",
            "pitch_filter_strength"}``, or ``None`` when the file carries no post-filter
            (format 1).
        """
        if not self.has_postfilter:
            return None
        return {
            "gain_release_db_per_s": self.gain_release_db_per_s,
            "gain_exponent": self.gain_exponent,
            "release_factor_per_hop": self.gain_release_factor,
            "pitch_filter_strength": self.pitch_filter_strength,
        }


class ModelState:
    """The streaming state of one stream (one channel) through one model.

    Two buffers per state tensor: the run reads one and writes the other, then
    they swap, so no state array is allocated per call. The BLAS engine keeps the
    state in its own layout in its scratch between runs of the same stream and writes
    it back here only when something reads these buffers (:meth:`inputs`,
    :meth:`outputs`, :meth:`swap`, an onnxruntime run): that copy, a transposition
    each way, was a tenth of a frame.
    """

    def __init__(self, state_shapes: dict[str, tuple[int, ...]]) -> None:
        # each direction is one packed buffer (the BLAS engine reads and writes it whole);
        # the named tensors are views into it, in state_shapes order
        total = sum(math.prod(shape) for shape in state_shapes.values())
        self._packed = (np.zeros(total, np.float32), np.zeros(total, np.float32))
        self._buffers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        offset = 0
        for name, shape in state_shapes.items():
            size = math.prod(shape)
            self._buffers[name] = (
                self._packed[0][offset : offset + size].reshape(shape),
                self._packed[1][offset : offset + size].reshape(shape),
            )
            offset += size
        self._current = 0
        # the BLAS engine's scratch for this stream and that model's table, keyed by the
        # model's id; the pair itself marks the scratch holding the newest state
        self._work: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._resident: tuple[np.ndarray, np.ndarray] | None = None
        # onnxruntime bindings to these buffers, made by OnnxModel on the first run,
        # keyed by the model's id and which of its sessions
        self._bindings: dict[tuple[int, bool], tuple[ort.IOBinding, ort.IOBinding]] = {}

    def reset(self) -> None:
        """Zero every state tensor: the start of a new stream."""
        self._resident = None
        self._packed[0].fill(0.0)
        self._packed[1].fill(0.0)
        self._current = 0

    def inputs(self) -> dict[str, np.ndarray]:
        """Return the buffers the next run reads, keyed by state name."""
        self.sync()
        return {name: pair[self._current] for name, pair in self._buffers.items()}

    def outputs(self) -> dict[str, np.ndarray]:
        """Return the buffers the next run writes, keyed by state name."""
        self.sync()
        return {name: pair[1 - self._current] for name, pair in self._buffers.items()}

    def swap(self) -> None:
        """Make the buffers just written the ones the next run reads."""
        self.sync()
        self._current = 1 - self._current

    def sync(self) -> None:
        """Write the state a BLAS engine holds in its scratch back to these buffers."""
        resident = self._resident
        if resident is not None:
            self._resident = None
            store_state(self._packed[self._current], resident[0], resident[1])


class OnnxModel:
    """An onnxruntime session over a seproc model file, run with bound buffers.

    Parameters
    ----------
    path : str or Path or None
        The ONNX file; ``None`` loads the bundled default model.
    num_threads : int
        Threads onnxruntime may use inside one run (``intra_op_num_threads``), 1 to
        ``os.cpu_count()``. One by default: a real-time host usually runs many
        streams, one per core. Global thread settings are never changed.

    one_frame_graph : bool
        Also derive a graph for calls of one frame from the file's graph (see
        ``seproc._one_frame``) and use it for them: the same network and state
        tensors without the bookkeeping that many frames need (0.88-0.92x the time
        of a one-frame run, ``benchmarks/README.md``). It is checked against the
        file's graph on a few frames at load time (within 1e-5 in every output and
        state element) and is not used where the derivation or that check fails
        (:attr:`one_frame_graph` says which). Off by default: it costs a second
        onnxruntime session (about 15 ms to build); :class:`seproc.Denoiser` turns it on.
    engine : {"onnxruntime", "blas"}
        What evaluates the network. ``"blas"`` derives a numba engine from the file's
        weights (``seproc._blas_net``: one compiled call per run, every frame computed
        alone with its products in BLAS; 0.46x onnxruntime's one-frame time on the
        shipped model, ``benchmarks/README.md``) and runs every call on it, one frame or
        many, so any partition of a stream gives the same output bit for bit. It is
        checked against the file's graph at load time (within 1e-5 in every output and
        state element over a few frames) and is not used where its derivation or that
        check fails (:attr:`engine` and :attr:`engine_refusal` say which and why). Its
        sums run in another order than onnxruntime's: over long streams the two drift
        up to ~2e-5 apart (the engine ~1.1e-5 from a float64 evaluation, onnxruntime
        ~1.7e-5). Between runs of one stream the engine keeps the state in its scratch
        (:meth:`ModelState.sync` writes it back for anything else that reads it).

    Raises
    ------
    ModelError
        If the file is missing, is not a valid ONNX model, or does not follow
        seproc's model format (metadata keys, input and output names and shapes).
    ParameterError
        If ``num_threads`` is not an integer from 1 to ``os.cpu_count()``.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        num_threads: int = 1,
        one_frame_graph: bool = False,
        engine: str = "onnxruntime",
    ) -> None:
        cpus = max_threads()
        num_threads = check_int(
            "num_threads",
            num_threads,
            1,
            cpus,
            f", this machine's {cpus} CPUs (more threads only contend for them)",
        )
        if engine not in ENGINES:
            raise ParameterError(f"Parameter engine must be one of {ENGINES}, got {engine!r}.")
        self._path = default_model_path() if path is None else Path(path)
        self._session = _open_session(self._path, num_threads)
        self._info = _read_info(self._path, self._session)
        self._net: BlasNet | None = None
        self._engine_refusal = "not requested" if engine == "onnxruntime" else ""
        if engine == "blas":
            self._net, self._engine_refusal = self._derive_blas()
        self._one_session: ort.InferenceSession | None = None
        self._one_frame_refusal = "not requested"
        if self._net is not None:
            self._one_frame_refusal = "the BLAS engine runs every frame"
        elif one_frame_graph:  # also where the BLAS engine was asked for and refused
            self._one_session, self._one_frame_refusal = self._derive_one_frame(num_threads)

    info = Setting[ModelInfo]("_info", "The model's validated metadata.")
    path = Setting[Path]("_path", "The model file.")

    @property
    def one_frame_graph(self) -> bool:
        """Whether one-frame calls run the derived one-frame graph."""
        return self._one_session is not None

    @property
    def one_frame_refusal(self) -> str:
        """Why the one-frame graph is not in use (empty when it is)."""
        return self._one_frame_refusal

    @property
    def engine(self) -> str:
        """What evaluates the network: ``"onnxruntime"`` or ``"blas"`` (see ``engine=``)."""
        return "onnxruntime" if self._net is None else "blas"

    @property
    def engine_refusal(self) -> str:
        """Why the BLAS engine is not in use (empty when it is)."""
        return self._engine_refusal

    @property
    def int8_matrices(self) -> tuple[str, ...]:
        """The initializers the BLAS engine holds as int8 (empty: float32, or onnxruntime).

        A model whose bottleneck matrices lie on a per-row int8 grid (``training.quantize``)
        has them packed as int8 with one scale per row, a quarter of their float32 bytes,
        and multiplied by an int8 kernel; its output is checked against the file's graph
        as the float32 engine's is.
        """
        return () if self._net is None else self._net.int8_matrices

    def new_state(self) -> ModelState:
        """Return zeroed streaming state for one new stream."""
        state = ModelState(self._info.state_shapes)
        if self._net is not None:
            state._work[id(self)] = (self._net.new_work(), self._net.table)
        return state

    def fused_network(self, states: list[ModelState]) -> tuple | None:
        """``(weights, table, scratches)`` for ``seproc._hop``'s one-call chunk, or None.

        ``scratches`` is a ``(len(states), work_size)`` array whose rows become the
        streams' BLAS scratches (:meth:`run` and :meth:`frame_run` use them from then on;
        a frame run made before holds the old one: make it after): the chunk runs
        the engine with each stream's state resident there, which :meth:`keep_resident`
        makes sure of before each call. None with onnxruntime.
        """
        if self._net is None:
            return None
        net = self._net
        # one (streams, work_size) block whose rows are the streams' scratches: a 2-D array
        # whatever the channel count (one compiled chunk, not one per count)
        scratches = np.zeros((len(states), net.work_size), np.float32)
        for row, state in zip(scratches, states, strict=True):
            state.sync()  # the state leaves any scratch it was in; loaded again when run
            state._work[id(self)] = (row, net.table)
        return (net.weights, net.table, scratches)

    def keep_resident(self, states: list[ModelState]) -> None:
        """Load each state into its BLAS scratch where it is not there (after a reset)."""
        for state in states:
            held = self._work(state)
            if state._resident is not held:
                state.sync()
                load_state(state._packed[state._current], held[0], held[1])
                state._resident = held

    def run(self, features: np.ndarray, out: np.ndarray, state: ModelState) -> None:
        """Run the model over consecutive frames of one stream, in one call.

        Parameters
        ----------
        features : np.ndarray [shape=(frames, n_bins)], float32, C-contiguous
            Normalised features of ``frames >= 1`` consecutive frames.
        out : np.ndarray [shape=(frames, n_bins)], float32, C-contiguous
            Receives the graph's output (gain or noise dB, per the formulation).
        state : ModelState
            The stream's state; read, then advanced past the last frame.

        Notes
        -----
        Inputs and outputs are bound to the caller's buffers, so the run copies
        nothing and allocates no array. The arrays are not checked here: this is
        the hot path, and its callers own correctly shaped buffers. A call of one
        frame runs the one-frame graph where it is in use (:attr:`one_frame_graph`);
        a caller that runs one frame at a time from fixed buffers binds them once
        with :meth:`frame_run` instead.
        """
        if self._net is not None:
            _run_resident(features, out, state, self._net.weights, self._work(state))
            return
        one = features.shape[0] == 1 and self._one_session is not None
        session = self._one_session if one else self._session
        binding = self._state_binding(state, one)
        shape = (1, *features.shape)
        binding.bind_input(_FEATURES_INPUT, "cpu", 0, np.float32, shape, _address(features))
        binding.bind_output(self._info.output_name, "cpu", 0, np.float32, shape, _address(out))
        try:
            session.run_with_iobinding(binding)  # type: ignore[union-attr]
        except Exception as error:  # onnxruntime raises several private exception types
            raise ModelError(
                f"Model {self._path} failed to run on {_frames(features.shape[0])} "
                f"(its graph does not fit seproc's model format): {_first_line(error)}"
            ) from None
        state.swap()

    def frame_run(self, features: np.ndarray, out: np.ndarray, state: ModelState) -> FrameRun:
        """Return a call that runs one frame from fixed buffers, with nothing to bind per call.

        Parameters
        ----------
        features : np.ndarray [shape=(1, n_bins)], float32, C-contiguous
            Where the caller writes each frame's normalised features.
        out : np.ndarray [shape=(1, n_bins)], float32, C-contiguous
            Where each run writes the graph's output.
        state : ModelState
            The stream's state; each run reads it and advances it by one frame.

        Returns
        -------
        FrameRun
            ``run()`` equals ``model.run(features, out, state)`` for a one-frame
            ``features``. The buffers must outlive it (the caller owns them).

        Notes
        -----
        Binding the features and output of each call costs two bindings of about
        5 us each plus their addresses; a :class:`FrameRun` binds everything once,
        for each of the state's two buffer directions.
        """
        for name, array in (("features", features), ("out", out)):
            if array.shape != (1, self._info.n_bins) or array.dtype != np.float32:
                raise ParameterError(
                    f"Parameter {name} must be float32 of shape (1, {self._info.n_bins}), got "
                    f"{array.dtype} {array.shape}."
                )
            if not array.flags.c_contiguous:
                raise ParameterError(
                    f"Parameter {name} must be C-contiguous; pass np.ascontiguousarray({name})."
                )
        if self._net is not None:
            return BlasFrameRun(self._net, features, out, state, self._work(state))  # type: ignore[return-value]
        one = self._one_session is not None
        session = self._one_session if one else self._session
        shape = (1, 1, self._info.n_bins)
        bindings = []
        for current in (0, 1):
            binding = self._bind_state(state, current, one)
            binding.bind_input(_FEATURES_INPUT, "cpu", 0, np.float32, shape, _address(features))
            binding.bind_output(self._info.output_name, "cpu", 0, np.float32, shape, _address(out))
            bindings.append(binding)
        return FrameRun(session, (bindings[0], bindings[1]), state, self._path, (features, out))  # type: ignore[arg-type]

    def _work(self, state: ModelState) -> tuple[np.ndarray, np.ndarray]:
        """Return the BLAS engine's scratch for ``state`` and the engine's table.

        From :meth:`new_state`, else made here; the pair is what ``state._resident``
        holds while that scratch has the newest state.
        """
        net: BlasNet = self._net  # type: ignore[assignment]
        held = state._work.get(id(self))
        if held is None or held[1] is not net.table:  # new, or another model's reused id
            held = state._work[id(self)] = (net.new_work(), net.table)
        return held

    def _derive_blas(self) -> tuple[BlasNet | None, str]:
        """Build and check the BLAS engine; return it, or None and the reason."""
        info = self._info
        try:
            net = build_blas_net(
                read_graph(self._path),
                info.n_bins,
                info.output_name,
                info.state_shapes,
                int8=_BLAS_INT8,
            )
        except Exception as error:  # a graph of another layout
            return None, _first_line(error)
        try:
            names = [output.name for output in self._session.get_outputs()]
            difference = self._difference_from_file(_blas_step(net, info, names))
        except Exception as error:  # e.g. numba without SciPy, which its BLAS calls need
            return None, f"it does not compile or run here: {_first_line(error)}"
        if not difference <= _ONE_FRAME_TOLERANCE:
            return None, f"it differs from the file's graph by {difference:.3g}"
        return net, ""

    def _derive_one_frame(self, num_threads: int) -> tuple[ort.InferenceSession | None, str]:
        """Build and check the one-frame session; return it, or None and the reason."""
        info = self._info
        try:
            graph, inputs, outputs = _one_frame_graph(
                read_graph(self._path), info.state_shapes, info.n_bins, info.output_name
            )
            data = write_model(graph, inputs, outputs, opset=_ONE_FRAME_OPSET)
            session = _open_session_bytes(data, num_threads)
        except Exception as error:  # a graph of another layout, or one onnxruntime refuses
            return None, _first_line(error)
        names = [output.name for output in self._session.get_outputs()]
        difference = self._difference_from_file(
            lambda features, states: session.run(names, {_FEATURES_INPUT: features, **states})
        )
        if not difference <= _ONE_FRAME_TOLERANCE:
            return None, f"it differs from the file's graph by {difference:.3g}"
        return session, ""

    def _difference_from_file(self, step: Callable[..., list[np.ndarray]]) -> float:
        """Run the file's graph and ``step`` frame by frame on seeded noise; largest difference.

        ``step(features [1, 1, bins], {"<state>_in": array})`` returns the file graph's
        outputs in its order (the output, then each new state); both start from the same
        random states and carry their own along, so a difference that grows over the
        frames is seen too.
        """
        rng = np.random.default_rng(0)
        names = [output.name for output in self._session.get_outputs()]
        states = {
            f"{name}_in": (0.5 * rng.standard_normal(shape)).astype(np.float32)
            for name, shape in self._info.state_shapes.items()
        }
        mine = dict(states)
        worst = 0.0
        for _ in range(_ONE_FRAME_CHECK_FRAMES):
            features = (2.0 * rng.standard_normal((1, 1, self._info.n_bins))).astype(np.float32)
            expected = self._session.run(names, {_FEATURES_INPUT: features, **states})
            got = step(features, mine)
            for a, b in zip(expected, got, strict=True):
                worst = max(worst, float(np.max(np.abs(a - b))))
            states = {_state_input(n): a for n, a in zip(names[1:], expected[1:], strict=True)}
            mine = {_state_input(n): a for n, a in zip(names[1:], got[1:], strict=True)}
        return worst

    def _state_binding(self, state: ModelState, one: bool = False) -> ort.IOBinding:
        """Return the binding whose state tensors are bound for ``state``'s next run.

        Each state gets two bindings made once, one per direction of its double
        buffer, so a run re-binds only the features and the output (whose frame
        count varies); binding all state tensors on every call cost about a third
        of a one-frame run.
        """
        state.sync()
        key = (id(self), one)
        bindings = state._bindings.get(key)
        if bindings is None:
            bindings = (self._bind_state(state, 0, one), self._bind_state(state, 1, one))
            state._bindings[key] = bindings
        return bindings[state._current]

    def _bind_state(self, state: ModelState, current: int, one: bool = False) -> ort.IOBinding:
        session = self._one_session if one else self._session
        binding = session.io_binding()  # type: ignore[union-attr]
        for name, (first, second) in state._buffers.items():
            read, write = (first, second) if current == 0 else (second, first)
            binding.bind_input(f"{name}_in", "cpu", 0, np.float32, read.shape, _address(read))
            binding.bind_output(f"{name}_out", "cpu", 0, np.float32, write.shape, _address(write))
        return binding


class FrameRun:
    """One-frame runs of one stream on fixed, bound buffers (see :meth:`OnnxModel.frame_run`)."""

    __slots__ = ("_bindings", "_buffers", "_path", "_session", "_state")

    def __init__(
        self,
        session: ort.InferenceSession,
        bindings: tuple[ort.IOBinding, ort.IOBinding],
        state: ModelState,
        path: Path,
        buffers: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self._session = session
        self._bindings = bindings
        self._state = state
        self._path = path
        self._buffers = buffers  # kept alive as long as the bindings point at them

    def __call__(self) -> None:
        """Run the model on the frame in the bound features; advance the state."""
        state = self._state
        if state._resident is not None:
            state.sync()
        try:
            self._session.run_with_iobinding(self._bindings[state._current])
        except Exception as error:  # onnxruntime raises several private exception types
            raise ModelError(
                f"Model {self._path} failed to run on 1 frame "
                f"(its graph does not fit seproc's model format): {_first_line(error)}"
            ) from None
        state._current = 1 - state._current


class BlasFrameRun:
    """One-frame runs of one stream on the BLAS engine (see :meth:`OnnxModel.frame_run`)."""

    __slots__ = ("_features", "_held", "_out", "_state", "_weights")

    def __init__(
        self,
        net: BlasNet,
        features: np.ndarray,
        out: np.ndarray,
        state: ModelState,
        held: tuple[np.ndarray, np.ndarray],
    ) -> None:
        self._features = features
        self._out = out
        self._state = state
        self._weights = net.weights
        self._held = held

    def __call__(self) -> None:
        """Run the network on the frame in ``features``; advance the state."""
        _run_resident(self._features, self._out, self._state, self._weights, self._held)


def _run_resident(
    features: np.ndarray,
    out: np.ndarray,
    state: ModelState,
    weights: np.ndarray,
    held: tuple[np.ndarray, np.ndarray],
) -> None:
    """Run the BLAS engine on ``state`` with the scratch and table ``held``.

    The state is read from the packed buffers only when another scratch (or none) holds
    it, and stays in ``held``'s scratch afterwards (``ModelState.sync`` writes it back).
    """
    load = state._resident is not held
    if load:
        state.sync()
    blas_resident(features, out, state._packed[state._current], weights, held[0], held[1], load)
    state._resident = held


def _blas_step(
    net: BlasNet, info: ModelInfo, output_names: list[str]
) -> Callable[..., list[np.ndarray]]:
    """One frame of ``net`` on named state arrays, returning the file graph's outputs in order."""
    state = ModelState(info.state_shapes)
    work = net.new_work()
    out = np.zeros((1, info.n_bins), np.float32)

    def step(features: np.ndarray, states: dict[str, np.ndarray]) -> list[np.ndarray]:
        for name, array in state.inputs().items():
            array[...] = states[f"{name}_in"]
        current = state._current
        net.run(features[0], out, state._packed[current], state._packed[1 - current], work)
        state.swap()
        new = state.inputs()  # after the swap: what the frame wrote, keyed by state name
        return [out[None].copy(), *(new[n[: -len("_out")]].copy() for n in output_names[1:])]

    return step


def _frames(count: int) -> str:
    return "1 frame" if count == 1 else f"{count} frames"


def _state_input(output_name: str) -> str:
    """Return the input name of the state that a graph output ``<name>_out`` carries."""
    return output_name[: -len("_out")] + "_in"


def _address(array: np.ndarray) -> int:
    """Return the address of an array's first element, for binding it to onnxruntime."""
    return array.__array_interface__["data"][0]


_SESSIONS: OrderedDict[tuple[int, str, int, int, int], ort.InferenceSession] = OrderedDict()
"""The last :data:`_CACHED_SESSIONS` sessions opened, keyed by the process id, the file's
resolved path, modification time (ns), size and the thread count: ``seproc.denoise``
builds a model per call, and opening the session was 3.5 ms of 51 for 10 s at 16 kHz
(``benchmarks/README.md``). onnxruntime's ``run`` may be called from several threads
on one session; each model keeps its own bindings and state. A forked child opens its
own (a parent's session may hold a thread pool whose threads the child does not have)."""
_CACHED_SESSIONS = 4
_SESSIONS_LOCK = threading.Lock()


def _open_session(path: Path, num_threads: int) -> ort.InferenceSession:
    """Return an onnxruntime session on ``path``, reused while the file is unchanged."""
    if not path.exists():
        raise ModelError(f"Model file {path} does not exist.")
    if not path.is_file():
        raise ModelError(f"Model path {path} is not a file.")
    stat = path.stat()
    if stat.st_size == 0:
        raise ModelError(f"Model file {path} is empty (0 bytes); it is not an ONNX model.")
    key = (os.getpid(), str(path.resolve()), stat.st_mtime_ns, stat.st_size, num_threads)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None:
            _SESSIONS.move_to_end(key)
            return session
    session = _new_session(path, num_threads)
    with _SESSIONS_LOCK:
        _SESSIONS[key] = session
        while len(_SESSIONS) > _CACHED_SESSIONS:
            _SESSIONS.popitem(last=False)
    return session


def _new_session(path: Path, num_threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several private exception types
        raise ModelError(
            f"Model file {path} could not be loaded by onnxruntime (is it a complete ONNX "
            f"file?): {_first_line(error)}"
        ) from None


def _open_session_bytes(data: bytes, num_threads: int) -> ort.InferenceSession:
    """Open a session on a graph built in memory, with the file session's settings.

    ``MatMulAddFusion`` is off: with static shapes onnxruntime would turn the
    bottleneck's MatMul and Add into one Gemm, whose sums round differently from the
    file graph's MatMul (which keeps a dynamic frames axis and is never fused). Without
    it the two graphs agree bit for bit, so a stream's output does not depend on how
    its blocks split into one-frame and many-frame calls.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = num_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(
        data,
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["MatMulAddFusion"],
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _metadata_int(path: Path, meta: dict[str, str], key: str, minimum: int) -> int:
    try:
        value = int(meta[key])
    except ValueError:
        raise ModelError(f"Model {path}: metadata {key}={meta[key]!r} is not an integer.") from None
    if value < minimum:
        raise ModelError(f"Model {path}: metadata {key}={value} must be >= {minimum}.")
    return value


def _metadata_vector(path: Path, meta: dict[str, str], key: str, n_bins: int) -> np.ndarray:
    try:
        vector = np.asarray(json.loads(meta[key]), dtype=np.float32)
    except (ValueError, TypeError):
        raise ModelError(f"Model {path}: metadata {key} is not a JSON list of numbers.") from None
    if vector.shape != (n_bins,) or not np.all(np.isfinite(vector)):
        raise ModelError(
            f"Model {path}: metadata {key} must hold {n_bins} finite numbers "
            f"(n_fft // 2 + 1), got shape {vector.shape}."
        )
    vector.setflags(write=False)
    return vector


def _check_window_duration(path: Path, sample_rate_hz: int, win_length: int, n_fft: int) -> None:
    """Refuse STFT sizes that make no sense at the model's rate (see ``_WINDOW_MS``)."""
    low_ms, high_ms = _WINDOW_MS
    win_ms = 1000.0 * win_length / sample_rate_hz
    fft_ms = 1000.0 * n_fft / sample_rate_hz
    if not low_ms <= win_ms <= high_ms or fft_ms > high_ms:
        raise ModelError(
            f"Model {path}: metadata win_length={win_length} and n_fft={n_fft} at "
            f"sample_rate_hz={sample_rate_hz} make a {win_ms:.3g} ms window and a "
            f"{fft_ms:.3g} ms FFT; seproc needs a window of {low_ms:g} to {high_ms:g} ms and "
            f"an FFT of at most {high_ms:g} ms. Is sample_rate_hz the rate the model was "
            "trained at?"
        )


def _read_info(path: Path, session: ort.InferenceSession) -> ModelInfo:
    meta = dict(session.get_modelmeta().custom_metadata_map)
    missing = [key for key in _REQUIRED_KEYS if key not in meta]
    if missing:
        raise ModelError(
            f"Model {path} is not a seproc model: its metadata lacks {', '.join(missing)} "
            "(see models/FORMAT.md)."
        )
    if meta["seproc_model_format"] not in _SUPPORTED_FORMATS:
        raise ModelError(
            f"Model {path} has seproc_model_format={meta['seproc_model_format']!r}; this "
            f"seproc reads formats {' and '.join(_SUPPORTED_FORMATS)}. Upgrade seproc or "
            "re-export the model."
        )
    sample_rate_hz = _metadata_int(path, meta, "sample_rate_hz", 1)
    if not MIN_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_SAMPLE_RATE_HZ:
        raise ModelError(
            f"Model {path}: metadata sample_rate_hz={sample_rate_hz} is outside "
            f"{MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} Hz, the rates seproc runs at; "
            "the file's metadata is wrong or the model is not for speech."
        )
    n_fft = _metadata_int(path, meta, "n_fft", 2)
    hop_length = _metadata_int(path, meta, "hop_length", 1)
    win_length = _metadata_int(path, meta, "win_length", 1)
    if win_length > n_fft or hop_length > win_length:
        raise ModelError(
            f"Model {path}: metadata needs hop_length <= win_length <= n_fft, got "
            f"hop_length={hop_length}, win_length={win_length}, n_fft={n_fft}."
        )
    _check_window_duration(path, sample_rate_hz, win_length, n_fft)
    for key, allowed in (
        ("window", {"sqrt_hann"}),
        ("feature", {"log_power_db"}),
        ("formulation", set(FORMULATIONS)),
    ):
        if meta[key] not in allowed:
            raise ModelError(
                f"Model {path}: metadata {key}={meta[key]!r} is not one of {sorted(allowed)}."
            )
    try:
        feature_amin = float(meta["feature_amin"])
    except ValueError:
        feature_amin = math.nan
    if not feature_amin > 0 or not math.isfinite(feature_amin):
        raise ModelError(
            f"Model {path}: metadata feature_amin={meta['feature_amin']!r} must be > 0."
        )
    n_bins = n_fft // 2 + 1
    mean_db = _metadata_vector(path, meta, "feature_mean_db", n_bins)
    std_db = _metadata_vector(path, meta, "feature_std_db", n_bins)
    if np.any(std_db <= 0):
        raise ModelError(f"Model {path}: metadata feature_std_db must be > 0 in every bin.")
    gain_floor_db = None
    if "gain_floor_db" in meta:
        try:
            gain_floor_db = float(meta["gain_floor_db"])
        except ValueError:
            gain_floor_db = math.nan
        if not math.isfinite(gain_floor_db):
            raise ModelError(
                f"Model {path}: metadata gain_floor_db={meta['gain_floor_db']!r} must be a "
                "finite number of dB."
            )
    lookahead_frames = (
        _metadata_int(path, meta, "lookahead_frames", 0) if "lookahead_frames" in meta else 0
    )
    formulation = meta["formulation"]
    release_db_per_s, exponent, pitch_strength = _postfilter_metadata(path, meta, formulation)
    state_shapes = _validate_io(path, session, n_bins, FORMULATIONS[formulation])
    return ModelInfo(
        path=path,
        sample_rate_hz=sample_rate_hz,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=meta["window"],
        feature=meta["feature"],
        feature_amin=feature_amin,
        feature_mean_db=mean_db,
        feature_std_db=std_db,
        formulation=formulation,
        gain_floor_db=gain_floor_db,
        lookahead_frames=lookahead_frames,
        model_version=meta.get("model_version", ""),
        description=meta.get("description", ""),
        state_shapes=state_shapes,
        gain_release_db_per_s=release_db_per_s,
        gain_exponent=exponent,
        pitch_filter_strength=pitch_strength,
    )


def _postfilter_metadata(
    path: Path, meta: dict[str, str], formulation: str
) -> tuple[float | None, float, float | None]:
    """Return the post-filter from the metadata, validated.

    ``(gain_release_db_per_s or None, gain_exponent, pitch_filter_strength or None)``.
    Every key is optional, belongs to format 2, and applies to mask models only.
    """
    present = [key for key in POSTFILTER_KEYS if key in meta]
    if not present:
        return None, 1.0, None
    if formulation != "mask":
        raise ModelError(
            f"Model {path}: metadata {', '.join(present)} (the gain post-filter) applies to "
            f"mask models only, but formulation={formulation!r}; remove the key "
            "(python -m training.postfilter IN --out OUT)."
        )
    if meta["seproc_model_format"] == "1":
        raise ModelError(
            f"Model {path}: metadata {', '.join(present)} needs seproc_model_format='2', "
            "got '1' (a format-1 reader would ignore the post-filter); write the keys with "
            "python -m training.postfilter."
        )
    values: dict[str, float] = {}
    for key in present:
        try:
            value = float(meta[key])
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise ModelError(
                f"Model {path}: metadata {key}={meta[key]!r} must be a finite number > 0 "
                "(see models/FORMAT.md, format 2)."
            )
        values[key] = value
    return (
        values.get("gain_release_db_per_s"),
        values.get("gain_exponent", 1.0),
        values.get("pitch_filter_strength"),
    )


def _check_frames_tensor(path: Path, kind: str, arg: ort.NodeArg, n_bins: int) -> None:
    shape = arg.shape
    ok = (
        arg.type == "tensor(float)"
        and len(shape) == 3
        and (shape[0] == 1 or not isinstance(shape[0], int))
        and not isinstance(shape[1], int)
        and shape[2] == n_bins
    )
    if not ok:
        raise ModelError(
            f"Model {path}: {kind} {arg.name!r} must be float32 of shape [1, frames, {n_bins}] "
            f"with a dynamic frames axis (n_bins from the metadata's n_fft), got {arg.type} "
            f"{shape}."
        )


def _validate_io(
    path: Path, session: ort.InferenceSession, n_bins: int, output_name: str
) -> dict[str, tuple[int, ...]]:
    inputs = {arg.name: arg for arg in session.get_inputs()}
    outputs = {arg.name: arg for arg in session.get_outputs()}
    if _FEATURES_INPUT not in inputs:
        raise ModelError(f"Model {path} has no input named {_FEATURES_INPUT!r}.")
    _check_frames_tensor(path, "input", inputs[_FEATURES_INPUT], n_bins)
    if output_name not in outputs:
        raise ModelError(
            f"Model {path}: its formulation needs an output named {output_name!r}; the graph "
            f"has {sorted(outputs)}."
        )
    _check_frames_tensor(path, "output", outputs[output_name], n_bins)
    state_shapes: dict[str, tuple[int, ...]] = {}
    for name, arg in inputs.items():
        if name == _FEATURES_INPUT:
            continue
        if not name.endswith("_in"):
            raise ModelError(
                f"Model {path}: input {name!r} is neither 'features' nor a state '<name>_in'."
            )
        base = name[: -len("_in")]
        partner = outputs.get(f"{base}_out")
        if partner is None:
            raise ModelError(f"Model {path}: state input {name!r} has no output '{base}_out'.")
        if (
            arg.type != "tensor(float)"
            or any(not isinstance(d, int) for d in arg.shape)
            or list(partner.shape) != list(arg.shape)
        ):
            raise ModelError(
                f"Model {path}: state {base!r} must be float32 with one static shape in and out, "
                f"got {arg.type} {arg.shape} in and {partner.type} {partner.shape} out."
            )
        state_shapes[base] = tuple(int(d) for d in arg.shape)
    return state_shapes

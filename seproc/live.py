"""Live use: seproc as a JACK client that denoises its inputs in real time.

One :class:`~seproc.Denoiser` sits between one input and one output port per channel.
JACK's process callback hands it the input port's buffer and lets it write straight
into the output port's buffer (``Denoiser.process(block, out=...)``): no allocation of
audio buffers, no lock, no file or console I/O in the callback. The fixed delay
``Denoiser.latency_samples`` is reported to the graph through a latency callback
(:mod:`seproc._jack_latency`), so hosts that compensate latency (Ardour, PipeWire)
align the denoised signal.

On PipeWire desktops the same client runs through PipeWire's JACK layer::

    pw-jack seproc live --connect-input <mic port> --connect-output <app port>

A live bypass keeps the latency: the output is then the input delayed by exactly
``latency_samples`` (a delay line that runs every period beside the denoiser, so
switching either way is seamless).

The callback records how long each period took as a share of the period's budget
(``period_samples / sample_rate``) in a preallocated array; :class:`LiveStats`
summarises it with the xrun count on exit.

Needs the ``live`` extra (``pip install 'seproc[live]'``: JACK-Client) and libjack
(``apt install jackd2``, or PipeWire's ``pipewire-jack``).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import numpy as np

from seproc import _jack_latency, _kernels
from seproc._interface import Setting, forwards_keywords_to
from seproc._validation import positive_int_argument
from seproc.denoiser import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ, Denoiser
from seproc.errors import ParameterError, SeprocError

__all__ = [
    "LiveClient",
    "LiveError",
    "LiveStats",
    "ServerGoneError",
    "ServerNotRunningError",
    "run",
]

DEFAULT_CLIENT_NAME = "seproc"
TIMING_CAPACITY = 1 << 20
"""Periods whose callback time is kept for the percentiles (the most recent ones)."""
_MIN_BLOCK_SAMPLES = 8192  # the Denoiser's staging size; larger periods still work
_START_SERVER_HINT = (
    "start one first: 'jackd -d dummy -r 48000 -p 256' for a test without sound hardware, "
    "'jackd -d alsa -r 48000 -p 256' for a sound card, or on a PipeWire desktop run "
    "'pw-jack seproc live'"
)


class LiveError(SeprocError, RuntimeError):
    """The live client cannot start or cannot go on (JACK missing, a port, the callback)."""


class ServerNotRunningError(LiveError):
    """No JACK server to connect to."""


class ServerGoneError(LiveError):
    """The JACK server shut the client down during a run.

    Attributes
    ----------
    stats : LiveStats or None
        The run's counters up to the shutdown.
    """

    def __init__(self, message: str, stats: LiveStats | None = None) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass(frozen=True)
class LiveStats:
    """Counters and callback timings of a live run.

    Attributes
    ----------
    sample_rate : int
        The server's rate in Hz.
    period_samples : int
        The server's period (JACK's buffer size) at the end of the run.
    latency_samples : int
        The delay reported to the graph.
    periods : int
        Process callbacks run.
    xruns : int
        Xruns the server reported to this client (any client's overrun counts).
    late_periods : int
        Periods whose callback took longer than the period itself.
    rejected_periods : int
        Periods whose input held NaN, Inf or samples beyond +-1e15: the denoiser
        refused them and the output was silence.
    first_frame : int or None
        JACK frame time of the first period (``None`` before any): the sample of
        the server's timeline that entered the denoiser first.
    callback_p50 : float
        Median callback time as a share of the period budget (``nan`` if no periods).
    callback_p99 : float
        99th percentile, as a share of the period budget.
    callback_max : float
        Longest callback, as a share of the period budget.
    timed_periods : int
        Periods the percentiles cover (the last :data:`TIMING_CAPACITY`).
    """

    sample_rate: int
    period_samples: int
    latency_samples: int
    periods: int
    xruns: int
    late_periods: int
    rejected_periods: int
    first_frame: int | None
    callback_p50: float
    callback_p99: float
    callback_max: float
    timed_periods: int

    @property
    def period_ms(self) -> float:
        """The period budget in milliseconds."""
        return 1000.0 * self.period_samples / self.sample_rate

    def summary(self) -> str:
        """Return the one-line summary ``seproc live`` prints on exit."""
        seconds = self.periods * self.period_samples / self.sample_rate
        text = (
            f"{self.periods} periods ({seconds:.1f} s), {self.xruns} xruns, "
            f"{self.late_periods} late"
        )
        if self.rejected_periods:
            text += f", {self.rejected_periods} rejected (NaN/Inf input)"
        if self.periods:
            over = "" if self.timed_periods == self.periods else f" (last {self.timed_periods})"
            text += (
                f"; callback time p50 {100 * self.callback_p50:.1f}%, "
                f"p99 {100 * self.callback_p99:.1f}%, max {100 * self.callback_max:.1f}% "
                f"of the {self.period_ms:.2f} ms period{over}"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-ready dict."""
        return asdict(self)


def _import_jack() -> Any:
    try:
        import jack
    except (ImportError, OSError) as error:
        raise LiveError(
            f"seproc live needs JACK-Client and libjack ({error}); install them with "
            "\"pip install 'seproc[live]'\" and 'apt install jackd2' (or pipewire-jack)."
        ) from None
    return jack


class LiveClient:
    """A JACK client that denoises each input port into its output port.

    Opening the object connects to the server and builds the denoiser at the server's
    rate; :meth:`start` (or ``with``) activates it and makes the connections asked
    for; :meth:`close` deactivates and closes it.

    Parameters
    ----------
    channels : int
        Input/output port pairs (``in_1`` -> ``out_1``, ...), each denoised with its
        own state.
    attenuation_limit_db : float or None
        As for :class:`~seproc.Denoiser`: ``None`` removes as much noise as the model
        decides, ``12`` keeps some ambience.
    model : str or Path or None
        An ONNX model in seproc's format; ``None`` for the bundled one.
    name : str
        The JACK client name (ports are ``NAME:in_1``, ``NAME:out_1``, ...).
    server : str or None
        The JACK server name; ``None`` for the default (``$JACK_DEFAULT_SERVER``).
    connect_input, connect_output : sequence of str
        Ports to connect to ``in_1``, ``in_2``, ... and from ``out_1``, ``out_2``,
        ... on :meth:`start` (e.g. ``system:capture_1``, ``system:playback_1``).
    bypass : bool
        Start in bypass (:attr:`bypass`).
    postfilter : bool
        As for :class:`~seproc.Denoiser`: ``False`` applies the model's raw gains,
        without the gain post-filter and pitch filter its file carries.

    Raises
    ------
    ServerNotRunningError
        If no JACK server runs under that name.
    LiveError
        If JACK-Client or libjack is missing, or the server's rate is out of range.
    ParameterError
        If an argument is out of range.
    ModelError
        If the model cannot be loaded.

    Notes
    -----
    The process callback allocates no audio buffer: ``Denoiser.process`` writes into
    the output port's buffer, the bypass delay line and the timing array are
    allocated here. JACK-Client itself creates a few small Python objects per port
    and period (a cffi buffer and a NumPy view of the port's memory), which are
    freed at the end of the callback. Any period size works, and a period-size change
    from the server needs nothing; a sample-rate change mutes the output until
    :meth:`poll_events` (the ``run`` loop calls it) has rebuilt the denoiser.

    Examples
    --------
    >>> from seproc.live import LiveClient
    >>> with LiveClient(connect_input=["system:capture_1"]) as client:  # doctest: +SKIP
    ...     print(client.latency_samples)
    ...     input("Enter stops")
    >>> print(client.stats().summary())  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        channels: int = 1,
        attenuation_limit_db: float | None = None,
        model: str | Path | None = None,
        name: str = DEFAULT_CLIENT_NAME,
        server: str | None = None,
        connect_input: Sequence[str] = (),
        connect_output: Sequence[str] = (),
        bypass: bool = False,
        postfilter: bool = True,
    ) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ParameterError(f"Parameter {channels=} must be an integer >= 1.")
        for label, ports in (("connect_input", connect_input), ("connect_output", connect_output)):
            if isinstance(ports, str) or len(ports) > channels:
                raise ParameterError(
                    f"Parameter {label}={ports!r} must be a list of at most {channels} port "
                    f"names (one per channel; channels={channels})."
                )
        jack = _import_jack()
        self._jack = jack
        self._channels = channels
        self._attenuation_limit_db = attenuation_limit_db
        self._postfilter = postfilter
        self._model = model
        self._connect_input = list(connect_input)
        self._connect_output = list(connect_output)
        self._events: collections.deque[str] = collections.deque()
        self._shutdown_reason: str | None = None
        self._callback_error: BaseException | None = None
        self._active = False
        self._closed = False

        self._client = _open_client(jack, name, server)
        try:
            self._setup(bypass)
        except BaseException:
            self._client.close()
            raise

    def _setup(self, bypass: bool) -> None:
        client = self._client
        rate = client.samplerate
        self._check_rate(rate)
        self._period_samples = client.blocksize
        self._chain = self._build_chain(rate, self._period_samples)
        self._bypass = bool(bypass)
        self._in_ports = [client.inports.register(f"in_{c + 1}") for c in range(self._channels)]
        self._out_ports = [client.outports.register(f"out_{c + 1}") for c in range(self._channels)]
        self._timings = np.zeros(TIMING_CAPACITY, np.float32)
        self._periods = 0
        self._late = 0
        self._rejected = 0
        self._xruns = 0
        self._first_frame: int | None = None
        self._latency = _jack_latency.LatencyReporter(
            client,
            list(zip(self._in_ports, self._out_ports, strict=True)),
            self._chain.denoiser.latency_samples,
        )
        client.set_process_callback(self._process)
        client.set_xrun_callback(self._on_xrun)
        client.set_shutdown_callback(self._on_shutdown)
        client.set_blocksize_callback(self._on_blocksize)
        client.set_samplerate_callback(self._on_samplerate)

    # -- settings ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The client's name as the server registered it (it may add a suffix)."""
        return str(self._client.name)

    channels = Setting[int]("_channels", "Input/output port pairs.")

    @property
    def sample_rate(self) -> int:
        """The rate the denoiser runs at, in Hz (the server's)."""
        return self._chain.denoiser.sample_rate

    @property
    def period_samples(self) -> int:
        """The server's period (JACK's buffer size) in samples, as last reported."""
        return self._period_samples

    @property
    def latency_samples(self) -> int:
        """The delay from each input port to its output port, in samples."""
        return self._chain.denoiser.latency_samples

    @property
    def latency_ms(self) -> float:
        """:attr:`latency_samples` in milliseconds."""
        return self._chain.denoiser.latency_ms

    @property
    def input_ports(self) -> list[str]:
        """Full names of the input ports (``NAME:in_1``, ...)."""
        return [port.name for port in self._in_ports]

    @property
    def output_ports(self) -> list[str]:
        """Full names of the output ports (``NAME:out_1``, ...)."""
        return [port.name for port in self._out_ports]

    @property
    def bypass(self) -> bool:
        """Whether the output is the input delayed by :attr:`latency_samples`, undenoised.

        Settable from any thread; takes effect at the next period.
        """
        return self._bypass

    @bypass.setter
    def bypass(self, value: bool) -> None:
        self._bypass = bool(value)

    @property
    def server_gone(self) -> str | None:
        """The server's reason if it shut this client down, else ``None``."""
        return self._shutdown_reason

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> LiveClient:
        """Activate the client and make the connections asked for.

        Returns
        -------
        LiveClient
            This client.

        Raises
        ------
        ParameterError
            If a port to connect does not exist (the client is then closed).
        """
        self._client.activate()
        self._active = True
        pairs = list(zip(self._connect_input, self._in_ports, strict=False)) + list(
            zip(self._out_ports, self._connect_output, strict=False)
        )
        for source, target in pairs:
            try:
                self._client.connect(source, target)
            except self._jack.JackError:
                outputs = isinstance(source, str)  # connecting a port of another client
                wanted = source if outputs else target
                ours = f"{self.name}:"
                known = [
                    port.name
                    for port in self._client.get_ports(is_audio=True, is_output=outputs)
                    if not port.name.startswith(ours)
                ]
                message = (
                    f"Cannot connect {_port_name(source)} to {_port_name(target)}: no audio "
                    f"{'output' if outputs else 'input'} port {wanted!r} on the server. "
                    f"Ports there: {', '.join(known) or 'none'} (jack_lsp lists them)."
                )
                self.close()
                raise ParameterError(message) from None
        self._await_latency()
        return self

    def _await_latency(self, timeout_s: float = 2.0) -> None:
        """Wait until the server has run the latency callback (it does so asynchronously)."""
        deadline = time.monotonic() + timeout_s
        port = self.output_ports[0]
        _jack_latency.recompute_total_latencies(self._client)
        while time.monotonic() < deadline:
            low, _ = _jack_latency.port_latency_range(self._client, port, _jack_latency.CAPTURE)
            if low >= self.latency_samples:
                return
            time.sleep(0.01)

    def close(self) -> None:
        """Deactivate and close the client; safe to call twice, and after a server shutdown."""
        if self._closed:
            return
        self._closed = True
        if self._active and self._shutdown_reason is None:
            self._client.deactivate(ignore_errors=True)
        self._active = False
        self._client.close(ignore_errors=True)

    def __enter__(self) -> LiveClient:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- what the main thread reads ------------------------------------------------------

    def stats(self) -> LiveStats:
        """Return the counters and callback-time percentiles so far."""
        periods = self._periods
        timed = min(periods, TIMING_CAPACITY)
        shares = self._timings[:timed].astype(np.float64)
        p50, p99, worst = (
            (
                float(np.percentile(shares, 50)),
                float(np.percentile(shares, 99)),
                float(shares.max()),
            )
            if timed
            else (math.nan, math.nan, math.nan)
        )
        return LiveStats(
            sample_rate=self.sample_rate,
            period_samples=self._period_samples,
            latency_samples=self.latency_samples,
            periods=periods,
            xruns=self._xruns,
            late_periods=self._late,
            rejected_periods=self._rejected,
            first_frame=self._first_frame,
            callback_p50=p50,
            callback_p99=p99,
            callback_max=worst,
            timed_periods=timed,
        )

    def poll_events(self) -> list[str]:
        """Handle what the server's notifications asked for, outside the audio thread.

        Rebuilds the denoiser after a sample-rate change (the output is muted until
        then) and returns one message per event: period-size and sample-rate
        changes. Call it every few tens of milliseconds from the main thread;
        :func:`run` does.

        Returns
        -------
        list of str
            Messages for the user, oldest first.

        Raises
        ------
        LiveError
            If the process callback failed with an unexpected error (the output is
            then silence), or the new sample rate is out of range.
        """
        if self._callback_error is not None:
            error = self._callback_error
            raise LiveError(
                f"The process callback failed ({type(error).__name__}: {error}); the "
                "output was silenced. Please report this at seproc's issue tracker."
            ) from error
        messages = []
        while self._events:
            messages.append(self._events.popleft())
        pending = self._pending_rate
        if pending is not None and pending != self._chain.denoiser.sample_rate:
            old = self._chain.denoiser.sample_rate
            self._check_rate(pending)
            self._chain = self._build_chain(pending, self._period_samples)
            self._latency.latency_samples = self._chain.denoiser.latency_samples
            self._pending_rate = None
            _jack_latency.recompute_total_latencies(self._client)
            messages.append(
                f"sample rate changed from {old} to {pending} Hz: denoiser rebuilt, "
                f"latency now {self.latency_samples} samples ({self.latency_ms:.1f} ms)"
            )
        return messages

    # -- JACK callbacks ------------------------------------------------------------------

    _pending_rate: int | None = None

    def _process(self, frames: int) -> None:
        """Denoise one period: JACK's process callback, run in its audio thread."""
        start = time.perf_counter()
        chain = self._chain
        if self._first_frame is None:
            self._first_frame = self._client.last_frame_time
        try:
            if chain.denoiser.sample_rate != self._running_rate:
                for port in self._out_ports:
                    port.get_array().fill(0.0)
            elif chain.mono:
                chain.run_mono(
                    self._in_ports[0].get_array(), self._out_ports[0].get_array(), self._bypass
                )
            else:
                chain.run_channels(
                    [port.get_array() for port in self._in_ports],
                    [port.get_array() for port in self._out_ports],
                    self._bypass,
                )
        except ParameterError:  # NaN/Inf input: refused, the stream state is unchanged
            self._rejected += 1
            for port in self._out_ports:
                port.get_array().fill(0.0)
        except Exception as error:  # reported by poll_events, never raised in this thread
            self._callback_error = error
            for port in self._out_ports:
                port.get_array().fill(0.0)
        share = (time.perf_counter() - start) * chain.denoiser.sample_rate / frames
        self._timings[self._periods & (TIMING_CAPACITY - 1)] = share
        self._periods += 1
        if share > 1.0:
            self._late += 1

    def _on_xrun(self, delay_usecs: float) -> None:
        self._xruns += 1

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self._shutdown_reason = reason or "no reason given"

    def _on_blocksize(self, blocksize: int) -> None:
        # JACK suspends the process cycle while this runs: buffers may be reallocated.
        if blocksize == self._period_samples:
            return
        old = self._period_samples
        self._period_samples = blocksize
        if blocksize > self._chain.scratch.shape[1]:
            self._chain = self._build_chain(self._chain.denoiser.sample_rate, blocksize)
        self._events.append(
            f"period changed from {old} to {blocksize} samples "
            f"({1000.0 * blocksize / self.sample_rate:.2f} ms); the latency stays "
            f"{self.latency_samples} samples"
        )

    def _on_samplerate(self, sample_rate: int) -> None:
        self._running_rate = sample_rate
        if sample_rate != self._chain.denoiser.sample_rate:
            self._pending_rate = sample_rate

    # -- helpers -------------------------------------------------------------------------

    def _check_rate(self, rate: int) -> None:
        self._running_rate = rate
        if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
            raise LiveError(
                f"The JACK server runs at {rate} Hz; seproc denoises {MIN_SAMPLE_RATE_HZ} to "
                f"{MAX_SAMPLE_RATE_HZ} Hz. Restart the server at 48000 Hz (jackd -r 48000)."
            )

    def _build_chain(self, rate: int, period_samples: int) -> _Chain:
        block = max(_MIN_BLOCK_SAMPLES, period_samples)
        denoiser = Denoiser(
            self._model,
            sample_rate=rate,
            channels=self._channels,
            attenuation_limit_db=self._attenuation_limit_db,
            max_block_samples=block,
            postfilter=self._postfilter,
        )
        chain = _Chain(denoiser, self._channels, block)
        chain.warm_up(period_samples)
        return chain


class _Chain:
    """The denoiser and every buffer the callback writes, swapped as one reference.

    Every array the callback hands to a numba kernel is C-contiguous float32, of the
    types :meth:`warm_up` compiles for, so no kernel compiles in the audio thread.
    """

    def __init__(self, denoiser: Denoiser, channels: int, block_samples: int) -> None:
        self.denoiser = denoiser
        self.channels = channels
        self.mono = channels == 1
        self.history = np.zeros((channels, denoiser.latency_samples), np.float32)
        self.scratch = np.zeros((channels, block_samples), np.float32)
        # flat, so that (channels, frames) views of them are C-contiguous for any frames
        self.staged = np.zeros(channels * block_samples, np.float32)
        self.denoised = np.zeros(channels * block_samples, np.float32)
        self.delayed = np.zeros(channels * block_samples, np.float32)

    def run_mono(self, block: np.ndarray, out: np.ndarray, bypass: bool) -> None:
        """Denoise (or delay, in bypass) one port buffer into another."""
        frames = block.shape[0]
        if bypass:
            self.denoiser.process(block, out=self.scratch[0, :frames])
            _kernels.delay_line(
                self.history, block.reshape(1, frames), frames, out.reshape(1, frames)
            )
        else:
            self.denoiser.process(block, out=out)
            _kernels.delay_line(self.history, block.reshape(1, frames), frames, self.scratch)

    def run_channels(
        self, blocks: Sequence[np.ndarray], outs: Sequence[np.ndarray], bypass: bool
    ) -> None:
        """Denoise (or delay) one buffer per channel, staged through (channels, frames) views."""
        frames = blocks[0].shape[0]
        size = self.channels * frames
        staged = self.staged[:size].reshape(self.channels, frames)
        denoised = self.denoised[:size].reshape(self.channels, frames)
        delayed = self.delayed[:size].reshape(self.channels, frames)
        for c, block in enumerate(blocks):
            staged[c] = block
        self.denoiser.process(staged, out=denoised)
        _kernels.delay_line(self.history, staged, frames, delayed)
        result = delayed if bypass else denoised
        for c, out in enumerate(outs):
            out[:] = result[c]

    def warm_up(self, frames: int) -> None:
        """Run both paths once on silence, then reset: every kernel compiled before JACK runs."""
        blocks = [np.zeros(frames, np.float32) for _ in range(self.channels)]
        outs = [np.zeros(frames, np.float32) for _ in range(self.channels)]
        for bypass in (False, True):
            if self.mono:
                self.run_mono(blocks[0], outs[0], bypass)
            else:
                self.run_channels(blocks, outs, bypass)
        self.denoiser.reset()
        self.history.fill(0.0)


def _port_name(port: Any) -> str:
    return port if isinstance(port, str) else str(port.name)


def _open_client(jack: Any, name: str, server: str | None) -> Any:
    """Open a client without starting a server; libjack's own messages are kept quiet."""
    messages: list[str] = []
    jack.set_error_function(messages.append)
    jack.set_info_function(lambda _message: None)
    try:
        return jack.Client(name, no_start_server=True, servername=server)
    except jack.JackOpenError:
        which = f"named {server!r}" if server else "(the default server)"
        raise ServerNotRunningError(
            f"No JACK server is running {which}; {_START_SERVER_HINT}."
        ) from None
    finally:
        jack.set_error_function(None)
        jack.set_info_function(None)


@forwards_keywords_to(LiveClient)
def run(
    *,
    duration_s: float | None = None,
    report: Callable[[str], object] | None = None,
    handle_signals: bool = True,
    **client_settings: Any,
) -> LiveStats:
    """Run a :class:`LiveClient` until Ctrl-C, SIGTERM or ``duration_s``; return its stats.

    Parameters
    ----------
    channels, attenuation_limit_db, model, name, server, connect_input, connect_output
        As for :class:`LiveClient`, passed on to it by keyword.
    bypass, postfilter
        As for :class:`LiveClient`, passed on to it by keyword.
    duration_s : float or None
        Stop after this many seconds; ``None`` runs until a signal.
    report : callable or None
        Called with each message for the user (start line, period or rate changes,
        bypass toggles); ``None`` drops them. seproc's library never prints.
    handle_signals : bool
        In the main thread, catch SIGINT and SIGTERM (stop cleanly) and SIGUSR1
        (toggle bypass) for the run and restore the previous handlers after.

    Returns
    -------
    LiveStats
        The run's counters; ``stats.summary()`` is the one-line summary.

    Raises
    ------
    ServerNotRunningError
        If no JACK server is running.
    ServerGoneError
        If the server shut the client down during the run (``error.stats`` holds
        the counters up to then).
    LiveError, ParameterError, ModelError
        As for :class:`LiveClient`.
    """
    say = report or (lambda _message: None)
    stop = threading.Event()
    client = LiveClient(**client_settings)
    previous: dict[int, Any] = {}
    flags = {"toggle": 0}

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()  # Event.set from a handler: the loop below never holds the Event's lock

    def _toggle(signum: int, _frame: FrameType | None) -> None:
        flags["toggle"] += 1

    if handle_signals and threading.current_thread() is threading.main_thread():
        for signum, handler in ((signal.SIGINT, _stop), (signal.SIGTERM, _stop)):
            previous[signum] = signal.signal(signum, handler)
        if hasattr(signal, "SIGUSR1"):
            previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, _toggle)
    try:
        with client:
            say(_start_line(client))
            deadline = None if duration_s is None else time.monotonic() + duration_s
            while not stop.is_set():
                time.sleep(0.02)
                for message in client.poll_events():
                    say(message)
                while flags["toggle"]:
                    flags["toggle"] -= 1
                    client.bypass = not client.bypass
                    say(f"bypass {'on' if client.bypass else 'off'}")
                if client.server_gone is not None:
                    raise ServerGoneError(
                        f"The JACK server stopped ({client.server_gone}); the client is "
                        "closed. Restart the server, then seproc live.",
                        client.stats(),
                    )
                if deadline is not None and time.monotonic() >= deadline:
                    break
        return client.stats()
    finally:
        client.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start_line(client: LiveClient) -> str:
    ports = ", ".join(
        f"{i} -> {o}" for i, o in zip(client.input_ports, client.output_ports, strict=True)
    )
    return (
        f"client {client.name!r} at {client.sample_rate} Hz, period {client.period_samples} "
        f"samples ({1000.0 * client.period_samples / client.sample_rate:.2f} ms); latency "
        f"{client.latency_samples} samples ({client.latency_ms:.1f} ms), reported to the "
        f"graph; ports {ports}; bypass {'on' if client.bypass else 'off'} "
        "(SIGUSR1 toggles); Ctrl-C stops"
    )


# -- the `seproc live` command -------------------------------------------------------------

_EPILOG = """\
examples:
  jackd -d dummy -r 48000 -p 256 &                    a server without sound hardware
  seproc live --connect-input system:capture_1 --connect-output system:playback_1
  pw-jack seproc live                                 on a PipeWire desktop
  seproc live --channels 2 --attenuation-limit-db 12 --name denoise
  kill -USR1 <pid>                                    toggle bypass (latency is kept)

The output lags the input by the latency printed on start; it is reported to the graph
on the ports' latency ranges (jack_lsp -l shows them). On exit one line sums up the run:
periods, xruns, periods whose callback ran past the period ("late"), and the callback
time p50/p99/max as a share of the period budget (100% = the whole period).

exit status: 0 stopped by Ctrl-C/SIGTERM/--duration, 1 the server went away or the
client failed, 2 usage error (no server, a port that does not exist, a bad model).
"""


def add_parser(commands: Any, *, float_db: Callable[[str], float]) -> argparse.ArgumentParser:
    """Add the ``live`` subcommand to the ``seproc`` parser's subparsers.

    Parameters
    ----------
    commands : argparse._SubParsersAction
        The subparsers of the ``seproc`` parser.
    float_db : callable
        The parser of non-negative dB values that ``seproc denoise`` uses.

    Returns
    -------
    argparse.ArgumentParser
        The ``live`` parser, its ``run`` default set to :func:`main`.
    """
    live = commands.add_parser(
        "live",
        help="denoise live as a JACK client (PipeWire: pw-jack seproc live)",
        description="Run a JACK client that denoises its input ports into its output ports "
        "in real time, until Ctrl-C.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    live.add_argument(
        "--channels",
        type=positive_int_argument,
        default=1,
        metavar="N",
        help="port pairs (default 1)",
    )
    live.add_argument(
        "--attenuation-limit-db",
        "--attenuation-limit",
        dest="attenuation_limit_db",
        type=float_db,
        default=None,
        metavar="DB",
        help="attenuate no time-frequency bin by more than DB decibels (default: no limit)",
    )
    live.add_argument(
        "--model", metavar="PATH", default=None, help="an ONNX model in seproc's format"
    )
    live.add_argument(
        "--no-postfilter",
        dest="postfilter",
        action="store_false",
        help="apply the model's raw gains, without the gain post-filter and pitch filter its "
        "file carries",
    )
    live.add_argument(
        "--connect-input",
        action="append",
        default=[],
        metavar="PORT",
        help="connect PORT to the next input (in_1, in_2, ...), e.g. system:capture_1; repeat "
        "for more channels",
    )
    live.add_argument(
        "--connect-output",
        action="append",
        default=[],
        metavar="PORT",
        help="connect the next output (out_1, ...) to PORT, e.g. system:playback_1",
    )
    live.add_argument(
        "--server", metavar="NAME", default=None, help="JACK server name (default: the default)"
    )
    live.add_argument(
        "--name", metavar="NAME", default=DEFAULT_CLIENT_NAME, help="JACK client name"
    )
    live.add_argument(
        "--bypass",
        action="store_true",
        help="start in bypass: the output is the input delayed by the latency "
        "(SIGUSR1 toggles it while running)",
    )
    live.add_argument(
        "--backend",
        choices=("jack",),
        default="jack",
        help="audio backend (only JACK, which PipeWire serves through pw-jack)",
    )
    live.add_argument(
        "--duration", type=float, default=None, metavar="S", help="stop after S seconds"
    )
    live.add_argument(
        "--stats-json",
        metavar="PATH",
        default=None,
        help="on exit, also write the run's counters and timings to PATH as JSON",
    )
    live.set_defaults(run=main)
    return live


def main(args: argparse.Namespace) -> int:
    """Run ``seproc live`` with parsed arguments; return the exit status (0, 1 or 2)."""

    def say(message: str) -> None:
        print(f"seproc live: {message}", file=sys.stderr, flush=True)

    def error(message: str) -> None:
        print(f"seproc live: error: {message}", file=sys.stderr, flush=True)

    try:
        stats = run(
            channels=args.channels,
            attenuation_limit_db=args.attenuation_limit_db,
            model=args.model,
            name=args.name,
            server=args.server,
            connect_input=args.connect_input,
            connect_output=args.connect_output,
            bypass=args.bypass,
            postfilter=args.postfilter,
            duration_s=args.duration,
            report=say,
        )
    except ServerGoneError as gone:
        error(str(gone))
        if gone.stats is not None:
            say(gone.stats.summary())
            _write_stats(args.stats_json, gone.stats)
        return 1
    except (ServerNotRunningError, ParameterError) as failure:
        error(str(failure))
        return 2
    except SeprocError as failure:
        error(str(failure))
        # A LiveError with a cause is the process callback failing mid-run (poll_events);
        # every other error here (no JACK-Client, a rate out of range, a bad model) stops
        # the start, a usage error.
        return 1 if isinstance(failure, LiveError) and failure.__cause__ else 2
    say(stats.summary())
    _write_stats(args.stats_json, stats)
    return 0


def _write_stats(path: str | None, stats: LiveStats) -> None:
    if path is not None:
        Path(path).write_text(json.dumps(stats.as_dict(), indent=2) + "\n")

"""A ctypes binding of libjack's latency API, which JACK-Client 0.5.x does not expose.

A JACK client whose output lags its input reports that lag to the graph through its
ports' latency ranges, so that hosts which compensate (Ardour, PipeWire) can align its
output. A range set once after activation is overwritten by the server whenever it
recomputes the graph's latencies; the range must be set from a latency callback
(``jack_set_latency_callback``), which the server calls once for each direction:

- ``JackCaptureLatency``: for each output port, its capture latency is the capture
  latency of the input port that feeds it, plus the client's own delay;
- ``JackPlaybackLatency``: for each input port, its playback latency is the playback
  latency of the output port it feeds, plus the client's own delay.

These are the rules of JACK's ``types.h`` ("latency callback"). The binding loads the
same ``libjack`` that JACK-Client loads, so both work on the same client.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Sequence
from typing import Any

__all__ = [
    "CAPTURE",
    "PLAYBACK",
    "LatencyReporter",
    "client_pointer",
    "port_latency_range",
    "recompute_total_latencies",
]

CAPTURE = 0
"""``JackCaptureLatency``: the latency from the graph's sources (capture) to a port."""
PLAYBACK = 1
"""``JackPlaybackLatency``: the latency from a port to the graph's sinks (playback)."""


class _LatencyRange(ctypes.Structure):
    _fields_ = (("min", ctypes.c_uint32), ("max", ctypes.c_uint32))


_LatencyCallback = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_lib: Any = None


def _libjack() -> Any:
    """Load libjack once (the same shared object JACK-Client uses) and declare its types."""
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("jack") or "libjack.so.0"
        lib = ctypes.CDLL(name)
        lib.jack_set_latency_callback.argtypes = (
            ctypes.c_void_p,
            _LatencyCallback,
            ctypes.c_void_p,
        )
        lib.jack_set_latency_callback.restype = ctypes.c_int
        for function in (lib.jack_port_get_latency_range, lib.jack_port_set_latency_range):
            function.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_LatencyRange))
            function.restype = None
        lib.jack_recompute_total_latencies.argtypes = (ctypes.c_void_p,)
        lib.jack_recompute_total_latencies.restype = ctypes.c_int
        lib.jack_port_by_name.argtypes = (ctypes.c_void_p, ctypes.c_char_p)
        lib.jack_port_by_name.restype = ctypes.c_void_p
        _lib = lib
    return _lib


def client_pointer(obj: Any) -> int:
    """Return the address of the ``jack_client_t`` or ``jack_port_t`` behind a JACK-Client object.

    Parameters
    ----------
    obj : jack.Client or jack.Port
        An open client or one of its ports.

    Returns
    -------
    int
        The C pointer, for this module's functions.

    Raises
    ------
    RuntimeError
        If the object has no C pointer (a JACK-Client version whose internals differ
        from 0.5.x).
    """
    import jack

    pointer = getattr(obj, "_ptr", None)
    ffi = getattr(jack, "_ffi", None)
    if pointer is None or ffi is None:
        raise RuntimeError(
            f"Cannot find the C pointer of {type(obj).__name__} in JACK-Client "
            f"{getattr(jack, '__version__', '?')}; seproc's latency binding needs "
            "JACK-Client 0.5.x (pip install 'JACK-Client>=0.5,<0.6')."
        )
    return int(ffi.cast("uintptr_t", pointer))


class LatencyReporter:
    """Report a fixed delay between paired input and output ports through a latency callback.

    Parameters
    ----------
    client : jack.Client
        An open, not yet activated client (JACK accepts the callback only before
        activation).
    pairs : sequence of (jack.OwnPort, jack.OwnPort)
        ``(input, output)`` port pairs; the output lags its input by the delay.
    latency_samples : int
        The delay in samples; :attr:`latency_samples` may change it later (call
        :func:`recompute_total_latencies` after).

    Raises
    ------
    RuntimeError
        If libjack refuses the callback.

    Notes
    -----
    The callback runs in JACK's notification thread, holds the GIL for a few
    microseconds, and never runs in the process thread.
    """

    def __init__(
        self,
        client: Any,
        pairs: Sequence[tuple[Any, Any]],
        latency_samples: int,
    ) -> None:
        self._lib = _libjack()
        self.latency_samples = int(latency_samples)
        self._pairs = [(client_pointer(i), client_pointer(o)) for i, o in pairs]
        # Keep the ctypes function object alive as long as the client may call it.
        self._callback = _LatencyCallback(self._on_latency)
        status = self._lib.jack_set_latency_callback(client_pointer(client), self._callback, None)
        if status != 0:
            raise RuntimeError(
                f"libjack refused the latency callback (status {status}); register it "
                "before activating the client."
            )

    def _on_latency(self, mode: int, _arg: object) -> None:
        span = _LatencyRange()
        for in_port, out_port in self._pairs:
            source, target = (in_port, out_port) if mode == CAPTURE else (out_port, in_port)
            self._lib.jack_port_get_latency_range(source, mode, ctypes.byref(span))
            span.min += self.latency_samples
            span.max += self.latency_samples
            self._lib.jack_port_set_latency_range(target, mode, ctypes.byref(span))


def port_latency_range(client: Any, port_name: str, mode: int) -> tuple[int, int]:
    """Return a port's ``(min, max)`` latency range as the graph sees it now.

    Parameters
    ----------
    client : jack.Client
        Any open client on the same server.
    port_name : str
        The port's full name, e.g. ``"seproc:out_1"``.
    mode : int
        :data:`CAPTURE` or :data:`PLAYBACK`.

    Returns
    -------
    (int, int)
        The range in samples.

    Raises
    ------
    ValueError
        If no port has that name.
    """
    lib = _libjack()
    port = lib.jack_port_by_name(client_pointer(client), port_name.encode())
    if not port:
        raise ValueError(f"No JACK port named {port_name!r}; jack_lsp lists the ports.")
    span = _LatencyRange()
    lib.jack_port_get_latency_range(port, mode, ctypes.byref(span))
    return int(span.min), int(span.max)


def recompute_total_latencies(client: Any) -> None:
    """Ask the server to run every client's latency callback again.

    Parameters
    ----------
    client : jack.Client
        An open client.
    """
    _libjack().jack_recompute_total_latencies(client_pointer(client))

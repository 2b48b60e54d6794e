"""Callback time of ``seproc live`` on jackd's dummy driver, beside a pure-Python passthrough.

For each period (128 and 256 samples at 48 kHz by default) the script starts
``jackd --no-realtime -d dummy``, a source client that loops the example's noisy speech,
``seproc live`` as a subprocess (as a user runs it; its ``--stats-json`` gives its
callback times) and, in this process, a passthrough client with the same JACK-Client
calls and no work (``out[:] = in``): the floor that the Python binding costs. Both are
fed by the source in the same run, so both see the same machine load. Times are shares
of the period budget (100% = the whole period).

Then, with ``--allocations``, it runs a :class:`seproc.live.LiveClient` in this process
under ``tracemalloc`` and reports what the process callback leaves allocated after N
periods and the largest transient allocation.

Usage::

    python benchmarks/live_callback.py --seconds 60
    python benchmarks/live_callback.py --seconds 20 --periods 128 256 --allocations
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import jack
import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parent.parent
RATE = 48000


def start_server(name: str, period: int, log: Path | None = None) -> subprocess.Popen:
    with open(log or os.devnull, "w") as output:
        server = subprocess.Popen(
            [
                *("jackd", "--no-realtime", "-n", name),
                *("-d", "dummy", "-r", str(RATE), "-p", str(period)),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            jack.Client("probe", servername=name, no_start_server=True).close()
            return server
        except jack.JackOpenError:
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError("jackd did not start") from None
            time.sleep(0.1)


def looped_speech() -> np.ndarray:
    audio, rate = sf.read(REPO / "examples" / "noisy_speech.wav", dtype="float32")
    return resample_poly(audio, RATE // 1000, rate // 1000).astype(np.float32)


def percentiles(shares: np.ndarray) -> dict[str, float]:
    return {
        "p50": float(np.percentile(shares, 50)),
        "p99": float(np.percentile(shares, 99)),
        "max": float(shares.max()),
    }


def measure(period: int, seconds: float) -> dict[str, object]:
    name = f"seproc-bench-{os.getpid()}-{period}"
    server_log = Path(tempfile.mkdtemp()) / "jackd.log"
    server = start_server(name, period, server_log)
    speech = looped_speech()
    source = jack.Client("src", servername=name, no_start_server=True)
    thru = jack.Client("thru", servername=name, no_start_server=True)
    src_out = source.outports.register("out")
    thru_in, thru_out = thru.inports.register("in"), thru.outports.register("out")
    position = [0]
    shares = np.zeros(int(seconds * RATE / period) + 10_000, np.float32)
    count = [0]

    @source.set_process_callback
    def play(frames: int) -> None:
        k = position[0] % (len(speech) - frames)
        src_out.get_array()[:] = speech[k : k + frames]
        position[0] = k + frames

    @thru.set_process_callback
    def passthrough(frames: int) -> None:
        start = time.perf_counter()
        thru_out.get_array()[:] = thru_in.get_array()
        share = (time.perf_counter() - start) * RATE / frames
        if count[0] < len(shares):
            shares[count[0]] = share
        count[0] += 1

    source.activate()
    thru.activate()
    thru.connect(src_out, thru_in)
    with tempfile.TemporaryDirectory() as folder:
        stats_path = Path(folder) / "stats.json"
        live = subprocess.Popen(
            [
                *(sys.executable, "-m", "seproc.cli", "live", "--server", name),
                *("--connect-input=src:out", f"--stats-json={stats_path}"),
                *("--duration", str(seconds)),
            ],
            cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            stderr=subprocess.PIPE,
            text=True,
        )
        _, log = live.communicate(timeout=seconds + 300)
        stats = json.loads(stats_path.read_text())
    count[0] = min(count[0], len(shares))
    thru_shares = shares[: count[0]].copy()
    for client in (thru, source):
        client.deactivate()
        client.close()
    server.terminate()
    server.wait(timeout=30)
    # jackd names the client that was still running when a cycle ended
    late_clients = re.findall(r"client = (\S+) was not finished", server_log.read_text())
    return {
        "xruns_by_client": {who: late_clients.count(who) for who in sorted(set(late_clients))},
        "period": period,
        "seconds": seconds,
        "seproc": {
            "p50": stats["callback_p50"],
            "p99": stats["callback_p99"],
            "max": stats["callback_max"],
            "periods": stats["periods"],
            "late": stats["late_periods"],
            "xruns": stats["xruns"],
        },
        "passthrough": {**percentiles(thru_shares), "periods": int(count[0])},
        "log": log.strip().splitlines()[-1],
    }


def _traced(count: Callable[[], int], periods: int) -> dict[str, int]:
    """tracemalloc over ``periods`` callbacks: net growth and the largest transient peak."""
    while count() < 200:  # warm: first calls, lazy imports
        time.sleep(0.05)
    tracemalloc.start(25)
    before = tracemalloc.take_snapshot()
    start = count()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    while count() - start < periods:
        time.sleep(0.05)
    current, peak = tracemalloc.get_traced_memory()
    after = tracemalloc.take_snapshot()
    done = count() - start
    tracemalloc.stop()
    files = ("live.py", "jack.py", "denoiser.py", "_kernels.py", "model.py", "stft.py")
    diff = [
        s for s in after.compare_to(before, "filename") if s.traceback[0].filename.endswith(files)
    ]
    return {
        "periods": done,
        "net_bytes_in_callback_files": sum(stat.size_diff for stat in diff),
        "net_blocks_in_callback_files": sum(stat.count_diff for stat in diff),
        "net_bytes_process": current - base,
        "peak_transient_bytes": peak - base,
    }


def allocations(periods: int = 2000, period: int = 256) -> dict[str, object]:
    """What the process callbacks allocate, by tracemalloc (all Python and NumPy memory).

    First a bare JACK-Client passthrough (``out.get_array()[:] = in.get_array()``: what
    JACK-Client itself allocates per period), then seproc's client, one after the other.
    """
    from seproc.live import LiveClient

    name = f"seproc-alloc-{os.getpid()}"
    server = start_server(name, period)
    try:
        thru = jack.Client("thru", servername=name, no_start_server=True)
        thru_in, thru_out = thru.inports.register("in"), thru.outports.register("out")
        count = [0]

        @thru.set_process_callback
        def passthrough(frames: int) -> None:
            thru_out.get_array()[:] = thru_in.get_array()
            count[0] += 1

        with thru:
            passthrough_result = _traced(lambda: count[0], periods)
        with LiveClient(server=name, connect_input=["system:capture_1"]) as client:
            seproc_result = _traced(lambda: client._periods, periods)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"passthrough": passthrough_result, "seproc": seproc_result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--periods", type=int, nargs="*", default=[128, 256])
    parser.add_argument("--allocations", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))  # this checkout's seproc, as the subprocesses get it
    for period in args.periods:
        result = measure(period, args.seconds)
        print(json.dumps(result), flush=True)
        s, t = result["seproc"], result["passthrough"]
        print(
            f"| {period} | {1000 * period / RATE:.2f} ms | {result['seconds']:.0f} s | "
            f"{100 * s['p50']:.1f} / {100 * s['p99']:.1f} / {100 * s['max']:.1f} % | "
            f"{100 * t['p50']:.2f} / {100 * t['p99']:.2f} / {100 * t['max']:.1f} % | "
            f"{s['late']} / {s['periods']} | {s['xruns']} {result['xruns_by_client']} |",
            flush=True,
        )
    if args.allocations:
        print(json.dumps(allocations()), flush=True)


if __name__ == "__main__":
    main()

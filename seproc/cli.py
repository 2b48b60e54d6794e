"""The ``seproc`` command: argument parsing and file/folder walking; the work is done by api.

``seproc denoise IN OUT`` denoises one file into another, or a folder (recursively) into a
mirrored folder; ``seproc info`` prints versions, the model's metadata, latency and the
real-time factor measured on this machine.

Exit codes: 0 when every file was denoised, 1 when any file failed (each failure is
reported on one line and the other files go on), 2 for a usage error (bad arguments, a
missing input, outputs that exist without ``--overwrite``, a model that cannot be loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from seproc._files import (
    AUDIO_EXTENSIONS,
    DEFAULT_FILE_BLOCK_SAMPLES,
    DenoiserPool,
    DenoiseSettings,
    check_readable,
    denoise_file,
    native_path,
    plan_outputs,
    remove_stale_temporaries,
)
from seproc._validation import positive_int_argument
from seproc.errors import ParameterError, SeprocError, one_line

__all__ = ["AUDIO_EXTENSIONS", "main", "plan_outputs"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

_LONG_FILE_S = 60.0  # files longer than this get their own progress bar
_EPILOG_DENOISE = """\
examples:
  seproc denoise noisy.wav clean.wav
  seproc denoise recordings/ cleaned/                 every audio file, recursively
  seproc denoise talk.flac talk-clean.flac --attenuation-limit 12
  seproc denoise in/ out/ --subtype PCM_24 --overwrite
  seproc denoise in/ out/ --skip-existing             resume an interrupted run
  seproc denoise in/ out/ --engine ray --num-workers 8   (needs seproc[ray])

The output keeps the input's sample rate, channel count and subtype (unless --subtype
says otherwise); its format follows OUT's extension. Outputs are written to a
temporary file and renamed into place when complete, so a failure never leaves a
partial output, and an input is never written to.

exit status: 0 all files denoised, 1 some file failed (each reported on one line),
2 usage error.
"""


# -- argument parsing ---------------------------------------------------------------------


def _non_negative_db(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dB") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a finite number of dB >= 0 "
            "(0 attenuates nothing, 12 keeps some ambience)"
        )
    return value


def _subtype(text: str) -> str:
    name = text.upper()
    known = sf.available_subtypes()
    if name not in known:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a soundfile subtype; choose one of {', '.join(sorted(known))}"
        )
    return name


def build_parser() -> argparse.ArgumentParser:
    """Return the ``seproc`` argument parser."""
    from seproc._version import __version__

    parser = argparse.ArgumentParser(
        prog="seproc",
        description="Real-time speech denoising: remove background noise from speech recordings.",
        epilog="Run 'seproc COMMAND --help' (denoise, info, live) for the options of each.",
    )
    parser.add_argument("--version", action="version", version=f"seproc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    denoise = commands.add_parser(
        "denoise",
        help="denoise an audio file, or every audio file in a folder",
        description="Denoise IN into OUT: a file into a file, or a folder (recursively)\n"
        "into a folder with the same layout.",
        epilog=_EPILOG_DENOISE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    denoise.add_argument("input", metavar="IN", help="an audio file or a folder of audio files")
    denoise.add_argument(
        "output",
        metavar="OUT",
        help="the output file (its extension picks the format), or a folder",
    )
    denoise.add_argument(
        "--attenuation-limit",
        metavar="DB",
        type=_non_negative_db,
        default=None,
        help="attenuate no time-frequency bin by more than DB decibels (default: no limit; "
        "0 attenuates nothing, though at rates above 16 kHz all above 8 kHz is still removed; "
        "12 keeps some of the background)",
    )
    denoise.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="an ONNX model in seproc's format (default: the bundled model)",
    )
    denoise.add_argument(
        "--no-postfilter",
        dest="postfilter",
        action="store_false",
        help="apply the model's raw gains to the unfiltered spectrum, without the gain "
        "post-filter and pitch filter its file carries (see 'seproc info'; for A/B "
        "comparisons)",
    )
    denoise.add_argument(
        "--block-size",
        metavar="N",
        type=positive_int_argument,
        default=None,
        help="samples read and denoised at a time (default: 65536); "
        "memory use grows with it, the result does not change",
    )
    denoise.add_argument(
        "--subtype",
        metavar="NAME",
        type=_subtype,
        default=None,
        help="sample format of the outputs, e.g. PCM_16, PCM_24, FLOAT "
        "(default: the input's, where OUT's format allows it)",
    )
    existing = denoise.add_mutually_exclusive_group()
    existing.add_argument(
        "--overwrite",
        action="store_true",
        help="replace outputs that already exist (inputs are never written to)",
    )
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave outputs that already exist alone and denoise only the rest "
        "(to resume an interrupted folder)",
    )
    denoise.add_argument("--quiet", "-q", action="store_true", help="no progress bars, only errors")
    engine = denoise.add_argument_group("engine")
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="'local' (default) denoises here, one file after another; 'ray' spreads a "
        "folder over a Ray cluster (needs seproc[ray])",
    )
    engine.add_argument(
        "--address",
        metavar="ADDR",
        default=None,
        help="with --engine ray: the cluster to join, e.g. 'auto' or 'ray://host:10001' "
        "(default: start Ray on this machine)",
    )
    engine.add_argument(
        "--num-workers",
        metavar="N",
        type=positive_int_argument,
        default=None,
        help="with --engine ray: how many denoisers run at once (default: one per CPU)",
    )
    denoise.set_defaults(run=_run_denoise)

    info = commands.add_parser(
        "info",
        help="print versions, the model's metadata, latency and speed on this machine",
        description="Print the versions seproc runs with, the model's metadata, the "
        "latency at 16 and 48 kHz, and the real-time factor measured here (about 2 s).",
    )
    info.add_argument(
        "--model",
        metavar="PATH",
        default=None,
        help="an ONNX model in seproc's format (default: the bundled model)",
    )
    info.add_argument("--json", action="store_true", help="print one JSON object instead")
    info.set_defaults(run=_run_info)

    from seproc import live  # imports no JACK until run

    live.add_parser(commands, float_db=_non_negative_db)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seproc`` command line; return its exit status.

    Parameters
    ----------
    argv : sequence of str or None
        The arguments after the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        0 on success, 1 if any file failed, 2 for a usage error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    with _signals_interrupt() as received:
        try:
            return args.run(args)
        except KeyboardInterrupt:
            if received:
                name = signal.Signals(received[-1]).name
                print(f"seproc: interrupted by {name}", file=sys.stderr)
                return 128 + received[-1]
            print("seproc: interrupted", file=sys.stderr)
            return 130


@contextmanager
def _signals_interrupt() -> Iterator[list[int]]:
    """Make SIGTERM and SIGHUP interrupt like Ctrl-C, so temporary files are removed.

    Yields the list of signals received; the previous handlers are restored on exit.
    Only the main thread can set handlers; elsewhere nothing changes.
    """
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    wanted = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, interrupt) for signum in wanted}
    try:
        yield received
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _error(message: str) -> None:
    print(f"seproc: error: {message}", file=sys.stderr)


# -- seproc denoise -----------------------------------------------------------------------


def _run_denoise(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.engine == "local" and (args.address is not None or args.num_workers is not None):
        _error("--address and --num-workers need --engine ray.")
        return EXIT_USAGE
    skipped: list[str] = []

    def report_skip(line: str) -> None:
        skipped.append(line)
        print(f"seproc: {line}", file=sys.stderr)

    try:
        pairs = plan_outputs(
            args.input,
            args.output,
            overwrite=args.overwrite or args.skip_existing,
            on_skip=report_skip,
        )
    except ParameterError as error:
        _error(str(error))
        return EXIT_USAGE
    if pairs and args.engine == "local":
        remove_stale_temporaries(dst for _, dst in pairs)  # a killed run's leftovers
    planned = len(pairs)
    if args.skip_existing and args.engine == "local":
        pairs = _skip_verified_outputs(pairs, quiet=args.quiet)
        if not pairs:
            if not args.quiet:
                print(
                    RunSummary(
                        planned, 0, 0, 0.0, time.perf_counter() - started, args.output
                    ).line(),
                    file=sys.stderr,
                )
            return EXIT_OK
    if not pairs:
        also = f"; {len(skipped)} entries skipped (see above)" if skipped else ""
        _error(f"Found no audio file in {args.input} (extensions: {_extension_list()}){also}.")
        return EXIT_USAGE
    if args.engine == "ray":
        return _run_ray(args)
    try:
        from seproc.model import OnnxModel

        OnnxModel(args.model)  # fail once, up front, for a bad --model
    except SeprocError as error:
        _error(str(error))
        return EXIT_USAGE
    summary = _denoise_locally(pairs, args, planned=planned, started=started)
    if summary.failed or not args.quiet:
        print(summary.line(), file=sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


@dataclass(frozen=True)
class RunSummary:
    """What one ``seproc denoise`` run did, for its one summary line.

    Attributes
    ----------
    planned : int
        Input files found (skipped ones included).
    done, failed : int
        Files denoised, files that failed.
    audio_s : float
        Seconds of audio denoised.
    wall_s : float
        Wall-clock seconds of the run, planning included.
    output : str
        Where the outputs went (OUT as given).
    """

    planned: int
    done: int
    failed: int
    audio_s: float
    wall_s: float
    output: str

    @property
    def skipped(self) -> int:
        """Files left alone because a verified output existed (``--skip-existing``)."""
        return self.planned - self.done - self.failed

    def line(self) -> str:
        """One line: counts, audio duration, wall time, real-time factor, output."""
        skipped = f", {self.skipped} skipped" if self.skipped else ""
        factor = f"{self.wall_s / self.audio_s:.3g}" if self.audio_s > 0 else "n/a"
        return (
            f"seproc: {self.done} of {self.planned} files denoised, {self.failed} failed"
            f"{skipped}; {_duration(self.audio_s)} of audio in {_duration(self.wall_s)} "
            f"(real-time factor {factor}); outputs in {self.output}"
        )


def _duration(seconds: float) -> str:
    """Format seconds for a summary line: ``2.35 s``, ``4 min 05 s``, ``1 h 02 min``."""
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _skip_verified_outputs(
    pairs: list[tuple[Path, Path]], *, quiet: bool
) -> list[tuple[Path, Path]]:
    """Keep only the pairs whose output is missing or fails verification.

    An existing output is skipped only when soundfile opens it and it has the input's
    sample rate, channel count and number of frames; a truncated or unreadable one
    is denoised again (the local engine keeps no manifest of checksums).
    """
    todo, verified, redo = [], 0, 0
    for src, dst in pairs:
        if not dst.exists():
            todo.append((src, dst))
        elif _output_matches(src, dst):
            verified += 1
        else:
            redo += 1
            todo.append((src, dst))
    if not quiet and (verified or redo):
        again = f"; {redo} existing outputs failed the check and are redone" if redo else ""
        print(
            f"seproc: skipping {verified} existing outputs, verified (readable, same rate, "
            f"channels and length as the input){again}.",
            file=sys.stderr,
        )
    return todo


def _output_matches(src: Path, dst: Path) -> bool:
    try:
        check_readable(dst)
        wanted, got = sf.info(native_path(src)), sf.info(native_path(dst))
    except (SeprocError, sf.LibsndfileError, RuntimeError, OSError):
        return False
    return (got.samplerate, got.channels, got.frames) == (
        wanted.samplerate,
        wanted.channels,
        wanted.frames,
    )


def _run_ray(args: argparse.Namespace) -> int:
    if not Path(args.input).is_dir():
        _error("--engine ray denoises folders; give a folder as IN, or use --engine local.")
        return EXIT_USAGE
    try:
        from seproc.batch import denoise_folder_ray
    except ImportError as error:
        _error(f"--engine ray needs Ray: pip install 'seproc[ray]' ({error}).")
        return EXIT_USAGE
    try:
        return denoise_folder_ray(
            Path(args.input),
            Path(args.output),
            address=args.address,
            num_workers=args.num_workers,
            model=args.model,
            attenuation_limit_db=args.attenuation_limit,
            block_samples=args.block_size or DEFAULT_FILE_BLOCK_SAMPLES,
            subtype=args.subtype,
            overwrite=args.overwrite,  # without it, the engine skips existing outputs
            postfilter=args.postfilter,
        )
    except SeprocError as error:
        _error(str(error))
        return EXIT_USAGE
    except Exception as error:  # Ray's own errors, e.g. no cluster at --address
        _error(f"the ray engine stopped: {type(error).__name__}: {one_line(error)}")
        return EXIT_FAILED


class _NoProgressBar:
    """Stands in for ``tqdm`` when it is not installed: same calls, nothing drawn."""

    def __init__(self, iterable: Any = None, **_: Any) -> None:
        self._iterable = iterable

    def __iter__(self) -> Any:
        return iter(self._iterable)

    def __enter__(self) -> _NoProgressBar:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def update(self, n: int = 1) -> None:
        """Do nothing (tqdm's ``update``)."""

    def close(self) -> None:
        """Do nothing (tqdm's ``close``)."""

    @staticmethod
    def write(message: str, file: Any = None) -> None:
        """Print a line, as ``tqdm.write`` does."""
        print(message, file=file)


def _progress_bar_class() -> Any:
    """Return ``tqdm`` if installed (``pip install 'seproc[progress]'``), else a stand-in."""
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoProgressBar
    return tqdm


def _denoise_locally(
    pairs: list[tuple[Path, Path]], args: argparse.Namespace, *, planned: int, started: float
) -> RunSummary:
    tqdm = _progress_bar_class()
    settings = DenoiseSettings(
        model=args.model,
        attenuation_limit_db=args.attenuation_limit,
        block_samples=args.block_size or DEFAULT_FILE_BLOCK_SAMPLES,
        subtype=args.subtype,
        postfilter=args.postfilter,
    )
    pool = DenoiserPool(settings)
    done, failures, audio_s = 0, 0, 0.0
    show = not args.quiet
    files_bar = tqdm(
        pairs, desc="files", unit="file", disable=not show or len(pairs) == 1, leave=False
    )
    for src, dst in files_bar:
        try:
            sample_rate, channels, frames = _read_info(src)
            denoiser = pool.get(sample_rate, channels)
            dst.parent.mkdir(parents=True, exist_ok=True)
            long_file = show and frames > _LONG_FILE_S * sample_rate
            with tqdm(
                total=frames,
                desc=src.name,
                unit="sample",
                unit_scale=True,
                disable=not long_file,
                leave=False,
            ) as file_bar:
                result = denoise_file(
                    src, dst, settings, denoiser=denoiser, on_block=file_bar.update
                )
            done += 1
            audio_s += result.duration_s
        except SeprocError as error:
            failures += 1
            message = one_line(error)
            if str(src) not in message:
                message = f"{src}: {message}"
            tqdm.write(f"seproc: failed: {message}", file=sys.stderr)
        except OSError as error:
            failures += 1
            reason = error.strerror or one_line(error)
            tqdm.write(f"seproc: failed: {src}: cannot write {dst}: {reason}", file=sys.stderr)
        except Exception as error:  # a bug, not a user mistake: still one line, and go on
            failures += 1
            tqdm.write(
                f"seproc: failed: {src}: unexpected {type(error).__name__}: {one_line(error)} "
                "(please report this)",
                file=sys.stderr,
            )
    files_bar.close()
    return RunSummary(
        planned=planned,
        done=done,
        failed=failures,
        audio_s=audio_s,
        wall_s=time.perf_counter() - started,
        output=str(args.output),
    )


def _read_info(src: Path) -> tuple[int, int, int]:
    """Return a file's (sample_rate, channels, frames), or raise a one-line SeprocError."""
    check_readable(src)
    try:
        info = sf.info(native_path(src))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = getattr(error, "error_string", None) or one_line(error)
        raise SeprocError(f"Cannot read {src}: {reason}") from None
    return info.samplerate, info.channels, info.frames


def _extension_list() -> str:
    common = [".wav", ".flac", ".ogg", ".mp3", ".aiff"]
    return ", ".join(common) + ", ..."


# -- seproc info --------------------------------------------------------------------------


def _run_info(args: argparse.Namespace) -> int:
    report: dict[str, object] = {"versions": _versions()}
    status = EXIT_OK
    try:
        report["model"] = _model_report(args.model)
        report["latency"] = _latency_report(args.model)
        report["speed"] = _speed_report(args.model)
    except SeprocError as error:
        report["error"] = one_line(error)
        status = EXIT_USAGE
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return status


def _versions() -> dict[str, str]:
    from seproc._version import __version__

    versions = {"seproc": __version__, "python": platform.python_version()}
    for name, distribution in [
        ("numpy", "numpy"),
        ("numba", "numba"),
        ("onnxruntime", "onnxruntime"),
        ("pyfftw", "pyFFTW"),
        ("soundfile", "soundfile"),
        ("libsndfile", None),
        ("pedalboard", "pedalboard"),
    ]:
        if distribution is None:
            versions[name] = sf.__libsndfile_version__
            continue
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    versions["platform"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    return versions


def _model_report(model: str | None) -> dict[str, object]:
    from seproc.model import OnnxModel

    info = OnnxModel(model).info
    return {
        "path": str(info.path),
        "version": info.model_version,
        "description": info.description,
        "sample_rate_hz": info.sample_rate_hz,
        "n_fft": info.n_fft,
        "hop_length": info.hop_length,
        "win_length": info.win_length,
        "window": info.window,
        "feature": info.feature,
        "formulation": info.formulation,
        "gain_floor_db": info.gain_floor_db,
        "lookahead_frames": info.lookahead_frames,
        "postfilter": _rounded_postfilter(info.postfilter_settings()),
        "state_tensors": {name: list(shape) for name, shape in info.state_shapes.items()},
        "size_bytes": info.path.stat().st_size,
    }


def _rounded_postfilter(settings: dict[str, float | None] | None) -> dict | None:
    """Return the model file's gain post-filter for the report, per-hop factor to 6 places."""
    if settings is None:
        return None
    return {**settings, "release_factor_per_hop": round(settings["release_factor_per_hop"], 6)}


def _latency_report(model: str | None) -> dict[str, dict[str, float]]:
    from seproc.denoiser import Denoiser

    report = {}
    for rate in (16000, 48000):
        denoiser = Denoiser(model, sample_rate=rate, warm_up=False)
        report[f"{rate // 1000} kHz"] = {
            "samples": denoiser.latency_samples,
            "ms": round(denoiser.latency_ms, 3),
        }
    return report


#: Threads of the speed measurement (the Denoiser's default; its engine follows from it).
_SPEED_THREADS = 1


def _speed_report(model: str | None, budget_s: float = 1.0) -> dict[str, dict[str, object]]:
    """Time 10 ms blocks of noise, mono, for about ``budget_s`` per rate.

    Each entry says what it measured (rate, block, channels, threads) beside the result,
    and ``"machine"`` the CPU and its load when the measurement started.
    """
    from seproc.denoiser import Denoiser

    report: dict[str, dict[str, object]] = {"machine": _machine_report()}
    rng = np.random.default_rng(0)
    for rate in (16000, 48000):
        block_samples = rate // 100
        denoiser = Denoiser(
            model, sample_rate=rate, max_block_samples=block_samples, num_threads=_SPEED_THREADS
        )
        blocks = (0.1 * rng.standard_normal((100, 1, block_samples))).astype(np.float32)
        for block in blocks[:10]:  # warm caches beyond the constructor's warm-up
            denoiser.process(block)
        processed = 0
        started = time.perf_counter()
        elapsed = 0.0
        while elapsed < budget_s:
            denoiser.process(blocks[processed % len(blocks)])
            processed += 1
            elapsed = time.perf_counter() - started
        audio_s = processed * block_samples / rate
        report[f"{rate // 1000} kHz"] = {
            "sample_rate_hz": rate,
            "block_samples": block_samples,
            "block_ms": 10.0,
            "channels": 1,
            "engine": denoiser._model.engine,
            "int8_matrices": len(denoiser._model.int8_matrices),
            "onnxruntime_threads": _SPEED_THREADS,
            "audio_s": round(audio_s, 3),
            "real_time_factor": round(elapsed / audio_s, 5),
            "times_real_time": round(audio_s / elapsed, 1),
            "ms_per_block": round(1000.0 * elapsed / processed, 4),
        }
    return report


def _machine_report() -> dict[str, object]:
    """Return the CPU's name, its count and the 1-minute load average (where known)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [
                line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")
            ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        load: float | None = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows has no load average
        load = None
    return {"cpu": cpu, "cpus": os.cpu_count(), "load_average_1min": load}


def _postfilter_line(postfilter: dict[str, float | None] | None) -> str:
    """One line for ``seproc info``: the model's gain post-filter, or that it has none."""
    if postfilter is None:
        return "none (format 1: the model's raw gains)"
    release = postfilter["gain_release_db_per_s"]
    parts = [
        "no release"
        if release is None
        else f"release {release:g} dB/s (x{postfilter['release_factor_per_hop']:.4g} per hop)",
        f"exponent {postfilter['gain_exponent']:g}",
    ]
    strength = postfilter.get("pitch_filter_strength")
    if strength is not None:
        parts.append(f"pitch filter {strength:g}")
    return ", ".join(parts) + " (seproc denoise --no-postfilter turns it off)"


def _print_report(report: dict[str, object]) -> None:
    print("versions")
    for name, version in report["versions"].items():
        print(f"  {name:<12} {version}")
    if "error" in report:
        print(f"model\n  error: {report['error']}")
        return
    model = report["model"]
    print("model")
    for key, value in model.items():
        if key == "state_tensors":
            value = ", ".join(f"{name} {tuple(shape)}" for name, shape in value.items()) or "none"
        elif key == "postfilter":
            value = _postfilter_line(value)
        print(f"  {key:<16} {value}")
    print("latency")
    for rate, latency in report["latency"].items():
        print(f"  {rate:<8} {latency['samples']} samples = {latency['ms']:.2f} ms")
    speeds = dict(report["speed"])
    machine = speeds.pop("machine")
    load = machine["load_average_1min"]
    print(
        f"speed (measured now on {machine['cpu']}, {machine['cpus']} CPUs, load average "
        f"{'unknown' if load is None else load}; noise streamed into Denoiser.process)"
    )
    for rate, speed in speeds.items():
        print(
            f"  {rate:<8} block {speed['block_samples']} samples ({speed['block_ms']:g} ms), "
            f"mono, {speed['engine']} engine, {speed['onnxruntime_threads']} thread, "
            f"{speed['audio_s']:.1f} s: "
            f"real-time factor {speed['real_time_factor']:.4f} "
            f"({speed['times_real_time']:.0f}x real time, {speed['ms_per_block']:.3f} ms per block)"
        )


if __name__ == "__main__":
    sys.exit(main())

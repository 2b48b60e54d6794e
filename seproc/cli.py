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
import sys
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from seproc.errors import ParameterError, SeprocError

__all__ = ["AUDIO_EXTENSIONS", "main", "plan_outputs"]

#: File extensions that ``seproc denoise`` picks up when it walks a folder: every
#: format soundfile (libsndfile) reads, plus common aliases. Other files are skipped.
AUDIO_EXTENSIONS = frozenset(
    {f".{name.lower()}" for name in sf.available_formats()}
    | {".aif", ".aifc", ".oga", ".opus", ".wave"}
)

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


def plan_outputs(
    in_path: str | Path, out_path: str | Path, *, overwrite: bool = False
) -> list[tuple[Path, Path]]:
    """List the (input, output) file pairs that ``seproc denoise IN OUT`` processes.

    Parameters
    ----------
    in_path : str or Path
        An audio file, or a folder walked recursively (sorted, hidden files and
        folders skipped, files whose extension is not in :data:`AUDIO_EXTENSIONS`
        skipped).
    out_path : str or Path
        For a file: the output file, or an existing folder to put it in under the
        same name. For a folder: the output folder; each input's path relative to
        ``in_path`` is kept. If ``out_path`` lies inside ``in_path``, files under it
        are not taken as inputs.
    overwrite : bool
        Allow outputs that already exist. An output is never an input, whatever
        this says.

    Returns
    -------
    list of (Path, Path)
        The pairs in processing order; empty if the folder holds no audio file.

    Raises
    ------
    ParameterError
        If ``in_path`` does not exist, a folder goes to a file, an output would
        replace an input, or an output exists and ``overwrite`` is false.
    """
    source, target = Path(in_path), Path(out_path)
    if source.is_dir():
        if target.exists() and not target.is_dir():
            raise ParameterError(
                f"Input {source} is a folder but output {target} is a file; give an output folder."
            )
        if target.resolve() == source.resolve():
            raise ParameterError(
                f"Output folder {target} is the input folder; seproc never writes over its "
                "input. Give another output folder."
            )
        pairs = [(src, target / src.relative_to(source)) for src in _walk(source, target)]
    elif source.is_file():
        as_folder = target.is_dir() or str(out_path).endswith(("/", os.sep))
        dst = target / source.name if as_folder else target
        from seproc.api import _format_for

        _format_for(dst)  # an unwritable extension is a usage error, found before any work
        pairs = [(source, dst)]
    else:
        raise ParameterError(f"Input {source} does not exist; give an audio file or a folder.")

    inputs = {src.resolve() for src, _ in pairs}
    existing = []
    for src, dst in pairs:
        if dst.resolve() in inputs:
            raise ParameterError(
                f"Output {dst} is an input file ({src}); seproc never writes over its input. "
                "Give another output path."
            )
        if dst.exists():
            existing.append(dst)
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ParameterError(
            f"Output {existing[0]}{more} already exists; pass --overwrite to replace "
            f"{'it' if len(existing) == 1 else 'them'} or --skip-existing to keep "
            f"{'it' if len(existing) == 1 else 'them'}."
        )
    return pairs


def _walk(root: Path, exclude: Path) -> list[Path]:
    """Audio files under ``root``, sorted, skipping hidden entries and ``exclude``."""
    excluded = exclude.resolve()
    found = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            name
            for name in subfolders
            if not name.startswith(".") and (here / name).resolve() != excluded
        )
        for name in sorted(files):
            path = here / name
            if not name.startswith(".") and path.suffix.lower() in AUDIO_EXTENSIONS:
                found.append(path)
    return found


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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be an integer >= 1")
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
    from seproc import __version__

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
        "--block-size",
        metavar="N",
        type=_positive_int,
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
        type=_positive_int,
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
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("seproc: interrupted", file=sys.stderr)
        return 130


def _error(message: str) -> None:
    print(f"seproc: error: {message}", file=sys.stderr)


# -- seproc denoise -----------------------------------------------------------------------


def _run_denoise(args: argparse.Namespace) -> int:
    if args.engine == "local" and (args.address is not None or args.num_workers is not None):
        _error("--address and --num-workers need --engine ray.")
        return EXIT_USAGE
    try:
        pairs = plan_outputs(
            args.input, args.output, overwrite=args.overwrite or args.skip_existing
        )
    except ParameterError as error:
        _error(str(error))
        return EXIT_USAGE
    if args.skip_existing:
        kept = [(src, dst) for src, dst in pairs if not dst.exists()]
        if not args.quiet and len(kept) < len(pairs):
            print(f"seproc: skipping {len(pairs) - len(kept)} existing outputs.", file=sys.stderr)
        if not kept:
            return EXIT_OK
        pairs = kept
    if not pairs:
        _error(f"Found no audio file in {args.input} (extensions: {_extension_list()}).")
        return EXIT_USAGE
    if args.engine == "ray":
        return _run_ray(args)
    try:
        from seproc.model import OnnxModel

        OnnxModel(args.model)  # fail once, up front, for a bad --model
    except SeprocError as error:
        _error(str(error))
        return EXIT_USAGE
    return _denoise_locally(pairs, args)


def _run_ray(args: argparse.Namespace) -> int:
    if not Path(args.input).is_dir():
        _error("--engine ray denoises folders; give a folder as IN, or use --engine local.")
        return EXIT_USAGE
    from seproc.api import DEFAULT_FILE_BLOCK_SAMPLES

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
        )
    except SeprocError as error:
        _error(str(error))
        return EXIT_USAGE
    except Exception as error:  # Ray's own errors, e.g. no cluster at --address
        _error(f"the ray engine stopped: {type(error).__name__}: {_one_line(error)}")
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


def _denoise_locally(pairs: list[tuple[Path, Path]], args: argparse.Namespace) -> int:
    tqdm = _progress_bar_class()

    from seproc.api import DEFAULT_FILE_BLOCK_SAMPLES, process_file
    from seproc.denoiser import Denoiser

    block_samples = args.block_size or DEFAULT_FILE_BLOCK_SAMPLES
    denoisers: dict[tuple[int, int], Denoiser] = {}
    failures = 0
    show = not args.quiet
    files_bar = tqdm(
        pairs, desc="files", unit="file", disable=not show or len(pairs) == 1, leave=False
    )
    for src, dst in files_bar:
        try:
            sample_rate, channels, frames = _read_info(src)
            key = (sample_rate, channels)
            if key not in denoisers:
                denoisers[key] = Denoiser(
                    args.model,
                    sample_rate=sample_rate,
                    channels=channels,
                    attenuation_limit_db=args.attenuation_limit,
                    max_block_samples=block_samples,
                )
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
                process_file(
                    src,
                    dst,
                    attenuation_limit_db=args.attenuation_limit,
                    block_samples=block_samples,
                    subtype=args.subtype,
                    denoiser=_ProgressDenoiser(denoisers[key], file_bar.update),
                )
        except SeprocError as error:
            failures += 1
            message = _one_line(error)
            if str(src) not in message:
                message = f"{src}: {message}"
            tqdm.write(f"seproc: failed: {message}", file=sys.stderr)
        except OSError as error:
            failures += 1
            reason = error.strerror or _one_line(error)
            tqdm.write(f"seproc: failed: {src}: cannot write {dst}: {reason}", file=sys.stderr)
        except Exception as error:  # a bug, not a user mistake: still one line, and go on
            failures += 1
            tqdm.write(
                f"seproc: failed: {src}: unexpected {type(error).__name__}: {_one_line(error)} "
                "(please report this)",
                file=sys.stderr,
            )
    files_bar.close()
    if failures:
        print(
            f"seproc: {len(pairs) - failures} of {len(pairs)} files denoised, {failures} failed.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if show and len(pairs) > 1:
        print(f"seproc: {len(pairs)} files denoised into {args.output}.", file=sys.stderr)
    return EXIT_OK


def _read_info(src: Path) -> tuple[int, int, int]:
    """Return a file's (sample_rate, channels, frames), or raise a one-line SeprocError."""
    try:
        info = sf.info(str(src))
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        reason = getattr(error, "error_string", None) or _one_line(error)
        raise SeprocError(f"Cannot read {src}: {reason}") from None
    return info.samplerate, info.channels, info.frames


class _ProgressDenoiser:
    """A reused Denoiser that reports each block it processes to a progress callback.

    ``process_file`` accepts a denoiser to reuse; this wrapper gives it one that
    also moves the per-file progress bar, without changing what is computed.
    """

    def __init__(self, denoiser: object, progress: Callable[[int], object]) -> None:
        self._denoiser = denoiser
        self._progress = progress

    def __getattr__(self, name: str) -> object:
        return getattr(self._denoiser, name)

    def process(self, block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        result = self._denoiser.process(block, out)
        self._progress(block.shape[-1])
        return result


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


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
        report["error"] = _one_line(error)
        status = EXIT_USAGE
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_report(report)
    return status


def _versions() -> dict[str, str]:
    from seproc import __version__

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
        "state_tensors": {name: list(shape) for name, shape in info.state_shapes.items()},
        "size_bytes": info.path.stat().st_size,
    }


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


#: onnxruntime threads of the speed measurement (the Denoiser's default).
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
            f"mono, {speed['onnxruntime_threads']} onnxruntime thread, {speed['audio_s']:.1f} s: "
            f"real-time factor {speed['real_time_factor']:.4f} "
            f"({speed['times_real_time']:.0f}x real time, {speed['ms_per_block']:.3f} ms per block)"
        )


if __name__ == "__main__":
    sys.exit(main())

"""Denoise a corpus on Ray Data: one laptop or a cluster, resumable, nothing lost.

The data path, top to bottom:

1. list the input files (recursive) and plan one output per input, like the local CLI;
2. read the manifest of an earlier run in the output folder, if any, and remove the
   ``.*.partial`` temporary files a killed run left behind;
3. a Ray Dataset with one row (input path, output path, expected checksums) per file;
4. ``map_batches`` with an actor class, :class:`_FileWorker`: each actor keeps one
   :class:`~seproc.Denoiser` per (sample rate, channels), model loaded once,
   onnxruntime on one thread, and runs :func:`seproc.api.process_file` on each file,
   the same per-file code path as the local engine (so outputs are byte-identical);
5. the driver appends each result to the manifest as it arrives, then rewrites the
   manifest with one row per input and returns a :class:`BatchSummary`.

Every output is written to a temporary file beside it and renamed into place when
complete (``process_file`` does this), so a worker that dies mid-file leaves no
partial output; Ray restarts the worker and retries the file, and a file whose
worker dies on every try is reported failed. Each actor holds two files, the one it
denoises and the next, so it never waits for the driver between files; which file
killed a worker is told by a hidden attempt file that the worker creates before it
starts a file and removes when done, so a file queued behind a killer is not blamed.

Ray is an optional dependency: ``pip install "seproc[ray]"``. It is imported only
when a function here runs.
"""

from __future__ import annotations

import csv
import os
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seproc._files import (
    DEFAULT_FILE_BLOCK_SAMPLES,
    DenoiseSettings,
    os_error_reason,
    plan_outputs,
    remove_stale_temporaries,
    temporary_prefix,
)
from seproc._interface import forwards_keywords_to
from seproc.errors import ParameterError, SeprocError, one_line

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "BatchSummary",
    "denoise_corpus",
    "denoise_folder_ray",
    "read_manifest",
]

MANIFEST_NAME = "seproc-manifest.csv"
"""The manifest's file name inside the output folder."""

MANIFEST_COLUMNS = (
    "input",
    "output",
    "status",
    "error",
    "sample_rate",
    "channels",
    "duration_s",
    "processing_s",
    "real_time_factor",
    "input_sha256",
    "output_sha256",
    "worker",
    "finished_utc",
)
"""Columns of the manifest, in order (see :func:`denoise_corpus`)."""

STATUS_OK, STATUS_FAILED, STATUS_SKIPPED = "ok", "failed", "skipped"
_FILE_TRIES = 4
"""A file whose worker dies this many times is reported failed."""
_FILES_IN_FLIGHT = 2
"""Files sent to an actor at once: the one it denoises and the next (no idle gap)."""
_TASK_RETRIES = _FILES_IN_FLIGHT * _FILE_TRIES
"""Ray's retries of one file's task: the file ahead of it may kill the actor
``_FILE_TRIES`` times, and so may the file itself, before its attempt file says so."""
_KILL_ENV = "SEPROC_BATCH_KILL_WORKER_ON"


@dataclass(frozen=True)
class BatchSummary:
    """What one batch run did.

    Attributes
    ----------
    files_ok : int
        Files denoised by this run.
    files_failed : int
        Files that could not be denoised (their manifest rows say why).
    files_skipped : int
        Files whose output an earlier run wrote and whose checksums still match.
    audio_s : float
        Seconds of audio denoised by this run (``ok`` files only).
    wall_s : float
        Wall-clock seconds the run took, Ray start included.
    manifest : Path
        The manifest file.
    """

    files_ok: int
    files_failed: int
    files_skipped: int
    audio_s: float
    wall_s: float
    manifest: Path

    @property
    def audio_hours_per_wall_hour(self) -> float:
        """Throughput: hours of audio denoised per hour of wall-clock time."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0 when no file failed, 1 otherwise (the command line's exit status)."""
        return 0 if self.files_failed == 0 else 1

    def line(self) -> str:
        """One summary line for a terminal or a log."""
        return (
            f"seproc: {self.files_ok} ok, {self.files_failed} failed, "
            f"{self.files_skipped} skipped; {self.audio_s / 3600:.3f} h of audio in "
            f"{self.wall_s:.1f} s ({self.audio_hours_per_wall_hour:.1f} audio-hours per "
            f"wall-hour); manifest {self.manifest}"
        )


def denoise_corpus(
    in_dir: str | Path,
    out_dir: str | Path,
    *,
    address: str | None = None,
    num_workers: int | None = None,
    model: str | Path | None = None,
    attenuation_limit_db: float | None = None,
    block_samples: int = DEFAULT_FILE_BLOCK_SAMPLES,
    subtype: str | None = None,
    overwrite: bool = False,
    postfilter: bool = True,
    on_skip: Callable[[str], object] | None = None,
    _stop_after_files: int | None = None,
) -> BatchSummary:
    """Denoise every audio file under ``in_dir`` into ``out_dir`` on Ray Data.

    Outputs mirror the input tree (same relative path, same format, sample rate,
    channels and subtype) and are byte-identical to what
    :func:`seproc.api.process_file` writes for each file. A manifest,
    ``out_dir/seproc-manifest.csv``, gets one row per input.

    Parameters
    ----------
    in_dir : str or Path
        The folder to read, recursively; every file whose extension soundfile
        reads (``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ...) is an input. Names
        starting with ``.`` are ignored. The listing is
        :func:`seproc.cli.plan_outputs`, the local engine's.
    out_dir : str or Path
        Where outputs go; created if missing. It must not be ``in_dir``.
    address : str or None
        ``None`` starts a new local Ray instance with ``num_workers`` CPUs (and
        shuts it down afterwards), or joins the cluster that the ``RAY_ADDRESS``
        environment variable names (as inside ``ray job submit``); ``"auto"``
        joins the cluster this machine belongs to (``ray start`` ran here);
        ``"ray://host:10001"`` joins through Ray Client. When Ray is already
        initialised in this process, that session is used and left running.
    num_workers : int or None
        Denoising actors, each on one CPU with one onnxruntime thread. ``None``:
        one per CPU (``os.cpu_count()`` locally, every CPU of the cluster otherwise);
        never more than the cluster's CPUs when the run starts, nor than files.
    model, attenuation_limit_db, block_samples, subtype
        As for :func:`seproc.api.process_file`. A model file must be readable at
        the same path on every node.
    overwrite : bool
        ``False`` resumes: a file whose output exists, whose manifest row says
        ``ok`` (or ``skipped``) and whose input and output checksums still match
        that row is skipped; every other file is (re)done. ``True`` redoes all.
    postfilter : bool
        As for :class:`~seproc.Denoiser`: ``False`` applies the model's raw gains.
    on_skip : callable or None
        Called with one line for each entry of ``in_dir`` left out although its name
        looks like audio (a FIFO, a broken link, a link loop, an unreadable folder);
        see :func:`seproc.cli.plan_outputs`.

    Returns
    -------
    BatchSummary
        Counts, audio seconds, wall seconds; ``exit_code`` is 1 if any file failed.

    Raises
    ------
    ParameterError
        If a folder or a setting is wrong.
    ModelError
        If the model file is missing or invalid (checked before Ray starts).
    SeprocError
        If Ray cannot start or join the cluster at ``address``.
    KeyboardInterrupt
        On Ctrl-C; the manifest keeps every file finished so far.

    Notes
    -----
    Manifest columns, in order: ``input`` and ``output`` (paths relative to
    ``in_dir`` and ``out_dir``), ``status`` (``ok``, ``failed`` or ``skipped``),
    ``error`` (why it failed, else empty), ``sample_rate``, ``channels``,
    ``duration_s`` (audio seconds), ``processing_s`` (wall seconds for that file,
    reading and writing included), ``real_time_factor`` (``processing_s`` over
    ``duration_s``), ``input_sha256``, ``output_sha256``, ``worker``
    (``host:pid``) and ``finished_utc``. A skipped row keeps the figures of the
    run that wrote the output.

    During a run, rows are appended to the manifest as files finish, so a killed
    run loses nothing it finished; at the end the manifest is rewritten with one
    row per input, in input order. Run one batch per output folder at a time.

    A worker that dies mid-file (killed, out of memory) leaves only hidden
    ``.NAME.*.partial`` files, which this function removes; Ray restarts the
    worker and retries the file up to 3 times before reporting it failed.

    For tests only: ``_stop_after_files=N`` stops the driver like a Ctrl-C once N
    files are recorded, and the environment variable
    ``SEPROC_BATCH_KILL_WORKER_ON=NAME[=MARKER]`` makes the worker that takes the
    file ``NAME`` exit mid-file (once, if ``MARKER`` names a file to create).
    """
    started = time.perf_counter()
    in_root, out_root = Path(in_dir), Path(out_dir)
    workers = _check_settings(in_root, out_root, num_workers, block_samples)
    out_root.mkdir(parents=True, exist_ok=True)
    manifest = out_root / MANIFEST_NAME
    pairs = _plan_outputs(in_root, out_root, on_skip)
    previous = {} if overwrite or not manifest.exists() else _rows_by_input(manifest)
    _remove_partials(out_root, pairs)
    tasks = [
        _task(src, dst, in_root, previous.get(_relative(src, in_root)), overwrite)
        for src, dst in pairs
    ]
    model_path = None if model is None else str(Path(model).resolve())
    if pairs:
        from seproc.model import OnnxModel

        OnnxModel(model_path)  # a bad model fails here, once, not once per file on the workers
    worker_settings = {
        "settings": DenoiseSettings(
            model=model_path,
            attenuation_limit_db=attenuation_limit_db,
            num_threads=1,
            block_samples=block_samples,
            subtype=subtype,
            postfilter=postfilter,
        ),
        "kill_on": os.environ.get(_KILL_ENV),
    }

    results: dict[str, dict[str, str]] = {}
    if tasks:
        with _ray_session(address, workers) as cluster_cpus, _Journal(manifest) as journal:
            # never more actors than CPUs: Ray would wait forever for the rest
            actors = min(workers or cluster_cpus, cluster_cpus, len(tasks))
            for row in _run_on_ray(tasks, actors, worker_settings):
                row = _finish_row(row, previous.get(row["input"]), in_root, out_root)
                journal.append(row)
                results[row["input"]] = row
                if _stop_after_files is not None and len(results) >= _stop_after_files:
                    raise KeyboardInterrupt(f"stopped after {len(results)} files (test hook)")

    rows = []
    for src, dst in pairs:
        key = _relative(src, in_root)
        rows.append(results.get(key) or _worker_died_row(key, _relative(dst, out_root)))
    _write_manifest(manifest, rows)
    _remove_partials(out_root, pairs)
    done = [row for row in rows if row["status"] == STATUS_OK]
    return BatchSummary(
        files_ok=len(done),
        files_failed=sum(row["status"] == STATUS_FAILED for row in rows),
        files_skipped=sum(row["status"] == STATUS_SKIPPED for row in rows),
        audio_s=sum(float(row["duration_s"] or 0.0) for row in done),
        wall_s=time.perf_counter() - started,
        manifest=manifest,
    )


@forwards_keywords_to(denoise_corpus, leave_out=("on_skip", "_stop_after_files"))
def denoise_folder_ray(in_dir: str | Path, out_dir: str | Path, **settings: Any) -> int:
    """Run :func:`denoise_corpus`, print its summary line, return the exit status.

    This is what ``seproc denoise IN_DIR OUT_DIR --engine ray`` runs. The
    parameters are those of :func:`denoise_corpus`, passed on by keyword, but
    ``on_skip``: each entry left out is printed to stderr.

    Returns
    -------
    int
        0 when every file was denoised or skipped, 1 when any failed.
    """
    summary = denoise_corpus(
        in_dir,
        out_dir,
        **settings,
        on_skip=lambda line: print(f"seproc: {line}", file=sys.stderr, flush=True),
    )
    print(summary.line(), flush=True)
    return summary.exit_code


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Read a manifest written by :func:`denoise_corpus`.

    Parameters
    ----------
    path : str or Path
        The manifest file (``OUT_DIR/seproc-manifest.csv``).

    Returns
    -------
    list of dict
        One dict per row, keyed by :data:`MANIFEST_COLUMNS`, values as strings.
        After a finished run there is one row per input; after a killed run,
        later rows for an input supersede earlier ones.
    """
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return [
            {column: row.get(column) or "" for column in MANIFEST_COLUMNS}
            for row in csv.DictReader(handle)
        ]


# -- planning ------------------------------------------------------------------------------


def _check_settings(
    in_root: Path, out_root: Path, num_workers: int | None, block_samples: int
) -> int | None:
    if not in_root.is_dir():
        raise ParameterError(f"Input folder {in_root} does not exist or is not a folder.")
    if out_root.exists() and out_root.resolve() == in_root.resolve():
        raise ParameterError(
            f"Output folder {out_root} is the input folder; seproc never overwrites input. "
            "Choose another output folder."
        )
    if num_workers is not None and (
        isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1
    ):
        raise ParameterError(
            f"Parameter num_workers={num_workers!r} must be an integer >= 1, or None for one "
            "worker per CPU."
        )
    if isinstance(block_samples, bool) or not isinstance(block_samples, int) or block_samples < 1:
        raise ParameterError(f"Parameter block_samples={block_samples!r} must be an integer >= 1.")
    return num_workers


def _plan_outputs(
    in_root: Path, out_root: Path, on_skip: Callable[[str], object] | None
) -> list[tuple[Path, Path]]:
    """List the (input, output) pairs exactly as ``seproc denoise IN OUT`` does."""
    # Existing outputs are allowed: this engine decides from the manifest what to redo.
    return plan_outputs(in_root, out_root, overwrite=True, on_skip=on_skip)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _rows_by_input(manifest: Path) -> dict[str, dict[str, str]]:
    """Return the last row of each input in a manifest (later rows supersede earlier ones)."""
    try:
        rows = read_manifest(manifest)
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}  # unreadable: redo everything rather than trust it
    return {row["input"]: row for row in rows}


def _task(
    src: Path, dst: Path, in_root: Path, previous: dict[str, str] | None, overwrite: bool
) -> dict[str, str]:
    """One Dataset row; ``expect_*`` are set when an earlier run's output may be kept."""
    keep = (
        not overwrite
        and previous is not None
        and previous["status"] in (STATUS_OK, STATUS_SKIPPED)
        and bool(previous["output_sha256"])
    )
    return {
        "src": str(src.resolve()),
        "dst": str(dst.resolve()),
        "input": _relative(src, in_root),
        "expect_input_sha256": previous["input_sha256"] if keep else "",
        "expect_output_sha256": previous["output_sha256"] if keep else "",
    }


def _remove_partials(out_root: Path, pairs: list[tuple[Path, Path]]) -> None:
    """Remove planned outputs' temporary files (see ``api.remove_stale_temporaries``)."""
    remove_stale_temporaries(dst for _, dst in pairs)


# -- Ray -----------------------------------------------------------------------------------


@contextmanager
def _ray_session(address: str | None, num_workers: int | None) -> Iterator[int]:
    """Join or start Ray and yield the cluster's CPU count; shut down only what started here."""
    try:
        import ray
    except ImportError:
        raise SeprocError(
            "The Ray engine needs Ray: pip install 'seproc[ray]' (it pins ray[data])."
        ) from None
    started = False
    if not ray.is_initialized():
        try:
            if address is None and not os.environ.get("RAY_ADDRESS"):
                # "local": a new instance even when another one runs on this machine.
                ray.init(
                    address="local",
                    num_cpus=num_workers or os.cpu_count() or 1,
                    include_dashboard=False,
                )
            else:
                ray.init(address=address)  # None: the cluster RAY_ADDRESS names
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = "a local Ray instance" if address is None else f"address={address!r}"
            raise SeprocError(
                f"Cannot start or join Ray at {where}: {one_line(error)}. Without --address "
                "seproc starts a local instance; --address auto needs `ray start --head` on "
                "the head node (and `ray start --address HEAD:6379` on the others)."
            ) from None
        started = True
    try:
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started:
            ray.shutdown()


def _run_on_ray(
    tasks: list[dict[str, str]], actors: int, settings: dict[str, Any]
) -> Iterator[dict[str, str]]:
    """Process ``tasks`` on a pool of ``actors`` workers; yield result rows as they finish."""
    import ray.data

    context = ray.data.DataContext.get_current()
    saved = context.max_errored_blocks
    # A file whose worker dies on every retry fails that one block; the driver reports
    # it failed instead of aborting the whole run.
    context.max_errored_blocks = -1
    try:
        wired = [{key: _to_wire(value) for key, value in task.items()} for task in tasks]
        dataset = ray.data.from_items(wired, override_num_blocks=len(tasks))
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for actor task retries yet; its warning
            # about passing them as ray_remote_args would only confuse a user.
            warnings.filterwarnings("ignore", message=r".*ray_remote_args.* is deprecated")
            dataset = dataset.map_batches(
                _FileWorker,
                # One file per task, so one file's death is one task's retry. Two tasks in
                # flight per actor: the next file waits in the actor, not in the driver's
                # scheduling loop (which polls every 0.1 s). The queued file's retries
                # that a killer ahead of it spends are covered by _TASK_RETRIES, and
                # the attempt files of _FileWorker._one keep the blame on the killer.
                batch_size=1,
                compute=ray.data.ActorPoolStrategy(
                    size=actors, max_tasks_in_flight_per_actor=_FILES_IN_FLIGHT
                ),
                num_cpus=1,
                fn_constructor_kwargs=settings,
                **_retry_args(),
            )
        for row in dataset.iter_rows():
            yield {key: _from_wire(str(value)) for key, value in row.items()}
    finally:
        context.max_errored_blocks = saved


def _to_wire(text: str) -> str:
    """Make a path Arrow can carry: names are bytes on POSIX and need not be UTF-8.

    Python decodes such a name with surrogate escapes, which Arrow refuses (a
    non-UTF-8 file name aborted the whole run). The name's bytes, read as Latin-1,
    are a valid string that :func:`_from_wire` turns back into exactly the same path.
    """
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def _from_wire(text: str) -> str:
    """Undo :func:`_to_wire`."""
    return text.encode("latin-1").decode("utf-8", "surrogateescape")


def _retry_args() -> dict[str, int]:
    """Bound Ray Data's default of retrying a dead actor's task forever."""
    return {"max_restarts": -1, "max_task_retries": _TASK_RETRIES}


class _FileWorker:
    """A Ray Data actor: denoises one file per call with cached Denoisers.

    A :class:`~seproc._files.DenoiserPool` keeps one :class:`~seproc.Denoiser` per
    (sample rate, channels), built on first use, model loaded once, onnxruntime on
    one thread; every file goes through :func:`seproc._files.denoise_file`, the
    local engine's code path, which resets the reused Denoiser first.
    """

    def __init__(self, settings: DenoiseSettings, kill_on: str | None = None) -> None:
        # Import here, not per file: a broken install fails the actor loudly at start.
        from seproc import _files

        self._files = _files
        self._settings = settings
        self._pool = _files.DenoiserPool(settings)
        self._kill_on = kill_on
        self._worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        names = list(batch)
        rows = [
            self._one({n: _from_wire(str(v)) for n, v in zip(names, values, strict=True)})
            for values in zip(*batch.values(), strict=True)
        ]
        return {
            column: [_to_wire(row[column]) for row in rows] for column in (*MANIFEST_COLUMNS, "dst")
        }

    def _one(self, task: dict[str, Any]) -> dict[str, str]:
        sha256_file = self._files.sha256_file
        src, dst = Path(str(task["src"])), Path(str(task["dst"]))
        row = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(input=str(task["input"]), dst=str(dst), worker=self._worker)
        expect_in, expect_out = str(task["expect_input_sha256"]), str(task["expect_output_sha256"])
        attempt = None
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            exhausted, attempt = _claim_attempt(dst)
            if exhausted:  # each of the earlier tries of this file killed its worker
                row.update(status=STATUS_FAILED, error=_died_message(_FILE_TRIES))
                return _stamp(row)
            if expect_out and dst.is_file():
                output_sha256 = sha256_file(dst)
                input_sha256 = sha256_file(src)
                if (output_sha256, input_sha256) == (expect_out, expect_in):
                    row.update(
                        status=STATUS_SKIPPED,
                        input_sha256=input_sha256,
                        output_sha256=output_sha256,
                    )
                    return _stamp(row)
            result = self._files.denoise_file(
                src,
                dst,
                self._settings,
                pool=self._pool,
                on_block=_kill_switch(src, self._kill_on) if self._kill_on else None,
            )
        except Exception as error:  # one bad file must not end the run: report it
            message = one_line(error) if isinstance(error, SeprocError) else repr(error)
            row.update(status=STATUS_FAILED, error=message.splitlines()[0] if message else "")
            try:
                row["input_sha256"] = sha256_file(src)  # which version of the input failed
            except OSError:
                pass
            return _stamp(row)
        finally:
            if attempt is not None:
                attempt.unlink(missing_ok=True)
        row.update(
            status=STATUS_OK,
            sample_rate=str(result.sample_rate),
            channels=str(result.channels),
            duration_s=f"{result.duration_s:.9g}",
            processing_s=f"{result.processing_s:.9g}",
            real_time_factor=f"{result.real_time_factor:.9g}",
            input_sha256=result.input_sha256,
            output_sha256=result.output_sha256,
        )
        return _stamp(row)


def _claim_attempt(dst: Path) -> tuple[bool, Path | None]:
    """Mark a try of ``dst`` with a hidden file; say whether ``_FILE_TRIES`` tries died.

    The worker removes its file when done, so each one left beside ``dst`` is a try
    whose worker died. Returns ``(True, None)`` when all ``_FILE_TRIES`` are left,
    else ``(False, file)``, or ``(False, None)`` when the folder is not writable
    (``process_file`` then says so in its own words). ``.NAME.tryN.partial`` names
    them like the temporary outputs, which the driver removes before and after a run.
    """
    for number in range(1, _FILE_TRIES + 1):
        path = dst.with_name(f"{temporary_prefix(dst)}try{number}.partial")
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        except OSError:
            return False, None
        return False, path
    return True, None


def _kill_switch(src: Path, kill_on: str) -> Callable[[int], object] | None:
    """Return the ``on_block`` callback of the test seam ``SEPROC_BATCH_KILL_WORKER_ON``.

    This is the one fault-injection seam left in product code.
    Ray runs the worker in another process, which a test can reach only through the
    environment; ``tests/test_batch.py`` sets ``NAME[=MARKER]`` to make the worker that
    processes the file named ``NAME`` exit mid-file (after its first block, when the
    temporary output exists), as an out-of-memory kill would. With ``=MARKER`` it does
    so once: it creates the file ``MARKER`` first, and a retry that finds it runs
    normally. Without, every try dies. ``None`` when this file is not the one.
    """
    name, _, marker = kill_on.partition("=")
    if src.name != name:
        return None
    if marker:
        if os.path.exists(marker):
            return None
        Path(marker).touch()
    return lambda samples: os._exit(1)


def _stamp(row: dict[str, str]) -> dict[str, str]:
    row["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return row


# -- manifest ------------------------------------------------------------------------------


def _finish_row(
    row: dict[str, str], previous: dict[str, str] | None, in_root: Path, out_root: Path
) -> dict[str, str]:
    """Turn a worker's row into a manifest row; a skipped row keeps its earlier figures."""
    finished = {column: row.get(column, "") for column in MANIFEST_COLUMNS}
    finished["output"] = _relative(Path(row["dst"]), out_root.resolve())
    if finished["status"] == STATUS_SKIPPED and previous is not None:
        for column in ("sample_rate", "channels", "duration_s", "processing_s"):
            finished[column] = previous[column]
        finished["real_time_factor"] = previous["real_time_factor"]
    return finished


def _died_message(tries: int | None = None) -> str:
    after = f" after {tries} tries" if tries else ""
    return (
        f"no result from Ray{after}: the worker process died while denoising this file "
        "(out of memory? killed?); see the Ray worker logs"
    )


def _worker_died_row(input_name: str, output_name: str) -> dict[str, str]:
    """Return the row of a file that Ray gave up on (its task's retries ran out)."""
    row = dict.fromkeys(MANIFEST_COLUMNS, "")
    row.update(input=input_name, output=output_name, status=STATUS_FAILED, error=_died_message())
    return _stamp(row)


class _Journal:
    """Appends manifest rows as they arrive, flushed, so a killed run keeps them."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> _Journal:
        try:
            # O_NOFOLLOW: a link planted at the manifest's name is refused, never followed
            fd = os.open(
                self._path,
                os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0),
                0o644,
            )
        except OSError as error:
            raise SeprocError(
                f"Cannot write the manifest {self._path}: {os_error_reason(error)}; remove it "
                "if it is a symbolic link."
            ) from None
        new = os.fstat(fd).st_size == 0
        self._handle = open(fd, "a", newline="", encoding="utf-8", errors="surrogateescape")
        self._writer = csv.DictWriter(self._handle, fieldnames=MANIFEST_COLUMNS)
        if new:
            self._writer.writeheader()
        return self

    def append(self, row: dict[str, str]) -> None:
        self._writer.writerow(row)
        self._handle.flush()

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


def _write_manifest(path: Path, rows: Iterable[dict[str, str]]) -> None:
    """Rewrite the manifest atomically: a new temporary file, then a rename.

    The temporary file is created by ``mkstemp`` (``O_CREAT | O_EXCL``, a random
    name), so a file or link planted beside the manifest is never written through;
    the rename replaces a link at the manifest's own name instead of following it.
    """
    handle_fd, temporary_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    temporary = Path(temporary_name)
    try:
        with open(handle_fd, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
            writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

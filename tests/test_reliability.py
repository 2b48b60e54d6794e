"""Reliability of the library itself: numba caching on read-only installs, warm-up,
property tests of ``Denoiser.process``, bad blocks, denormals and threads.

File input and the command line are in tests/test_cli_files.py, broken model files in
tests/test_model_files.py, the reduced soak in tests/test_soak.py.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seproc.denoiser import Denoiser
from seproc.errors import ParameterError
from tests.model_factory import make_model

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# numba caching: a fresh cache folder, and a read-only install
# ---------------------------------------------------------------------------

PROBE = """
import json
import numpy as np
import seproc
from seproc import _kernels
finite = _kernels.all_finite(np.zeros((1, 8), np.float32))
stats = _kernels.all_finite.stats
print(json.dumps({
    "file": seproc.__file__,
    "finite": bool(finite),
    "hits": sum(stats.cache_hits.values()),
    "misses": sum(stats.cache_misses.values()),
}))
"""


def run_probe(site: Path, cache_dir: Path | None, home: Path) -> subprocess.CompletedProcess:
    """Import seproc from ``site`` in a fresh interpreter and call one cached kernel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        # numba's last resort is a user-wide cache under $XDG_CACHE_HOME or ~/.cache.
        HOME=str(home),
        XDG_CACHE_HOME=str(home),
    )
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = str(cache_dir)
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=site.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def probe_result(completed: subprocess.CompletedProcess) -> dict:
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.fixture
def read_only_install(tmp_path):
    """A copy of the package that nothing can write to, and a HOME nothing can write to.

    Tests usually run as root, and root ignores file modes; so besides ``chmod -R a-w``
    the copy gets a *file* named ``__pycache__`` (where numba's in-tree cache would go),
    and HOME points below a regular file, which makes every cache folder numba tries
    impossible to create, for root too.
    """
    site = tmp_path / "site"
    shutil.copytree(
        REPO / "seproc", site / "seproc", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    for folder in [site / "seproc", *(p for p in (site / "seproc").rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("")
    before = sorted((str(p), p.stat().st_size) for p in site.rglob("*"))
    for path in [*site.rglob("*"), site]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    yield site, blocker
    for path in [site, *site.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    after = sorted((str(p), p.stat().st_size) for p in site.rglob("*"))
    assert after == before, "the read-only install was modified"


def test_a_fresh_numba_cache_dir_is_filled_then_reused(tmp_path):
    cache, home = tmp_path / "numba-cache", tmp_path / "home"
    home.mkdir()  # onnxruntime writes a device id under $HOME; keep it out of the checkout
    first = probe_result(run_probe(REPO, cache, home))
    assert first["finite"] and first["misses"] == 1 and first["hits"] == 0
    assert list(cache.rglob("_kernels.all_finite-*.nbi")), sorted(cache.rglob("*"))
    second = probe_result(run_probe(REPO, cache, home))
    assert second["finite"] and second["hits"] == 1 and second["misses"] == 0


def test_a_read_only_install_imports_with_numba_cache_dir_set(read_only_install, tmp_path):
    site, blocker = read_only_install
    cache = tmp_path / "numba-cache"
    result = probe_result(run_probe(site, cache, blocker))
    assert Path(result["file"]).is_relative_to(site)
    assert result["finite"] and result["misses"] == 1
    assert list(cache.rglob("_kernels.all_finite-*.nbi"))


def test_a_read_only_install_imports_without_any_writable_cache(read_only_install):
    """Nothing writable and no NUMBA_CACHE_DIR (or one that is a file): kernels compile
    in memory instead of failing at import (numba raises "cannot cache function"; librosa
    issue 1156)."""
    site, blocker = read_only_install
    for cache_dir in (None, blocker):
        result = probe_result(run_probe(site, cache_dir, blocker))
        assert result["finite"] and result["hits"] == 0


# ---------------------------------------------------------------------------
# Warm-up: the first process() call after construction compiles nothing
# ---------------------------------------------------------------------------

COMPILE_PROBE = """
import json, sys
import numba
import numpy as np
from seproc import _kernels
from seproc.denoiser import Denoiser

def compiled():
    return {name: len(f.signatures) for name, f in vars(_kernels).items()
            if isinstance(f, numba.core.registry.CPUDispatcher)}

denoiser = Denoiser(sys.argv[1], sample_rate=48000, channels=2, warm_up=sys.argv[2] == "1")
before = compiled()
block = np.random.default_rng(0).standard_normal((2, 480))
denoiser.process(block.astype(np.float32))
denoiser.process(block)
denoiser.process(block, out=np.empty((2, 480)))
denoiser.process(block.astype(np.float32), out=np.empty((2, 480), np.float32))
after = compiled()
print(json.dumps({name: after[name] - before[name] for name in after
                  if after[name] != before[name]}))
"""


def _new_signatures(probe: str, *args) -> dict:
    """Run a compile probe in a fresh interpreter; return what it reports as newly compiled."""
    completed = subprocess.run(
        [sys.executable, "-c", probe, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_warm_up_compiles_every_kernel_the_first_blocks_need(models):
    """float32 and float64 blocks, into the internal buffer or a float32/float64 ``out``.

    Run in a fresh interpreter, where nothing is compiled yet. (Without warm-up the same
    probe reports apply_mask_gain, ring_copy and the rest: the check can fail.)
    """
    assert _new_signatures(COMPILE_PROBE, models["stateful"], 1) == {}


SWEEP_PROBE = """
import json
import sys

import numba
import numpy as np
from seproc import _kernels
from seproc.denoiser import Denoiser


def compiled():
    return {name: set(map(str, f.signatures)) for name, f in vars(_kernels).items()
            if isinstance(f, numba.core.registry.CPUDispatcher)}


rate, channels, largest = (int(arg) for arg in sys.argv[2:5])
denoiser = Denoiser(sys.argv[1], sample_rate=rate, channels=channels, max_block_samples=largest)
before = compiled()
hop = denoiser.hop_length * rate // denoiser.model_sample_rate
sizes = sorted({0, 1, 2, 63, hop - 1, hop, hop + 1, 480, largest - 1, largest, largest + 1,
                2 * largest + 7})
grew = {}
for dtype in (np.float32, np.float64):
    for n in sizes:
        base = (0.1 * np.random.default_rng(n).standard_normal((channels, n))).astype(dtype)
        wide = np.zeros((channels, 2 * n), dtype)
        wide[:, ::2] = base
        frozen = base.copy()
        frozen.flags.writeable = False
        blocks = [base, np.asfortranarray(base), wide[:, ::2], frozen]
        blocks += [base[0]] if channels == 1 else []
        for block in blocks:
            denoiser.process(block)
            for out_dtype in (np.float32, np.float64):
                out = np.empty(block.shape, out_dtype)
                denoiser.process(block, out=out)
                denoiser.process(block, out=np.asfortranarray(out))
                wide_out = np.empty((*block.shape[:-1], 2 * n), out_dtype)
                denoiser.process(block, out=wide_out[..., ::2])
            if block.flags.writeable:
                denoiser.process(block.copy(), out=block.copy())
            after = compiled()
            for name in after:
                if after[name] - before[name]:
                    grew.setdefault(name, f"{dtype.__name__} block of {n} samples")
            before = after
denoiser.flush()
print(json.dumps(grew))
"""


@pytest.mark.parametrize(
    ("sample_rate", "channels", "max_block_samples"),
    [(48000, 2, 128), (44100, 2, 480), (16000, 1, 8192)],
    ids=["48k-stereo-blocks-below-a-hop", "44.1k-stereo-480", "16k-mono-default"],
)
def test_after_warm_up_no_block_layout_or_size_compiles_anything(
    models, sample_rate, channels, max_block_samples
):
    """Every block size path (0, below a hop, a hop, one buffer, several buffers) and host
    layout (C, F, strided, read-only, 1-D; float32/float64 blocks and out) after warm-up:
    numba's dispatchers gain no signature. Before, a 48 kHz stereo stream of blocks shorter
    than a hop compiled the ring buffer copy, copy_flushing_tiny and more on its first calls."""
    assert (
        _new_signatures(SWEEP_PROBE, models["stateful"], sample_rate, channels, max_block_samples)
        == {}
    )


# ---------------------------------------------------------------------------
# Property tests of Denoiser.process
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reliability-models")
    return {"stateful": make_model(folder / "stateful.onnx")}


class DenoiserPool:
    """Denoisers by (sample_rate, channels), reused through reset().

    test_denoiser pins that output after reset() equals a fresh object's, so a reset
    pooled object stands for a new one and hypothesis need not build one per example.
    """

    def __init__(self, model):
        self._model = model
        self._objects = {}

    def get(self, sample_rate, channels, max_block_samples=8192):
        key = (sample_rate, channels, max_block_samples)
        if key not in self._objects:
            self._objects[key] = Denoiser(
                self._model,
                sample_rate=sample_rate,
                channels=channels,
                max_block_samples=max_block_samples,
                warm_up=False,
            )
        denoiser = self._objects[key]
        denoiser.reset()
        return denoiser


@pytest.fixture(scope="module")
def pool(models):
    return DenoiserPool(models["stateful"])


def make_signal(kind, amplitude, channels, samples, dtype, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(samples)
    if kind == "noise":
        signal = amplitude * rng.standard_normal((channels, samples))
    elif kind == "silence":
        signal = np.zeros((channels, samples))
    elif kind == "dc":
        signal = np.full((channels, samples), amplitude * rng.choice([-1.0, 1.0]))
    elif kind == "square":  # full scale, a period of 2 to 200 samples
        period = rng.integers(2, 201)
        signal = np.where((t % period) < period / 2, 1.0, -1.0)[np.newaxis].repeat(channels, 0)
    else:  # sparse full-amplitude clicks on silence
        signal = np.zeros((channels, samples))
        clicks = rng.integers(0, max(samples, 1), size=(channels, 5))
        for c in range(channels):
            signal[c, clicks[c][clicks[c] < samples]] = amplitude
    return signal.astype(dtype)


def feed(denoiser, signal, sizes):
    """Stream ``signal`` in blocks of ``sizes`` (cycled, zeros allowed); check each block."""
    pieces, start, i = [], 0, 0
    while start < signal.shape[1]:
        size = sizes[i % len(sizes)]
        block = signal[:, start : start + size]
        out = denoiser.process(block)
        assert out.shape == block.shape and out.dtype == np.float32
        pieces.append(out.copy())
        start += size
        i += 1
    return np.concatenate(pieces, axis=1) if pieces else np.zeros(signal.shape, np.float32)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    channels=st.integers(1, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
    sample_rate=st.sampled_from([16000, 44100, 48000]),
    kind=st.sampled_from(["noise", "silence", "dc", "square", "clicks"]),
    log_amplitude=st.floats(-9.0, 3.0),
    samples=st.integers(0, 6000),
    sizes=st.lists(st.integers(0, 2500), min_size=1, max_size=12).filter(any),
    seed=st.integers(0, 2**32 - 1),
)
def test_process_is_finite_length_keeping_and_partition_independent(
    pool, channels, dtype, sample_rate, kind, log_amplitude, samples, sizes, seed
):
    amplitude = 10.0**log_amplitude
    signal = make_signal(kind, amplitude, channels, samples, dtype, seed)
    whole = pool.get(sample_rate, channels).process(signal).copy()
    streamed = feed(pool.get(sample_rate, channels), signal, sizes)
    assert streamed.shape == signal.shape
    assert np.all(np.isfinite(streamed))
    peak = float(np.max(np.abs(signal), initial=0.0))
    np.testing.assert_allclose(streamed, whole, rtol=0, atol=1e-6 * peak)
    if kind == "silence":
        np.testing.assert_array_equal(streamed, 0.0)


# ---------------------------------------------------------------------------
# A bad block mid-stream: a clear error, and the stream goes on as if it never came
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate", [16000, 48000])
@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (np.nan, np.float32),
        (np.inf, np.float64),
        (-np.inf, np.float32),
        (1e39, np.float64),  # finite in float64, beyond float32
        (1e16, np.float32),  # finite, but its power would overflow
    ],
    ids=["nan", "inf", "-inf", "beyond-float32", "beyond-1e15"],
)
@pytest.mark.parametrize("bad_samples", [2500, 480], ids=["several-chunks", "one-chunk"])
def test_a_bad_block_mid_stream_raises_and_leaves_the_stream_clean(
    models, sample_rate, value, dtype, bad_samples
):
    """Longer than max_block_samples, process() would work through the block in chunks
    (checked first); a host's callback is one chunk, checked while it is copied in."""
    rng = np.random.default_rng(3)
    before = (0.1 * rng.standard_normal((2, 3001))).astype(dtype)
    after = (0.1 * rng.standard_normal((2, 2999))).astype(dtype)
    bad = (0.1 * rng.standard_normal((2, bad_samples))).astype(dtype)
    bad[1, bad_samples * 8 // 9] = value
    settings = {"sample_rate": sample_rate, "channels": 2, "max_block_samples": 1000}
    used = Denoiser(models["stateful"], **settings)
    fresh = Denoiser(models["stateful"], **settings)
    np.testing.assert_array_equal(used.process(before), fresh.process(before))
    with pytest.raises(ParameterError, match=r"block holds NaN or Inf"):
        used.process(bad)
    np.testing.assert_array_equal(used.process(after), fresh.process(after))
    np.testing.assert_array_equal(used.flush(), fresh.flush())


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_every_accepted_amplitude_gives_finite_output(models, sample_rate):
    """Up to the 1e15 limit (+300 dBFS), nothing overflows; the stream then goes on."""
    rng = np.random.default_rng(4)
    denoiser = Denoiser(models["stateful"], sample_rate=sample_rate)
    for level in (1e6, 1e10, 1e15):
        block = np.clip(level * rng.standard_normal((1, 4800)), -1e15, 1e15)
        assert np.all(np.isfinite(denoiser.process(block)))
    assert np.all(np.isfinite(feed(denoiser, 0.1 * rng.standard_normal((1, 9600)), [480])))


@pytest.mark.parametrize("formulation", ["mask", "noise_subtraction"])
def test_a_model_that_outputs_nan_gets_the_attenuation_limit_not_nan(tmp_path, formulation):
    """A misbehaving model's NaN output must not reach the host: NaN counts as the floor."""
    path = make_model(
        tmp_path / "nan.onnx", formulation=formulation, scale=float("nan"), noise_db_value=np.nan
    )
    signal = (0.2 * np.random.default_rng(2).standard_normal((1, 8000))).astype(np.float32)
    denoiser = Denoiser(path, attenuation_limit_db=12)
    out = np.concatenate([denoiser.process(signal), denoiser.flush()], axis=1)
    aligned = out[:, denoiser.latency_samples :]
    np.testing.assert_allclose(aligned, signal * 10 ** (-12 / 20), atol=1e-5)


# ---------------------------------------------------------------------------
# Denormals: near-silence leaves no subnormal numbers in the stream state
# ---------------------------------------------------------------------------


def stream_arrays(obj, name="denoiser", seen=None):
    """Yield (name, array) for every numpy array a seproc object holds, recursively."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        yield name, obj
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield from stream_arrays(item, f"{name}[{i}]", seen)
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from stream_arrays(item, f"{name}[{key!r}]", seen)
    elif type(obj).__module__.startswith("seproc.") and hasattr(obj, "__dict__"):
        for key, item in vars(obj).items():
            yield from stream_arrays(item, f"{name}.{key}", seen)


def subnormal_counts(denoiser):
    counts = {}
    for name, array in stream_arrays(denoiser):
        if array.dtype.kind not in "fc" or array.size == 0:
            continue
        if name.endswith("._net.weights"):
            # the BLAS engine's packed constants: int8 matrices sit in its float32 slots
            # (seproc._blas_net._Packer.add_int8), so their bytes read as any float; this
            # walk is about the stream's state decaying, and the weights never change
            continue
        real = array.real if array.dtype.kind == "c" else array
        parts = (real, array.imag) if array.dtype.kind == "c" else (real,)
        tiny = np.finfo(real.dtype).tiny
        n = sum(int(np.count_nonzero((p != 0) & (np.abs(p) < tiny))) for p in parts)
        if n:
            counts[name] = n
    return counts


def test_the_state_walk_finds_subnormals():
    """The check below can fail: a subnormal planted in a buffer is found."""

    class Holder:
        pass

    Holder.__module__ = "seproc.fake"
    holder = Holder()
    holder.buffers = [np.zeros(4, np.float32), {"x": np.zeros(3, np.complex64)}]
    assert subnormal_counts(holder) == {}
    holder.buffers[1]["x"][2] = 1e-40j
    assert subnormal_counts(holder) == {"denoiser.buffers[1]['x']": 1}


@pytest.mark.parametrize("sample_rate", [16000, 48000])
@pytest.mark.parametrize("level", [1e-38, 1e-42, 1.4e-45], ids=["1e-38", "1e-42", "min"])
def test_subnormal_input_leaves_no_subnormals_in_the_stream_state(models, sample_rate, level):
    rng = np.random.default_rng(5)
    signal = (level * rng.standard_normal((2, sample_rate // 2))).astype(np.float32)
    assert np.count_nonzero(signal) > signal.size // 2  # they really are subnormal, not 0
    denoiser = Denoiser(models["stateful"], sample_rate=sample_rate, channels=2)
    out = feed(denoiser, signal, list(rng.integers(1, 2000, size=20)))
    assert np.all(np.isfinite(out))
    assert subnormal_counts(denoiser) == {}


def test_long_near_silence_through_the_bundled_model_leaves_no_subnormals():
    """The bundled U-Net + GRU: its recurrent state must not decay into subnormals either."""
    rng = np.random.default_rng(7)
    denoiser = Denoiser(sample_rate=48000, channels=2)
    denoiser.process((0.1 * rng.standard_normal((2, 48000))).astype(np.float32))
    for level in (1e-30, 1e-40, 0.0, 1e-38, 1e-30, 1e-45) * 2:  # 12 s
        out = denoiser.process((level * rng.standard_normal((2, 48000))).astype(np.float32))
        assert np.all(np.isfinite(out))
    assert subnormal_counts(denoiser) == {}
    assert any("_states" in name for name, _ in stream_arrays(denoiser))  # the walk sees them


@pytest.mark.parametrize("sample_rate", [16000, 48000])
def test_near_silence_gives_finite_output(models, sample_rate):
    rng = np.random.default_rng(6)
    denoiser = Denoiser(models["stateful"], sample_rate=sample_rate)
    for level in (1e-30, 1e-25, 1e-20):
        signal = (level * rng.standard_normal((1, sample_rate // 4))).astype(np.float32)
        out = feed(denoiser, signal, [480])
        assert np.all(np.isfinite(out)) and np.max(np.abs(out)) < 100 * level


# ---------------------------------------------------------------------------
# Threads: one Denoiser per thread equals sequential processing
# ---------------------------------------------------------------------------


def test_threads_with_own_denoisers_match_sequential_bit_for_bit(models):
    """Mixed settings per thread, started together, with random block partitions."""
    jobs = []
    rng = np.random.default_rng(8)
    for i, (sample_rate, channels) in enumerate(
        [(16000, 1), (48000, 2), (44100, 1), (48000, 3), (16000, 2), (22050, 1)]
    ):
        signal = (0.2 * rng.standard_normal((channels, sample_rate // 2))).astype(
            np.float64 if i % 2 else np.float32
        )
        sizes = list(rng.integers(1, 3000, size=15))
        jobs.append((sample_rate, channels, signal, sizes))

    def run(job):
        sample_rate, channels, signal, sizes = job
        denoiser = Denoiser(models["stateful"], sample_rate=sample_rate, channels=channels)
        return np.concatenate([feed(denoiser, signal, sizes), denoiser.flush()], axis=1)

    expected = [run(job) for job in jobs]
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        results[i] = run(jobs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for got, want in zip(results, expected, strict=True):
        assert got is not None
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------
# Host buffer layouts: views, read-only arrays and in-place processing
# ---------------------------------------------------------------------------


def test_host_layouts_and_in_place_processing_give_the_same_output(pool):
    """An interleaved host buffer seen as (channels, samples) is a Fortran-ordered view;
    strided and read-only arrays and ``out=block`` (in place) must change nothing."""
    rng = np.random.default_rng(9)
    interleaved = (0.1 * rng.standard_normal(2 * 4800)).astype(np.float32)
    fortran = interleaved.reshape(-1, 2).T
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    contiguous = np.ascontiguousarray(fortran)
    read_only = contiguous.copy()
    read_only.flags.writeable = False
    wide = np.zeros((2, 2 * 4800), np.float32)
    wide[:, ::2] = contiguous
    expected = feed(pool.get(48000, 2), contiguous, [480])
    for layout in (fortran, read_only, wide[:, ::2]):
        np.testing.assert_array_equal(feed(pool.get(48000, 2), layout, [480]), expected)
    in_place = contiguous.copy()
    denoiser = pool.get(48000, 2)
    for start in range(0, in_place.shape[1], 480):
        block = in_place[:, start : start + 480]
        assert denoiser.process(block, out=block) is block
    np.testing.assert_array_equal(in_place, expected)


# ---------------------------------------------------------------------------
# out= is validated before any state changes (issue 23, item 1)
# ---------------------------------------------------------------------------


def read_only_zeros(shape):
    array = np.zeros(shape, np.float32)
    array.flags.writeable = False
    return array


@pytest.mark.parametrize(
    ("make_out", "match"),
    [
        (lambda block: read_only_zeros(block.shape), "out is read-only"),
        (lambda block: np.zeros(block.shape, np.float32).tolist(), "got list"),
        (lambda block: block[:, ::-1], "overlaps the block"),
    ],
    ids=["read-only", "list", "overlapping"],
)
def test_a_refused_out_raises_parameter_error_and_leaves_the_stream_clean(pool, make_out, match):
    """A read-only out used to raise numba's TypingError after the block had gone into the
    stream: three such calls made the output lag by 3 x 480 extra samples until reset()."""
    rng = np.random.default_rng(23)
    blocks = [(0.1 * rng.standard_normal((2, 480))).astype(np.float32) for _ in range(6)]
    expected = feed(pool.get(48000, 2), np.concatenate(blocks, axis=1), [480])
    denoiser = pool.get(48000, 2)
    got = [denoiser.process(blocks[0]).copy()]
    for _ in range(3):
        bad_block = blocks[1].copy()
        with pytest.raises(ParameterError, match=match):
            denoiser.process(bad_block, out=make_out(bad_block))
    got += [denoiser.process(block).copy() for block in blocks[1:]]
    np.testing.assert_array_equal(np.concatenate(got, axis=1), expected)


def test_an_out_of_the_blocks_shape_one_sample_on_is_refused(pool):
    """Same shape, strides and dtype as the block, another address: not in place."""
    denoiser = pool.get(16000, 1)
    memory = np.zeros((1, 161), np.float32)
    with pytest.raises(ParameterError, match="overlaps the block"):
        denoiser.process(memory[:, :160], out=memory[:, 1:])
    assert not memory.any()


@pytest.mark.parametrize("one_dimensional", [False, True])
def test_a_read_only_block_is_refused_as_its_own_out(pool, one_dimensional):
    """In place (``out=block``) skips the overlap check, not the writeable one."""
    denoiser = pool.get(16000, 1)
    block = read_only_zeros((160,) if one_dimensional else (1, 160))
    with pytest.raises(ParameterError, match="out is read-only"):
        denoiser.process(block, out=block)
    assert denoiser.process(np.zeros((1, 160), np.float32)).shape == (1, 160)


def test_out_may_be_the_block_itself_even_when_one_dimensional(pool):
    rng = np.random.default_rng(5)
    signal = (0.1 * rng.standard_normal(960)).astype(np.float32)
    expected = feed(pool.get(16000, 1), signal[np.newaxis], [160])[0]
    denoiser = pool.get(16000, 1)
    in_place = signal.copy()
    for start in range(0, 960, 160):
        block = in_place[start : start + 160]
        assert np.shares_memory(denoiser.process(block, out=block), block)
    np.testing.assert_array_equal(in_place, expected)


# ---------------------------------------------------------------------------
# num_threads is bounded (issue 23, item 3)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [1, 5000, 10**6])
def test_num_threads_beyond_the_cpu_count_is_refused(models, extra):
    """5000 threads hung onnxruntime for minutes and 10**6 crashed the process."""
    too_many = (os.cpu_count() or 1) + extra
    with pytest.raises(ParameterError, match=rf"num_threads={too_many} must be an integer <= "):
        Denoiser(models["stateful"], num_threads=too_many, warm_up=False)
    assert Denoiser(models["stateful"], num_threads=os.cpu_count(), warm_up=False).channels == 1


# ---------------------------------------------------------------------------
# Model metadata is checked for consistency (issue 23, item 4)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled_model_proto():
    onnx = pytest.importorskip("onnx")
    from seproc.model import default_model_path

    return onnx.load(str(default_model_path()))


def bundled_model_saying(proto, folder: Path, **metadata: str) -> Path:
    """Write a copy of the bundled model whose metadata says ``metadata`` instead."""
    import onnx

    edited = onnx.ModelProto()
    edited.CopyFrom(proto)
    bins = int(metadata.get("n_fft", 320)) // 2 + 1
    for entry in edited.metadata_props:
        if entry.key in metadata:
            entry.value = metadata[entry.key]
            if entry.key.startswith("feature_") and entry.key.endswith("_db"):
                entry.value = json.dumps(json.loads(entry.value) * bins)
    path = folder / ("lie-" + "-".join(f"{k}{v}" for k, v in metadata.items())[:80] + ".onnx")
    onnx.save(edited, str(path))
    return path


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ({"sample_rate_hz": "48000"}, r"6\.67 ms window.*Is sample_rate_hz the rate"),
        ({"sample_rate_hz": "44100"}, r"7\.26 ms window"),
        ({"sample_rate_hz": "1"}, r"sample_rate_hz=1 is outside 8000 to 96000 Hz"),
        ({"sample_rate_hz": "1000000000"}, r"sample_rate_hz=1000000000 is outside"),
        ({"sample_rate_hz": "8000", "n_fft": "4000"}, r"n_fft=4000 .* 500 ms FFT"),
        ({"n_fft": "512"}, r"feature_mean_db must hold 257 finite numbers"),
        (
            {"n_fft": "512", "feature_mean_db": "[0]", "feature_std_db": "[1]"},
            r"input 'features' must be float32 of shape \[1, frames, 257\]",
        ),
    ],
    ids=["48k", "44.1k", "1Hz", "1GHz", "500ms-fft", "n_fft-vs-vectors", "n_fft-vs-graph"],
)
def test_bundled_model_with_lying_metadata_is_refused(
    bundled_model_proto, tmp_path, metadata, match
):
    """sample_rate_hz=48000 written into the 16 kHz model used to be accepted and run at
    the wrong rate; =1 took 28 s to construct and =1e9 aborted the process."""
    from seproc.errors import ModelError

    path = bundled_model_saying(bundled_model_proto, tmp_path, **metadata)
    with pytest.raises(ModelError, match=match):
        Denoiser(path, warm_up=False)


def test_the_bundled_model_saved_unchanged_still_loads(bundled_model_proto, tmp_path):
    """The control for the test above: the copy-and-edit path itself breaks nothing."""
    path = bundled_model_saying(bundled_model_proto, tmp_path, sample_rate_hz="16000")
    assert Denoiser(path, sample_rate=48000, warm_up=False).model_sample_rate == 16000

"""A streaming Denoiser's chunk in one numba call: the same kernels, FFTs and network.

``Denoiser.process`` runs a chunk as a dozen kernels, three or four FFTs and the
network's frame, called one by one from Python: ~15 numba calls (0.3-1 µs of argument
checks each) and ~14 µs of Python between them in a ~100 µs hop at 48 kHz (issue 20,
``benchmarks/README.md``). Here the same kernels run in the same order inside one
compiled call, the FFTs through FFTW plans executed from numba (``seproc._fftw``) and
the network by the BLAS engine's own kernel, so the output is the Python path's bit
for bit (``tests/test_hop.py`` compares them on long streams of random partitions).

Each function takes the chunk's size and one :class:`ChunkArgs` holding tuples of the
objects' arrays and settings, gathered once by the Denoiser (``Denoiser._fused_args``;
each object's ``fused_args()`` documents its tuple).
The stream's counters live in one-element int64 arrays (the analysers' held samples,
the synthesiser's muted samples, the resampler's position, the model-rate sample
count), so both paths read and advance the same state; the Denoiser's own
(``write_pos``, pending frames) are returned.
"""

from __future__ import annotations

from collections.abc import Callable

from numba import typeof, types
from numba.experimental import structref

from seproc._blas_net import blas_resident
from seproc._fftw import execute_rows
from seproc._kernels import (
    analysis_push,
    apply_fullband_gain,
    apply_mask_gain,
    apply_noise_subtraction,
    copy_flushing_tiny_checked,
    delay_line,
    log_power_features,
    njit_cached,
    pitch_comb,
    pitch_frames,
    polyphase_resample,
    release_gains,
    ring_copy,
    rows_to_spec,
    spec_to_rows,
    synthesis_push,
)
from seproc._simd import decimate_registers

__all__ = ["ChunkArgs", "compiled_entry", "full_band_chunk", "model_rate_chunk", "pack"]


@structref.register
class _ChunkArgsType(types.StructRef):
    def preprocess_fields(self, fields):  # type: ignore[no-untyped-def]
        return tuple((name, types.unliteral(typ)) for name, typ in fields)


class ChunkArgs(structref.StructRefProxy):
    """A chunk's argument tuple held natively by numba (:func:`pack`).

    Passed to a compiled function, a tuple of ~50 arrays is checked and converted array
    by array (0.1-0.15 µs each: 5-8 µs a call); this object is converted in one step.
    It refers to the same arrays (their memory, kept alive), so it is made once.
    """


structref.define_boxing(_ChunkArgsType, ChunkArgs)


@njit_cached()
def _new_chunk_args(kind, args):  # pragma: no cover - compiled
    held = structref.new(kind)
    held.args = args
    return held


def compiled_entry(dispatcher: Callable, example: tuple) -> Callable:
    """Return the compiled entry point of ``dispatcher`` for arguments like ``example``.

    A numba dispatcher works out the types of its arguments on every call and looks
    the compiled version up (~0.9 µs of a ~2 µs call of a chunk function here); the
    version's own entry point only converts them, trusting their types. The Denoiser
    calls it with arguments of exactly ``example``'s types only (its layout test: 2-D
    float32 C-contiguous, aligned, writeable arrays). Where numba keeps no compiled
    version of these types, or no entry point, the dispatcher itself.
    """
    key = tuple(typeof(value) for value in example)
    compiled = dispatcher.overloads.get(key)  # type: ignore[attr-defined]
    entry = getattr(compiled, "entry_point", None)
    return dispatcher if entry is None else entry


def pack(args: tuple) -> ChunkArgs:
    """Return ``args`` (a chunk function's arguments after ``n``) as one :class:`ChunkArgs`."""
    return _new_chunk_args(_ChunkArgsType([("args", typeof(args))]), args)


@njit_cached(inline="always")
def _analyse(analysis, block, spec, first_frame):  # pragma: no cover - compiled
    """``StreamingAnalyzer.push``: frame ``block``, transform, write ``spec[:, first:]``."""
    history, filled_at, window, real, rows, plans, hop, pad_left, win_length, n_bins = analysis
    frames, filled = analysis_push(
        history, filled_at[0], block, hop, window, pad_left, win_length, real
    )
    if frames < 0:  # NaN or Inf (the Denoiser checked the block: not reached)
        return frames
    filled_at[0] = filled
    if frames:
        execute_rows(plans, frames * history.shape[0])
        rows_to_spec(rows, frames, n_bins, spec, first_frame)
    return frames


@njit_cached(inline="always")
def _synthesise(synthesis, spec, n_frames, out):  # pragma: no cover - compiled
    """``StreamingSynthesizer.push``: the frames' inverse FFTs overlap-added into ``out``."""
    if n_frames == 0:
        return 0
    acc, mute_at, window, real, rows, plans, hop, pad_left, win_length, n_bins = synthesis
    spec_to_rows(spec, 0, n_frames, n_bins, rows)
    execute_rows(plans, n_frames * acc.shape[0])
    mute = mute_at[0]
    synthesis_push(real, n_frames, hop, window, pad_left, win_length, acc, out, mute)
    n_samples = n_frames * hop
    if mute:
        mute_at[0] = max(0, mute - n_samples)
    return n_samples


@njit_cached(inline="always")
def _pitch_push(pitch, block, n, n_frames, out, first):  # pragma: no cover - compiled
    """``PitchFilter.push``: the frames' pitch-delayed spectra into ``out[:, first:]``."""
    history, filtered, window, rows, scratch, params, spectra, plans, pole, n_bins = pitch[:10]
    group = pitch[10]
    channels = history.shape[0]
    done = 0
    while True:
        count = min(group, n_frames - done)
        last = done + count == n_frames
        pitch_frames(
            history, filtered, block, n, done, count, last, window, rows, scratch, params, pole
        )
        if count:
            execute_rows(plans, count * channels)
            rows_to_spec(spectra, count, n_bins, out, first + done)
        done += count
        if last:
            return


@njit_cached(inline="always")
def _run_network(features, out, network, c):  # pragma: no cover - compiled
    """Run the BLAS engine on channel ``c``'s frames, its state resident in its scratch."""
    weights, table, scratches = network
    work = scratches[c]
    blas_resident(features, out, work, weights, work, table, False)


@njit_cached(inline="always")
def _resample(resampler, block, n, out):  # pragma: no cover - compiled
    """``StreamResampler.push_into`` for one pass (``n <= max_block_samples``)."""
    history, branches, up, down, position_at, phases, decimating = resampler
    if decimating:
        count, position = decimate_registers(
            history, block, n, branches, down, position_at[0], phases, out
        )
    else:
        count, position = polyphase_resample(
            history, block, n, branches, up, down, position_at[0], out
        )
    position_at[0] = position
    return count


@njit_cached()
def model_rate_chunk(n, held, write_pos, read_pos, block, target):  # pragma: no cover
    """One chunk of a Denoiser whose STFT runs at its host rate, the model's.

    The chunk is ``block`` (``n`` samples, checked and copied into the input buffer
    here) or, where ``block`` is empty, the input buffer's first ``n`` samples (copied in
    by the caller); ``target`` (``n`` samples), where not empty, receives the FIFO's
    next ``n`` from ``read_pos``. Returns ``(frames, write_pos, read_pos)``: the frames
    completed and the FIFO's positions after them; ``frames`` is -1, and nothing changed,
    where ``block`` holds NaN, Inf or samples beyond the limit.
    """
    source, analysis, has_pitch, pitch, features, network, gains, synthesis, buffers, limits = (
        held.args
    )
    spec, feature_rows, model_out, activity, synthesized, fifo = buffers
    amin, mean_db, std_db, no_db = features
    mask, min_gain, low, high, release, factor, exponent, release_held = gains
    chunk = source[:, :n]
    if block.shape[1] and not copy_flushing_tiny_checked(block, chunk, limits[0], limits[1]):
        return -1, write_pos, read_pos
    block = chunk
    n_frames = _analyse(analysis, block, spec, 0)
    if has_pitch:
        _pitch_push(pitch, block, n, n_frames, pitch[11], 0)
    for c in range(spec.shape[0] if n_frames > 0 else 0):
        frames = spec[c, :n_frames]
        rows = model_out[c, :n_frames]
        log_power_features(frames, amin, mean_db, std_db, feature_rows[c, :n_frames], no_db, False)
        _run_network(feature_rows[c, :n_frames], rows, network, c)
        if release:
            release_gains(rows, release_held[c], factor, exponent)
        if has_pitch:
            pitch_comb(frames, pitch[11][c], rows, n_frames, *pitch[12:])
        if mask:
            apply_mask_gain(frames, rows, min_gain, low, high, activity[c])
        else:
            apply_noise_subtraction(frames, rows, min_gain, low, high, activity[c])
    n_samples = _synthesise(synthesis, spec, max(n_frames, 0), synthesized)
    _, write_pos = ring_copy(synthesized, 0, fifo, write_pos, n_samples)
    if target.shape[1]:
        read_pos, _ = ring_copy(fifo, read_pos, target, 0, n)
    return n_frames, write_pos, read_pos


@njit_cached()
def full_band_chunk(n, held, write_pos, pending, read_pos, block, target):  # pragma: no cover
    """One chunk of a full-band Denoiser (model-rate frames for the network, host-rate STFT).

    ``source[:, :n]`` is the chunk. Returns ``(frames, write_pos, pending)``: the
    host-rate frames completed, the FIFO's write position and the model frames that wait
    for their host frame, and the FIFO's read position: ``block`` and ``target`` as in
    :func:`model_rate_chunk` (``frames`` -1, nothing changed, for a bad block).
    """
    args = held.args
    source, model_frames, has_pitch, pitch, features, network, gains, host = args[:8]
    synthesis, buffers, limits = args[8:]
    spec, model_spec, feature_rows, model_out, activity, synthesized, fifo = buffers
    resampler, inner, count_at, model_analysis = model_frames
    amin, mean_db, std_db, no_db = features
    min_gain, release, factor, exponent, release_held, act_low, act_high = gains[:7]
    ref_start, model_stop = gains[7:]
    delay_history, delayed, host_analysis = host
    chunk = source[:, :n]
    if block.shape[1] and not copy_flushing_tiny_checked(block, chunk, limits[0], limits[1]):
        return -1, write_pos, pending, read_pos
    block = chunk
    count = _resample(resampler, block, n, inner)
    count_at[0] = count
    n_model = _analyse(model_analysis, inner[:, :count], model_spec, 0)
    if has_pitch:
        _pitch_push(pitch, inner, count, n_model, pitch[11], pending)
    for c in range(spec.shape[0] if n_model > 0 else 0):
        rows = model_out[c, pending : pending + n_model]
        log_power_features(
            model_spec[c, :n_model], amin, mean_db, std_db, feature_rows[c, :n_model], no_db, False
        )
        _run_network(feature_rows[c, :n_model], rows, network, c)
        if release:
            release_gains(rows, release_held[c], factor, exponent)
    delay_line(delay_history, block, n, delayed)
    n_frames = _analyse(host_analysis, delayed[:, :n], spec, 0)
    for c in range(spec.shape[0] if n_frames > 0 else 0):
        frames = spec[c, :n_frames]
        frame_gains = model_out[c, :n_frames]
        if has_pitch:
            pitch_comb(frames, pitch[11][c], frame_gains, n_frames, *pitch[12:])
        apply_fullband_gain(
            frames, frame_gains, min_gain, act_low, act_high, activity[c], ref_start, model_stop
        )
    left = pending + n_model - n_frames
    if left and n_frames:
        for c in range(spec.shape[0]):
            model_out[c, 0] = model_out[c, n_frames]
            if has_pitch:
                pitch[11][c, 0] = pitch[11][c, n_frames]
    n_samples = _synthesise(synthesis, spec, max(n_frames, 0), synthesized)
    _, write_pos = ring_copy(synthesized, 0, fifo, write_pos, n_samples)
    if target.shape[1]:
        read_pos, _ = ring_copy(fifo, read_pos, target, 0, n)
    return n_frames, write_pos, left, read_pos

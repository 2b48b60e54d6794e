"""A/B of the DSP around the model (issue 20, 48 kHz/480): each change against the last.

Variants, each a ``Denoiser`` of today's code with the changes after it undone, so all
run interleaved in one process (``_interleave.us_per_hop``, reversed every other round):

- ``before``: the code of 851241b: the post-filter's library ``pow`` per bin, the FIFO's
  ``ring_copy`` one sample at a time, the hot path's slices and checks as they were;
- ``+ unit_pow``: ``release_gains`` with the vectorised power (``_kernels.unit_pow``);
- ``+ ring runs``: ``ring_copy`` in runs that wrap neither ring;
- ``+ hot path``: one-chunk calls, views taken once, ``StreamResampler.push_into``
  (today's code).

The old kernels and methods are copies of 851241b's, kept here. Every variant's output
is checked equal to today's (the power aside) before timing.

Run: ``PYTHONPATH=. taskset -c 1 python benchmarks/ab_dsp48.py --rounds 40 --seconds 2``
"""

from __future__ import annotations

import argparse
import types

import numba as nb
import numpy as np
from _interleave import noisy, us_per_hop

from seproc import Denoiser, _kernels

NEW_RELEASE = _kernels.release_gains
NEW_RING = _kernels.ring_copy


@nb.njit(cache=False)
def old_release_gains(gains, held, factor, exponent):  # 851241b
    n_frames, n_bins = gains.shape
    raise_power = exponent != 1.0
    for t in range(n_frames):
        for f in range(n_bins):
            value = factor * held[f]
            gain = gains[t, f]
            if gain > value:
                value = min(gain, 1.0)
            held[f] = value
            gains[t, f] = held[f] ** exponent if raise_power else held[f]


@nb.njit(cache=False)
def old_ring_copy(source, source_pos, target, target_pos, n):  # 851241b
    channels = target.shape[0]
    source_width = source.shape[1]
    target_width = target.shape[1]
    for _ in range(n):
        for c in range(channels):
            target[c, target_pos] = source[c, source_pos]
        source_pos += 1
        if source_pos == source_width:
            source_pos = 0
        target_pos += 1
        if target_pos == target_width:
            target_pos = 0
    return source_pos, target_pos


def old_process(self, block, out=None):  # 851241b, Denoiser.process
    from seproc.denoiser import _FLUSH_BELOW, _check_samples, as_audio_block

    block2d, was_1d = as_audio_block(block, self._channels, name="block")
    n = block2d.shape[1]
    target = self._output_target(out, block2d, was_1d)
    _check_samples(block2d, "block")
    done = 0
    while done < n:
        size = min(self._max_block_samples, n - done)
        _kernels.copy_flushing_tiny(
            block2d[:, done : done + size], self._input[:, :size], _FLUSH_BELOW
        )
        self._process_chunk(size)
        self._read_pos, _ = _kernels.ring_copy(
            self._fifo, self._read_pos, target[:, done:], 0, size
        )
        done += size
    if n == 0:
        self._frames_last_call = 0
    return target[0] if was_1d else target


def old_process_chunk(self, size):  # 851241b
    if self._model_frames is not None:
        n_frames = old_full_band_frames(self, size)
    else:
        n_frames = old_model_rate_frames(self, size)
    self._frames_last_call = n_frames
    n_samples = n_frames * self._stft.hop_length
    self._synthesizer.push(self._spec, n_frames, self._synthesized)
    outer = self._bridge.to_outer(self._synthesized[:, :n_samples])
    _, self._write_pos = _kernels.ring_copy(outer, 0, self._fifo, self._write_pos, outer.shape[1])


def old_model_rate_frames(self, size):  # 851241b
    inner = self._bridge.to_inner(self._input[:, :size])
    n_frames = self._analyzer.push(inner, self._spec)
    low, high = self._activity_bins
    for c in range(self._channels):
        if n_frames == 0:
            break
        spec = self._spec[c, :n_frames]
        features = self._feature_buffer[c, :n_frames]
        model_out = self._model_out[c, :n_frames]
        self._features.compute_frames(spec, features)
        if n_frames == 1:
            self._frame_runs[c][0]()
        else:
            self._model.run(features, model_out, self._states[c])
        if self._postfilter is not None:
            _kernels.release_gains(
                model_out, self._held[c], self._release_factor, self._gain_exponent
            )
        self._apply_gain(spec, model_out, self._min_gain, low, high, self._activity[c])
    return n_frames


def old_full_band_frames(self, size):  # 851241b (ModelRateFrames.process with process_into)
    block = self._input[:, :size]
    frames = self._model_frames
    count = frames._resampler.process_into(block, frames._inner)
    n_model = frames._analyzer.push(frames._inner[:, :count], self._model_spec)
    pending = self._pending_frames
    for c in range(self._channels):
        if n_model == 0:
            break
        features = self._feature_buffer[c, :n_model]
        self._features.compute_frames(self._model_spec[c, :n_model], features)
        fresh = self._model_out[c, pending : pending + n_model]
        if n_model == 1:
            self._frame_runs[c][pending]()
        else:
            self._model.run(features, fresh, self._states[c])
        if self._postfilter is not None:
            _kernels.release_gains(fresh, self._held[c], self._release_factor, self._gain_exponent)
    _kernels.delay_line(self._delay_history, block, size, self._delayed)
    n_frames = self._analyzer.push(self._delayed[:, :size], self._spec)
    for c in range(self._channels):
        if n_frames == 0:
            break
        self._high_band.apply(
            self._spec[c, :n_frames],
            self._model_out[c, :n_frames],
            self._min_gain,
            self._activity[c],
        )
    left = pending + n_model - n_frames
    if left and n_frames:
        for c in range(self._channels):
            self._model_out[c, 0] = self._model_out[c, n_frames]
    self._pending_frames = left
    return n_frames


VARIANTS = {  # name: (release_gains, ring_copy, old hot path)
    "before": (old_release_gains, old_ring_copy, True),
    "+ unit_pow": (NEW_RELEASE, old_ring_copy, True),
    "+ ring runs": (NEW_RELEASE, NEW_RING, True),
    "+ hot path": (NEW_RELEASE, NEW_RING, False),
}


def kernels_of(name: str):
    release, ring, _ = VARIANTS[name]

    def swap() -> None:
        _kernels.release_gains = release
        _kernels.ring_copy = ring

    return swap


def build(sample_rate_hz: int) -> dict[str, Denoiser]:
    denoisers = {}
    for name, (_, _, old_path) in VARIANTS.items():
        kernels_of(name)()
        d = Denoiser(sample_rate=sample_rate_hz)
        if old_path:
            d.process = types.MethodType(old_process, d)
            d._process_chunk = types.MethodType(old_process_chunk, d)
        denoisers[name] = d
    return denoisers


def check_equal(denoisers: dict[str, Denoiser], signal: np.ndarray, block: int) -> None:
    """Each variant's stream equals today's bit for bit (the power within 1e-6: before)."""
    outputs = {}
    for name, d in denoisers.items():
        kernels_of(name)()
        d.reset()
        out = np.zeros((1, block), np.float32)
        chunks = []
        for s in range(0, signal.shape[1] - block + 1, block):
            chunks.append(d.process(signal[:, s : s + block], out=out).copy())
        outputs[name] = np.concatenate(chunks, axis=1)
    today = outputs["+ hot path"]
    for name, got in outputs.items():
        if name == "before":
            np.testing.assert_allclose(got, today, rtol=0, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, today)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--cases", default="48000:480,16000:160")
    args = parser.parse_args()
    for case in args.cases.split(","):
        rate, block = (int(v) for v in case.split(":"))
        signal = noisy(rate, args.seconds)
        denoisers = build(rate)
        check_equal(denoisers, signal, block)
        prepare = {name: kernels_of(name) for name in denoisers}
        times = us_per_hop(
            denoisers, signal, block, args.rounds, reverse_every_other=True, prepare=prepare
        )
        base = np.array(times["before"])
        previous = base
        print(f"{rate} Hz, block {block}, {args.rounds} rounds of {args.seconds} s:")
        for name, values in times.items():
            values = np.array(values)
            print(
                f"  {name:12s} median {np.median(values):6.1f} us/hop  min {values.min():6.1f}"
                f"  vs previous {np.median(values / previous):.3f}"
                f"  vs before {np.median(values / base):.3f}"
            )
            previous = values
    _kernels.release_gains = NEW_RELEASE
    _kernels.ring_copy = NEW_RING


if __name__ == "__main__":
    main()

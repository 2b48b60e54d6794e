"""The plain multiprocessing peer of the Ray engine (a module of its own so that spawned
workers import only this, not Ray)."""

from __future__ import annotations

import soundfile as sf

from seproc import api
from seproc.denoiser import Denoiser

_DENOISERS: dict = {}


def denoise_one(job: tuple[str, str, str | None]) -> tuple[float, float]:
    """Denoise one file with this process's cached Denoiser; return audio and busy seconds."""
    src, dst, model = job
    info = sf.info(src)
    key = (info.samplerate, info.channels)
    if key not in _DENOISERS:
        _DENOISERS[key] = Denoiser(
            model, sample_rate=key[0], channels=key[1], max_block_samples=65536
        )
    result = api.process_file(src, dst, model=model, denoiser=_DENOISERS[key])
    return result.duration_s, result.processing_s

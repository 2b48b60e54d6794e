"""The plain multiprocessing peer of the Ray engine (a module of its own so that spawned
workers import only this, not Ray)."""

from __future__ import annotations

from seproc._files import DenoiserPool, DenoiseSettings, denoise_file

_POOLS: dict[str | None, DenoiserPool] = {}


def denoise_one(job: tuple[str, str, str | None]) -> tuple[float, float]:
    """Denoise one file with this process's cached Denoiser; return audio and busy seconds."""
    src, dst, model = job
    if model not in _POOLS:
        _POOLS[model] = DenoiserPool(DenoiseSettings(model=model))
    result = denoise_file(src, dst, _POOLS[model].settings, pool=_POOLS[model])
    return result.duration_s, result.processing_s

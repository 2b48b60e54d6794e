"""seproc: real-time speech denoising for Python audio tools.

Audio arrays are ``(channels, samples)`` float32 or float64, like pedalboard
and librosa; mono may also be passed as a 1-D array.

>>> from seproc import Denoiser
>>> denoiser = Denoiser(sample_rate=48000)          # doctest: +SKIP
>>> clean_block = denoiser.process(noisy_block)     # doctest: +SKIP
"""

from __future__ import annotations

from seproc._version import __version__
from seproc.api import FileResult, denoise, process_file
from seproc.denoiser import Denoiser
from seproc.errors import ModelError, ParameterError, SeprocError

__all__ = [
    "Denoiser",
    "FileResult",
    "ModelError",
    "ParameterError",
    "SeprocError",
    "__version__",
    "denoise",
    "process_file",
]

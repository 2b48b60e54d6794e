"""seproc: real-time speech denoising for Python audio tools.

Audio arrays are ``(channels, samples)`` float32 or float64, like pedalboard
and librosa; mono may also be passed as a 1-D array.
"""

from __future__ import annotations

from seproc.errors import ModelError, ParameterError, SeprocError

__all__ = ["ModelError", "ParameterError", "SeprocError", "__version__"]

__version__ = "0.1.0"

"""All numba-compiled kernels of seproc, in one private module.

Each kernel is small, takes its constants as arguments (numba freezes globals at
compile time), and writes into a buffer that the caller owns, so the streaming hot
path allocates nothing. No global ``fastmath``: it changes NaN/Inf semantics.

Kernels are compiled with ``cache=True``. On a read-only install numba cannot write
its cache next to the package: set ``NUMBA_CACHE_DIR`` to a writable folder.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# ---------------------------------------------------------------------------
# Framing, windowing and overlap-add (used by seproc.stft)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Log-magnitude conversion (used by seproc.features)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Polyphase resampling (used by seproc.resample)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Gain application and gain statistics (used by seproc.denoiser)
# ---------------------------------------------------------------------------

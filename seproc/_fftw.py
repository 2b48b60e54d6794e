"""FFTW plans that numba code executes: the library pyfftw loaded, planned through ctypes.

A streaming hop runs its three or four FFTs between numba kernels; called through
pyfftw, each is a return to Python (about 0.5 µs with its attribute lookups) and the
kernels around it are separate numba calls (0.3-1 µs of argument checks each). Here
the same transforms are FFTW plans made through ctypes on pyfftw's own library (so the
same wisdom: a problem pyfftw planned is planned the same way here, which
:func:`plan_rows` checks bit for bit), and :func:`execute` runs one from numba, by the
function's address: nothing in a compiled kernel refers to a ctypes object, so the
kernels stay cached on disk.

FFTW's planner is not thread-safe: every plan seproc makes, through pyfftw or here, is
made under :data:`PLAN_LOCK` (pyfftw's own lock is private to it; a program that plans
with pyfftw in another thread while a :class:`~seproc.Denoiser` is built should build
it first).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable

import numpy as np
import pyfftw
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from seproc._kernels import njit_cached

__all__ = ["PLAN_LOCK", "available", "destroy_plans", "execute", "execute_rows", "plan_rows"]

PLAN_LOCK = threading.RLock()
"""Held while any FFTW plan is made or destroyed (``seproc.stft`` plans under it too)."""

# FFTW's planner flags (fftw3.h)
_FLAGS = {
    "FFTW_MEASURE": 0,
    "FFTW_EXHAUSTIVE": 8,
    "FFTW_PATIENT": 32,
    "FFTW_ESTIMATE": 64,
}
_DESTROY_INPUT = 1
_PRESERVE_INPUT = 16


class _IoDim(ctypes.Structure):
    """``fftwf_iodim``: a dimension's size and its input and output strides (in elements)."""

    _fields_ = [("n", ctypes.c_int), ("is_", ctypes.c_int), ("os", ctypes.c_int)]


class _Library:
    """The single-precision FFTW functions this module calls, from pyfftw's library."""

    def __init__(self, path: str) -> None:
        lib = ctypes.CDLL(path)  # already loaded by pyfftw: the same handle, the same wisdom
        for name in ("fftwf_plan_guru_dft_r2c", "fftwf_plan_guru_dft_c2r"):
            function = getattr(lib, name)
            function.restype = ctypes.c_void_p
            function.argtypes = [
                ctypes.c_int,
                ctypes.POINTER(_IoDim),
                ctypes.c_int,
                ctypes.POINTER(_IoDim),
                ctypes.c_void_p,
                ctypes.c_void_p,
                ctypes.c_uint,
            ]
        self.plan_r2c = lib.fftwf_plan_guru_dft_r2c
        self.plan_c2r = lib.fftwf_plan_guru_dft_c2r
        self.destroy = lib.fftwf_destroy_plan
        self.destroy.restype = None
        self.destroy.argtypes = [ctypes.c_void_p]
        self.execute_address = ctypes.cast(lib.fftwf_execute, ctypes.c_void_p).value
        self.set_threads: Callable[[int], None] | None = None
        threads = _find_library("libfftw3f_omp") or _find_library("libfftw3f_threads")
        if threads is not None:
            setter = getattr(ctypes.CDLL(threads), "fftwf_plan_with_nthreads", None)
            if setter is not None:
                setter.restype = None
                setter.argtypes = [ctypes.c_int]
                self.set_threads = setter


def _find_library(stem: str) -> str | None:
    """Return the path of the FFTW library ``stem`` that pyfftw loaded, if it can be found."""
    try:
        with open("/proc/self/maps") as maps:  # Linux: the file actually mapped
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                name = os.path.basename(path)
                if name.startswith(stem) and name[len(stem) : len(stem) + 1] in ("-", "."):
                    return path
    except OSError:
        pass
    package = os.path.dirname(pyfftw.__file__)
    for folder in (f"{package}.libs", os.path.join(package, ".dylibs")):  # wheel-bundled
        found = sorted(glob.glob(os.path.join(folder, f"{stem}[-.]*")))
        if found:
            return found[0]
    return None


def _load() -> _Library | None:
    path = _find_library("libfftw3f")
    if path is None:
        return None
    try:
        return _Library(path)
    except (OSError, AttributeError):
        return None


_LIBRARY = _load()


def available() -> bool:
    """Whether FFTW plans can be made here for numba code (else the Python path runs)."""
    return _LIBRARY is not None


def plan_rows(
    real: np.ndarray, spec: np.ndarray, n_rows: int, n_fft: int, effort: str, inverse: bool
) -> np.ndarray | None:
    """Plan one transform per row of the first ``n_rows`` rows, as pyfftw planned them.

    Parameters
    ----------
    real, spec : np.ndarray
        A :class:`seproc.stft.RowTransforms`' float32 and complex64 rows (each row
        SIMD-aligned), holding the rows that pyfftw planned: the same FFTW problem,
        made with the same flags, takes pyfftw's wisdom.
    n_rows, n_fft, effort, inverse
        The rows to plan, the FFT size, the planner effort (``"FFTW_MEASURE"``...) and
        the direction (``inverse``: complex to real, input destroyed).

    Returns
    -------
    np.ndarray [shape=(n_rows + 1,)], int64 or None
        ``fftwf_execute``'s address, then each row's plan (for :func:`execute`); None
        where FFTW cannot be called here or a plan fails. Free with
        :func:`destroy_plans`.
    """
    library = _LIBRARY
    if library is None or real.dtype != np.float32:
        return None
    dims = (_IoDim * 1)(_IoDim(n_fft, 1, 1))
    none = (_IoDim * 1)()
    flags = _FLAGS[effort] | (_DESTROY_INPUT if inverse else _PRESERVE_INPUT)
    planner = library.plan_c2r if inverse else library.plan_r2c
    addresses = np.zeros(n_rows + 1, np.int64)
    addresses[0] = library.execute_address
    with PLAN_LOCK:
        if library.set_threads is not None:
            library.set_threads(1)
        for r in range(n_rows):
            source, target = (spec[r], real[r]) if inverse else (real[r], spec[r])
            plan = planner(1, dims, 0, none, source.ctypes.data, target.ctypes.data, flags)
            if not plan:
                destroy_plans(addresses[: r + 1])
                return None
            addresses[r + 1] = plan
    return addresses


def destroy_plans(addresses: np.ndarray) -> None:
    """Free the plans of a :func:`plan_rows` array (its first entry is not a plan)."""
    library = _LIBRARY
    if library is None:
        return
    with PLAN_LOCK:
        for plan in addresses[1:]:
            if plan:
                library.destroy(int(plan))


@intrinsic
def _call_void_pointer(typingctx, function, argument):  # type: ignore[no-untyped-def]
    """Call the C function ``void f(void *)`` at address ``function`` with ``argument``."""
    if not (isinstance(function, types.Integer) and isinstance(argument, types.Integer)):
        return None
    pointer = ir.IntType(8).as_pointer()

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        function_type = ir.FunctionType(ir.VoidType(), [pointer])
        callee = builder.inttoptr(args[0], function_type.as_pointer())
        builder.call(callee, [builder.inttoptr(args[1], pointer)])
        return context.get_dummy_value()

    return types.void(function, argument), codegen


@njit_cached(inline="always")
def execute(addresses, row):  # pragma: no cover - compiled
    """Run row ``row``'s plan of a :func:`plan_rows` array (``fftwf_execute``)."""
    _call_void_pointer(addresses[0], addresses[row + 1])


@njit_cached()
def execute_rows(addresses, n_rows):  # pragma: no cover - compiled
    """Run the first ``n_rows`` plans of a :func:`plan_rows` array."""
    for r in range(n_rows):
        _call_void_pointer(addresses[0], addresses[r + 1])

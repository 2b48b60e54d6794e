"""Exception types raised by seproc.

Every error seproc raises on purpose derives from :class:`SeprocError`, so a
host can catch the library's errors in one place. Bad arguments and bad input
raise :class:`ParameterError`, which is also a :class:`ValueError`; a missing
or invalid model file raises :class:`ModelError`, which is also a
:class:`RuntimeError`.
"""

from __future__ import annotations

__all__ = ["ModelError", "ParameterError", "SeprocError"]


class SeprocError(Exception):
    """Base class of every error seproc raises on purpose."""


class ParameterError(SeprocError, ValueError):
    """An argument or an input array is not what the function expects.

    The message names the argument, what arrived, the rule, and the fix.
    """


class ModelError(SeprocError, RuntimeError):
    """A model file is missing, unreadable, or does not match seproc's contract."""

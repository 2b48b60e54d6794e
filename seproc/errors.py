"""Exception types raised by seproc.

Every error seproc raises on purpose derives from :class:`SeprocError`, so a
host can catch the library's errors in one place. Bad arguments and bad input
raise :class:`ParameterError`, which is also a :class:`ValueError`; a missing
or invalid model file raises :class:`ModelError`, which is also a
:class:`RuntimeError`.
"""

from __future__ import annotations

__all__ = ["ModelError", "ParameterError", "SeprocError", "one_line"]


class SeprocError(Exception):
    """Base class of every error seproc raises on purpose."""


class ParameterError(SeprocError, ValueError):
    """An argument or an input array is not what the function expects.

    The message names the argument, what arrived, the rule, and the fix.
    """


class ModelError(SeprocError, RuntimeError):
    """A model file is missing, unreadable, or does not match seproc's contract."""


def one_line(error: BaseException) -> str:
    """Return an error's message as one line: its first non-blank line, spaces collapsed.

    For the one-line reports of the command line, the manifest's ``error`` column and
    messages that wrap another library's error. An error with no message gives its
    type's name.

    Examples
    --------
    >>> one_line(RuntimeError("Cannot read x.wav:   Format not recognised.  "))
    'Cannot read x.wav: Format not recognised.'
    >>> one_line(KeyError())
    'KeyError'
    """
    for line in str(error).splitlines():
        if line.strip():
            return " ".join(line.split())
    return type(error).__name__

"""How seproc's classes and functions declare what a caller sees.

Two helpers, so that a public name is written once:

- :class:`Setting`, a read-only property in one line, for the settings that an object
  fixes at construction and only reads back (``channels``, ``max_block_samples``, ...);
- :func:`forwards_keywords_to`, for a function that takes another's keyword parameters
  and passes them on (``live.run`` those of ``LiveClient``), so that their names and
  defaults are declared once, in the function that uses them.
"""

from __future__ import annotations

import inspect
import operator
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Generic, TypeVar, overload

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])


class Setting(property, Generic[T]):
    """A read-only property that returns an attribute the constructor set.

    In a class body, ``channels = Setting[int]("_channels", "Number of channels.")``
    is the property::

        @property
        def channels(self) -> int:
            \"\"\"Number of channels.\"\"\"
            return self._channels

    in one line. It is a ``property`` (``help()``, documentation tools and
    ``isinstance`` see one; assigning to it raises ``AttributeError``) whose getter is
    :func:`operator.attrgetter`. A property that computes its value, or whose meaning
    takes a paragraph, stays a ``@property``.

    Parameters
    ----------
    attribute : str
        The instance attribute to return (a dotted path reads through parts).
    doc : str
        The property's docstring.
    """

    def __init__(self, attribute: str, doc: str) -> None:
        super().__init__(operator.attrgetter(attribute))
        # A subclass's own docstring would shadow the doc that property keeps in its slot.
        self.__doc__ = doc

    if TYPE_CHECKING:  # what type checkers read: the value's type, not property's Any

        @overload
        def __get__(self, instance: None, owner: type | None = None, /) -> Setting[T]: ...

        @overload
        def __get__(self, instance: object, owner: type | None = None, /) -> T: ...

        def __get__(self, instance: object, owner: type | None = None, /) -> T | Setting[T]: ...


def forwards_keywords_to(
    target: Callable[..., object], *, leave_out: Collection[str] = ()
) -> Callable[[F], F]:
    """Declare that a function passes its ``**keywords`` on to ``target``.

    The decorated function keeps its own parameters and takes the rest of
    ``target``'s keyword-only ones through ``**keywords``; its signature (what
    ``inspect.signature``, ``help()`` and ``tests/test_argspec.py`` read) lists them
    in place of ``**keywords``, with ``target``'s names, defaults and annotations.
    The function itself is returned unchanged.

    Parameters
    ----------
    target : callable
        The function or class whose keyword-only parameters are passed on.
    leave_out : collection of str
        ``target``'s keyword parameters that the function sets itself (or never
        passes), left out of its signature.

    Returns
    -------
    callable
        A decorator.
    """

    def decorate(function: F) -> F:
        own = inspect.signature(function)
        if inspect.Parameter.VAR_KEYWORD not in {p.kind for p in own.parameters.values()}:
            raise TypeError(f"{function.__qualname__} takes no **keywords to pass on")
        head = [p for p in own.parameters.values() if p.kind < inspect.Parameter.KEYWORD_ONLY]
        tail = [p for p in own.parameters.values() if p.kind == inspect.Parameter.KEYWORD_ONLY]
        taken = {p.name for p in (*head, *tail)} | set(leave_out)
        passed_on = [
            p
            for p in inspect.signature(target).parameters.values()
            if p.kind == inspect.Parameter.KEYWORD_ONLY and p.name not in taken
        ]
        signature = own.replace(parameters=[*head, *passed_on, *tail])
        function.__signature__ = signature  # type: ignore[attr-defined]
        return function

    return decorate

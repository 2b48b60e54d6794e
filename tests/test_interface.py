"""``forwards_keywords_to`` shows the keywords a function passes on in its signature."""

from __future__ import annotations

import inspect

import pytest

from seproc._interface import forwards_keywords_to


def target(first, *, alpha: int = 1, beta: str = "b", hidden: object = None) -> None:
    """Take keywords."""


def test_forwarded_keywords_stand_in_the_signature_in_place_of_the_keywords():
    @forwards_keywords_to(target, leave_out=("hidden",))
    def caller(first, *, gamma: float = 0.5, **keywords) -> int:
        return target(first, **keywords) or 0

    assert str(inspect.signature(caller)) == (
        "(first, *, alpha: 'int' = 1, beta: 'str' = 'b', gamma: 'float' = 0.5) -> 'int'"
    )
    assert caller(0, beta="c") == 0


def test_a_function_without_keywords_to_pass_on_is_refused():
    with pytest.raises(TypeError, match="takes no \\*\\*keywords"):

        @forwards_keywords_to(target)
        def caller(first, *, gamma: float = 0.5) -> None:
            pass

"""``Setting`` is a read-only property; ``forwards_keywords_to`` shows the keywords passed on."""

from __future__ import annotations

import inspect
import pydoc

import pytest

from seproc._interface import Setting, forwards_keywords_to


class Holder:
    channels = Setting[int]("_channels", "Number of channels.")
    rate = Setting[int]("_part.rate", "The part's rate in Hz.")

    def __init__(self) -> None:
        self._channels = 2
        self._part = type("Part", (), {"rate": 48000})()


def test_setting_reads_the_attribute_and_is_a_read_only_property():
    holder = Holder()
    assert (holder.channels, holder.rate) == (2, 48000)
    assert isinstance(Holder.channels, property)
    assert Holder.channels.__doc__ == "Number of channels."
    with pytest.raises(AttributeError, match="has no setter"):
        holder.channels = 1
    with pytest.raises(AttributeError, match="has no deleter"):
        del holder.channels
    assert holder.channels == 2


def test_help_lists_a_setting_with_its_doc():
    text = pydoc.render_doc(Holder, renderer=pydoc.plaintext)
    assert "Readonly properties defined here:" in text
    assert "channels\n |      Number of channels." in text


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

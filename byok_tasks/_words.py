"""Words for messages: what a value is, with the right article."""

from __future__ import annotations

__all__ = ["a_value_of_type"]


def a_value_of_type(value: object) -> str:
    """``"an int"``, ``"a list"``, ``"None"``: the type of ``value`` as a message says it."""
    if value is None:
        return "None"
    name = type(value).__name__
    # By the first letter, which is right for the types a header or a resolver's answer
    # turns out to be: int, object, list, float, bytes, dict, tuple.
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"

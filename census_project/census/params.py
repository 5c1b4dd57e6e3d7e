"""argparse types for the census entry points: each value is checked when the command line is read,
before any work starts, and a wrong one ends in one line (see cli.py) naming the option and a fix.

MLflow passes every ``-P name=value`` to the script verbatim, so lists arrive as JSON text such as
``[0.1, 1.0, 10.0]`` and booleans as ``true``/``True``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable


def boolean(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no; MLflow turns YAML's true into ``True``)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def fraction(low_open: bool = True, high_open: bool = True) -> Callable[[str], float]:
    """A number between 0 and 1, each end excluded or included."""
    shown = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if (value <= 0 if low_open else value < 0) or (value >= 1 if high_open else value > 1):
            raise argparse.ArgumentTypeError(f"{text} is outside {shown}")
        return value

    return parse


def at_least(minimum: int) -> Callable[[str], int]:
    """A whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        return value

    return parse


def json_list(item: Callable, expected: str, example: str) -> Callable[[str], list]:
    """A non-empty JSON list such as ``[0.1, 1.0]``; ``item`` checks each element (raises ValueError)."""

    def parse(text: str) -> list:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as problem:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not valid JSON ({problem.msg} at char {problem.pos}); pass a list such as '{example}'"
            ) from None
        if not isinstance(value, list) or not value:
            raise argparse.ArgumentTypeError(f"{text!r} is not a non-empty JSON list such as '{example}'")
        try:
            return [item(element) for element in value]
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} must list {expected}, e.g. '{example}'") from None

    return parse


def positive_number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(value)
    return float(value)


def positive_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(value)
    return value


def depth(value) -> int | None:
    """A forest's max_depth: a positive integer, or null for unlimited."""
    return None if value is None else positive_int(value)


def one_of(choices: list[str]) -> Callable:
    def check(value):
        if value not in choices:
            raise ValueError(value)
        return value

    return check

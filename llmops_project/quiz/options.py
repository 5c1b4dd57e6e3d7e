"""Command-line options of the entry points. The MLproject file is the one place that holds each
parameter's default: the scripts read it, so `python generate_answers.py` and `mlflow run` agree."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import yaml

from quiz import MLPROJECT_FILE, PROMPTS_DIR


def entry_point_defaults(entry_point: str) -> dict:
    """{parameter: default} of one entry point of the MLproject file."""
    spec = yaml.safe_load(MLPROJECT_FILE.read_text(encoding="utf-8"))
    parameters = spec["entry_points"][entry_point].get("parameters") or {}
    return {name: definition.get("default") for name, definition in parameters.items()}


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type for integers >= minimum ('4' and '4.0' both mean 4, as MLflow passes
    numeric parameters through verbatim)."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= {minimum}")
        return int(value)

    return parse


def fraction(text: str) -> float:
    """An argparse type for a number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def add_generation_arguments(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """The options both generation entry points take (their defaults come from the MLproject)."""
    parser.add_argument(
        "--prompt-template", default=defaults["prompt_template"], choices=user_templates(), help="user prompt template"
    )
    parser.add_argument(
        "--max-questions",
        type=whole_number(-1),
        default=defaults["max_questions"],
        help="answer only the first N questions (-1 = all)",
    )
    parser.add_argument("--model", default=defaults["model"], help="chat model name")
    parser.add_argument("--temperature", type=float, default=defaults["temperature"], help="sampling temperature")
    parser.add_argument(
        "--max-tokens", type=whole_number(1), default=defaults["max_tokens"], help="longest answer, in tokens"
    )
    parser.add_argument(
        "--concurrency",
        type=whole_number(1),
        default=defaults["concurrency"],
        help="questions answered at once (1 = one after the other)",
    )
    parser.add_argument(
        "--max-failure-rate",
        type=fraction,
        default=defaults["max_failure_rate"],
        help="fail the run when more than this fraction of questions failed",
    )


SYSTEM_PROMPTS = ("system", "tools")  # prompts/system.txt and the agent's prompts/tools.txt addendum


def user_templates() -> list[str]:
    """The user prompt templates: every prompts/*.txt but the system prompts."""
    return sorted(path.stem for path in PROMPTS_DIR.glob("*.txt") if path.stem not in SYSTEM_PROMPTS)


def names(choices: list[str]) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated list of names, each one of ``choices`` (or any name
    when ``choices`` is empty), e.g. 'basic,practical'."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} names nothing: give comma-separated names")
        unknown = [item for item in items if choices and item not in choices]
        if unknown:
            choose = ", ".join(choices)
            raise argparse.ArgumentTypeError(f"unknown name {unknown[0]!r} in {text!r} (choose from {choose})")
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"{text!r} names the same thing twice")
        return items

    return parse

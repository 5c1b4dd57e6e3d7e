"""Command lines: the MLproject file is the one place that holds each parameter's default."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import yaml

from quiz import MLPROJECT_FILE, QuizError


def entry_point_defaults(entry_point: str) -> dict:
    """{parameter: default} of one entry point of the MLproject file."""
    spec = yaml.safe_load(MLPROJECT_FILE.read_text(encoding="utf-8"))
    parameters = spec["entry_points"][entry_point].get("parameters") or {}
    return {name: definition.get("default") for name, definition in parameters.items()}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's layout and shows each default."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad argument prints one line (no usage dump) and exits with 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"error: {message}. See python {self.prog} --help.\n")


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
        "--prompt-template",
        default=defaults["prompt_template"],
        help="user prompt template: basic, concise, practical or academic",
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


def log_arguments(arguments: dict) -> None:
    """Log the command-line arguments as run parameters, except those ``mlflow run`` already
    logged from the MLproject (MLflow refuses to change a logged parameter's value)."""
    import mlflow

    run = mlflow.active_run()
    logged = mlflow.get_run(run.info.run_id).data.params
    mlflow.log_params({k: v for k, v in arguments.items() if k not in logged})


def run(main: Callable[[], None]) -> None:
    """Run an entry point's main(); a QuizError becomes one line on stderr and exit code 2.

    Raised inside ``with mlflow.start_run()``, the error has already ended the run as FAILED.
    """
    try:
        main()
    except QuizError as problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)

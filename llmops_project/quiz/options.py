"""Command-line options the two generation entry points share. As in every folder, argparse holds
each default (what ``python generate_answers.py --help`` shows); the MLproject repeats them for
``mlflow run``, and tests/test_mlprojects.py checks that the two agree. The value types come from
cli.py, the same file in every folder."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import cli
from quiz import PROMPTS_DIR


def add_generation_arguments(parser: argparse.ArgumentParser, model: str, max_tokens: int) -> None:
    """The options both generation entry points take; ``model`` and ``max_tokens`` differ between them."""
    parser.add_argument("--prompt-template", default="basic", choices=user_templates(), help="user prompt template")
    parser.add_argument(
        "--max-questions",
        type=cli.whole_number(-1),
        default=-1,
        help="answer only the first N questions (-1 = all)",
    )
    parser.add_argument("--model", default=model, help="chat model name")
    parser.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    parser.add_argument("--max-tokens", type=cli.whole_number(1), default=max_tokens, help="longest answer, in tokens")
    parser.add_argument(
        "--concurrency",
        type=cli.whole_number(1),
        default=8,
        help="questions answered at once (1 = one after the other)",
    )
    parser.add_argument(
        "--max-failure-rate",
        type=cli.fraction(),
        default=0.2,
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


def whole_numbers(text: str) -> list[int]:
    """An argparse type for a comma-separated list of whole numbers >= 1, e.g. '8,500' (token budgets)."""
    words = [item.strip() for item in str(text).split(",") if item.strip()]
    if not words or not all(word.isdigit() and int(word) >= 1 for word in words):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers >= 1, e.g. 8,500")
    if len(set(words)) != len(words):
        raise argparse.ArgumentTypeError(f"{text!r} names the same number twice")
    return [int(word) for word in words]


JUDGE_MODEL = "openai:/gpt-4.1-mini"  # the talk's judge model


def model_uri(text: str) -> str:
    """An argparse type for a model URI, ``<provider>:/<model>``."""
    if ":/" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a model URI such as openai:/gpt-4.1-mini")
    return text


def add_model_uri(parser: argparse.ArgumentParser, option: str, help: str, default: str = JUDGE_MODEL) -> None:
    """A ``<provider>:/<model>`` option (--judge-model, --reflection-model, ...)."""
    parser.add_argument(option, type=model_uri, default=default, help=help)


def add_held_out(parser: argparse.ArgumentParser, help: str) -> None:
    """--held-out: the share of something kept out of learning, to measure on (align, optimize)."""
    parser.add_argument("--held-out", type=cli.fraction(low_open=True, high_open=True), default=0.5, help=help)


TALK_JUDGES, ALIGNED_JUDGES = "talk", "aligned"  # -P judges= of compare and optimize


def add_judges(parser: argparse.ArgumentParser, help: str) -> None:
    """--judges: the talk's judges, or in their place the aligned ones registered in the experiment."""
    parser.add_argument("--judges", default=TALK_JUDGES, choices=[TALK_JUDGES, ALIGNED_JUDGES], help=help)

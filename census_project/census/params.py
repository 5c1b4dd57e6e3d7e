"""Command-line parameters: parsing helpers and the one-line error every entry point prints.

A wrong parameter must end in ONE clear line naming it (and a fix), a non-zero exit, and no
half-done work. Entry points raise ``BadParameter`` and wrap ``main`` with ``exit_on_bad_parameter``.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import wraps

import mlflow


class BadParameter(Exception):
    """A parameter value we cannot use: ``name`` is its MLproject name."""

    def __init__(self, name: str, problem: str, fix: str):
        super().__init__(f"{name}: {problem}. {fix}")
        self.name = name


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        sys.stderr.write(f"error: {message}. See: python {self.prog} --help\n")
        sys.exit(2)


def exit_on_bad_parameter(main):
    """Turn a ``BadParameter`` escaping ``main`` into ``error: <name>: <problem>. <fix>``, exit 2.

    If a run was active it has already ended FAILED (``with mlflow.start_run()`` does that), and
    ``mlflow run`` marks its run FAILED when the script exits non-zero.
    """

    @wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except BadParameter as bad:
            sys.stderr.write(f"error: {bad}\n")
            sys.exit(2)

    return wrapper


def parse_bool(name: str, text: str) -> bool:
    """MLflow passes YAML's ``true`` as ``True``; people type true/false/1/0/yes/no."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise BadParameter(name, f"{text!r} is not a boolean", f"Use -P {name}=true or -P {name}=false")


def parse_json_list(name: str, text: str, check_item, expected: str, example: str) -> list:
    """Parse a JSON list such as ``[0.1, 1.0]``; ``check_item`` returns the item or raises ValueError."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as problem:
        raise BadParameter(
            name,
            f"{text!r} is not valid JSON ({problem.msg} at char {problem.pos})",
            f"Pass a JSON list, e.g. -P {name}='{example}'",
        ) from None
    if not isinstance(value, list) or not value:
        raise BadParameter(
            name, f"{text!r} is not a non-empty JSON list", f"Pass a JSON list, e.g. -P {name}='{example}'"
        )
    try:
        return [check_item(item) for item in value]
    except (TypeError, ValueError):
        raise BadParameter(name, f"{text!r} must list {expected}", f"e.g. -P {name}='{example}'") from None


def one_of(name: str, value: str, choices) -> str:
    if value not in choices:
        raise BadParameter(name, f"{value!r} is not one of {', '.join(choices)}", f"Use e.g. -P {name}={choices[0]}")
    return value


def log_new_params(params: dict) -> None:
    """Log the command-line parameters to the active run, except those ``mlflow run`` has already
    logged (it logs every MLproject parameter itself, and MLflow refuses to change a param)."""
    already = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({name: str(value) for name, value in params.items() if name not in already})

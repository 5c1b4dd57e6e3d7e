"""The command-line conventions every script of the course follows.

This file is the same in every example folder, so that a folder can be copied and run on its own
(tests/test_conventions.py keeps the copies identical). Nothing here is on a slide:

* ``fail`` / ``UserError`` / ``run``: a mistake in what the user typed ends in ONE line,
  ``error: <what>. <how to fix, with an example>``, exit status 2, no traceback, and no run left
  RUNNING. (``mlflow run`` reports any non-zero status of the script as its own exit status 1.)
* ``ArgumentParser``: argparse with that one-line error format.
* ``under_mlflow_run``: the experiment rule. ``mlflow run --experiment-name X`` creates the run in
  X before the script starts, so the script calls ``mlflow.set_experiment`` only when run alone.
* ``log_new_params``: ``mlflow run`` logs the MLproject's parameters itself, and MLflow refuses to
  log a parameter twice: log only the others.
* ``print_next`` / ``mlflow_run_command``: the next command, as the talk runs it (from inside this
  folder), then from the repository root, each on its own labelled line.
* ``print_ui_hint``: where to look at a run: ``make ui`` for the local store, the server's page
  when ``MLFLOW_TRACKING_URI`` points at a tracking server. ``ui_page`` / ``set_experiment_kind``:
  the UI's view (Model training or GenAI) that each folder's pages open in (see that block).
* On import, it silences the few library warnings a student cannot act on (see the end of the file).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import mlflow

FOLDER = Path(__file__).resolve().parent.name  # this example's folder, e.g. "census_project"
LOCAL_UI = "http://127.0.0.1:5000"  # where `make ui` / `mlflow ui` serve the local store


class UserError(Exception):
    """A problem the user can fix. Its message reads ``<what>. <how to fix, with an example>``."""


def fail(message: str) -> None:
    """Print ``error: <message>``, end the run FAILED (never leave it RUNNING), exit with status 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    if mlflow.active_run():
        mlflow.end_run(status="FAILED")
    elif run_id := os.environ.get("MLFLOW_RUN_ID"):  # `mlflow run` created the run before we started
        mlflow.MlflowClient().set_terminated(run_id, status="FAILED")
    sys.exit(2)


def run(main: Callable[[], None]) -> None:
    """Run an entry point's ``main()``; a ``UserError`` raised anywhere inside becomes ``fail``."""
    try:
        main()
    except UserError as problem:
        fail(str(problem))


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line with an example command, instead of usage + error."""

    def __init__(self, example: str, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        self.example = example

    def error(self, message: str) -> None:
        fail(f"{message}. Example: {self.example}")


def under_mlflow_run() -> bool:
    """True when ``mlflow run`` started this script: its run already exists, in the experiment
    chosen by ``--experiment-name``, so the script must not switch experiment."""
    return "MLFLOW_RUN_ID" in os.environ


def log_new_params(params: dict) -> None:
    """Log ``params`` to the active run, except those ``mlflow run`` has logged already."""
    logged = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    mlflow.log_params({name: str(value) for name, value in params.items() if name not in logged})


def quote(value) -> str:
    """A command-line word that bash, cmd and PowerShell all read the same way."""
    text = str(value)
    return text if re.fullmatch(r"[\w@%+=:,./-]+", text) else '"' + text.replace('"', '\\"') + '"'


def mlflow_run_command(entry: str, params: dict | None = None, experiment_name: str | None = None) -> str:
    """``mlflow run -e <entry> --env-manager=local --experiment-name <name> {here} -P k=v ...``,
    the talk's form; ``{here}`` is the project folder (see ``print_next``)."""
    words = ["mlflow run", "-e", entry, "--env-manager=local"]
    if experiment_name:
        words += ["--experiment-name", quote(experiment_name)]
    words.append("{here}")
    for name, value in (params or {}).items():
        words += ["-P", f"{name}={quote(value)}"]
    return " ".join(words)


def print_next(what: str, command: str) -> None:
    """Print the next command from inside this folder (the talk's way), then from the repository
    root. In ``command``, ``{here}/file`` is a file of this folder and a lone ``{here}`` the folder
    itself (``.`` inside it). A script cannot tell which folder the student typed the command in
    (``mlflow run`` starts it inside the project folder), so it prints both forms."""
    inside = command.replace("{here}/", "").replace("{here}", ".")
    root = command.replace("{here}", FOLDER)
    here, top = f"from {FOLDER}/:", "from the repository root:"
    width = max(len(here), len(top))
    print(f"\nNext, {what}:")
    print(f"  {here:<{width}}  {inside}")
    print(f"  {top:<{width}}  {root}")


# --- The MLflow UI's view: "Model training" (runs, charts, models) or "GenAI" (traces, evaluations) ----
# MLflow 3.17's UI picks the view from its side bar's switch, which it remembers in the browser
# (a fresh browser starts in GenAI), or from ``?workflowType=`` in the page's address, which wins.
# So every page printed here names its view. The experiment tag ``mlflow.experimentKind`` is what
# the UI reads when that switch is off (MLflow's own demo sets it too): set it, for such UIs.
MODEL_TRAINING, GENAI = "machine_learning", "genai"  # the values of ?workflowType=
VIEW = GENAI if FOLDER == "llmops_project" else MODEL_TRAINING  # this folder's view, as the talk shows it
EXPERIMENT_KIND = {MODEL_TRAINING: "custom_model_development", GENAI: "genai_development"}


def set_experiment_kind(experiment_id: str) -> None:
    """Tag the experiment with this folder's kind (``mlflow.experimentKind``), unless it has one."""
    client = mlflow.MlflowClient()
    if "mlflow.experimentKind" not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, "mlflow.experimentKind", EXPERIMENT_KIND[VIEW])


def ui_page(route: str) -> str:
    """``route`` (e.g. ``/experiments/1/runs``) in the MLflow UI, in this folder's view: on the
    tracking server, or on ``make ui``'s local UI."""
    tracking_uri = mlflow.get_tracking_uri()
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI
    return f"{base}/#{route}?workflowType={VIEW}"


def run_page(run) -> str:
    """The run's page in the MLflow UI."""
    return ui_page(f"/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")


def print_ui_hint(run, what: str = "the run") -> None:
    """Where to look at ``run``: the server's page, or how to start the local UI and what to open.
    Also tags the run's experiment with this folder's kind (see ``set_experiment_kind``)."""
    set_experiment_kind(run.info.experiment_id)
    if not mlflow.get_tracking_uri().startswith(("http://", "https://")):
        print("\nLook at it in the MLflow UI: start it with `make ui` (from the repository root),")
        print(f"or `mlflow ui --backend-store-uri {mlflow.get_tracking_uri()}`, then open")
    else:
        print("\nLook at it in the MLflow UI of the tracking server:")
    print(f"  {run_page(run)}   ({what})")
    if VIEW == MODEL_TRAINING:
        print(f"  {ui_page(f'/experiments/{run.info.experiment_id}/runs')}   (all runs of its experiment)")


# --- Library warnings a student cannot act on: each filter matches one known message, nothing more ----


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


# autologging_example: the talk's autologged model is a pickle (pt. 7 shows model.pkl), on purpose.
logging.getLogger("mlflow.sklearn").addFilter(_DropMessage("Saving scikit-learn models in the pickle"))
# MLflow 3.17's sklearn autolog still calls scikit-learn 1.9's metrics with the renamed `y_pred`.
warnings.filterwarnings("ignore", message="`y_pred` was renamed to `y_proba`", category=FutureWarning)

"""The command-line conventions every script of the course follows.

This file is the same in every example folder, so that a folder can be copied and run on its own
(tests/test_conventions.py keeps the copies identical). Nothing here is on a slide:

* ``fail`` / ``UserError`` / ``run``: a mistake in what the user typed ends in ONE line,
  ``error: <what>. <how to fix, with an example>``, exit status 2, no traceback, and no run left
  RUNNING. (``mlflow run`` reports any non-zero status of the script as its own exit status 1.)
  ``run`` also, before ``main()`` starts, checks that a remote ``MLFLOW_TRACKING_URI`` answers
  (one line within seconds, instead of MLflow's minutes of retries), and handles SIGTERM and SIGHUP
  like Ctrl-C (the run ends FAILED). Under ``mlflow run``, the script also stops when the
  ``mlflow run`` process that started it is gone. ``uninterrupted`` holds signals back while a
  step that must be done whole (e.g. registering a model) runs.
* ``ArgumentParser``: argparse with that one-line error format, and its value types (``boolean``,
  ``whole_number``, ``fraction``, ``json_list`` with the item checkers ``positive_number``,
  ``positive_int``, ``one_of``). Each entry point's defaults live in its argparse (what ``--help``
  shows); its MLproject repeats them, and tests/test_mlprojects.py checks that the two agree.
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
import contextlib
import json
import logging
import os
import re
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
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
    """Run an entry point's ``main()``: first check the tracking server, and turn SIGTERM/SIGHUP
    into Ctrl-C; a ``UserError`` raised anywhere inside becomes ``fail``, an interruption ``stop``."""
    try:
        _handle_interruptions()
        check_tracking_server()
        main()
    except UserError as problem:
        fail(str(problem))
    except KeyboardInterrupt:
        stop()


# --- A remote tracking server that does not answer: one line within seconds ---------------------------

SERVER_TIMEOUT = 4.0  # seconds to connect, then to get an answer (MLflow itself would retry for minutes)


class ServerUnreachable(Exception):
    """``MLFLOW_TRACKING_URI`` names a server that does not answer. The message says what to do."""


def check_tracking_server(tracking_uri: str | None = None, timeout: float = SERVER_TIMEOUT) -> None:
    """When the tracking URI is a server (http/https), GET its /health once. Any HTTP answer, even
    401/403 (classroom mode: MLflow reports the credentials itself), means it is there. No answer:
    one line naming the URI, what was tried and how to fix it, exit status 2, nothing touched."""
    try:
        probe_tracking_server(tracking_uri, timeout)
    except ServerUnreachable as problem:
        print(f"error: {problem}", file=sys.stderr, flush=True)
        sys.exit(2)


def probe_tracking_server(tracking_uri: str | None = None, timeout: float = SERVER_TIMEOUT) -> None:
    """``check_tracking_server`` without the exit: raises ``ServerUnreachable``."""
    uri = tracking_uri if tracking_uri is not None else os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        return  # a local store (a folder, sqlite:///...): nothing to reach
    parts = urllib.parse.urlsplit(uri)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # never print a password
    health = shown.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(health, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered: whatever the status, MLflow will say what is wrong
    except (urllib.error.URLError, OSError) as problem:
        reason = getattr(problem, "reason", problem)
        if isinstance(reason, ssl.SSLError):
            return  # it answered TLS: certificate problems are MLflow's to report
        what = "no answer" if isinstance(reason, TimeoutError) else str(reason).removeprefix("[Errno 111] ").lower()
        raise ServerUnreachable(
            f"the tracking server MLFLOW_TRACKING_URI={shown} does not answer (GET {health}: {what}, "
            f"{timeout:g} s timeout). Start it (make stack, or docker compose up -d --wait), check the URL, "
            "or unset MLFLOW_TRACKING_URI to use the local store, e.g. unset MLFLOW_TRACKING_URI "
            "(cmd: set MLFLOW_TRACKING_URI=, PowerShell: Remove-Item Env:MLFLOW_TRACKING_URI)"
        ) from None


# --- Interruptions: Ctrl-C, SIGTERM (kill), SIGHUP (terminal closed), mlflow run gone ----------------

PARENT_CHECK_SECONDS = 1.0  # how often a script started by `mlflow run` checks that its parent is alive
_interruption = {"signal": None, "held": None, "parent_gone": False}


def _on_signal(signum, frame) -> None:
    """Ctrl-C, SIGTERM and SIGHUP all stop the script as Ctrl-C does: a KeyboardInterrupt, so that
    ``with mlflow.start_run()`` ends the run FAILED. Inside ``uninterrupted``, the signal waits."""
    if _interruption["signal"] is not None:
        return  # already stopping: let the clean-up finish
    if _interruption["held"] is not None:
        _interruption["held"].append(signum)
        return
    _interruption["signal"] = signum
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _handle_interruptions() -> None:
    names = ["SIGINT", "SIGTERM", "SIGHUP"]  # SIGHUP does not exist on Windows
    for sig in (getattr(signal, name) for name in names if hasattr(signal, name)):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # e.g. nohup ignores SIGHUP: keep it so
            signal.signal(sig, _on_signal)
    if under_mlflow_run() and os.name == "posix":
        threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()


def _watch_parent(parent: int) -> None:
    """``mlflow run`` does not pass SIGTERM on to its script: when it is gone, stop as if interrupted.
    (Parent 1: it was gone before this script started, and init adopted the script.)"""
    while os.getppid() == parent and parent != 1:
        time.sleep(PARENT_CHECK_SECONDS)
    _interruption["parent_gone"] = True
    os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM/SIGHUP back while the block runs (a step done whole or not at all, such as
    registering a model and setting its aliases); a signal that came meanwhile stops the script after."""
    _interruption["held"] = held = []
    try:
        yield
    finally:
        _interruption["held"] = None
    if held:
        _on_signal(held[0], None)


def stop() -> None:
    """After an interruption: no run left RUNNING, one line, exit status 128 + signal number."""
    signum = _interruption["signal"] or signal.SIGINT
    _interruption["signal"] = signum  # any further signal is ignored while cleaning up
    # The watcher stops the script with SIGTERM; a signal that came first (SIGHUP to the group) names itself.
    parent_gone = _interruption["parent_gone"] and signum == signal.SIGTERM
    why = "its parent process (mlflow run) ended" if parent_gone else signal.Signals(signum).name
    ended = []
    while mlflow.active_run():
        ended.append(mlflow.active_run().info.run_id)
        mlflow.end_run(status="KILLED")
    run_id = os.environ.get("MLFLOW_RUN_ID")  # `mlflow run` created it; main() may not have started it yet
    if run_id and run_id not in ended and mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING":
        mlflow.MlflowClient().set_terminated(run_id, status="KILLED")
    with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
        print(
            f"error: interrupted ({why}): the run ended, nothing more was logged. Run the command again",
            file=sys.stderr,
            flush=True,
        )
    sys.exit(128 + signum)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line with an example command, instead of usage + error."""

    def __init__(self, example: str, **kwargs):
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        self.example = example

    def error(self, message: str) -> None:
        fail(f"{message}. Example: {self.example}")


# --- Value types for ArgumentParser: each value is checked when the command line is read, before any
# work starts. MLflow passes every -P name=value to the script verbatim: "4.0" may mean 4, lists arrive
# as JSON text such as [0.1, 1.0], booleans as true/True.


def boolean(text: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no; MLflow turns YAML's true into ``True``)."""
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean: use true or false")


def whole_number(minimum: int = 1) -> Callable[[str], int]:
    """A whole number >= ``minimum``; "4" and "4.0" both mean 4."""

    def parse(text: str) -> int:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not value.is_integer() or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= {minimum}")
        return int(value)

    return parse


def fraction(low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A number between 0 and 1; ``low_open``/``high_open`` exclude that end."""
    shown = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        too_low, too_high = (value <= 0 if low_open else value < 0), (value >= 1 if high_open else value > 1)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"{text} is outside {shown}")
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
    """A ``json_list`` item: a number > 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(value)
    return float(value)


def positive_int(value) -> int:
    """A ``json_list`` item: a whole number > 0 (JSON 4, not 4.5 nor "4")."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(value)
    return value


def one_of(choices) -> Callable:
    """A ``json_list`` item: one of ``choices``."""

    def check(value):
        if value not in choices:
            raise ValueError(value)
        return value

    return check


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


def mlflow_run_command(entry: str, params: dict | None, experiment_name: str) -> str:
    """``mlflow run -e <entry> --env-manager=local --experiment-name <name> {here} -P k=v ...``,
    the talk's form; ``{here}`` is the project folder (see ``print_next``). The experiment is always
    named: without it, the run would land in the experiment "Default"."""
    words = ["mlflow run", "-e", entry, "--env-manager=local", "--experiment-name", quote(experiment_name), "{here}"]
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
# llmops_project's optimize: MLflow 3.17's optimize_prompts logs its train data as a dataset whose source
# two of MLflow's own source types claim alike, and warns about its own choice.
warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")

"""The test harness: run an example the way a student does, then read what it logged.

* ``run_project(store, folder, entry, params)`` runs ``mlflow run <folder> -e <entry>
  --env-manager local -P k=v ...`` as a subprocess and returns the runs it created.
* ``run_script(store, "folder/script.py", args...)`` runs ``python script.py args`` from its folder.
* ``printed_commands(output)`` reads the "Next, ..." lines the scripts print (cli.print_next), and
  ``run_printed(store, command, where)`` runs one of them from where it says it works.
* ``background_server(command, ready_url)`` runs a server (``mlflow models serve``, the local LLM,
  ``mlflow ui``) until the ``with`` block ends.
* ``post_json(url, body)`` sends a JSON request and returns (status, JSON answer).

Fixtures (``mlflow_store``, ``module_store``, ``runs`` and friends) live in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

import default_store

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (for servers the tests start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Store:
    """The tracking store a test writes to."""

    tracking_uri: str
    artifact_root: Path | None
    client: MlflowClient

    def all_runs(self) -> list[Run]:
        """Every run in every experiment (active or deleted), oldest first."""
        experiments = self.client.search_experiments(view_type=ViewType.ALL)
        if not experiments:
            return []
        runs = self.client.search_runs(
            [e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=50_000
        )
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def use_tracking_uri(monkeypatch, tracking_uri: str, artifact_root: Path | None) -> None:
    """Point this process and its subprocesses at ``tracking_uri`` and nothing else."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    if artifact_root is None:
        monkeypatch.delenv(default_store.ARTIFACT_ROOT_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(default_store.ARTIFACT_ROOT_VARIABLE, artifact_root.as_posix())
    for variable in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(variable, raising=False)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


@dataclass
class ProjectResult:
    """What one ``mlflow run`` (or script) invocation did."""

    returncode: int
    stdout: str
    stderr: str
    runs: list[Run] = field(default_factory=list)  # runs it created, oldest first

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def top_level_runs(self) -> list[Run]:
        return [r for r in self.runs if "mlflow.parentRunId" not in r.data.tags]

    @property
    def run(self) -> Run:
        """The one top-level run this invocation created."""
        top = self.top_level_runs
        assert len(top) == 1, f"expected one top-level run, got {len(top)}:\n{self.output[-4000:]}"
        return top[0]

    def children_of(self, run: Run) -> list[Run]:
        return [r for r in self.runs if r.data.tags.get("mlflow.parentRunId") == run.info.run_id]


# MLproject commands say `python ...`: like an activated venv, put this interpreter's bin first.
_VENV_ON_PATH = {"PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def _invoke(command, store, cwd, env, timeout, expect_success) -> ProjectResult:
    before = {r.info.run_id for r in store.all_runs()} if store else set()
    completed = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **_VENV_ON_PATH, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    runs = [r for r in store.all_runs() if r.info.run_id not in before] if store else []
    result = ProjectResult(completed.returncode, completed.stdout, completed.stderr, runs)
    shown = " ".join(str(c) for c in command)
    if expect_success is True:
        assert completed.returncode == 0, f"{shown} failed:\n{result.output[-6000:]}"
    elif expect_success is False:
        assert completed.returncode != 0, f"{shown} should have failed:\n{result.output[-6000:]}"
    return result


def run_project(
    store: Store | None,
    folder: str,
    entry: str = "main",
    params: dict | None = None,
    experiment_name: str | None = None,
    env: dict | None = None,
    timeout: float = 600,
    expect_success: bool | None = True,
) -> ProjectResult:
    """``mlflow run <folder> -e <entry> --env-manager local [-P k=v ...]`` from the repo root.

    ``expect_success``: True asserts exit code 0, False asserts non-zero, None checks nothing.
    ``store`` (the test's store) lets the result list the runs the invocation created.
    """
    command = [sys.executable, "-m", "mlflow", "run", folder, "-e", entry, "--env-manager", "local"]
    if experiment_name:
        command += ["--experiment-name", experiment_name]
    for key, value in (params or {}).items():
        command += ["-P", f"{key}={value}"]
    return _invoke(command, store, REPO_ROOT, env, timeout, expect_success)


def run_script(
    store: Store | None,
    script: str,
    *args: str,
    env: dict | None = None,
    timeout: float = 600,
    expect_success: bool | None = True,
) -> ProjectResult:
    """``python <script> args...`` from the script's own folder, as the talk runs it."""
    path = REPO_ROOT / script
    command = [sys.executable, path.name, *args]
    return _invoke(command, store, path.parent, env, timeout, expect_success)


class SharedRuns:
    """``run_project`` results computed once per module, the first time a test asks for them:
    `mlflow run` costs seconds, so tests that read the same run share it."""

    def __init__(self, store: Store, folder: str):
        self.store, self.folder, self._results = store, folder, {}

    def get(self, entry: str, **kwargs) -> ProjectResult:
        key = (entry, repr(sorted(kwargs.items())))
        if key not in self._results:
            self._results[key] = run_project(self.store, self.folder, entry, **kwargs)
        return self._results[key]


# --- the "Next, ..." commands the scripts print (cli.print_next) ------------------------------

_NEXT_LINE = re.compile(r"^  from (?P<where>\S+/|the repository root):\s+(?P<command>.+)$")


def printed_commands(output: str) -> dict[str, list[str]]:
    """{"inside": [commands printed for running inside the example folder], "root": [...]}."""
    found = {"inside": [], "root": []}
    for line in output.splitlines():
        if match := _NEXT_LINE.match(line):
            found["root" if match["where"] == "the repository root" else "inside"].append(match["command"])
    return found


def run_printed(store: Store | None, command: str, folder: str | None, **kwargs) -> ProjectResult:
    """Run a printed command as a student pastes it: from inside ``folder``, or from the repository
    root when ``folder`` is None. Its words are split as a POSIX shell would (the printed form also
    suits cmd and PowerShell: double quotes, no shell-specific syntax)."""
    return run_command(store, shlex.split(command), folder, **kwargs)


def run_command(
    store: Store | None,
    words: list[str],
    folder: str | None = None,
    env: dict | None = None,
    timeout: float = 600,
    expect_success: bool | None = True,
) -> ProjectResult:
    """``mlflow ...`` or ``python ...`` with this venv's interpreter, from ``folder`` (default: the
    repository root)."""
    assert words[0] in ("mlflow", "python"), words
    command = [sys.executable, *(["-m", "mlflow"] if words[0] == "mlflow" else []), *words[1:]]
    return _invoke(command, store, REPO_ROOT / folder if folder else REPO_ROOT, env, timeout, expect_success)


# --- servers the tests start ------------------------------------------------------------------


@contextlib.contextmanager
def background_server(command: list[str], ready_url: str, timeout: float = 180, env: dict | None = None, cwd=None):
    """Start ``command`` (its own process group), wait until ``ready_url`` answers 200, yield, then
    stop it and everything it started. Fails with the server's output if it exits or never answers."""
    with open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            command,
            cwd=cwd or REPO_ROOT,
            env={**os.environ, **_VENV_ON_PATH, **(env or {})},
            stdin=devnull,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()  # never blocks the server
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"{command[:4]} exited:\n{''.join(output)[-4000:]}"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, (
                f"no answer on {ready_url} after {timeout} s:\n{''.join(output)[-4000:]}"
            )
            time.sleep(0.5)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)


@contextlib.contextmanager
def model_server(model_uri: str):
    """`mlflow models serve --env-manager local -m <model_uri>` on a free port, as the READMEs run it;
    yields its base URL (POST <url>/invocations)."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"]
    with background_server(
        command + ["-m", model_uri, "-h", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/ping"
    ):
        yield f"http://127.0.0.1:{port}"


def post_json(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    """POST ``body`` as JSON; (HTTP status, decoded JSON answer), errors included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())

"""The test harness: run an example the way a student does, then read what it logged.

* ``run_project(store, folder, entry, params)`` runs ``mlflow run <folder> -e <entry>
  --env-manager local -P k=v ...`` as a subprocess and returns the runs it created.
* ``run_script(store, "folder/script.py", args...)`` runs ``python script.py args`` from its folder.

Fixtures (``mlflow_store`` and friends) live in ``conftest.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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


# (folder, entry point) pairs run by the current test; conftest checks them against its markers.
ran_entry_points: set[tuple[str, str]] = set()


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
    ran_entry_points.add((folder, entry))
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
    """``run_project`` results computed once per module, the first time a test asks for them.

    `mlflow run` costs seconds, so tests that read the same run share it. A later test that gets
    the cached result still records the entry point it asserts on (it really ran, in this store).
    """

    def __init__(self, store: Store, folder: str):
        self.store, self.folder, self._results = store, folder, {}

    def get(self, entry: str, **kwargs) -> ProjectResult:
        key = (entry, repr(sorted(kwargs.items())))
        if key in self._results:
            ran_entry_points.add((self.folder, entry))
        else:
            self._results[key] = run_project(self.store, self.folder, entry, **kwargs)
        return self._results[key]

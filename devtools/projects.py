"""Run an example the way a student does, then read what it logged.

* ``run_project(store, folder, entry, params)`` runs ``mlflow run <folder> -e <entry>
  --env-manager local -P k=v ...`` as a subprocess and returns the runs it created.
* ``run_script(store, "folder/script.py", args..., params={...})`` runs ``python script.py args
  --name value ...`` from its folder.
* ``printed_commands(output)`` reads the "Next, ..." lines the scripts print (cli.print_next), and
  ``run_printed(store, command, where)`` runs one of them from where it says it works.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run, ViewType
from mlflow.tracking import MlflowClient

from devtools.processes import REPO_ROOT, venv_env


@dataclass
class Store:
    """The tracking store a tool or a test writes to."""

    tracking_uri: str
    artifact_root: Path | None  # None for a tracking server (the server stores the artifacts)
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


def _invoke(command, store, cwd, env, timeout, expect_success) -> ProjectResult:
    """Run ``command`` with the venv first on PATH; list the runs it created in ``store``.
    ``expect_success``: True asserts exit code 0, False asserts non-zero, None checks nothing."""
    before = {r.info.run_id for r in store.all_runs()} if store else set()
    completed = subprocess.run(
        command,
        cwd=cwd,
        env=venv_env(env),
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
    ``store`` (the caller's store) lets the result list the runs the invocation created.
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
    params: dict | None = None,
    env: dict | None = None,
    timeout: float = 600,
    expect_success: bool | None = True,
) -> ProjectResult:
    """``python <script> args... [--name value ...]`` from the script's own folder, as the talk runs
    it. ``params`` are an entry point's MLproject parameters, passed as the options its command
    line gives them (``lr_C_values`` -> ``--lr-C-values``)."""
    path = REPO_ROOT / script
    command = [sys.executable, path.name, *args, *script_options(params)]
    return _invoke(command, store, path.parent, env, timeout, expect_success)


def script_options(params: dict | None) -> list[str]:
    """An entry point's MLproject parameters as its script's options: ``lr_C_values`` -> ``--lr-C-values``."""
    return [word for name, value in (params or {}).items() for word in (f"--{name.replace('_', '-')}", str(value))]


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

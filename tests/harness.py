"""The test side of the harness: run an example the way a student does, then read what it logged.

The tools themselves live in ``devtools/`` (shared with the benchmarks, ``check_stack.py`` and
``docs/ui_tour.py``); this module re-exports them, so test files write ``from tests import harness``:

* ``run_project(store, folder, entry, params)`` runs ``mlflow run <folder> -e <entry>
  --env-manager local -P k=v ...`` as a subprocess and returns the runs it created.
* ``run_script(store, "folder/script.py", args..., params={...})`` runs ``python script.py args
  --name value ...`` from its folder.
* ``printed_commands(output)`` reads the "Next, ..." lines the scripts print (cli.print_next), and
  ``run_printed(store, command, where)`` runs one of them from where it says it works.
* ``background_server(command, ready_url)`` runs a server (``mlflow models serve``, the local LLM,
  ``mlflow ui``) until the ``with`` block ends; ``stop_process`` stops one a test started itself.
* ``post_json(url, body)`` / ``post_csv(url, text)`` send a request and return (status, JSON answer).

What only tests need stays here: ``use_tracking_uri`` (through pytest's monkeypatch) and
``SharedRuns``, and ``as_a_terminals_job`` (the signals a test sends act as in a terminal). Fixtures
(``mlflow_store``, ``module_store``, ``runs`` and friends) live in ``conftest.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import mlflow

import default_store
from devtools.processes import (  # noqa: F401  (re-exported for the test files)
    REPO_ROOT,
    background_server,
    free_port,
    load_average,
    model_server,
    post_csv,
    post_json,
    stop_process,
    venv_env,
    venv_on_path,
)
from devtools.projects import (  # noqa: F401  (re-exported for the test files)
    ProjectResult,
    Store,
    printed_commands,
    run_command,
    run_printed,
    run_project,
    run_script,
    script_options,
)

# Older name of venv_on_path(), kept for test files that still read it.
_VENV_ON_PATH = venv_on_path()


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


def as_a_terminals_job() -> None:
    """``preexec_fn`` of a process a test stops as a terminal would (SIGHUP: closed; SIGINT: Ctrl-C):
    their default actions, as a terminal's job has them. Under nohup, or from a background job of a
    script, the tests inherit SIGHUP or SIGINT ignored, the process keeps it so, and by design a
    server or script then ignores that signal too."""
    for name in ("SIGHUP", "SIGINT"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)

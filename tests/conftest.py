"""Fixtures shared by every test file, and the test tiers. The harness itself is in ``harness.py``
(re-exporting ``devtools/``).

Tiers (pytest.ini registers the markers): a test is ``e2e`` when it needs a store, a server, an
``mlflow run``, the local model or a browser: it uses one of ``E2E_FIXTURES`` (directly or through
another fixture), carries one of ``E2E_MARKERS``, or is marked ``@pytest.mark.e2e`` by hand. Every
other test is ``unit``: pure functions, parsers, printed-command builders, file consistency.
``make test-fast`` runs ``pytest -m unit``.

Order: ``make test`` runs the test files on three workers, a file per worker at a time (``--dist
loadfile --no-loadscope-reorder``), in the order collected here: the longest files first
(``HEAVIEST_FIRST``), so that no long file starts last and runs alone at the end.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

import default_store
from tests import harness

# Fixtures of the folders that need servers: the OpenAI-compatible test server, the native stack.
pytest_plugins = ["tests.fixtures_llm", "tests.fixtures_stack"]

# A test using one of these fixtures (directly or through another fixture) is end-to-end.
E2E_FIXTURES = {
    "mlflow_store",
    "module_store",
    "runs",
    "llm_server",
    "native_stack",
    "backstage",
    "stack_store",
}
E2E_MARKERS = {"e2e", "entry_point", "stack", "local_llm", "align", "browser"}

# The files that take longest, longest first (measured with `make test PYTEST_XDIST="-n 3 --dist
# loadfile --no-loadscope-reorder --durations=0"`: the sum of each file's durations). The others
# follow in pytest's order. A file missing here costs wall time only, never a result.
HEAVIEST_FIRST = [
    "test_census_project.py",
    "test_llmops_project.py",
    "test_llmops_decisions.py",
    "test_present_census.py",
    "test_present.py",
    "test_autologging_example.py",
    "test_stack.py",
    "test_present_llm.py",
    "test_llmops_improve.py",
    "test_local_llm.py",
    "test_ui_browser.py",
    "test_tracking_example.py",
    "test_interruptions.py",
    "test_classroom.py",
    "test_notebook.py",
]

# The `mlflow ui` servers tests start (`make ui`, the browser test) run no
# job runner: MLflow 3 starts five more Python processes with each server for it (scheduled scorers,
# prompt optimisation: nothing the examples use), about 20 s of CPU per server. The team server
# (tracking_server/stack.py passes none of the caller's MLFLOW_ variables) is told so by its
# StackConfig: fixtures_stack.py's TEST_SERVER_JOB_RUNNER.
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
# And one uvicorn worker, not MLflow's default four: the tests send one request at a time.
os.environ.setdefault("MLFLOW_WORKERS", "1")
# litellm (dspy's model client) and every process that imports it (MLflow prices traced calls with it,
# `mlflow ui` loads it) would fetch litellm's price list from GitHub first: the bundled one instead.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def pytest_collection_modifyitems(items):
    """Mark every test ``e2e`` or ``unit`` (see the module's docstring); the longest files first."""
    for item in items:
        marked = {mark.name for mark in item.iter_markers()}
        if marked & E2E_MARKERS or E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
        else:
            item.add_marker(pytest.mark.unit)
    rank = {name: position for position, name in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: pytest's order otherwise


@pytest.fixture(scope="session")
def _empty_store_database(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow database, built once: creating the schema takes seconds,
    copying the file takes milliseconds."""
    database = tmp_path_factory.mktemp("empty_store") / "mlflow.db"
    MlflowClient(default_store.sqlite_uri(database)).search_experiments()
    return database


def _fresh_store(store_dir: Path, empty_database: Path, monkeypatch) -> harness.Store:
    """A copy of the empty database in ``store_dir``, with its artifacts beside it, in use."""
    store_dir.mkdir(parents=True, exist_ok=True)
    artifact_root = store_dir / "mlartifacts"
    shutil.copyfile(empty_database, store_dir / "mlflow.db")
    with sqlite3.connect(store_dir / "mlflow.db") as database:  # the Default experiment's folder
        database.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((artifact_root / "0").as_posix(),),
        )
    tracking_uri = default_store.sqlite_uri(store_dir / "mlflow.db")
    harness.use_tracking_uri(monkeypatch, tracking_uri, artifact_root)
    return harness.Store(tracking_uri, artifact_root, MlflowClient(tracking_uri))


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch, _empty_store_database) -> harness.Store:
    """An isolated SQLite store (database + artifacts) for one test."""
    yield _fresh_store(tmp_path / "store", _empty_store_database, monkeypatch)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory, _empty_store_database) -> harness.Store:
    """One isolated store shared by the tests of a module: `mlflow run` costs seconds, so tests
    that read the same runs share them (see ``harness.SharedRuns``)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield _fresh_store(tmp_path_factory.mktemp("module_store"), _empty_store_database, monkeypatch)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def runs(module_store, request) -> harness.SharedRuns:
    """The module's ``mlflow run`` results, shared by its tests; the module names its ``FOLDER``."""
    return harness.SharedRuns(module_store, request.module.FOLDER)

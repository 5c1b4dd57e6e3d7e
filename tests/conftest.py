"""Fixtures shared by every test file. The harness itself is in ``harness.py``."""

from __future__ import annotations

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

"""The team tracking stack, end to end: real PostgreSQL, S3 server and `mlflow server` on 127.0.0.1.

The checks are tracking_server/check_stack.py's, the very ones `make stack-check`, `make
compose-check` and the CI's compose job run: each example runs as students run it against a
remote server (``mlflow run ...`` with only ``MLFLOW_TRACKING_URI`` set), then the check looks
behind the server: metadata must be rows in PostgreSQL, artifacts objects in the bucket. One
stack serves the whole session (tests/fixtures_stack.py), so each check reads back only what it
created. Here they reach PostgreSQL with psycopg and the bucket with boto3 (``backstage``).
"""

from __future__ import annotations

import subprocess
import sys

import mlflow
import mlflow.sklearn
import psycopg
import pytest
import requests

from tests import harness
from tracking_server import check_stack

pytestmark = pytest.mark.stack


def test_tracking_example_lands_in_postgres_and_the_bucket(backstage, stack_store):
    summary = check_stack.check_tracking(backstage, stack_store)
    assert "1 artifact object" in summary


def test_a_foreign_host_header_is_refused(backstage, stack_store):
    check_stack.check_host_header(backstage, stack_store)


def test_autologging_example_logs_and_registers_its_model_into_the_bucket(backstage, stack_store):
    check_stack.check_autologging(backstage, stack_store)


def test_census_project_trains_and_registers_its_model_on_the_server(backstage, stack_store):
    check_stack.check_census(backstage, stack_store)


def test_llmops_flow_logs_answers_traces_and_verdicts_to_the_server(backstage, stack_store, llm_server):
    check_stack.check_llmops(backstage, stack_store, llm_server.base_url)


def test_the_check_script_reads_a_native_stack_from_its_folder(native_stack):
    """`make stack-check` is this command: its one-line report, and exit code 0 when all pass."""
    completed = subprocess.run(
        [sys.executable, str(harness.REPO_ROOT / "tracking_server" / "check_stack.py"), "native"]
        + ["--dir", str(native_stack.config.root), "--only", "host-header"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.splitlines()[-1] == "1 passed, 0 failed"
    assert "ok   host-header" in completed.stdout


def test_the_check_script_says_how_to_start_a_missing_stack(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(harness.REPO_ROOT / "tracking_server" / "check_stack.py"),
            "native",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip() == f"error: no native stack in {tmp_path}. Start one first: make stack"


def test_everything_survives_a_restart_of_mlflow_server_and_postgres(native_stack, backstage, stack_store):
    from sklearn.linear_model import LogisticRegression

    # A run with a metric history, an artifact and a registered model with an alias, whatever ran before.
    mlflow.set_experiment("stack_durability")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        for step in range(10):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_text("kept across restarts", "notes/durability.txt")
        model = LogisticRegression(C=1.0).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        mlflow.sklearn.log_model(model, name="model", registered_model_name="stack_durability_model")
    stack_store.client.set_registered_model_alias("stack_durability_model", "champion", "1")

    def restart_mlflow_and_postgres():  # more than the compose check does: PostgreSQL too
        native_stack.stop_mlflow()
        native_stack.stop_postgres()
        with pytest.raises(requests.ConnectionError):  # really down
            requests.get(f"http://127.0.0.1:{native_stack.config.mlflow_port}/health", timeout=5)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**native_stack.postgres_conninfo, connect_timeout=5)
        native_stack.start_postgres()
        native_stack.start_mlflow()

    summary = check_stack.check_restart(backstage, stack_store, restart_mlflow_and_postgres)
    assert summary.startswith("same ")
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/durability.txt") == "kept across restarts"
    reloaded = mlflow.sklearn.load_model("models:/stack_durability_model@champion")
    assert list(reloaded.predict([[0.0], [3.0]])) == [0, 1]

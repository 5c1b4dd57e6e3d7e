"""The team tracking stack, end to end: real PostgreSQL, S3 server and `mlflow server` on 127.0.0.1.

The examples run as students run them against a remote server: ``mlflow run ...`` with only
``MLFLOW_TRACKING_URI`` set. Then we look behind the server: metadata must be rows in
PostgreSQL, artifacts objects in the bucket. One stack serves the whole session (see
tests/fixtures_stack.py), so every test reads back only what it created.
"""

from __future__ import annotations

import mlflow
import mlflow.artifacts
import mlflow.sklearn
import psycopg
import pytest
import requests
from mlflow.entities import ViewType

from tests import harness

pytestmark = pytest.mark.stack

ARTIFACT_PROXY_SCHEME = "mlflow-artifacts:/"  # what --serve-artifacts hands out to clients


def bucket_prefix(artifact_uri: str) -> str:
    """Where an ``mlflow-artifacts:/`` location lands in the bucket (--artifacts-destination s3://mlflow)."""
    assert artifact_uri.startswith(ARTIFACT_PROXY_SCHEME), artifact_uri  # proxied, not a direct S3 URI
    return artifact_uri.removeprefix(ARTIFACT_PROXY_SCHEME).strip("/") + "/"


def bucket_objects(stack, prefix: str) -> dict[str, int]:
    """{key relative to prefix: size} for every object under ``prefix``."""
    objects = {}
    for page in stack.s3_client().get_paginator("list_objects_v2").paginate(Bucket="mlflow", Prefix=prefix):
        for item in page.get("Contents", []):
            objects[item["Key"].removeprefix(prefix)] = item["Size"]
    return objects


def all_artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, listed through the server."""
    files = set()
    for info in client.list_artifacts(run_id, path):
        files |= all_artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return files


def sql(stack, query: str, *args) -> list[tuple]:
    with psycopg.connect(**stack.postgres_conninfo) as connection:
        return connection.execute(query, args).fetchall()


def test_tracking_example_lands_in_postgres_and_the_bucket(native_stack, stack_store):
    result = harness.run_project(
        stack_store, "tracking_example", "main", {"seed": 42}, experiment_name="logging_example"
    )
    run = result.run
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {"seed": "42"}
    assert {f"random_{i}" for i in range(5)} <= set(run.data.metrics)

    # Metadata: rows in PostgreSQL, the same values the client reads through the server.
    assert sql(native_stack, "SELECT status FROM runs WHERE run_uuid = %s", run_id) == [("FINISHED",)]
    assert sql(
        native_stack, "SELECT e.name FROM runs r JOIN experiments e USING (experiment_id) WHERE r.run_uuid = %s", run_id
    ) == [("logging_example",)]
    assert dict(sql(native_stack, "SELECT key, value FROM params WHERE run_uuid = %s", run_id)) == {"seed": "42"}
    for key in run.data.metrics:
        history = stack_store.client.get_metric_history(run_id, key)
        rows = sql(
            native_stack,
            "SELECT step, value FROM metrics WHERE run_uuid = %s AND key = %s ORDER BY timestamp, step",
            run_id,
            key,
        )
        assert sorted(rows) == sorted((m.step, m.value) for m in history)

    # Artifacts: objects in the bucket, byte for byte what the client downloads via the server.
    assert all_artifact_paths(stack_store.client, run_id) == {"examples/example.txt"}
    prefix = bucket_prefix(run.info.artifact_uri)
    assert set(bucket_objects(native_stack, prefix)) == {"examples/example.txt"}
    in_bucket = native_stack.s3_client().get_object(Bucket="mlflow", Key=prefix + "examples/example.txt")
    through_server = mlflow.artifacts.load_text(f"runs:/{run_id}/examples/example.txt")
    assert in_bucket["Body"].read().decode() == through_server != ""


def test_a_foreign_host_header_is_refused(native_stack):
    endpoint = f"http://127.0.0.1:{native_stack.config.mlflow_port}/api/2.0/mlflow/experiments/search"
    port = native_stack.config.mlflow_port
    allowed = requests.get(endpoint, params={"max_results": 1}, headers={"Host": f"localhost:{port}"})
    assert allowed.status_code == 200, allowed.text
    for foreign in ("evil.example.com", f"evil.example.com:{port}", f"localhost:{port + 1}"):
        refused = requests.get(endpoint, params={"max_results": 1}, headers={"Host": foreign})
        assert refused.status_code == 403, foreign
        assert "experiments" not in refused.text


def model_bucket_files(native_stack, model) -> dict[str, int]:
    """The bucket objects of a logged model (``mlflow-artifacts:/<exp>/models/<model id>/artifacts``)."""
    return bucket_objects(native_stack, bucket_prefix(model.artifact_location))


def test_autologging_example_logs_its_model_into_the_bucket(native_stack, stack_store):
    result = harness.run_project(
        stack_store, "autologging_example", "main", {"seed": 42}, experiment_name="autologging-example"
    )
    run = result.run
    assert run.info.status == "FINISHED"
    [output] = run.outputs.model_outputs
    model = stack_store.client.get_logged_model(output.model_id)
    assert model.source_run_id == run.info.run_id

    # The logged model and the autologged params are rows in PostgreSQL ...
    assert sql(
        native_stack, "SELECT source_run_id, artifact_location FROM logged_models WHERE model_id = %s", model.model_id
    ) == [(run.info.run_id, model.artifact_location)]
    assert (
        dict(sql(native_stack, "SELECT key, value FROM params WHERE run_uuid = %s", run.info.run_id))
        == run.data.params
        != {}
    )
    # ... and its files are objects in the bucket: the MLmodel file, the pickled tree, its environment.
    files = model_bucket_files(native_stack, model)
    assert {"MLmodel", "model.pkl", "requirements.txt"} <= set(files)
    # The model loads back through the server alone and predicts the Iris classes.
    loaded = mlflow.sklearn.load_model(f"models:/{model.model_id}")
    assert set(loaded.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) <= {0, 1, 2}


def test_census_project_trains_and_registers_its_champion_on_the_server(native_stack, stack_store):
    result = harness.run_project(
        stack_store,
        "census_project",
        "train",
        {"model_type": "logistic", "lr_C_values": "[1.0]", "cv_splits": 2},
        experiment_name="census-on-the-team-server",
    )
    run = result.run
    assert run.info.status == "FINISHED"
    name = "adult-best-logistic"  # the first version of a name is its champion
    champion = stack_store.client.get_model_version_by_alias(name, "champion")
    assert champion.run_id == run.info.run_id
    # Registry metadata are rows too: the version and its alias.
    assert sql(
        native_stack, "SELECT run_id FROM model_versions WHERE name = %s AND version = %s", name, int(champion.version)
    ) == [(run.info.run_id,)]
    assert sql(
        native_stack,
        "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = %s",
        name,
        "champion",
    ) == [(int(champion.version),)]
    # Charts and the model are objects in the bucket.
    run_files = bucket_objects(native_stack, bucket_prefix(run.info.artifact_uri))
    assert set(run_files) == all_artifact_paths(stack_store.client, run.info.run_id) != set()
    [output] = run.outputs.model_outputs  # the winner, logged in the parent run
    model = stack_store.client.get_logged_model(output.model_id)
    assert champion.source == f"models:/{model.model_id}"
    files = model_bucket_files(native_stack, model)
    assert "MLmodel" in files
    assert len(files) > 1


def test_llmops_generation_logs_answers_and_traces_to_the_server(native_stack, stack_store, llm_server):
    from tests.test_llmops_project import VENV_PATH, answers_csv, register_prompts_in_process, traces_of

    register_prompts_in_process()  # into the server's registry
    result = harness.run_project(
        stack_store,
        "llmops_project",
        "generate_answers",
        {"max_questions": 2},
        experiment_name="quiz-on-the-team-server",
        env=VENV_PATH,
    )
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.data.metrics["successful"] == 2
    answers = answers_csv(stack_store, run)
    assert answers["status"].tolist() == ["ok", "ok"]
    # answers.csv is an object in the bucket; the traces are rows in PostgreSQL.
    assert "answers.csv" in bucket_objects(native_stack, bucket_prefix(run.info.artifact_uri))
    trace_ids = {t.info.trace_id for t in traces_of(run)}
    assert trace_ids == set(answers["trace_id"])
    assert len(trace_ids) == 2
    rows = sql(native_stack, "SELECT request_id FROM trace_info WHERE experiment_id = %s", int(run.info.experiment_id))
    assert trace_ids <= {request_id for (request_id,) in rows}
    # The prompts it used are registered on the server (prompts live in the model registry).
    assert run.data.params["prompt_basic"] == "basic@production=v1"


def _snapshot(client) -> dict:
    """Everything the server knows, read through its API: runs, metric histories, artifacts, models."""
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=50_000)
    return {
        "experiments": sorted((e.experiment_id, e.name, e.artifact_location) for e in experiments),
        "runs": {
            run.info.run_id: {
                "status": run.info.status,
                "params": run.data.params,
                "tags": dict(run.data.tags.items()),
                "metrics": {
                    key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
                    for key in run.data.metrics
                },
                "artifacts": all_artifact_paths(client, run.info.run_id),
            }
            for run in runs
        },
        "registered_models": {
            model.name: {
                "versions": sorted(
                    (v.version, v.run_id, v.source, v.status)
                    for v in client.search_model_versions(f"name = '{model.name}'")
                ),
                "aliases": model.aliases,
            }
            for model in client.search_registered_models()
        },
    }


def test_everything_survives_a_restart_of_mlflow_server_and_postgres(native_stack, stack_store):
    from sklearn.linear_model import LogisticRegression

    client = stack_store.client
    # A run with a metric history, an artifact and a registered model with an alias.
    mlflow.set_experiment("stack_durability")
    with mlflow.start_run() as run:
        mlflow.log_param("C", 1.0)
        for step in range(10):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_text("kept across restarts", "notes/durability.txt")
        model = LogisticRegression(C=1.0).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        mlflow.sklearn.log_model(model, name="model", registered_model_name="stack_durability_model")
    client.set_registered_model_alias("stack_durability_model", "champion", "1")
    before = _snapshot(client)
    assert run.info.run_id in before["runs"]
    assert "stack_durability_model" in before["registered_models"]
    assert len(before["runs"][run.info.run_id]["metrics"]["loss"]) == 10

    native_stack.stop_mlflow()
    native_stack.stop_postgres()
    with pytest.raises(requests.ConnectionError):  # really down
        requests.get(f"http://127.0.0.1:{native_stack.config.mlflow_port}/health", timeout=5)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**native_stack.postgres_conninfo, connect_timeout=5)
    native_stack.start_postgres()
    native_stack.start_mlflow()

    assert _snapshot(client) == before
    assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/notes/durability.txt") == "kept across restarts"
    reloaded = mlflow.sklearn.load_model("models:/stack_durability_model@champion")
    assert list(reloaded.predict([[0.0], [3.0]])) == [0, 1]

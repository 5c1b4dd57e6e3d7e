"""tracking_example: the talk's hand-logged run, and the information-retrieval API of the course
notes "MLflow metadata and information retrieval".

Every assertion reads what was logged back from the store (MlflowClient), except the console
table of `query`, which is compared with the runs the store holds.
"""

from __future__ import annotations

import mlflow
import pytest
from mlflow.entities import RunStatus

from tests import harness

FOLDER = "tracking_example"
EXPERIMENT = "logging_example"
RUN_NAME = "example_run"
ARTIFACT_TEXT = "This is an example artifact."


QUERY_EXPERIMENT = "logging_example_queries"  # where the documented `query` command keeps its run


@pytest.fixture(scope="module")
def store(module_store) -> harness.Store:
    return module_store


def even_seed_run(runs: harness.SharedRuns) -> harness.ProjectResult:
    return runs.get("main", params={"seed": 42}, experiment_name=EXPERIMENT)


def odd_seed_run(runs: harness.SharedRuns) -> harness.ProjectResult:
    return runs.get("main", params={"seed": 43}, experiment_name=EXPERIMENT, expect_success=False)


def assert_logged_like_the_talk(store: harness.Store, run, seed: int) -> None:
    """Param, five metrics (random_4 overwritten by an int), and the text artifact."""
    assert run.info.run_name == RUN_NAME
    assert store.client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["seed"] == str(seed)
    assert set(run.data.metrics) == {f"random_{i}" for i in range(5)}
    for i in range(4):
        assert 0.0 <= run.data.metrics[f"random_{i}"] < 1.0
    history = store.client.get_metric_history(run.info.run_id, "random_4")
    assert len(history) == 2, "random_4 is logged twice: a random() float, then a randint"
    assert 0.0 <= history[0].value < 1.0
    assert history[1].value == run.data.metrics["random_4"]
    assert run.data.metrics["random_4"].is_integer()
    assert 1 <= run.data.metrics["random_4"] <= 10
    [artifact] = store.client.list_artifacts(run.info.run_id, "examples")
    assert artifact.path == "examples/example.txt"
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/examples/example.txt") == ARTIFACT_TEXT


@pytest.mark.entry_point("tracking_example", "main")
def test_main_with_an_even_seed_finishes_and_logs_everything(store, runs):
    result = even_seed_run(runs)
    run = result.run
    assert run.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert_logged_like_the_talk(store, run, seed=42)
    assert f"Started MLflow run with ID: {run.info.run_id}" in result.stdout


@pytest.mark.entry_point("tracking_example", "main")
def test_main_with_an_odd_seed_fails_after_logging(store, runs):
    result = odd_seed_run(runs)
    run = result.run
    assert run.info.status == RunStatus.to_string(RunStatus.FAILED)
    assert_logged_like_the_talk(store, run, seed=43)  # everything before the raise is kept
    assert "ValueError: Let the run fail for odd seeds!" in result.stderr


def test_the_talks_direct_command_python_logging_example_43(store, runs):
    """`python logging_example.py 43` from the folder, as the talk runs it."""
    result = harness.run_script(store, f"{FOLDER}/logging_example.py", "43", expect_success=False)
    assert result.returncode == 1  # the talk's traceback (README: "exit status 1")
    run = result.run
    assert run.info.status == RunStatus.to_string(RunStatus.FAILED)
    assert_logged_like_the_talk(store, run, seed=43)  # the script chose the experiment itself
    # Same seed, same numbers: the seed really drives the random metrics.
    assert run.data.metrics == odd_seed_run(runs).run.data.metrics


@pytest.mark.entry_point("tracking_example", "query")
def test_query_prints_the_runs_of_the_store_and_tags_the_experiment(store, runs):
    best_run_id = even_seed_run(runs).run.info.run_id
    odd_seed_run(runs)
    result = runs.get("query", experiment_name=QUERY_EXPERIMENT)

    experiment = store.client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["owner"] == "mlops-course"
    assert experiment.tags["description"]
    in_store = store.client.search_runs(
        [experiment.experiment_id], f"attributes.run_name = '{RUN_NAME}'", order_by=["metrics.random_4 DESC"]
    )
    assert len(in_store) >= 2
    table = [line for line in result.stdout.splitlines() if RUN_NAME in line and "Runs named" not in line]
    assert [line.split()[0] for line in table] == [r.info.run_id for r in in_store]
    for line, run in zip(table, in_store, strict=True):
        assert line.split()[1:] == [
            RUN_NAME,
            run.info.status,
            run.data.params["seed"],
            f"{run.data.metrics['random_4']:g}",
        ]
    assert f"Best successful run {best_run_id}" in result.stdout
    assert f"Experiments owned by 'mlops-course': {EXPERIMENT} (ID {experiment.experiment_id})" in result.stdout
    # `mlflow run` always creates a run: it is named "query", kept in its own experiment, and records
    # what the query found. It is not in the table.
    query = result.run
    assert query.info.status == "FINISHED"
    assert query.info.run_name == "query"
    assert store.client.get_experiment(query.info.experiment_id).name == QUERY_EXPERIMENT
    assert query.data.tags["query.best_run_id"] == best_run_id
    assert query.data.metrics["best_random_4"] == even_seed_run(runs).run.data.metrics["random_4"]
    assert query.info.run_id not in result.stdout


@pytest.mark.entry_point("tracking_example", "query")
def test_query_of_a_new_experiment_creates_it_tagged_and_says_there_are_no_runs(store, runs):
    """As on a fresh store: the experiment does not exist yet (this module's store is shared)."""
    assert store.client.get_experiment_by_name("nobody_ran_this") is None
    result = runs.get(
        "query", params={"experiment_name": "nobody_ran_this", "owner": "teacher"}, experiment_name=QUERY_EXPERIMENT
    )
    experiment = store.client.get_experiment_by_name("nobody_ran_this")
    assert experiment.tags["owner"] == "teacher"
    assert experiment.tags["description"]
    assert f"Created experiment 'nobody_ran_this' (ID {experiment.experiment_id})" in result.stdout
    assert "No runs yet in 'nobody_ran_this': run main first." in result.stdout
    assert result.run.data.tags["query.runs_found"] == "0"
    assert "run main first" in result.stdout


def test_a_non_integer_seed_is_one_clear_line_and_a_failed_run(store):
    result = harness.run_project(store, FOLDER, "main", params={"seed": "abc"}, expect_success=False)
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert ours == ["error: argument seed: invalid int value: 'abc'. Example: python logging_example.py 42"]
    assert "Traceback" not in result.output
    assert result.run.info.status == "FAILED"
    assert result.run.data.metrics == {}
    assert [r for r in store.all_runs() if r.info.status == "RUNNING"] == []


def test_a_non_integer_seed_without_mlflow_run(store):
    result = harness.run_script(store, f"{FOLDER}/logging_example.py", "4.5", expect_success=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: argument seed: invalid int value: '4.5'. Example: python logging_example.py 42"
    ]
    assert result.runs == []


def test_an_unknown_entry_point_fails_clearly_without_creating_a_run(store):
    result = harness.run_project(store, FOLDER, "nope", expect_success=False)
    assert "Could not find nope among entry points ['main', 'query']" in result.stderr
    assert "Traceback" not in result.output
    assert result.runs == []


def test_the_printed_next_command_works_from_the_folder_and_from_the_root(store, runs):
    """The even-seed run prints the talk's next step twice: run each line where it says it works."""
    printed = harness.printed_commands(even_seed_run(runs).stdout)
    assert printed == {
        "inside": ["python logging_example.py 43"],
        "root": ["python tracking_example/logging_example.py 43"],
    }
    for command, folder in ((printed["inside"][0], FOLDER), (printed["root"][0], None)):
        result = harness.run_printed(store, command, folder, expect_success=False)
        assert result.run.info.status == "FAILED"
        assert result.run.data.params["seed"] == "43"
        assert store.client.get_experiment(result.run.info.experiment_id).name == EXPERIMENT


def test_the_ui_hint_names_the_local_store_or_the_server(store, runs):
    run = even_seed_run(runs).run
    page = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert f"http://127.0.0.1:5000/{page}" in even_seed_run(runs).stdout
    assert "make ui" in even_seed_run(runs).stdout

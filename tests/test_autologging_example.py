"""autologging_example: what mlflow.autolog logged, registration with alias `champion`, and the
talk's serving commands (pyfunc, `mlflow models predict`, a real `mlflow models serve`).

Expected predictions are the true Iris labels of the payload's rows, looked up in the dataset.
"""

from __future__ import annotations

import json
import subprocess
import sys

import mlflow
import numpy as np
import pytest
from mlflow.models import Model
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from tests import examples, harness

FOLDER = "autologging_example"
# Not autologging_example.EXPERIMENT_NAME: as a classroom server's student would (tracking_server's
# README), the module's runs use an experiment of their own, so what main prints next and what
# register's "newest" finds must follow --experiment-name, not the script's default.
EXPERIMENT = "autologging-example-of-alice"
MODEL_NAME = "iris-classifier-dt"
CHAMPION = f"models:/{MODEL_NAME}@champion"
PAYLOAD_FILE = harness.REPO_ROOT / FOLDER / "serving_input_example.json"


@pytest.fixture(scope="module")
def store(module_store) -> harness.Store:
    return module_store


def decision_tree_run(runs: harness.SharedRuns) -> harness.ProjectResult:
    return runs.get("main", experiment_name=EXPERIMENT)


def registration(runs: harness.SharedRuns) -> harness.ProjectResult:
    decision_tree_run(runs)
    return runs.get("register", experiment_name=EXPERIMENT)  # model_uri=newest: the model of the run above


def payload_and_true_labels() -> tuple[dict, list[int]]:
    """The talk's payload, and the Iris label of each of its rows."""
    payload = json.loads(PAYLOAD_FILE.read_text())
    iris = load_iris()
    labels = []
    for row in payload["inputs"]:
        [index] = np.flatnonzero(np.all(np.isclose(iris.data, row), axis=1))
        labels.append(int(iris.target[index]))
    return payload, labels


def model_id_of(run) -> str:
    [output] = run.outputs.model_outputs  # exactly one model per run: no double logging
    return output.model_id


@pytest.mark.entry_point("autologging_example", "main")
def test_main_autologs_params_metrics_dataset_and_artifacts(store, runs, tmp_path):
    result = decision_tree_run(runs)
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "autologging_run"
    assert store.client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    # Parameters of the estimator itself, logged by autolog (the seed reached random_state).
    assert run.data.params["random_state"] == "42"
    assert run.data.params["criterion"] == "gini"
    assert run.data.metrics["training_accuracy_score"] >= 0.9
    assert {"training_f1_score", "training_precision_score", "training_roc_auc"} <= set(run.data.metrics)
    artifacts = {a.path for a in store.client.list_artifacts(run.info.run_id)}
    assert {"estimator.html", "training_confusion_matrix.png", "metric_info.json"} <= artifacts
    matrix = store.client.download_artifacts(run.info.run_id, "training_confusion_matrix.png", tmp_path)
    with open(matrix, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    estimator = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/estimator.html")
    assert "DecisionTreeClassifier" in estimator
    # The training data, logged as a dataset input of the run.
    [dataset_input] = run.inputs.dataset_inputs
    assert [t.value for t in dataset_input.tags if t.key == "mlflow.data.context"] == ["train"]
    assert json.loads(dataset_input.dataset.schema)["mlflow_tensorspec"]
    assert f"models:/{model_id_of(run)}" in result.stdout  # the script prints the model's ID


def test_the_autologged_model_has_signature_and_input_example(store, runs, tmp_path):
    run = decision_tree_run(runs).run
    model_uri = f"models:/{model_id_of(run)}"
    logged = store.client.get_logged_model(model_id_of(run))
    assert logged.source_run_id == run.info.run_id
    assert logged.name == "model"
    info = mlflow.models.get_model_info(model_uri)
    assert [(s.type, s.shape) for s in info.signature.inputs.inputs] == [(np.dtype("float64"), (-1, 4))]
    assert [s.type for s in info.signature.outputs.inputs] == [np.dtype("int64")]
    example = Model.load(model_uri).load_input_example(
        mlflow.artifacts.download_artifacts(model_uri, dst_path=tmp_path)
    )
    np.testing.assert_array_equal(example, load_iris().data[: len(example)])
    files = {a.path.rsplit("/", 1)[-1] for a in mlflow.artifacts.list_artifacts(model_uri)}
    assert {"MLmodel", "model.pkl", "requirements.txt", "serving_input_example.json"} <= files


@pytest.mark.entry_point("autologging_example", "register")
def test_register_makes_champion_point_at_the_new_version(store, runs):
    run = decision_tree_run(runs).run
    result = registration(runs)
    assert result.run.info.status == "FINISHED"
    champion = store.client.get_model_version_by_alias(MODEL_NAME, "champion")
    [only_version] = store.client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert champion.version == only_version.version
    assert champion.source == f"models:/{model_id_of(run)}"
    assert champion.run_id == run.info.run_id
    # `mlflow run` made a run for the entry point: it is named and records the registration.
    assert result.run.info.run_name == f"register-{MODEL_NAME}"
    assert result.run.data.tags["registered_version"] == str(champion.version)
    assert CHAMPION in result.stdout
    assert f'mlflow models serve --env-manager local -m "{CHAMPION}" -p 1234' in result.stdout


def test_champion_predicts_the_true_labels_through_pyfunc(runs):
    registration(runs)
    payload, labels = payload_and_true_labels()
    model = mlflow.pyfunc.load_model(CHAMPION)
    assert model.predict(np.array(payload["inputs"])).tolist() == labels


def test_mlflow_models_predict_with_the_talks_payload(store, runs):
    registration(runs)
    _, labels = payload_and_true_labels()
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "predict",
            "--env-manager",
            "local",
            "-m",
            CHAMPION,
            "-i",
            str(PAYLOAD_FILE),
        ],
        cwd=harness.REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"predictions": labels}


def test_mlflow_models_serve_answers_the_talks_curl_request(runs):
    registration(runs)
    payload, labels = payload_and_true_labels()
    with harness.model_server(CHAMPION) as url:
        assert harness.post_json(f"{url}/invocations", payload) == (200, {"predictions": labels})
        # A row with 2 features instead of 4: a clear 400, not a crash.
        status, body = harness.post_json(f"{url}/invocations", {"inputs": [[5.1, 3.5]]})
        assert status == 400
        assert body["error_code"] == "INVALID_PARAMETER_VALUE"
        # CSV is refused, as the README says: the autologged signature is a tensor (load_iris gives
        # numpy arrays), and MLflow's server reads CSV only into named, typed columns.
        status, body = harness.post_csv(f"{url}/invocations", "0,1,2,3\n5.1,3.5,1.4,0.2\n")
        assert status == 400
        assert "TensorSpec only supports numpy types" in body["message"]


def test_register_with_a_bad_model_uri_registers_nothing(store, runs):
    result = runs.get(
        "register",
        params={"model_uri": "models:/m-doesnotexist", "model_name": "never-registered"},
        expect_success=False,
    )
    ours = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(ours) == 1
    assert "cannot find a model at 'models:/m-doesnotexist'" in ours[0]
    assert "Traceback" not in result.output
    assert result.run.info.status == "FAILED"
    assert store.client.search_registered_models("name = 'never-registered'") == []


@pytest.mark.entry_point("autologging_example", "random_forest")
def test_random_forest_logs_test_accuracy_importances_and_one_model(store, runs, tmp_path):
    result = runs.get("random_forest", experiment_name="Iris Experiment")
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "random_forest_run"
    assert run.data.params["seed"] == "42"
    assert run.data.params["n_estimators"] == "100"
    assert run.data.params["max_depth"] == "6"
    # test_accuracy is the logged model's score on the same held-out split.
    model_id = model_id_of(run)
    iris = load_iris()
    _, X_test, _, y_test = train_test_split(iris.data, iris.target, test_size=0.2, random_state=42)
    forest = mlflow.sklearn.load_model(f"models:/{model_id}")
    assert run.data.metrics["test_accuracy"] == pytest.approx(forest.score(X_test, y_test))
    assert "test_accuracy" in {m.key for m in store.client.get_logged_model(model_id).metrics}
    assert not [key for key in run.data.metrics if key.endswith("_X_test")]  # logged once, by hand
    assert len(store.client.search_logged_models([run.info.experiment_id])) == 1  # not twice
    chart = store.client.download_artifacts(run.info.run_id, "feature_importance.png", tmp_path)
    with open(chart, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_non_integer_seed_is_one_clear_line_and_no_run(store):
    """`python autologging_example.py abc`, as the talk runs it. (Under `mlflow run`, the same
    one-line failure ends the project's run FAILED: see the bad model_uri test above.)"""
    result = harness.run_script(store, f"{FOLDER}/autologging_example.py", "abc", expect_success=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: argument seed: invalid int value: 'abc'. Example: python autologging_example.py 42"
    ]
    assert result.runs == []


def test_the_printed_next_commands_work_from_the_folder_and_from_the_root(store, runs):
    """main prints `models predict` and `register` twice; run each line where it says it works."""
    _, labels = payload_and_true_labels()
    printed = harness.printed_commands(decision_tree_run(runs).stdout)
    predict_inside, register_inside = printed["inside"]
    predict_root, register_root = printed["root"]
    for command, folder in ((predict_inside, FOLDER), (predict_root, None)):
        result = harness.run_printed(store, command, folder)
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"predictions": labels}
    versions_before = len(store.client.search_model_versions(f"name = '{MODEL_NAME}'"))
    for command, folder in ((register_inside, FOLDER), (register_root, None)):
        assert harness.run_printed(store, command, folder).run.info.status == "FINISHED"
    assert len(store.client.search_model_versions(f"name = '{MODEL_NAME}'")) == versions_before + 2


def test_register_s_newest_looks_in_its_own_experiment_then_in_the_script_s(mlflow_store, monkeypatch):
    """`register` without -P model_uri, in-process: under `mlflow run`, the newest autologging_run of
    the experiment it runs in; when that has none (a command without --experiment-name, in
    Default), autologging_example.py's own experiment; when neither has one, one line naming both."""
    (register_model,) = examples.load(FOLDER, "register_model")
    cli = register_model.cli

    def autologging_run(experiment: str) -> str:  # as autologging_example.py, run alone
        monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
        mlflow.set_experiment(experiment)
        with mlflow.start_run(run_name=register_model.RUN_NAME):
            model = mlflow.sklearn.log_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), name="model")
        return f"models:/{model.model_id}"

    def command_run_in(experiment: str) -> None:  # the run `mlflow run` makes before the script starts
        run = mlflow_store.client.create_run(mlflow.set_experiment(experiment).experiment_id)
        monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)

    command_run_in("Default")
    with pytest.raises(cli.UserError, match="in experiment 'Default' or 'autologging-example'. Run it first"):
        register_model.newest_autologged_model()
    scripts_own = autologging_run(register_model.EXPERIMENT_NAME)
    command_run_in("Default")
    assert register_model.newest_autologged_model() == scripts_own  # nothing in Default: the script's
    alices = autologging_run("alice")
    command_run_in("alice")
    assert register_model.newest_autologged_model() == alices  # its own experiment first

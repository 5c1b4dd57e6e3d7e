"""census_project: train -> test -> monitor on a tiny grid, each run the way a student runs it
(``mlflow run census_project -e ...``), then read back through MLflow's client API."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

import default_store
from tests import harness
from tests.harness import REPO_ROOT, run_project, run_script

PROJECT = "census_project"
sys.path.insert(0, str(REPO_ROOT / PROJECT))  # the project's own package, as its scripts see it
from census import data, pipeline  # noqa: E402

# Small enough to be quick, big enough to have both families, a warm-started forest chain (10 -> 20
# trees) and an unlimited depth (null). A forest wins on it (as in the talk), so the test covers
# saving and loading a forest.
TINY_GRID = {"cv_splits": 2, "lr_C_values": "[1.0]", "rf_n_estimators": "[10, 20]", "rf_max_depths": "[12, null]"}
N_CANDIDATES = 1 + 2 * 2
EXPERIMENT = "census-tests"
CV_METRICS = [f"cv_{m}_{s}" for m in ("roc_auc", "accuracy", "f1") for s in ("mean", "std")]
TEST_METRICS = ["test_accuracy", "test_precision", "test_recall", "test_f1", "test_roc_auc", "test_log_loss"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One isolated store for the tests that share a training run."""
    folder = tmp_path_factory.mktemp("census-store")
    with pytest.MonkeyPatch.context() as patch:
        uri = default_store.sqlite_uri(folder / "mlflow.db")
        harness.use_tracking_uri(patch, uri, folder / "mlartifacts")
        yield harness.Store(uri, folder / "mlartifacts", MlflowClient(uri))
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def trained(store):
    """The first training run on the tiny grid (the tests below read it, the train test repeats it)."""
    return run_project(store, PROJECT, "train", TINY_GRID, experiment_name=EXPERIMENT)


def _artifacts(client, run_id, folder=None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, folder)}


def _champion(client, run):
    """(registered model name, version under @champion) for the winner family of training ``run``."""
    name = pipeline.REGISTERED_MODEL_NAMES[run.data.tags["census.winner_family"]]
    return name, client.get_model_version_by_alias(name, pipeline.CHAMPION_ALIAS)


@pytest.mark.entry_point(PROJECT, "train")
def test_train_nests_candidates_registers_the_champion_and_is_deterministic(store, trained):
    client = store.client
    parent = trained.run
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["census.role"] == "training"
    assert client.get_experiment(parent.info.experiment_id).name == EXPERIMENT

    # One nested child run per candidate, with its parameters and cross-validated scores.
    children = trained.children_of(parent)
    assert len(children) == N_CANDIDATES
    assert {c.data.params["family"] for c in children} == {"logistic", "random_forest"}
    for child in children:
        assert child.info.status == "FINISHED"
        assert set(CV_METRICS) <= set(child.data.metrics)
        assert 0.5 < child.data.metrics["cv_roc_auc_mean"] <= 1
    forests = [c for c in children if c.data.params["family"] == "random_forest"]
    assert {(c.data.params["n_estimators"], c.data.params["max_depth"]) for c in forests} == {
        ("10", "12"),
        ("20", "12"),
        ("10", "None"),
        ("20", "None"),
    }

    # The best of each family and the overall winner are the argmax of the CV ROC AUC.
    for family in ("logistic", "random_forest"):
        members = [c for c in children if c.data.params["family"] == family]
        best = max(members, key=lambda c: c.data.metrics["cv_roc_auc_mean"])
        assert [c.info.run_id for c in members if c.data.tags["census.best_in_family"] == "true"] == [best.info.run_id]
    winner = max(children, key=lambda c: c.data.metrics["cv_roc_auc_mean"])
    assert [c.info.run_id for c in children if c.data.tags["census.winner"] == "true"] == [winner.info.run_id]
    assert parent.data.tags["census.winner"] == winner.info.run_name
    assert parent.data.tags["census.winner_family"] == winner.data.params["family"] == "random_forest"

    # Held-out evaluation, charts and the recorded split.
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert f"held_out_{name}" in parent.data.metrics
    assert parent.data.metrics["held_out_roc_auc"] > 0.85
    charts = {"cv_scores", "roc_curve", "pr_curve", "confusion_matrix", "feature_importance"}
    assert {f"charts/{c}.png" for c in charts} <= _artifacts(client, parent.info.run_id, "charts")
    assert {"splits/train.csv", "splits/held_out.csv"} <= _artifacts(client, parent.info.run_id, "splits")
    contexts = {tag.value for d in parent.inputs.dataset_inputs for tag in d.tags if tag.key == "mlflow.data.context"}
    assert contexts == {"train", "held_out"}
    held_out = data.load_split(parent.info.run_id, "held_out")
    train = data.load_split(parent.info.run_id, "train")
    assert (len(train), len(held_out)) == (26048, 6513)  # test_size 0.2 of 32,561 rows
    assert abs(train[data.TARGET].mean() - held_out[data.TARGET].mean()) < 0.001  # stratified

    # Registered under the winner family's name; @champion points at this run's model.
    name, version = _champion(client, parent)
    assert version.run_id == parent.info.run_id
    assert version.source.startswith("models:/m-")  # the logged model's id: models:/<model id>
    model_info = mlflow.models.get_model_info(version.source)
    assert model_info.signature is not None
    assert model_info.saved_input_example_info is not None
    assert f"-P run_id={parent.info.run_id} -P model_uri={version.source}" in trained.stdout

    # Same parameters again: identical metrics and winner; @champion moves to the new version.
    again = run_project(store, PROJECT, "train", TINY_GRID, experiment_name=EXPERIMENT)
    assert again.run.data.metrics == parent.data.metrics
    assert again.run.data.tags["census.winner"] == parent.data.tags["census.winner"]
    by_name = {c.info.run_name: c.data.metrics for c in children}
    assert {c.info.run_name: c.data.metrics for c in again.children_of(again.run)} == by_name
    _, new_version = _champion(client, again.run)
    assert new_version.run_id == again.run.info.run_id
    assert int(new_version.version) == int(version.version) + 1
    assert client.get_registered_model(name).name == name


@pytest.mark.entry_point(PROJECT, "test")
def test_test_evaluates_exactly_the_held_out_split(store, trained):
    training = trained.run
    _, version = _champion(store.client, training)
    result = run_project(
        store,
        PROJECT,
        "test",
        {"run_id": training.info.run_id, "model_uri": version.source},
        experiment_name=EXPERIMENT,
    )
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == training.info.experiment_id
    assert run.data.tags["census.role"] == "test"
    assert run.data.tags["census.training_run_id"] == training.info.run_id
    assert set(TEST_METRICS) <= set(run.data.metrics)
    for name in TEST_METRICS[:5]:
        assert 0 < run.data.metrics[name] <= 1
    # Same model on the same rows: the test metrics equal training's held-out metrics.
    for name in ("accuracy", "f1", "roc_auc", "log_loss"):
        assert run.data.metrics[f"test_{name}"] == pytest.approx(training.data.metrics[f"held_out_{name}"], abs=1e-12)
    charts = {f"charts/{c}.png" for c in ("confusion_matrix", "roc_curve", "pr_curve", "calibration")}
    assert charts <= _artifacts(store.client, run.info.run_id, "charts")


@pytest.mark.entry_point(PROJECT, "monitor")
def test_monitor_passes_the_held_out_batch_and_flags_the_shifted_one(store, trained):
    training_id = trained.run.info.run_id
    runs = {}
    for batch in ("held_out", "shifted"):
        result = run_project(
            store, PROJECT, "monitor", {"run_id": training_id, "batch": batch}, experiment_name=EXPERIMENT
        )
        runs[batch] = result.run
        assert result.run.info.status == "FINISHED"
        assert result.run.data.tags["census.training_run_id"] == training_id
        assert result.run.data.tags["monitoring.batch"] == batch
        files = _artifacts(store.client, result.run.info.run_id, "monitoring")
        assert {f"monitoring/{n}.{e}" for n in ("drift_report", "data_summary") for e in ("html", "json")} <= files
        report_file = mlflow.artifacts.download_artifacts(
            run_id=result.run.info.run_id, artifact_path="monitoring/drift_report.json", tracking_uri=store.tracking_uri
        )
        report = json.loads(Path(report_file).read_text(encoding="utf-8"))
        assert report["metrics"]
        assert report["tests"]

    held_out, shifted = runs["held_out"].data, runs["shifted"].data
    assert held_out.tags["monitoring.status"] == "pass"
    assert held_out.metrics["dataset_drift"] == 0
    assert held_out.metrics["drifted_columns_share"] < 0.5
    assert held_out.metrics["tests_failed"] == 0 < held_out.metrics["tests_total"]
    assert shifted.tags["monitoring.status"] == "fail"
    assert shifted.metrics["dataset_drift"] == 1
    assert shifted.metrics["drifted_columns_share"] >= 0.5
    assert shifted.metrics["tests_failed"] > 0


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"census_{name}", REPO_ROOT / PROJECT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- bad input: one clear line naming the parameter, exit != 0, run FAILED, nothing registered ---


def _one_error_line(result, parameter: str) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output[-3000:]
    assert lines[0].startswith(f"error: {parameter}:"), lines[0]
    return lines[0]


def _registered_by(client, run_id) -> list:
    return [
        v
        for m in client.search_registered_models()
        for v in client.search_model_versions(f"name='{m.name}'")
        if v.run_id == run_id
    ]


def test_unknown_model_type_fails_the_run_and_registers_nothing(store):
    result = run_project(store, PROJECT, "train", {"model_type": "svm"}, expect_success=False)
    assert "both, logistic, random_forest" in _one_error_line(result, "model_type")
    assert [r.info.status for r in result.runs] == ["FAILED"]  # the run `mlflow run` made; no children
    assert _registered_by(store.client, result.runs[0].info.run_id) == []


BAD_TRAIN_ARGUMENTS = [
    (["--lr-C-values", "[0.1, 1.0"], "lr_C_values"),
    (["--rf-max-depths", '["deep"]'], "rf_max_depths"),
    (["--lr-solvers", '"lbfgs"'], "lr_solvers"),
    (["--test-size", "1.5"], "test_size"),
    (["--cv-splits", "1"], "cv_splits"),
    (["--numeric-scaling-with-mean", "maybe"], "numeric_scaling_with_mean"),
]


def test_bad_train_parameters_stop_before_any_run(store, capsys):
    """In-process (a subprocess per case would cost seconds of imports each): same main()."""
    train = _load_script("train")
    runs_before = [r.info.run_id for r in store.all_runs()]
    for args, parameter in BAD_TRAIN_ARGUMENTS:
        with pytest.raises(SystemExit) as exited:
            train.main(args)
        assert exited.value.code == 2
        errors = capsys.readouterr().err.strip().splitlines()
        assert len(errors) == 1, errors
        assert errors[0].startswith(f"error: {parameter}:"), errors
    assert [r.info.run_id for r in store.all_runs()] == runs_before  # no run started, so nothing logged or registered


def test_unknown_training_run_id_fails_the_test_run(store):
    params = {"run_id": "0123456789abcdef0123456789abcdef", "model_uri": "models:/m-0123456789abcdef"}
    result = run_project(store, PROJECT, "test", params, expect_success=False)
    assert "no run '0123456789abcdef0123456789abcdef'" in _one_error_line(result, "run_id")
    assert [r.info.status for r in result.runs] == ["FAILED"]


def test_unknown_model_uri_is_named(store, trained):
    run_id = trained.run.info.run_id
    result = run_script(
        store, f"{PROJECT}/test.py", "--run-id", run_id, "--model-uri", "models:/m-does-not-exist", expect_success=False
    )
    _one_error_line(result, "model_uri")
    assert result.returncode == 2
    assert result.runs == []


# --- the fast search equals the textbook GridSearchCV ---


def test_fast_search_equals_plain_grid_search():
    frame = data.load_adult("local")
    train, _ = data.split(frame, 0.2, 7)
    X, y = data.features_and_target(train.sample(5000, random_state=0))  # any rows will do: keep it quick
    preprocessor = pipeline.build_preprocessor("median", True, "most_frequent", "ignore", 0.3)
    candidates = pipeline.make_candidates("both", [0.5], ["lbfgs"], [4, 8], [None, 5])
    fast = pipeline.cross_validate(preprocessor, candidates, X, y, 2, 7, 1000, progress=lambda line: None)
    plain = pipeline.plain_grid_search(preprocessor, candidates, X, y, 2, 7, 1000)
    assert [r.candidate for r in fast] == [r.candidate for r in plain] == candidates
    assert [r.fold_scores for r in fast] == [r.fold_scores for r in plain]  # exactly, every fold and metric
    assert pipeline.best(fast).candidate == pipeline.best(plain).candidate

    # The refit (forest on a dense copy) predicts exactly what Pipeline.fit on sparse input does.
    forest = pipeline.Candidate("random_forest", (("max_depth", None), ("n_estimators", 8)))
    fast_model = pipeline.refit(preprocessor, forest, X, y, 7, 1000)
    plain_model = Pipeline(
        [("preprocess", clone(preprocessor)), ("classifier", RandomForestClassifier(n_estimators=8, random_state=7))]
    )
    plain_model.fit(X, y)
    assert np.array_equal(fast_model.predict_proba(X.head(2000)), plain_model.predict_proba(X.head(2000)))

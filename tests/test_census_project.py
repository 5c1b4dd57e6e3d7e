"""census_project: train -> test -> monitor on tiny grids, each entry point run the way a student
runs it (``mlflow run census_project -e ...``; tests of what a script does run ``python train.py
...``), then read back through MLflow's client API; the champion policy; and the registered model
serving census rows as people have them (Python, `mlflow models predict`, a real `mlflow models serve`)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from mlflow.types.schema import AnyType, DataType
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from tests import examples, harness
from tests.harness import run_project, run_script

FOLDER = PROJECT = "census_project"
# The project's own package, as its scripts see it (tests/examples.py: with census_project's cli.py)
data, search, census_model = examples.load(PROJECT, "census.data", "census.search", "census.model")
FEATURES = census_model.FEATURES

# Small enough to be quick, big enough to have both families, a warm-started forest chain (10 -> 20
# trees) and an unlimited depth (null). A forest wins on it (as in the talk), so the tests cover
# saving and loading a forest.
TINY_GRID = {"cv_splits": 2, "lr_C_values": "[1.0]", "rf_n_estimators": "[10, 20]", "rf_max_depths": "[12, null]"}
N_CANDIDATES = 1 + 2 * 2
EXPERIMENT = "census-tests"
FOREST = "adult-best-random-forest"
CV_METRICS = [f"cv_{m}_{s}" for m in ("roc_auc", "accuracy", "f1") for s in ("mean", "std")]
TEST_METRICS = ["test_accuracy", "test_precision", "test_recall", "test_f1", "test_roc_auc", "test_log_loss"]


@pytest.fixture(scope="module")
def store(module_store) -> harness.Store:
    return module_store


def train_directly(store, params: dict, experiment: str, **kwargs) -> harness.ProjectResult:
    """`python train.py --key value ...` in ``experiment``: for tests of what train.py does (the
    champion policy, determinism). `mlflow run -e train` has its own tests (``trained``, the printed
    commands, the exit codes); skipping its CLI saves ~5 s of CPU per training."""
    env = {"MLFLOW_EXPERIMENT_NAME": experiment}
    return run_script(store, f"{PROJECT}/train.py", params=params, env=env, **kwargs)


def train_in_process(store, params: dict, experiment: str) -> harness.ProjectResult:
    """train.py's ``main()`` with these parameters, in this process: the champion policy's six
    trainings, where the test is about what main() decides (a subprocess costs ~3 s of CPU in imports
    each; ``train_directly`` and ``mlflow run`` test the script as a process). Its printed lines are
    the result's stdout."""
    train, charts = examples.load(PROJECT, "train", "census.charts")  # charts chose matplotlib's backend
    before = {r.info.run_id for r in store.all_runs()}
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.setattr(sys, "argv", ["train.py", *harness.script_options(params)])
        patch.setenv("MLFLOW_EXPERIMENT_NAME", experiment)
        train.main()
    charts.plt.close("all")  # train.py logs its charts and leaves them open, as a script may: its process ends
    runs = [r for r in store.all_runs() if r.info.run_id not in before]
    return harness.ProjectResult(0, printed.getvalue(), "", runs)


@pytest.fixture(scope="module")
def trained(store):
    """The first training run on the tiny grid (the tests below read it, the train test repeats it)."""
    return run_project(store, PROJECT, "train", TINY_GRID, experiment_name=EXPERIMENT)


def _artifacts(client, run_id, folder=None) -> set[str]:
    return {a.path for a in client.list_artifacts(run_id, folder)}


def _version_of(client, run):
    """The model version training ``run`` registered."""
    name = run.data.tags["census.registered_model"]
    return client.get_model_version(name, run.data.tags["census.model_version"])


@pytest.mark.entry_point(PROJECT, "train")
def test_train_nests_candidates_registers_the_champion_and_is_deterministic(store, trained):
    client = store.client
    parent = trained.run
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "train-both"
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

    # Held-out evaluation, charts and the recorded split (with the rows' ids).
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
    assert set(train.index).isdisjoint(held_out.index)
    assert len(set(train.index) | set(held_out.index)) == 32561
    assert abs(train[data.TARGET].mean() - held_out[data.TARGET].mean()) < 0.001  # stratified

    # Registered under the winner family's name, tagged with its split; the first one is champion.
    version = _version_of(client, parent)
    assert version.name == FOREST
    assert version.run_id == parent.info.run_id
    assert version.source.startswith("models:/m-")  # the logged model's id: models:/<model id>
    assert set(version.aliases) == {"champion", "challenger"}
    assert version.tags["held_out_roc_auc"] == f"{parent.data.metrics['held_out_roc_auc']:.6f}"
    assert version.tags["held_out_rows"] == data.rows_hash(held_out)
    assert (version.tags["test_size"], version.tags["random_state"], version.tags["data_source"]) == (
        "0.2",
        "42",
        "local",
    )
    assert f"version {version.version} is the first champion of {FOREST}" in trained.stdout
    model_info = mlflow.models.get_model_info(version.source)
    assert model_info.signature is not None
    assert model_info.saved_input_example_info is not None

    # Same parameters again: identical metrics and winner; a new challenger, the champion stays.
    again = train_directly(store, TINY_GRID, EXPERIMENT)
    assert again.run.data.metrics == parent.data.metrics
    assert again.run.data.tags["census.winner"] == parent.data.tags["census.winner"]
    by_name = {c.info.run_name: c.data.metrics for c in children}
    assert {c.info.run_name: c.data.metrics for c in again.children_of(again.run)} == by_name
    new_version = _version_of(client, again.run)
    assert int(new_version.version) == int(version.version) + 1
    assert new_version.aliases == ["challenger"]
    assert client.get_model_version_by_alias(FOREST, "champion").version == version.version
    score = f"{parent.data.metrics['held_out_roc_auc']:.4f}"
    assert f"champion stays version {version.version}: ROC AUC {score} <= {score} on the same held-out rows" in (
        again.stdout
    )


@pytest.fixture(scope="module")
def printed_tests(store, trained) -> dict:
    """The test commands train printed, each run as a student pastes it: {"inside": (command, result),
    "root": (command, result)}, from census_project/ and from the repository root."""
    printed = harness.printed_commands(trained.stdout)
    assert [len(printed["inside"]), len(printed["root"])] == [1, 1], trained.stdout[-3000:]
    return {
        "inside": (printed["inside"][0], harness.run_printed(store, printed["inside"][0], FOLDER)),
        "root": (printed["root"][0], harness.run_printed(store, printed["root"][0], None)),
    }


def test_train_prints_the_test_command_and_it_works_from_the_folder_and_the_root(store, trained, printed_tests):
    version = _version_of(store.client, trained.run)
    (inside, _), (root, _) = printed_tests["inside"], printed_tests["root"]
    expected = f"-P run_id={trained.run.info.run_id} -P model_uri={version.source}"
    assert inside.endswith(expected)
    assert root.endswith(expected)
    assert inside.startswith(f"mlflow run -e test --env-manager=local --experiment-name {EXPERIMENT} . ")
    assert root.startswith(f"mlflow run -e test --env-manager=local --experiment-name {EXPERIMENT} census_project ")
    for _, result in printed_tests.values():
        assert result.run.info.run_name == "test"
        assert result.run.info.experiment_id == trained.run.info.experiment_id


@pytest.mark.entry_point(PROJECT, "test")
def test_test_on_its_own_run_reproduces_the_held_out_metrics_exactly(store, trained, printed_tests):
    """`mlflow run -e test` with the training run's id and its model: the command train printed, run
    from census_project/ (the test above checks that it says exactly that)."""
    training = trained.run
    version = _version_of(store.client, training)
    run = printed_tests["inside"][1].run
    assert run.data.params == {"run_id": training.info.run_id, "model_uri": version.source}
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "test"
    assert run.info.experiment_id == training.info.experiment_id
    assert run.data.tags["census.role"] == "test"
    assert run.data.tags["census.training_run_id"] == training.info.run_id
    assert set(TEST_METRICS) <= set(run.data.metrics)
    assert run.data.metrics["test_rows"] == 6513
    # The run's own model on the run's own held-out rows: exactly the training run's figures.
    for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        assert run.data.metrics[f"test_{name}"] == training.data.metrics[f"held_out_{name}"]
    charts = {f"charts/{c}.png" for c in ("confusion_matrix", "roc_curve", "pr_curve", "calibration")}
    assert charts <= _artifacts(store.client, run.info.run_id, "charts")


@pytest.mark.entry_point(PROJECT, "monitor")
def test_monitor_passes_the_held_out_batch_and_flags_the_shifted_one(store, trained, tmp_path):
    training_id = trained.run.info.run_id
    runs = {}
    # The held-out batch with `mlflow run -e monitor`, the shifted one with `python monitor.py`: the same
    # script, which puts its run in the training run's experiment either way.
    results = {
        "held_out": run_project(
            store, PROJECT, "monitor", {"run_id": training_id, "batch": "held_out"}, experiment_name=EXPERIMENT
        ),
        "shifted": run_script(store, f"{PROJECT}/monitor.py", params={"run_id": training_id, "batch": "shifted"}),
    }
    for batch, result in results.items():
        assert result.run.info.experiment_id == trained.run.info.experiment_id
        runs[batch] = result.run
        assert result.run.info.status == "FINISHED"
        assert result.run.info.run_name == f"monitor-{batch}"
        assert result.run.data.tags["census.training_run_id"] == training_id
        assert result.run.data.tags["monitoring.batch"] == batch
        files = _artifacts(store.client, result.run.info.run_id, "monitoring")
        assert {f"monitoring/{n}.{e}" for n in ("drift_report", "data_summary") for e in ("html", "json")} <= files
        report_file = mlflow.artifacts.download_artifacts(
            run_id=result.run.info.run_id,
            artifact_path="monitoring/drift_report.json",
            tracking_uri=store.tracking_uri,
            dst_path=tmp_path / batch,
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


# --- the champion policy: the alias only ever moves to a better model, or when asked to ------------

LOGISTIC = {"model_type": "logistic", "cv_splits": 2}
WEAK, STRONG = "[0.0001]", "[1.0]"  # C values: heavy regularisation scores a clearly lower ROC AUC
LOGISTIC_NAME = "adult-best-logistic"


def _champion_version(store) -> str:
    return store.client.get_model_version_by_alias(LOGISTIC_NAME, "champion").version


@pytest.fixture(scope="module")
def policy(store) -> dict:
    """Logistic training runs in order, each with the champion right after it:
    first (weak), better (strong), worse (weak), forced (weak, promote=true), other split (strong,
    test_size 0.25, random_state 123), tiny overlap (strong, test_size 0.05, random_state 7)."""
    steps = {
        "first": {"lr_C_values": WEAK},
        "better": {"lr_C_values": STRONG},
        "worse": {"lr_C_values": WEAK},
        "forced": {"lr_C_values": WEAK, "promote": "true"},
        "other_split": {"lr_C_values": STRONG, "test_size": 0.25, "random_state": 123},
        "tiny_overlap": {"lr_C_values": STRONG, "test_size": 0.05, "random_state": 7},
    }
    done = {}
    for step, params in steps.items():
        result = train_in_process(store, LOGISTIC | params, "champ")
        done[step] = (result, _version_of(store.client, result.run), _champion_version(store))
    return done


def test_the_champion_only_moves_to_a_better_model_or_when_promoted(policy):
    (first, v1, champion), (better, v2, champion2) = policy["first"], policy["better"]
    assert f"version {v1.version} is the first champion of {LOGISTIC_NAME}" in first.stdout
    assert champion == v1.version

    new, old = better.run.data.metrics["held_out_roc_auc"], first.run.data.metrics["held_out_roc_auc"]
    assert new > old  # same split, higher held-out ROC AUC
    assert f"champion is now version {v2.version} (was version {v1.version}): ROC AUC {new:.4f} > {old:.4f}" in (
        better.stdout
    )
    assert champion2 == v2.version

    worse, v3, champion3 = policy["worse"]
    assert f"champion stays version {v2.version}: ROC AUC {old:.4f} <= {new:.4f} on the same held-out rows" in (
        worse.stdout
    )
    assert champion3 == v2.version
    assert v3.aliases == ["challenger"]

    forced, v4, champion4 = policy["forced"]
    assert f"champion is now version {v4.version} (was version {v2.version}): promoted by -P promote=true" in (
        forced.stdout
    )
    assert champion4 == v4.version

    # Another seeded split: both models are scored on the rows that both runs held out, and nowhere else.
    other, v5, champion5 = policy["other_split"]
    shared = data.load_split(other.run.info.run_id, "held_out").index.intersection(
        data.load_split(forced.run.info.run_id, "held_out").index
    )
    X, y = data.features_and_target(data.load_adult().loc[shared])
    scores = [
        roc_auc_score(y, mlflow.pyfunc.load_model(v.source).unwrap_python_model().predict_proba(X)) for v in (v5, v4)
    ]
    assert scores[0] > scores[1]
    assert (
        f"champion is now version {v5.version} (was version {v4.version}): ROC AUC {scores[0]:.4f} > {scores[1]:.4f} "
        f"on the {len(shared)} rows that neither model was trained on" in other.stdout
    )
    assert champion5 == v5.version

    # A split that shares too few held-out rows with the champion's: no comparison, the champion stays.
    tiny, _, champion6 = policy["tiny_overlap"]
    assert f"champion stays version {v5.version}: only " in tiny.stdout
    assert "too few to compare" in tiny.stdout
    assert champion6 == v5.version


def test_test_never_scores_a_model_on_rows_it_was_trained_on(store, policy):
    """A model of another split, tested with a run's id: only the held-out rows it never saw."""
    first, other_split, tiny = (policy[step][0].run for step in ("first", "other_split", "tiny_overlap"))
    model_uri = policy["other_split"][1].source
    result = run_script(store, f"{PROJECT}/test.py", "--run-id", first.info.run_id, "--model-uri", model_uri)
    held_out = data.load_split(first.info.run_id, "held_out")
    unseen = held_out.drop(index=data.load_split(other_split.info.run_id, "train").index, errors="ignore")
    assert 500 <= len(unseen) < len(held_out)
    assert result.run.data.metrics["test_rows"] == len(unseen)
    X, y = data.features_and_target(unseen)
    expected = roc_auc_score(y, mlflow.pyfunc.load_model(model_uri).unwrap_python_model().predict_proba(X))
    assert result.run.data.metrics["test_roc_auc"] == pytest.approx(expected, abs=1e-12)
    assert f"the {len(unseen)} of the {len(held_out)} rows held out by run {first.info.run_id}" in result.stdout
    assert "never saw" in result.run.data.tags["census.test_rows"]

    # Too few rows new to the model: refused in one line, naming both runs and the fix.
    refused = run_project(
        store, PROJECT, "test", {"run_id": tiny.info.run_id, "model_uri": model_uri}, expect_success=False
    )
    line = _one_error_line(refused, "model_uri")
    assert f"trained by run {other_split.info.run_id}" in line
    assert f"-P run_id={other_split.info.run_id}" in line
    assert [r.info.status for r in refused.runs] == ["FAILED"]


# --- the champion serves census rows as people have them -------------------------------------------

FOREST_CHAMPION = f"models:/{FOREST}@champion"


def raw_rows(n: int = 40) -> pd.DataFrame:
    """Rows of the bundled file as `pd.read_csv` reads them by default: whole numbers as int64,
    categories as text with the file's leading spaces, `?` for missing; no target column."""
    frame = pd.read_csv(data.DATA_FILE, header=None, names=data.COLUMNS, nrows=200)
    with_missing = frame[frame.isin([" ?"]).any(axis=1)].head(5)  # some rows with a `?` in them
    return pd.concat([with_missing, frame.head(n - len(with_missing))]).drop(columns=[data.TARGET])


def expected_labels(rows: pd.DataFrame, trained) -> list[int]:
    """What the fitted pipeline predicts on the same rows, cleaned the way train.py loaded them."""
    clean = data.load_adult().loc[rows.index].drop(columns=[data.TARGET])
    census_model = mlflow.pyfunc.load_model(
        _version_of(mlflow.MlflowClient(), trained.run).source
    ).unwrap_python_model()
    return [int(label) for label in census_model.pipeline.predict(clean)]


def test_the_champion_predicts_rows_read_with_plain_pd_read_csv(trained):
    rows = raw_rows()
    assert {str(t) for t in rows.dtypes} >= {"int64"}  # whole numbers as people have them
    model = mlflow.pyfunc.load_model(FOREST_CHAMPION)
    labels = model.predict(rows).tolist()
    assert labels == expected_labels(rows, trained)
    assert set(labels) <= {0, 1}
    # The same rows with numbers as floats and with missing values anywhere.
    floats = rows.astype(dict.fromkeys(data.NUMERIC_FEATURES, "float64"))
    floats.iloc[0, floats.columns.get_loc("age")] = np.nan
    floats.iloc[1, floats.columns.get_loc("workclass")] = None
    floats.iloc[2, floats.columns.get_loc("hours-per-week")] = np.nan
    assert set(model.predict(floats).tolist()) <= {0, 1}
    assert model.predict(floats.iloc[3:]).tolist() == labels[3:]


def test_the_readme_s_python_snippet_runs_as_printed(trained, monkeypatch):
    """census README, "Serve the champion": the Python lines as printed (no placeholder), run from
    census_project/ as it says, predict the first five rows of the bundled file."""
    readme = (harness.REPO_ROOT / PROJECT / "README.md").read_text()
    section = readme.split("## Serve the champion", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "..." not in code
    monkeypatch.chdir(harness.REPO_ROOT / PROJECT)
    *lines, last = code.strip().splitlines()
    namespace: dict = {}
    exec("\n".join(lines), namespace)  # the README's own lines
    assert namespace["columns"] == data.COLUMNS  # the file's 15 columns, in its order
    predicted = eval(last, namespace)  # its last line: an expression, its value shown in a comment
    assert predicted.tolist() == expected_labels(namespace["rows"], trained)
    # The README shows what `make demo`'s champion answers; this tiny-grid one may differ on a row.
    assert re.fullmatch(r"array\(\[[01](, [01]){4}\]\)", last.split("# ", 1)[1].strip())
    assert len(predicted) == 5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows.drop(columns=["age"]), "missing column(s) age. A census row has exactly these columns"),
        (lambda rows: rows.assign(age="forty"), "column 'age' must be a number (or empty, ? or null when missing)"),
        (lambda rows: rows.assign(**{"hours-per-week": True}), "column 'hours-per-week' must be a number"),
    ],
)
def test_bad_rows_get_a_clear_error_naming_the_column(trained, change, message):
    with pytest.raises(MlflowException) as raised:
        mlflow.pyfunc.load_model(FOREST_CHAMPION).predict(change(raw_rows(3)))
    assert message in raised.value.message
    assert raised.value.error_code == "INVALID_PARAMETER_VALUE"


def test_an_unknown_extra_column_is_dropped_by_mlflow_with_a_warning(trained, caplog):
    """MLflow's signature enforcement drops columns the signature does not name, before the model
    runs, and warns naming them: the README says so, this test holds it to that."""
    rows = raw_rows(5)
    model = mlflow.pyfunc.load_model(FOREST_CHAMPION)
    assert model.predict(rows.assign(favourite_colour="blue")).tolist() == model.predict(rows).tolist()
    assert "favourite_colour" in caplog.text
    assert "These inputs will be ignored" in caplog.text


def test_the_signature_names_the_census_columns_and_the_example_is_real_rows(trained):
    info = mlflow.models.get_model_info(FOREST_CHAMPION)
    inputs = {spec.name: spec.type for spec in info.signature.inputs.inputs}
    assert list(inputs) == FEATURES
    assert all(isinstance(inputs[c], AnyType) for c in data.NUMERIC_FEATURES)
    assert {inputs[c] for c in data.CATEGORICAL_FEATURES} == {DataType.string}
    example = pd.DataFrame(
        **json.loads(mlflow.artifacts.load_text(f"{FOREST_CHAMPION}/serving_input_example.json"))["dataframe_split"]
    )
    assert list(example.columns) == FEATURES
    assert mlflow.pyfunc.load_model(FOREST_CHAMPION).predict(example).tolist() != []


def test_mlflow_models_predict_on_a_census_csv(tmp_path, store, trained):
    rows = raw_rows(10)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    command = ["mlflow", "models", "predict", "--env-manager", "local", "-m", FOREST_CHAMPION]
    completed = harness.run_command(store, command + ["-i", str(tmp_path / "rows.csv"), "-t", "csv"])
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == {"predictions": expected_labels(rows, trained)}


def test_mlflow_models_serve_answers_json_records_split_and_nulls(trained):
    rows = raw_rows(6)
    labels = expected_labels(rows, trained)
    records = json.loads(rows.to_json(orient="records"))
    split = json.loads(rows.to_json(orient="split", index=False))
    with_nulls = [dict(records[0], age=None, workclass=None), dict(records[1], occupation=None)]
    with harness.model_server(FOREST_CHAMPION) as url:
        assert harness.post_json(f"{url}/invocations", {"dataframe_records": records}) == (200, {"predictions": labels})
        assert harness.post_json(f"{url}/invocations", {"dataframe_split": split}) == (200, {"predictions": labels})
        status, body = harness.post_json(f"{url}/invocations", {"dataframe_records": with_nulls})
        assert status == 200
        assert set(body["predictions"]) <= {0, 1}
        assert len(body["predictions"]) == 2
        for bad, message in (
            ([{k: v for k, v in records[0].items() if k != "age"}], "missing column(s) age"),
            ([dict(records[0], age="forty")], "column 'age' must be a number"),
        ):
            status, body = harness.post_json(f"{url}/invocations", {"dataframe_records": bad})
            assert status == 400
            assert body["error_code"] == "INVALID_PARAMETER_VALUE"
            assert message in body["message"]
        # CSV is refused, as the README says: MLflow's server reads CSV with one dtype per column from
        # the signature, and the number columns are "any" (whole numbers and missing values both).
        status, body = harness.post_csv(f"{url}/invocations", rows.to_csv(index=False))
        assert status == 400
        assert "Failed to get pandas types as some of the inputs types are not DataType" in body["message"]


# --- bad parameters: one clear line naming the parameter, exit != 0, run FAILED, nothing registered ---


def _one_error_line(result, parameter: str) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output[-3000:]
    assert parameter in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def _registered_by(client, run_id) -> list:
    return [
        v
        for m in client.search_registered_models()
        for v in client.search_model_versions(f"name='{m.name}'")
        if v.run_id == run_id
    ]


def test_unknown_model_type_fails_the_run_and_registers_nothing(store, capsys, monkeypatch):
    """Also the README's claim: the script exits with 2 (alone), `mlflow run` reports any failure as 1."""
    result = run_project(store, PROJECT, "train", {"model_type": "svm"}, expect_success=False)
    assert result.returncode == 1
    line = _one_error_line(result, "--model-type")
    assert "invalid choice: 'svm'" in line
    assert all(family in line for family in ("both", "logistic", "random_forest"))
    assert [r.info.status for r in result.runs] == ["FAILED"]  # the run `mlflow run` made; no children
    assert _registered_by(store.client, result.runs[0].info.run_id) == []

    assert _refused_by_train(store, capsys, monkeypatch, ["--model-type", "svm"]) == [line]  # alone: exit status 2


BAD_TRAIN_ARGUMENTS = [
    (["--lr-C-values", "[0.1, 1.0"], "--lr-C-values"),
    (["--rf-max-depths", '["deep"]'], "--rf-max-depths"),
    (["--lr-solvers", '"lbfgs"'], "--lr-solvers"),
    (["--test-size", "1.5"], "--test-size"),
    (["--cv-splits", "1"], "--cv-splits"),
    (["--numeric-scaling-with-mean", "maybe"], "--numeric-scaling-with-mean"),
]


def _refused_by_train(store, capsys, monkeypatch, arguments: list[str]) -> list[str]:
    """`python train.py <arguments>` refused: train.py's main() in-process (a subprocess per case would
    cost seconds of imports each) exits with status 2 before any run starts or anything is
    registered. Its error lines."""
    (train,) = examples.load(PROJECT, "train")
    runs_before = [r.info.run_id for r in store.all_runs()]
    monkeypatch.setattr(sys, "argv", ["train.py", *arguments])
    with pytest.raises(SystemExit) as exited:
        train.main()
    assert exited.value.code == 2
    assert [r.info.run_id for r in store.all_runs()] == runs_before  # no run started, nothing registered
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(("arguments", "option"), BAD_TRAIN_ARGUMENTS)
def test_bad_train_parameters_stop_before_any_run(store, capsys, monkeypatch, arguments, option):
    errors = _refused_by_train(store, capsys, monkeypatch, arguments)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"error: argument {option}: "), errors
    assert "Example: mlflow run -e train" in errors[0]


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


def test_reading_a_split_and_loading_a_model_leave_no_temporary_folder(trained, tmp_path, monkeypatch):
    """test.py, monitor.py and the champion check read the split and the model from the store; MLflow
    downloads them into temporary folders it never removes unless told where to put them."""
    registry = examples.load(PROJECT, "census.registry")[0]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where tempfile, and so MLflow, makes its folders
    held_out = data.load_split(trained.run.info.run_id, "held_out")
    model = registry.load_census_model(_version_of(mlflow.MlflowClient(), trained.run).source)
    assert len(held_out) == 6513
    assert model.predict_proba(held_out.drop(columns=[data.TARGET]).head(3)).shape == (3,)  # loaded, in memory
    assert list(tmp_path.iterdir()) == []


# --- the fast search equals the textbook GridSearchCV ---


def test_fast_search_equals_plain_grid_search(trained):
    """On train.py's own preprocessing (cloned, unfitted, from the logged model)."""
    champion = mlflow.pyfunc.load_model(_version_of(mlflow.MlflowClient(), trained.run).source)
    preprocessor = clone(champion.unwrap_python_model().pipeline.named_steps["preprocess"])
    X, y = data.features_and_target(data.load_adult().sample(5000, random_state=0))  # any rows: keep it quick
    grids = {
        "logistic": {"C": [0.5], "solver": ["lbfgs"]},
        "random_forest": {"n_estimators": [4, 8], "max_depth": [None, 5]},
    }
    candidates = search.make_candidates(grids)
    fast = search.cross_validate(preprocessor, candidates, X, y, 2, 7, 1000, progress=lambda line: None)
    plain = search.plain_grid_search(preprocessor, candidates, X, y, 2, 7, 1000)
    assert [r.candidate for r in fast] == [r.candidate for r in plain] == candidates
    assert [r.fold_scores for r in fast] == [r.fold_scores for r in plain]  # exactly, every fold and metric
    assert search.best(fast).candidate == search.best(plain).candidate

    # The refit (forest on a dense copy) predicts exactly what Pipeline.fit on sparse input does.
    forest = search.Candidate("random_forest", (("max_depth", None), ("n_estimators", 8)))
    fast_model = search.refit(preprocessor, forest, X, y, 7, 1000)
    plain_model = Pipeline(
        [("preprocess", clone(preprocessor)), ("classifier", RandomForestClassifier(n_estimators=8, random_state=7))]
    )
    plain_model.fit(X, y)
    assert np.array_equal(fast_model.predict_proba(X.head(2000)), plain_model.predict_proba(X.head(2000)))


def test_registry_rows_hash_names_the_rows_not_their_order():
    frame = data.load_adult().head(100)
    assert data.rows_hash(frame) == data.rows_hash(frame.sample(frac=1, random_state=0))
    assert data.rows_hash(frame) != data.rows_hash(frame.head(99))

"""census_project/mlflow_census_demo.ipynb, the talk's census notebook: it runs top to bottom in a real
Jupyter kernel (nbclient) on a temporary store, with a small grid injected after its `parameters` cell
(as papermill does), and what it logged is read back from the store. The committed notebook carries no
outputs (the repository's policy: README "Notebook hygiene"), and `make lint` lints its code."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import nbformat
import pytest
from mlflow.entities import RunStatus

from tests import examples
from tests.harness import REPO_ROOT

FOLDER = REPO_ROOT / "census_project"
# The folder's own modules, as its scripts see them (tests/examples.py: with census_project's cli.py)
cli, run_notebook = examples.load("census_project", "cli", "run_notebook")

NOTEBOOK = run_notebook.NOTEBOOK
# run_notebook.py --quick: the grid of tests/test_census_project.py (one logistic regression, four
# small forests, 2 folds). With the notebook's seed a forest wins on it, as in the talk.
PARAMETERS = {"EXPERIMENT_NAME": "notebook-tests"} | run_notebook.QUICK_PARAMETERS
N_CANDIDATES = 1 + 2 * 2
CV_METRICS = {f"cv_{m}_{s}" for m in ("roc_auc", "accuracy", "f1") for s in ("mean", "std")}
CHARTS = {"charts/cv_scores.png", "charts/roc_curve.png", "charts/confusion_matrix.png"}


def execute(parameters: dict):
    """The notebook, executed in a real kernel with ``parameters`` injected; a cell that raises fails
    the test with the cell's number and its error."""
    try:
        return run_notebook.execute(parameters)
    except cli.UserError as error:
        pytest.fail(str(error), pytrace=False)


def printed(notebook) -> str:
    return "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream"
    )


def processes_with(variable: str) -> dict[int, str]:
    """The other processes (Linux: /proc) whose environment holds ``variable``: pid -> command line."""
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        if environ.parent.name == str(os.getpid()):
            continue
        try:
            if f"{variable}=".encode() in environ.read_bytes():
                command = (environ.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found[int(environ.parent.name)] = command.decode(errors="replace")
        except OSError:  # gone, or not ours
            pass
    return found


def test_the_notebook_logs_nested_runs_charts_and_registers_the_winner_with_its_alias(mlflow_store, monkeypatch):
    # A mark the kernel and the workers GridSearchCV starts inherit: none may outlive the notebook
    # (left running, they kept `python run_notebook.py | tail` and present.py waiting 5 minutes).
    monkeypatch.setenv(MARK := f"CENSUS_NOTEBOOK_TEST_{os.getpid()}", "1")
    notebook = execute(PARAMETERS)
    if sys.platform == "linux":
        deadline = time.monotonic() + 30  # joblib's resource tracker ends a moment after its workers
        while (left := processes_with(MARK)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == {}
    client = mlflow_store.client

    experiment = client.get_experiment_by_name("notebook-tests")
    assert experiment is not None, "the notebook did not use EXPERIMENT_NAME from its parameters"
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == RunStatus.to_string(RunStatus.FINISHED)
    assert parent.info.run_name == "notebook-grid-search"
    assert parent.data.params["cv_splits"] == "2"

    # One nested run per candidate of cv_results_, each with its hyper-parameters and CV metrics
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == N_CANDIDATES == len(runs) - 1
    assert {run.info.status for run in children} == {"FINISHED"}
    names = {run.info.run_name for run in children}
    assert "logistic(C=1.0)" in names
    assert "random_forest(max_depth=None, n_estimators=20)" in names
    for child in children:
        assert set(child.data.metrics) == CV_METRICS, child.info.run_name
        assert 0.5 < child.data.metrics["cv_roc_auc_mean"] < 1.0
        assert child.data.params["family"] in ("logistic", "random_forest")
    forests = [run for run in children if run.data.params["family"] == "random_forest"]
    assert {(run.data.params["n_estimators"], run.data.params["max_depth"]) for run in forests} == {
        ("10", "12"),
        ("20", "12"),
        ("10", "None"),
        ("20", "None"),
    }

    # The winner: the best mean CV ROC AUC, tagged, named by the parent, scored on the held-out rows
    best = max(children, key=lambda run: run.data.metrics["cv_roc_auc_mean"])
    assert [run.info.run_name for run in children if run.data.tags["winner"] == "true"] == [best.info.run_name]
    assert parent.data.params["winner"] == best.info.run_name
    assert parent.data.metrics["best_cv_roc_auc"] == pytest.approx(best.data.metrics["cv_roc_auc_mean"])
    assert 0.85 < parent.data.metrics["test_roc_auc"] < 1.0
    assert {"test_accuracy", "test_f1"} <= set(parent.data.metrics)

    # The charts, as images in the parent run
    artifacts = {item.path for item in client.list_artifacts(parent.info.run_id, "charts")}
    assert artifacts == CHARTS
    for path in CHARTS:
        local = client.download_artifacts(parent.info.run_id, path)
        with open(local, "rb") as image:
            assert image.read(8) == b"\x89PNG\r\n\x1a\n", path

    # The registered version, with the notebook's alias, is the parent run's model with its signature
    assert best.data.params["family"] == "random_forest", "the grid was chosen so that a forest wins, as in the talk"
    version = client.get_model_version_by_alias("adult-best-random-forest", "notebook")
    assert version.run_id == parent.info.run_id
    assert client.search_model_versions("name='adult-best-random-forest'")[0].version == version.version
    [model] = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert model.source_run_id == parent.info.run_id
    assert model.model_id in version.source
    model_info = mlflow.models.get_model_info("models:/adult-best-random-forest@notebook")
    assert "age" in model_info.signature.inputs.input_names()
    assert "native-country" in model_info.signature.inputs.input_names()

    # The last cell prints the link to the parent run
    link = f"/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
    assert f"Parent run: http://127.0.0.1:5000{link}" in printed(notebook)


def test_a_cell_that_raises_fails_the_test_with_its_number(mlflow_store):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    data_cell = next(i for i, cell in enumerate(notebook.cells) if "pd.read_csv(DATA_FILE" in cell.source)
    with pytest.raises(pytest.fail.Exception) as failed:
        execute({"EXPERIMENT_NAME": "notebook-tests", "DATA_FILE": "data/no-such-file.csv"})
    assert str(failed.value) == (
        f"mlflow_census_demo.ipynb failed in cell {data_cell + 1}: FileNotFoundError: "
        "[Errno 2] No such file or directory: 'data/no-such-file.csv'. "
        "Open it with `make notebook` and run the cells up to that one to see the traceback"
    )


def test_the_runner_prints_the_cells_output_and_its_errors_in_one_line(mlflow_store, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["run_notebook.py", "--experiment-name", "notebook-tests", "--quick"])
    monkeypatch.setattr(run_notebook, "QUICK_PARAMETERS", {"DATA_FILE": "data/no-such-file.csv"})
    with pytest.raises(SystemExit) as exited:
        cli.run(run_notebook.main)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert "MLflow 3.17.2 tracking URI: " + mlflow_store.tracking_uri in out  # the cells' prints, as they run
    assert err.startswith("error: mlflow_census_demo.ipynb failed in cell ")
    assert err.count("\n") == 1
    assert mlflow_store.client.search_experiments(filter_string="name = 'notebook-tests'") == []


def test_the_committed_notebook_has_no_outputs_and_make_lint_covers_it():
    """The policy of README "Notebook hygiene": outputs stripped, code linted by ruff like any .py."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {number} has outputs: clear them (README, Notebook hygiene)"
            assert cell.execution_count is None, f"cell {number} has an execution count"
        assert set(cell.metadata) <= {"tags"}, f"cell {number} has metadata {sorted(cell.metadata)}"
    listed = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--show-files", "."],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(NOTEBOOK) in listed.split(), "ruff (make lint) does not see the notebook"

"""present.py's census steps (the notebook, train, a re-run with other parameters, test, monitor
twice), straight through on a temporary store; then `--only 12` later, which must write next to
them. test_present.py and test_present_llm.py walk the other parts, on other pytest workers.

The walk's first step is the census notebook's smoke test too: `python run_notebook.py
--experiment-name census-notebook --quick` runs it top to bottom in a real Jupyter kernel, with the
small grid injected after its `parameters` cell, and what it logged is read back here
(tests/test_notebook.py tests a cell that raises)."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import RunStatus, ViewType

from tests import presenting

PART = "census"
# A mark every process of the walk inherits (the notebook's kernel, the workers GridSearchCV starts):
# none may outlive the walk (left running, they kept `python run_notebook.py | tail` and present.py
# waiting 5 minutes).
MARK = f"CENSUS_WALK_TEST_{os.getpid()}"
# The notebook's step: run_notebook.py --quick, the grid of tests/test_census_project.py (one logistic
# regression, four small forests, 2 folds). With the notebook's seed a forest wins on it, as in the talk.
NOTEBOOK_EXPERIMENT = "census-notebook"
N_CANDIDATES = 1 + 2 * 2
CV_METRICS = {f"cv_{m}_{s}" for m in ("roc_auc", "accuracy", "f1") for s in ("mean", "std")}
CHARTS = {"charts/cv_scores.png", "charts/roc_curve.png", "charts/confusion_matrix.png"}


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


@pytest.fixture(scope="module")
def walk(module_store, tmp_path_factory):
    """The part's steps, straight through, once for the module (a few minutes: census trainings)."""
    return presenting.walk(PART, tmp_path_factory.mktemp("walk") / "links.txt", env={MARK: "1"})


def test_the_census_steps_run_and_leave_their_champion(module_store, walk):
    done, links = walk
    presenting.assert_the_part_walked(PART, done, links)
    runs = module_store.all_runs()
    assert runs
    assert {r.info.status for r in runs} == {"FINISHED"}
    client = module_store.client
    assert client.get_model_version_by_alias("adult-best-random-forest", "champion")
    assert client.get_model_version_by_alias("adult-best-random-forest", "notebook")  # the notebook's step


def test_the_notebook_logs_nested_runs_charts_and_registers_the_winner_with_its_alias(module_store, walk, tmp_path):
    done, _ = walk
    if sys.platform == "linux":
        deadline = time.monotonic() + 30  # joblib's resource tracker ends a moment after its workers
        while (left := processes_with(MARK)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == {}
    client = module_store.client

    experiment = client.get_experiment_by_name(NOTEBOOK_EXPERIMENT)
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
        local = client.download_artifacts(parent.info.run_id, path, tmp_path)
        with open(local, "rb") as image:
            assert image.read(8) == b"\x89PNG\r\n\x1a\n", path

    # The registered version, with the notebook's alias, is the parent run's model with its signature
    assert best.data.params["family"] == "random_forest", "the grid was chosen so that a forest wins, as in the talk"
    version = client.get_model_version_by_alias("adult-best-random-forest", "notebook")
    assert version.run_id == parent.info.run_id
    [model] = client.search_logged_models(experiment_ids=[experiment.experiment_id])
    assert model.source_run_id == parent.info.run_id
    assert model.model_id in version.source
    model_info = mlflow.models.get_model_info("models:/adult-best-random-forest@notebook")
    assert "age" in model_info.signature.inputs.input_names()
    assert "native-country" in model_info.signature.inputs.input_names()

    # The last cell prints the link to the parent run (run_notebook.py prints what the cells print)
    link = f"/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
    assert f"Parent run: http://127.0.0.1:5000{link}" in done.stdout


def test_the_notebook_registers_first_and_train_s_versions_follow_as_the_readme_says(module_store, walk):
    """census README ("1. Train", "2. Re-run", "Champion"): in `make demo` the notebook registers
    version 1 (alias notebook, never champion), so train's first version is 2, the first champion,
    and the re-run's is 3."""
    done, _ = walk
    printed = done.stdout + done.stderr  # MLflow's own registry lines go to stderr
    client = module_store.client
    assert str(client.get_model_version_by_alias("adult-best-random-forest", "notebook").version) == "1"
    assert "Registered model 'adult-best-random-forest' already exists. Creating a new version" in printed
    assert (
        "Registered adult-best-random-forest version 2 (@challenger); "
        "version 2 is the first champion of adult-best-random-forest." in printed
    )
    assert "Registered adult-best-random-forest version 3 (@challenger); champion " in printed
    assert {str(v.version) for v in client.search_model_versions("name = 'adult-best-random-forest'")} == {
        "1",
        "2",
        "3",
    }


def test_the_commands_are_shown_as_the_slides_show_them(walk):
    done, _ = walk
    shown = re.findall(r"^\$ (.+)$", done.stdout, flags=re.MULTILINE)
    assert "cd census_project" in shown
    assert any(
        c.startswith("mlflow run -e train --env-manager=local --experiment-name adult-classifier-") for c in shown
    )
    assert any(re.fullmatch(r"mlflow run -e test .* \. -P run_id=\w{32} -P model_uri=models:/m-\w+", c) for c in shown)


def test_no_run_lands_in_the_default_experiment(module_store, walk):
    assert module_store.client.search_runs(["0"], run_view_type=ViewType.ALL) == []


def test_every_link_is_a_ui_page_naming_what_exists(module_store, walk):
    presenting.assert_every_link_names_what_exists(module_store, walk[1])


def test_a_step_run_again_later_writes_next_to_the_earlier_steps(module_store, walk):
    """`--only 12` in a later minute (another date stamp) tests the walk's training run in its experiment,
    with the command train.py printed during the walk (kept in the store), and makes no new experiment."""
    client = module_store.client
    [census] = [e for e in client.search_experiments() if e.name.startswith("adult-classifier-")]
    [train] = client.search_runs([census.experiment_id], "attributes.run_name = 'train-both'")
    again = presenting.present("--no-pause", "--only", "12", "--stamp", "2099-01-01-00-00")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"--experiment-name {census.name} . -P run_id={train.info.run_id} -P model_uri=models:/m-" in again.stdout
    tests = client.search_runs([census.experiment_id], "attributes.run_name = 'test'", order_by=["start_time DESC"])
    assert len(tests) == 2
    assert tests[0].data.params["run_id"] == train.info.run_id
    assert tests[0].info.status == "FINISHED"
    assert not [e.name for e in client.search_experiments() if "2099" in e.name]

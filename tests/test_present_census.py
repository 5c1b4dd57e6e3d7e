"""present.py's census steps (the notebook, train, a re-run with other parameters, test, monitor
twice), straight through on a temporary store; then `--only 12` later, which must write next to
them. test_present.py and test_present_llm.py walk the other parts, on other pytest workers."""

from __future__ import annotations

import re

import pytest
from mlflow.entities import ViewType

from tests import presenting

PART = "census"


@pytest.fixture(scope="module")
def walk(module_store, tmp_path_factory):
    """The part's steps, straight through, once for the module (a few minutes: census trainings)."""
    return presenting.walk(PART, tmp_path_factory.mktemp("walk") / "links.txt")


def test_the_census_steps_run_and_leave_their_champion(module_store, walk):
    done, links = walk
    presenting.assert_the_part_walked(PART, done, links)
    runs = module_store.all_runs()
    assert runs
    assert {r.info.status for r in runs} == {"FINISHED"}
    client = module_store.client
    assert client.get_model_version_by_alias("adult-best-random-forest", "champion")
    assert client.get_model_version_by_alias("adult-best-random-forest", "notebook")  # the notebook's step


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


def test_every_link_opens_in_the_ui_and_names_what_exists(module_store, walk):
    presenting.assert_every_link_opens_and_names_what_exists(module_store, walk[1])


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

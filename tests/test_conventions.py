"""The conventions every example folder shares: one cli.py (the same file in each folder, so a folder
can be copied alone), its one-line errors, and the "next command" lines printed in two forms."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow
import pytest

from tests.harness import REPO_ROOT

EXAMPLE_FOLDERS = sorted(p.parent.name for p in REPO_ROOT.glob("*/MLproject"))


def load_cli(folder: str = "census_project"):
    """One folder's cli.py as its own module (the folders' copies all answer to the name `cli`)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_cli", REPO_ROOT / folder / "cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_folder_has_the_same_cli_module():
    reference = (REPO_ROOT / EXAMPLE_FOLDERS[0] / "cli.py").read_text()
    for folder in EXAMPLE_FOLDERS:
        assert (REPO_ROOT / folder / "cli.py").read_text() == reference, f"{folder}/cli.py differs: copy one to all"


def test_no_example_imports_from_tests_or_another_folder():
    for folder in EXAMPLE_FOLDERS:
        for script in (REPO_ROOT / folder).rglob("*.py"):
            text = script.read_text()
            assert "from tests" not in text, script
            assert "import tests" not in text, script
            for other in EXAMPLE_FOLDERS:
                assert f"{other}." not in text.replace(f"{folder}.", ""), f"{script} reaches into {other}/"


@pytest.mark.parametrize(
    ("value", "word"),
    [
        ("adult-classifier", "adult-classifier"),
        ("models:/m-0123abc", "models:/m-0123abc"),
        ("Iris Experiment", '"Iris Experiment"'),
        ("[0.1, 1.0]", '"[0.1, 1.0]"'),
    ],
)
def test_quote_leaves_plain_words_alone_and_double_quotes_the_rest(value, word):
    assert load_cli().quote(value) == word


def test_the_next_command_is_printed_for_inside_the_folder_then_for_the_root(capsys):
    cli = load_cli("census_project")
    command = cli.mlflow_run_command("test", {"run_id": "abc", "model_uri": "models:/m-1"}, "Census Demo")
    cli.print_next("test it", command)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Next, test it:"
    assert lines[1].split(None, 2)[2] == (
        'mlflow run -e test --env-manager=local --experiment-name "Census Demo" . '
        "-P run_id=abc -P model_uri=models:/m-1"
    )
    assert lines[2].split(None, 4)[4] == (
        'mlflow run -e test --env-manager=local --experiment-name "Census Demo" census_project '
        "-P run_id=abc -P model_uri=models:/m-1"
    )
    assert lines[1].startswith("  from census_project/:")
    assert lines[2].startswith("  from the repository root:")


def test_files_of_the_folder_are_named_relative_to_where_the_command_runs(capsys):
    cli = load_cli("autologging_example")
    cli.print_next("predict", "mlflow models predict -m m -i {here}/serving_input_example.json")
    inside, root = capsys.readouterr().out.strip().splitlines()[1:]
    assert inside.endswith(" -i serving_input_example.json")
    assert root.endswith(" -i autologging_example/serving_input_example.json")


@pytest.mark.parametrize(
    ("tracking_uri", "base"),
    [
        ("sqlite:////tmp/mlflow.db", "http://127.0.0.1:5000"),
        ("http://mlflow.school.example:5000/", "http://mlflow.school.example:5000"),
    ],
)
def test_the_ui_hint_points_at_the_store_in_use_in_the_folders_view(monkeypatch, capsys, tracking_uri, base):
    cli = load_cli()  # census_project: Model training
    monkeypatch.setattr(mlflow, "get_tracking_uri", lambda: tracking_uri)
    monkeypatch.setattr(cli, "set_experiment_kind", lambda experiment_id: None)  # no store behind "7"
    run = mlflow.entities.Run(mlflow.entities.RunInfo("r1", "7", "u", "FINISHED", 0, 0, "ACTIVE"), None)
    cli.print_ui_hint(run, "a run")
    out = capsys.readouterr().out
    assert f"{base}/#/experiments/7/runs/r1?workflowType=machine_learning   (a run)" in out
    assert f"{base}/#/experiments/7/runs?workflowType=machine_learning   (all runs of its experiment)" in out
    assert ("make ui" in out) == tracking_uri.startswith("sqlite")


def test_each_folder_opens_the_ui_in_the_talks_view():
    """The talk's tracking, autologging and census steps show runs, charts and models (Model
    training); its LLM steps show traces and evaluations (GenAI)."""
    views = {folder: load_cli(folder).VIEW for folder in EXAMPLE_FOLDERS}
    assert views == {
        "autologging_example": "machine_learning",
        "census_project": "machine_learning",
        "llmops_project": "genai",
        "tracking_example": "machine_learning",
    }


def test_set_experiment_kind_tags_the_experiment_once(mlflow_store):
    client = mlflow_store.client
    training, llm = client.create_experiment("kind-training"), client.create_experiment("kind-llm")
    load_cli("tracking_example").set_experiment_kind(training)
    load_cli("llmops_project").set_experiment_kind(llm)
    assert client.get_experiment(training).tags["mlflow.experimentKind"] == "custom_model_development"
    assert client.get_experiment(llm).tags["mlflow.experimentKind"] == "genai_development"
    load_cli("tracking_example").set_experiment_kind(llm)  # a kind chosen earlier (or in the UI) stays
    assert client.get_experiment(llm).tags["mlflow.experimentKind"] == "genai_development"


def test_a_user_error_is_one_line_and_exit_status_2(capsys):
    cli = load_cli()

    def main():
        raise cli.UserError("run_id: no run 'x'. Copy the id printed by train")

    with pytest.raises(SystemExit) as exited:
        cli.run(main)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: run_id: no run 'x'. Copy the id printed by train\n"


def test_every_ui_screenshot_is_one_the_tour_takes_and_a_readme_shows():
    """docs/ui/ holds exactly the PNGs `make tour` writes; each README image link resolves, and each
    screenshot is shown in some README (so a renamed step or a stale PNG fails here, not on GitHub)."""
    import re

    tour = (REPO_ROOT / "docs" / "ui_tour.py").read_text()
    taken = set(re.findall(r'self\.shoot\(ui, "([\w-]+)"\)', tour))
    committed = {png.stem for png in (REPO_ROOT / "docs" / "ui").glob("*.png")}
    assert committed == taken, "docs/ui/ differs from make tour's steps: run `make demo` then `make tour`"
    shown = set()
    for readme in REPO_ROOT.glob("*/README.md"):
        for target in re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", readme.read_text()):
            assert (readme.parent / target).resolve().is_file(), f"{readme.relative_to(REPO_ROOT)}: {target} missing"
            shown.add(Path(target).stem)
    assert taken <= shown, f"screenshots no README shows: {sorted(taken - shown)}"

"""The conventions every example folder shares: one cli.py (the same file in each folder, so a folder
can be copied alone), its one-line errors, and the "next command" lines printed in two forms."""

from __future__ import annotations

import importlib.util
import re
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


# --- The argparse value types of cli.py ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"), [("true", True), ("True", True), ("1", True), ("yes", True), ("false", False), ("False", False)]
)
def test_boolean_reads_what_mlflow_passes(text, value):
    assert load_cli().boolean(text) is value


@pytest.mark.parametrize(
    ("make", "text", "value"),
    [
        (lambda cli: cli.whole_number(), "4", 4),
        (lambda cli: cli.whole_number(), "4.0", 4),  # MLflow passes -P max_tokens=4.0 verbatim
        (lambda cli: cli.whole_number(2), "2", 2),
        (lambda cli: cli.whole_number(-1), "-1", -1),
        (lambda cli: cli.fraction(), "0", 0.0),
        (lambda cli: cli.fraction(), "1", 1.0),
        (lambda cli: cli.fraction(low_open=True), "1", 1.0),
        (lambda cli: cli.fraction(high_open=True), "0", 0.0),
        (lambda cli: cli.fraction(low_open=True, high_open=True), "0.2", 0.2),
    ],
)
def test_numbers_within_their_range_are_read(make, text, value):
    parsed = make(load_cli())(text)
    assert parsed == value
    assert type(parsed) is type(value)


@pytest.mark.parametrize(
    ("make", "text", "message"),
    [
        (lambda cli: cli.boolean, "maybe", "'maybe' is not a boolean: use true or false"),
        (lambda cli: cli.whole_number(), "0", "'0' must be a whole number >= 1"),
        (lambda cli: cli.whole_number(), "4.5", "'4.5' must be a whole number >= 1"),
        (lambda cli: cli.whole_number(2), "1", "'1' must be a whole number >= 2"),
        (lambda cli: cli.whole_number(), "four", "'four' is not a whole number"),
        (lambda cli: cli.fraction(), "1.5", "1.5 is outside [0, 1]"),
        (lambda cli: cli.fraction(), "-0.1", "-0.1 is outside [0, 1]"),
        (lambda cli: cli.fraction(low_open=True), "0", "0 is outside (0, 1]"),
        (lambda cli: cli.fraction(high_open=True), "1", "1 is outside [0, 1)"),
        (lambda cli: cli.fraction(), "half", "'half' is not a number"),
    ],
)
def test_values_out_of_range_say_what_is_wrong(make, text, message):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError) as refused:
        make(load_cli())(text)
    assert str(refused.value) == message


def test_json_lists_check_every_item():
    import argparse

    cli = load_cli()
    numbers = cli.json_list(cli.positive_number, "positive numbers", "[0.1, 1.0]")
    assert numbers("[0.1, 1, 10]") == [0.1, 1.0, 10.0]
    sizes = cli.json_list(cli.positive_int, "positive integers", "[150, 300]")
    assert sizes("[150]") == [150]
    solvers = cli.json_list(cli.one_of(["lbfgs", "saga"]), "solvers among lbfgs, saga", '["lbfgs"]')
    assert solvers('["saga", "lbfgs"]') == ["saga", "lbfgs"]
    refusals = [
        (
            numbers,
            "[0.1, 1.0",
            "is not valid JSON (Expecting ',' delimiter at char 9); pass a list such as '[0.1, 1.0]'",
        ),
        (numbers, "[]", "is not a non-empty JSON list such as '[0.1, 1.0]'"),
        (numbers, '{"C": 1}', "is not a non-empty JSON list"),
        (numbers, "[1, -2]", "must list positive numbers, e.g. '[0.1, 1.0]'"),
        (numbers, "[true]", "must list positive numbers"),
        (sizes, "[1.5]", "must list positive integers"),
        (sizes, '["4"]', "must list positive integers"),
        (solvers, '["adam"]', "must list solvers among lbfgs, saga"),
    ]
    for parse, text, message in refusals:
        with pytest.raises(argparse.ArgumentTypeError) as refused:
            parse(text)
        assert message in str(refused.value), (text, str(refused.value))


def test_a_bad_value_on_the_command_line_is_one_line_naming_the_option(capsys):
    cli = load_cli()
    parser = cli.ArgumentParser(example="python x.py --size 2")
    parser.add_argument("--size", type=cli.whole_number(1), default=1)
    assert parser.parse_args(["--size", "3.0"]).size == 3
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--size", "0"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: argument --size: '0' must be a whole number >= 1. Example: python x.py --size 2\n"
    )


# --- One Python process, four cli.py files ---------------------------------------------------------


def test_each_folder_s_modules_keep_their_own_cli_in_one_process():
    """tests/examples.py: census's train and llmops's scripts, imported in one process, each see
    their own folder's cli.py, and a folder's modules share one cli (one UserError class)."""
    import sys

    from tests import examples

    train, census_data = examples.load("census_project", "train", "census.data")
    generate, llm_cli, questions = examples.load("llmops_project", "generate_answers", "cli", "quiz.questions")
    (query_runs,) = examples.load("tracking_example", "query_runs")
    assert Path(train.cli.__file__) == REPO_ROOT / "census_project" / "cli.py"
    assert Path(generate.cli.__file__) == REPO_ROOT / "llmops_project" / "cli.py"
    assert Path(query_runs.cli.__file__) == REPO_ROOT / "tracking_example" / "cli.py"
    assert census_data.UserError is train.cli.UserError
    assert questions.UserError is llm_cli.UserError is generate.cli.UserError
    assert "cli" not in sys.modules  # the next folder's import finds its own
    assert train.cli.FOLDER == "census_project"
    assert generate.cli.FOLDER == "llmops_project"


# --- Every command shown to a student names its experiment ------------------------------------------

# An `mlflow run` command (not prose about `mlflow run`): followed by an option or a project folder.
MLFLOW_RUN_COMMAND = re.compile(r"mlflow run(?= -e | --env-manager| \. | [\w-]+_(?:project|example)\b)(?P<rest>.*)")


def _student_facing_files() -> list[Path]:
    """Every README (the local LLM's too: issue 29 found three commands there that this scan had been
    told to skip), the MLproject files, and the Python files of the examples, docs and tracking_server."""
    files = [REPO_ROOT / "README.md", *REPO_ROOT.glob("*/README.md"), *REPO_ROOT.glob("*/*/README.md")]
    files += [REPO_ROOT / folder / "MLproject" for folder in EXAMPLE_FOLDERS]
    for folder in [*EXAMPLE_FOLDERS, "docs", "tracking_server"]:
        files += list((REPO_ROOT / folder).rglob("*.py"))
    return sorted(files)


def _commands_without_experiment(text: str) -> list[str]:
    # Join continued lines: bash `\`, cmd `^`, PowerShell `` ` ``, and `\\` inside Python docstrings.
    joined = re.sub(r"(?:\\\\| \\| \^| `)\n\s*", " ", text)
    missing = []
    for match in MLFLOW_RUN_COMMAND.finditer(joined):
        if not re.search(r"--experiment-(?:name|id)\b", match["rest"]):
            missing.append(match.group(0).strip())
    return missing


def test_the_scan_finds_a_command_without_experiment_and_ignores_prose():
    assert _commands_without_experiment("mlflow run -e train --env-manager=local . -P a=1\n")
    assert _commands_without_experiment("run: mlflow run census_project -e train\n")
    assert _commands_without_experiment("mlflow run -e test --env-manager=local \\\n  . -P run_id=x\n")
    assert not _commands_without_experiment("mlflow run -e test --env-manager=local \\\n  --experiment-id 7 .\n")
    assert not _commands_without_experiment("Under `mlflow run`, the run exists; mlflow run reports status 1\n")


def test_every_mlflow_run_command_shown_names_its_experiment():
    """Without --experiment-name/--experiment-id a run lands in the experiment Default. Checked: the
    READMEs, the MLproject comments, and the example scripts' docstrings, argparse examples and
    printed next commands (mlflow_run_command takes the experiment as a required argument)."""
    scanned = {str(path.relative_to(REPO_ROOT)) for path in _student_facing_files()}
    assert {"llmops_project/local_llm/README.md", "llmops_project/local_llm/serve.py"} <= scanned  # none skipped
    problems = [
        f"{path.relative_to(REPO_ROOT)}: {command}"
        for path in _student_facing_files()
        for command in _commands_without_experiment(path.read_text(encoding="utf-8"))
    ]
    assert not problems, "add --experiment-name <name> to:\n" + "\n".join(problems)

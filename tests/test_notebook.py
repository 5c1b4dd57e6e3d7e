"""census_project/mlflow_census_demo.ipynb, the talk's census notebook: a cell that raises, and what the
runner prints then; the committed notebook carries no outputs (the repository's policy: README
"Notebook hygiene"), and `make lint` lints its code.

The notebook's smoke test, top to bottom in a real Jupyter kernel (nbclient) with the small grid
injected after its `parameters` cell (as papermill does), and what it logged read back from the
store, is in tests/test_present_census.py: the census walk's first step runs the notebook exactly so
(`python run_notebook.py --experiment-name census-notebook --quick`), and running it a second time
here cost about 25 s of CPU in `make test`."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

from tests import examples
from tests.harness import REPO_ROOT

FOLDER = REPO_ROOT / "census_project"
# The folder's own modules, as its scripts see them (tests/examples.py: with census_project's cli.py)
cli, run_notebook = examples.load("census_project", "cli", "run_notebook")

NOTEBOOK = run_notebook.NOTEBOOK


def execute(parameters: dict):
    """The notebook, executed in a real kernel with ``parameters`` injected; a cell that raises fails
    the test with the cell's number and its error."""
    try:
        return run_notebook.execute(parameters)
    except cli.UserError as error:
        pytest.fail(str(error), pytrace=False)


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
    assert "Warning" not in out  # e.g. tqdm's "IProgress not found" at `import mlflow`, without ipywidgets
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

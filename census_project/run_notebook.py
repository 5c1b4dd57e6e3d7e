"""Run the census notebook headless, top to bottom, as Jupyter's "Run All" would, printing what its cells print.

No slide shows this script: it runs mlflow_census_demo.ipynb without a browser (for `make demo`,
present.py and the tests), in a real Jupyter kernel of this environment, from this folder. Like
papermill, it inserts a cell after the notebook's `parameters` cell to change its hard-coded values:
the experiment name, and with --quick a small grid. The notebook file itself is not modified.

    python run_notebook.py --experiment-name census-notebook
    python run_notebook.py --experiment-name census-notebook --quick
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import cli

NOTEBOOK = Path(__file__).resolve().parent / "mlflow_census_demo.ipynb"
# --quick: one logistic regression and four small forests on 2 folds (seconds instead of minutes).
QUICK_PARAMETERS = {
    "CV_SPLITS": 2,
    "LOGISTIC_GRID": {"C": [1.0]},
    "RANDOM_FOREST_GRID": {"n_estimators": [10, 20], "max_depth": [12, None]},
}


def main() -> None:
    args = parse_args()
    parameters = {"EXPERIMENT_NAME": args.experiment_name} | (QUICK_PARAMETERS if args.quick else {})
    started = time.perf_counter()
    print(f"Running {NOTEBOOK.name} headless with {', '.join(parameters)} set", flush=True)
    execute(parameters, echo=True)
    print(f"Notebook done in {time.perf_counter() - started:.1f} s.")


def execute(parameters: dict, timeout: int = 900, echo: bool = False):
    """Execute the notebook with ``parameters`` (name -> Python value) set right after its
    `parameters` cell; return the executed notebook. A cell that raises becomes a ``cli.UserError``
    naming the cell's number in the notebook (the first cell is 1) and its error."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    tagged = [i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", [])]
    if len(tagged) != 1:
        raise cli.UserError(f"{NOTEBOOK.name} must have one cell tagged 'parameters', found {len(tagged)}")
    injected = tagged[0] + 1
    overrides = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    notebook.cells.insert(injected, nbformat.v4.new_code_cell(overrides, metadata={"tags": ["injected-parameters"]}))

    def show(cell, cell_index, execute_reply) -> None:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                print(output.text, end="", flush=True)

    # This environment's ipykernel ("python3": jupyter_client starts it with this Python). On Linux and
    # macOS it talks over Unix sockets in a private folder (over TCP, ipykernel warns that any local
    # user could connect); Windows has only TCP.
    with tempfile.TemporaryDirectory(prefix="census-notebook-") as sockets:
        if os.name == "posix":
            kernel = KernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(sockets, "kernel"))
        else:
            kernel = KernelManager(kernel_name="python3")
        client = NotebookClient(
            notebook,
            km=kernel,
            timeout=timeout,
            resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # the kernel's folder, as in Jupyter
            on_cell_executed=show if echo else None,
        )
        try:
            client.execute()
        except CellExecutionError:
            problem = failed_cell(notebook, injected)
            if problem:
                raise cli.UserError(problem) from None
            raise
        finally:
            # nbclient leaves a kernel it was given running. Shut it down as Jupyter's "Shut Down
            # Kernel" does: it exits normally, so joblib stops the worker processes GridSearchCV
            # started. (Left running, they outlive this script by 5 minutes, holding its output
            # open: `python run_notebook.py ... | tail` would wait for them.)
            if kernel.has_kernel:
                kernel.shutdown_kernel()
    return notebook


def failed_cell(notebook, injected: int) -> str | None:
    """The first cell with an error output, said as ``<notebook> failed in cell N: <error>. <fix>``."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                # numbered as in the notebook file (the first cell is 1), without the injected cell
                where = "the injected parameters" if index == injected else f"cell {index + (index < injected)}"
                return (
                    f"{NOTEBOOK.name} failed in {where}: {output.ename}: {output.evalue}. "
                    "Open it with `make notebook` and run the cells up to that one to see the traceback"
                )
    return None


def parse_args():
    parser = cli.ArgumentParser(
        example="python run_notebook.py --experiment-name census-notebook --quick",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--experiment-name", required=True, help="the notebook's EXPERIMENT_NAME")
    parser.add_argument("--quick", action="store_true", help="a small grid on 2 folds instead of the talk's grids")
    return parser.parse_args()


if __name__ == "__main__":
    cli.run(main)

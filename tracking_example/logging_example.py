"""A taste of MLflow's Tracking API (talk pt. 1-2): one parameter, five metrics and a text artifact.

    python logging_example.py 42     # succeeds
    python logging_example.py 43     # fails on purpose: odd seeds raise, the run ends FAILED

or as an MLflow Project: mlflow run -e main --env-manager=local --experiment-name logging_example . -P seed=43
"""

import sys  # to read command-line arguments
import tempfile  # to save generated files into temporary directories
from random import Random  # to generate random numbers with controlled seed

import mlflow  # to use MLflow functionalities

import cli  # one-line errors, the `mlflow run` experiment rule, the "next command" lines

EXPERIMENT_NAME = "logging_example"
RUN_NAME = "example_run"


def main() -> None:
    # Read a seed from command-line arguments (default: 42); first, so a wrong one changes nothing
    seed = read_seed(sys.argv[1:])
    # Set the experiment name (creates it if it does not exist).
    # Under `mlflow run`, --experiment-name has chosen it already: don't switch.
    if not cli.under_mlflow_run():
        mlflow.set_experiment(experiment_name=EXPERIMENT_NAME)
    rand = Random(seed)
    # Start an MLflow run, naming it "example_run" (otherwise a random name is generated)
    with mlflow.start_run(run_name=RUN_NAME) as run:
        # notice that experiments and runs are identified by their IDs
        print(f"Started MLflow run with ID: {run.info.run_id} in experiment ID: {run.info.experiment_id}")
        # Log a parameter "seed" with the given seed value
        mlflow.log_param("seed", seed)
        # Let's simulate 5 different metric scores to be logged
        for i in range(5):
            mlflow.log_metric(f"random_{i}", rand.random())
        mlflow.log_metric("random_4", rand.randint(1, 10))  # overwrite last metric (its history keeps both)
        # Create and log an example artifact (a text file, generated inside a temporary directory)
        with tempfile.TemporaryDirectory() as tmpdir:
            file_path = f"{tmpdir}/example.txt"
            with open(file_path, "w") as f:
                f.write("This is an example artifact.")
            mlflow.log_artifact(file_path, artifact_path="examples")
        # Simulate an error in the run if the seed parameter is odd
        if seed % 2 == 1:
            raise ValueError("Let the run fail for odd seeds!")
        print("Run completed successfully.")

    cli.print_ui_hint(run, f"experiment {EXPERIMENT_NAME!r}, run {RUN_NAME!r}")
    cli.print_next("run it with an odd seed: it fails on purpose (talk pt. 2)", "python {here}/logging_example.py 43")


def read_seed(argv: list[str]) -> int:
    """The optional first argument, an integer (default 42)."""
    parser = cli.ArgumentParser(example="python logging_example.py 42", description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=int, default=42, help="seeds the random metrics; odd seeds fail")
    return parser.parse_args(argv).seed


if __name__ == "__main__":
    cli.run(main)

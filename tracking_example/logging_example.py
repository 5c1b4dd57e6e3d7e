"""The talk's first script: log a parameter, five metrics and a text artifact by hand.

    python logging_example.py 42     # succeeds
    python logging_example.py 43     # fails on purpose: odd seeds raise, the run ends FAILED

or, as an MLflow Project from the repository root:

    mlflow run tracking_example --env-manager local --experiment-name logging_example -P seed=43
"""

import os  # to see whether `mlflow run` already started our run
import sys  # to read command-line arguments
import tempfile  # to save generated files into temporary directories
from random import Random  # to generate random numbers with controlled seed

import mlflow  # to use MLflow functionalities

EXPERIMENT_NAME = "logging_example"
RUN_NAME = "example_run"
DEFAULT_SEED = 42


def read_seed(argv: list[str]) -> int:
    """The optional first argument (default 42), as an int."""
    if len(argv) < 2:
        return DEFAULT_SEED
    try:
        return int(argv[1])
    except ValueError:
        print(
            f"error: seed must be an integer, got {argv[1]!r}. Example: python logging_example.py {DEFAULT_SEED}",
            file=sys.stderr,
        )
        # Under `mlflow run` the run already exists: end it FAILED rather than leave it RUNNING.
        if run_id := os.environ.get("MLFLOW_RUN_ID"):
            mlflow.MlflowClient().set_terminated(run_id, status="FAILED")
        sys.exit(2)


def main() -> None:
    # Read a seed from command-line arguments (default: 42)
    seed = read_seed(sys.argv)
    # Set the experiment name (creates it if it does not exist). Under `mlflow run` the run was
    # already created in the experiment chosen by --experiment-name: switching experiment here
    # would clash with it, so only a plain `python logging_example.py` sets it.
    if "MLFLOW_RUN_ID" not in os.environ:
        mlflow.set_experiment(experiment_name=EXPERIMENT_NAME)
    rand = Random(seed)
    # Start an MLflow run, naming it "example_run" (otherwise a random name is generated).
    # Under `mlflow run` this resumes the run it created, and still gives it this name.
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
    print("Next: mlflow ui   (or `make ui` from the repository root), then open experiment 'logging_example'")


if __name__ == "__main__":
    main()

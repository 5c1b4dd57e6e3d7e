"""What the scripts of this folder share: one-line errors, and the `mlflow run` experiment rule."""

import argparse
import os
import sys

import mlflow


def fail(message: str) -> None:
    """Print ONE line ``error: <problem>. <fix>``, end the run FAILED, exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    if mlflow.active_run():
        mlflow.end_run(status="FAILED")
    elif run_id := os.environ.get("MLFLOW_RUN_ID"):
        # Under `mlflow run` the run exists before the script starts: don't leave it RUNNING.
        mlflow.MlflowClient().set_terminated(run_id, status="FAILED")
    sys.exit(2)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (with an example command) instead of usage + error."""

    def __init__(self, example: str, **kwargs):
        super().__init__(**kwargs)
        self.example = example

    def error(self, message: str) -> None:
        fail(f"{message}. Example: {self.example}")


def use_experiment(name: str) -> None:
    """Set the experiment, except under `mlflow run`: its run already lives in the experiment
    chosen by --experiment-name, and switching experiment would clash with it."""
    if "MLFLOW_RUN_ID" not in os.environ:
        mlflow.set_experiment(name)

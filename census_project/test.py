"""Test: evaluate a trained model on exactly the held-out split of its training run.

    mlflow run census_project -e test --env-manager local --experiment-name <same as training> \\
        -P run_id=<TRAINING_RUN_ID> -P model_uri=models:/<BEST_MODEL_ID>

(train.py prints this command, filled in.) It logs a new run, in the training run's experiment,
tagged with the training run id: test metrics plus confusion matrix, ROC, PR and calibration charts.
"""

from __future__ import annotations

import os
import shlex

import mlflow

from census import data
from census.evaluate import classification_metrics, log_evaluation_charts
from census.params import ArgumentParser, BadParameter, exit_on_bad_parameter, log_new_params


def parse_args(argv=None):
    parser = ArgumentParser(prog="test.py", description="Evaluate a trained census-income model on its held-out split.")
    parser.add_argument("--run-id", required=True, help="id of the training run whose held-out split to use")
    parser.add_argument(
        "--model-uri",
        required=True,
        help="model to test, e.g. models:/<model id> or models:/adult-best-random-forest@champion",
    )
    return parser.parse_args(argv)


def load_model(model_uri: str):
    try:
        return mlflow.sklearn.load_model(model_uri)
    except Exception as problem:  # MlflowException, OSError... whatever the URI points to
        raise BadParameter(
            "model_uri",
            f"cannot load {model_uri!r} ({str(problem).splitlines()[0][:200]})",
            "Pass the models:/<model id> printed by the train entry point",
        ) from None


@exit_on_bad_parameter
def main(argv=None) -> None:
    args = parse_args(argv)
    # Both inputs are checked before a run is started: a wrong id leaves no half-filled test run.
    held_out = data.load_split(args.run_id, "held_out")
    model = load_model(args.model_uri)
    X, y = data.features_and_target(held_out)
    print(f"Testing {args.model_uri} on the {len(held_out)} held-out rows of training run {args.run_id}")

    if "MLFLOW_RUN_ID" not in os.environ:  # run directly (not by `mlflow run`): join training's experiment
        mlflow.set_experiment(experiment_id=mlflow.get_run(args.run_id).info.experiment_id)
    with mlflow.start_run(run_name=f"test-{args.run_id[:8]}") as run:
        log_new_params({"run_id": args.run_id, "model_uri": args.model_uri})
        mlflow.set_tags(
            {"census.role": "test", "census.training_run_id": args.run_id, "census.model_uri": args.model_uri}
        )
        probability = model.predict_proba(X)[:, 1]
        metrics = classification_metrics(y, probability)
        mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()})
        log_evaluation_charts(y, probability, label=type(model[-1]).__name__, calibration=True)

    print("Test metrics: " + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    print(f"Logged as run {run.info.run_id} (charts under charts/).")
    print("\nNext, check the data for drift (batch=held_out: none expected; batch=shifted: drift):")
    print(
        f"mlflow run census_project -e monitor --env-manager local --experiment-name "
        f"{shlex.quote(mlflow.get_experiment(run.info.experiment_id).name)} -P run_id={args.run_id} -P batch=shifted"
    )


if __name__ == "__main__":
    main()

"""Test: evaluate a trained model on rows it never saw (MLflow Project Example pt. 6).

    mlflow run -e test --env-manager=local --experiment-name <same as training> . \\
        -P run_id=<TRAINING_RUN_ID> -P model_uri=models:/<MODEL_ID>

(train.py prints this command, filled in.) The rows are those the training run ``run_id`` held out.
With that run's own model, the test metrics equal the run's ``held_out_*`` metrics. With a model
trained on another split (e.g. ``models:/adult-best-random-forest@champion`` after re-training),
only the held-out rows that model never saw are used, and the output says so: testing a model on
rows it was trained on would report a score better than the truth.
"""

from __future__ import annotations

import mlflow
from mlflow.exceptions import MlflowException

import cli
from census import charts, data, registry


def main() -> None:
    args = parse_args()
    # The rows to test on and the model, both checked before a run starts: a wrong id leaves no run
    held_out = data.load_split(args.run_id, "held_out")
    model = load_census_model(args.model_uri)
    rows, which_rows = data.rows_unseen_by(args.model_uri, args.run_id, held_out)
    X, y = data.features_and_target(rows)
    print(f"Testing {args.model_uri} on {which_rows}")

    if not cli.under_mlflow_run():  # run alone: join the training run's experiment
        mlflow.set_experiment(experiment_id=mlflow.get_run(args.run_id).info.experiment_id)
    with mlflow.start_run(run_name="test") as run:
        cli.log_new_params({"run_id": args.run_id, "model_uri": args.model_uri})
        mlflow.set_tags({"census.role": "test", "census.training_run_id": args.run_id, "census.test_rows": which_rows})
        probability = model.predict_proba(X)
        metrics = charts.classification_metrics(y, probability)
        mlflow.log_metrics({f"test_{name}": value for name, value in metrics.items()} | {"test_rows": len(rows)})
        for path, figure in charts.evaluation_charts(y, probability, args.model_uri, calibration=True).items():
            mlflow.log_figure(figure, path)

    print("Test metrics: " + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))
    cli.print_ui_hint(run, "the test run: metrics, and charts/ under Artifacts")
    cli.print_next(
        "check the data for drift (batch=held_out: none expected; batch=shifted: drift)",
        cli.mlflow_run_command(
            "monitor", {"run_id": args.run_id, "batch": "shifted"}, mlflow.get_experiment(run.info.experiment_id).name
        ),
    )


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e test --env-manager=local --experiment-name adult-classifier . "
        "-P run_id=<TRAINING_RUN_ID> -P model_uri=models:/<MODEL_ID>",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--run-id", required=True, help="the training run whose held-out rows to test on")
    parser.add_argument("--model-uri", required=True, help="models:/<model id> or models:/<name>@<alias>")
    return parser.parse_args(argv)


def load_census_model(model_uri: str):
    """The census model (census/model.py) logged by train.py, ready for predict_proba."""
    try:
        return registry.load_census_model(model_uri)
    except (MlflowException, OSError, ValueError) as problem:
        first_line = str(problem).splitlines()[0][:200]
        raise cli.UserError(
            f"model_uri: cannot load a census model from {model_uri!r} ({first_line}). "
            "Pass the models:/<model id> printed by the train entry point"
        ) from None


if __name__ == "__main__":
    cli.run(main)

"""Model registration (talk pt. 1-4) as a command: the UI's "Register" button, then an alias.

    python register_model.py [--model-uri newest | models:/m-<id> | runs:/<run_id>/model] [--model-name NAME]

or as an MLflow Project:
    mlflow run -e register --env-manager=local --experiment-name autologging-example . -P model_uri=models:/m-<id>

--model-uri newest (the default) picks the model of the newest successful `autologging_run`.
"""

import os

import mlflow
from mlflow.exceptions import MlflowException

import cli
from autologging_example import EXPERIMENT_NAME, RUN_NAME

ALIAS = "champion"


def main() -> None:
    args = parse_args()
    model_uri = newest_autologged_model() if args.model_uri == "newest" else args.model_uri
    check_model_exists(model_uri)  # before registering: no registered name without a version

    with cli.uninterrupted():  # a kill (Ctrl-C, SIGTERM) waits: the new version gets its alias, or none is made
        # Register the model under a human-friendly name: a new version each time (Model registration pt. 1-3)
        version = mlflow.register_model(model_uri, args.model_name)
        # Point the alias at the new version: clients load models:/<name>@champion, whatever its number
        mlflow.MlflowClient().set_registered_model_alias(args.model_name, ALIAS, version.version)
    print(f"Registered {model_uri} as {args.model_name!r} version {version.version}, alias {ALIAS!r}")

    if cli.under_mlflow_run():  # `mlflow run` made a run for this entry point: name it, record the registration
        with mlflow.start_run(run_name=f"register-{args.model_name}") as run:
            mlflow.set_tags({"registered_model": args.model_name, "registered_version": version.version})
        cli.print_ui_hint(run, f"the registration; the model itself is under Models > {args.model_name}")
    champion = f"models:/{args.model_name}@{ALIAS}"
    cli.print_next(
        "predict with the champion (talk: Model serving pt. 1)",
        f'mlflow models predict --env-manager local -m "{champion}" -i {{here}}/serving_input_example.json',
    )
    cli.print_next(
        "serve it over HTTP (talk: Model serving pt. 2), then POST the same JSON to http://localhost:1234/invocations",
        f'mlflow models serve --env-manager local -m "{champion}" -p 1234',
    )


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="python register_model.py --model-uri models:/m-<id>", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-uri", default="newest", help="newest, models:/m-<id> or runs:/<run_id>/model")
    parser.add_argument("--model-name", default="iris-classifier-dt", help="the registered model's name")
    return parser.parse_args(argv)


def newest_autologged_model() -> str:
    """models:/<id> of the model logged by the newest FINISHED autologging_run: in this command's
    experiment (under `mlflow run`, the one it runs in: its --experiment-name, or a classroom
    server's MLFLOW_EXPERIMENT_NAME), else in autologging_example.py's own."""
    searched = []
    if cli.under_mlflow_run():
        searched.append(mlflow.get_experiment(mlflow.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id))
    own = mlflow.get_experiment_by_name(EXPERIMENT_NAME)
    if own is not None and own.experiment_id not in {e.experiment_id for e in searched}:
        searched.append(own)
    for experiment in searched:
        runs = mlflow.search_runs(
            experiment_ids=[experiment.experiment_id],
            filter_string=f"attributes.run_name = '{RUN_NAME}' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if runs and runs[0].outputs.model_outputs:
            return f"models:/{runs[0].outputs.model_outputs[0].model_id}"
    names = " or ".join(repr(name) for name in dict.fromkeys([*(e.name for e in searched), EXPERIMENT_NAME]))
    raise cli.UserError(
        f"no model logged by a successful {RUN_NAME!r} in experiment {names}. "
        f"Run it first, e.g. python autologging_example.py"
    )


def check_model_exists(model_uri: str) -> None:
    """register_model would create the registered name first and then fail on a wrong URI."""
    try:
        mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError) as problem:
        raise cli.UserError(
            f"cannot find a model at {model_uri!r} ({type(problem).__name__}). Pass the ID the training "
            "script printed, e.g. -P model_uri=models:/m-<id>, or copy it from the UI's Models tab"
        ) from None


if __name__ == "__main__":
    cli.run(main)

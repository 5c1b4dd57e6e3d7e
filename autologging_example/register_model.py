"""Register a logged model under a name and point the alias `champion` at the new version.

The script version of the talk's "Register" button (Model registration, pt. 1-4):

    python register_model.py [--model-uri newest | models:/m-... | runs:/<run_id>/model]
                             [--model-name iris-classifier-dt]

or, from the repository root:

    mlflow run autologging_example -e register --env-manager local -P model_uri=models:/m-...

--model-uri newest (the default) picks the model of the newest successful `autologging_run`.
"""

import mlflow
from mlflow.exceptions import MlflowException

from autologging_example import EXPERIMENT_NAME, RUN_NAME
from cli import ArgumentParser, fail

ALIAS = "champion"


def newest_autologged_model() -> str:
    """models:/<id> of the model logged by the newest FINISHED autologging_run."""
    runs = mlflow.search_runs(
        experiment_names=[EXPERIMENT_NAME],
        filter_string=f"attributes.run_name = '{RUN_NAME}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    if not runs or not runs[0].outputs.model_outputs:
        fail(
            f"no model logged by a successful {RUN_NAME!r} in experiment {EXPERIMENT_NAME!r}. "
            f"Run it first: mlflow run autologging_example --env-manager local --experiment-name {EXPERIMENT_NAME}"
        )
    return f"models:/{runs[0].outputs.model_outputs[0].model_id}"


def main() -> None:
    parser = ArgumentParser(
        example="python register_model.py --model-uri models:/m-<id>", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-uri", default="newest", help="newest, models:/m-<id> or runs:/<run_id>/model")
    parser.add_argument("--model-name", default="iris-classifier-dt")
    args = parser.parse_args()

    model_uri = newest_autologged_model() if args.model_uri == "newest" else args.model_uri
    # Check the model exists BEFORE registering: register_model would otherwise create the
    # registered model name first and then fail, leaving a name with no version behind.
    try:
        mlflow.models.get_model_info(model_uri)
    except (MlflowException, OSError) as problem:
        fail(
            f"cannot find a model at {model_uri!r} ({type(problem).__name__}). "
            "Pass the ID the training script printed, e.g. -P model_uri=models:/m-<id>, or see the UI's Models tab"
        )

    version = mlflow.register_model(model_uri, args.model_name)
    mlflow.MlflowClient().set_registered_model_alias(args.model_name, ALIAS, version.version)
    print(f"Registered {model_uri} as {args.model_name!r} version {version.version}, alias {ALIAS!r}")

    champion = f"models:/{args.model_name}@{ALIAS}"
    print("Next, from the repository root:")
    print(
        f'  mlflow models predict --env-manager local -m "{champion}" -i autologging_example/serving_input_example.json'
    )
    print(f'  mlflow models serve --env-manager local -m "{champion}" -p 5001')


if __name__ == "__main__":
    main()

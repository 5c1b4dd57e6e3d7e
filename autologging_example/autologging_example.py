"""Autologging APIs (talk pt. 1-2): a decision tree on Iris, logged by mlflow.autolog alone.

    python autologging_example.py [seed]

or as an MLflow Project: mlflow run -e main --env-manager=local --experiment-name autologging-example .
"""

import sys  # to read command-line arguments

import mlflow  # to use MLflow functionalities
from sklearn.datasets import load_iris  # to load the iris dataset
from sklearn.tree import DecisionTreeClassifier  # to use decision tree classifier

import cli  # one-line errors, the `mlflow run` experiment rule, the "next command" lines

EXPERIMENT_NAME = "autologging-example"
RUN_NAME = "autologging_run"


def main() -> None:
    # Read a seed from command-line arguments (default: 42); first, so a wrong one changes nothing
    seed = read_seed(sys.argv[1:])
    # Set the experiment name (creates it if it does not exist); under `mlflow run`, --experiment-name did
    if not cli.under_mlflow_run():
        mlflow.set_experiment(EXPERIMENT_NAME)
    # Enable autologging for scikit-learn (and other ML libraries in general)
    mlflow.autolog(log_datasets=True, log_models=True, log_model_signatures=True, log_input_examples=True)
    # Start an MLflow run, naming it "autologging_run"
    with mlflow.start_run(run_name=RUN_NAME) as run:
        # Load full iris dataset
        X, y = load_iris(return_X_y=True)
        # Train model on the entire dataset (using the given seed)
        model = DecisionTreeClassifier(random_state=seed)
        model.fit(X, y)
        # Evaluate model on the entire dataset (training accuracy)
        training_score = model.score(X, y)
        print("Training accuracy:", training_score)
        # Raise an error if training accuracy is below 90%
        if training_score < 0.9:
            raise ValueError("Training accuracy is too low: " + str(training_score))

    # The model autolog logged: MLflow 3 gives it an ID (m-...), shown in the UI's Models tab too
    model_uri = f"models:/{mlflow.last_logged_model().model_id}"
    print(f"Logged model: {model_uri}   (run {run.info.run_id})")
    experiment = mlflow.get_experiment(run.info.experiment_id).name  # --experiment-name's, if mlflow run chose
    cli.print_ui_hint(run, f"experiment {experiment!r}, run {RUN_NAME!r}: params, metrics, model, artifacts")
    cli.print_next(
        "predict with it (talk: Model serving pt. 1)",
        f'mlflow models predict --env-manager local -m "{model_uri}" -i {{here}}/serving_input_example.json',
    )
    cli.print_next(
        "register it, alias 'champion' (talk: Model registration)",
        cli.mlflow_run_command("register", {"model_uri": model_uri}, experiment_name=experiment),
    )


def read_seed(argv: list[str]) -> int:
    """The optional first argument, an integer (default 42)."""
    parser = cli.ArgumentParser(example="python autologging_example.py 42", description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=int, default=42, help="seeds the decision tree")
    return parser.parse_args(argv).seed


if __name__ == "__main__":
    cli.run(main)

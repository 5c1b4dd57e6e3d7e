"""The talk's autologging script: a decision tree on Iris, logged by mlflow.autolog alone.

    python autologging_example.py [seed]

or, from the repository root:

    mlflow run autologging_example --env-manager local --experiment-name autologging-example
"""

import mlflow  # to use MLflow functionalities
from sklearn.datasets import load_iris  # to load the iris dataset
from sklearn.tree import DecisionTreeClassifier  # to use decision tree classifier

from cli import ArgumentParser, use_experiment  # one-line errors; the `mlflow run` experiment rule

EXPERIMENT_NAME = "autologging-example"
RUN_NAME = "autologging_run"


def main() -> None:
    # Read a seed from command-line arguments (default: 42)
    parser = ArgumentParser(example="python autologging_example.py 42", description=__doc__.splitlines()[0])
    parser.add_argument("seed", nargs="?", type=int, default=42)
    seed = parser.parse_args().seed
    # Set the experiment name (creates it if it does not exist); not under `mlflow run`
    use_experiment(EXPERIMENT_NAME)
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

    # The model autolog logged: MLflow 3 gives it an ID (m-...), also shown in the UI's Models tab
    model_uri = f"models:/{mlflow.last_logged_model().model_id}"
    print(f"Logged model: {model_uri}   (run {run.info.run_id})")
    print("Next, from the repository root: register it, with alias 'champion'")
    print(f"  mlflow run autologging_example -e register --env-manager local -P model_uri={model_uri}")
    print("or predict with it right away:")
    payload = "autologging_example/serving_input_example.json"
    print(f'  mlflow models predict --env-manager local -m "{model_uri}" -i {payload}')


if __name__ == "__main__":
    main()

"""The "Complete Example" of the course notes "MLflow tracking and autologging": autologging plus
manual logging, on a held-out test set.

    python random_forest_example.py [--seed 42] [--n-estimators 100] [--max-depth 6]

or as an MLflow Project: mlflow run -e random_forest --env-manager=local --experiment-name "Iris Experiment" .

Autolog logs the parameters, the training metrics and the model. By hand we add what autolog
cannot know: the seed of the split, the accuracy on the test set, and a feature-importance chart.
"""

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split

import cli

EXPERIMENT_NAME = "Iris Experiment"
RUN_NAME = "random_forest_run"


def main() -> None:
    args = parse_args()

    if not cli.under_mlflow_run():  # under `mlflow run`, --experiment-name chose the experiment
        mlflow.set_experiment(EXPERIMENT_NAME)
    # log_post_training_metrics=False: otherwise autolog would also record rf.score(X_test, y_test)
    # as "RandomForestClassifier_score_X_test"; we log that number once, by hand, as test_accuracy.
    mlflow.sklearn.autolog(
        log_input_examples=True, log_model_signatures=True, log_datasets=True, log_post_training_metrics=False
    )

    iris = load_iris()
    X_train, X_test, y_train, y_test = train_test_split(iris.data, iris.target, test_size=0.2, random_state=args.seed)

    with mlflow.start_run(run_name=RUN_NAME) as run:
        print(f"Training a random forest ({args.n_estimators} trees, max depth {args.max_depth}) ...")
        rf = RandomForestClassifier(n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=args.seed)
        rf.fit(X_train, y_train)  # autolog logs params, training metrics and the model here
        # The notes end with mlflow.sklearn.log_model(rf, "model") (MLflow 3: name="model").
        # Autolog has already logged this very model, with its signature and input example:
        # logging it again would store a second copy. We attach our metric to autolog's model.
        model_id = mlflow.last_logged_model().model_id

        # Manual logging: the split's seed and the accuracy on data the forest never saw
        mlflow.log_param("seed", args.seed)
        test_accuracy = rf.score(X_test, y_test)
        mlflow.log_metric("test_accuracy", test_accuracy, model_id=model_id)
        print(f"Test accuracy: {test_accuracy:.3f}")

        # Feature importances as a bar chart, logged straight from memory (no file to clean up)
        order = np.argsort(rf.feature_importances_)
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.set_title("Feature importances")
        ax.barh(range(len(order)), rf.feature_importances_[order], color="b", align="center")
        ax.set_yticks(range(len(order)), [iris.feature_names[i] for i in order])
        fig.tight_layout()
        mlflow.log_figure(fig, "feature_importance.png")
        plt.close(fig)

    print(f"Logged model: models:/{model_id}   (run {run.info.run_id})")
    cli.print_ui_hint(run, f"experiment {EXPERIMENT_NAME!r}, run {RUN_NAME!r}: Artifacts > feature_importance.png")


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="python random_forest_example.py --seed 42", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seed", type=int, default=42, help="seeds the split and the forest")
    parser.add_argument("--n-estimators", type=int, default=100, help="trees in the forest")
    parser.add_argument("--max-depth", type=int, default=6, help="maximum depth of each tree")
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli.run(main)

"""Train: pick the best census-income classifier by cross-validated grid search, tracked with MLflow.

The talk's notebook as an MLflow Project entry point (MLflow Project Example pt. 2-5): every parameter
comes from the command line (python train.py --help), so a run can be repeated or varied without
touching the code.

    mlflow run -e train --env-manager=local --experiment-name adult-classifier . -P model_type=both
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import mlflow
import numpy
import pandas
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import cli
from census import charts, data, registry, search
from census.model import SIGNATURE

MODEL_TYPES = ["both", "logistic", "random_forest"]
# The winner is registered under the name of its family, as in the talk.
REGISTERED_MODEL_NAMES = {"logistic": "adult-best-logistic", "random_forest": "adult-best-random-forest"}
# The logged model: census/model.py ("model from code") around the fitted pipeline. Its requirements
# are this environment's versions, declared here: MLflow would otherwise infer them in a subprocess.
MODEL_CODE = str(Path(__file__).resolve().parent / "census" / "model.py")
REQUIREMENTS = [f"{module.__name__}=={module.__version__}" for module in (mlflow, pandas, numpy)]
REQUIREMENTS += mlflow.sklearn.get_default_pip_requirements(include_skops=True)  # scikit-learn, skops
# The grids arrive as JSON lists (-P rf_max_depths='[null, 12]'): each element is checked.
LR_SOLVERS = ["lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"]


def depth(value) -> int | None:
    """A forest's max_depth in the JSON list: a positive integer, or null for unlimited."""
    return None if value is None else cli.positive_int(value)


LR_C_VALUES = cli.json_list(cli.positive_number, "positive numbers", "[0.1, 1.0, 10.0]")
LR_SOLVER_LIST = cli.json_list(cli.one_of(LR_SOLVERS), f"solvers among {', '.join(LR_SOLVERS)}", '["lbfgs"]')
RF_SIZES = cli.json_list(cli.positive_int, "positive integers", "[150, 300]")
RF_DEPTHS = cli.json_list(depth, "positive integers or null", "[null, 12]")


def main() -> None:
    args = parse_args()
    started = time.perf_counter()

    # 1. Load the data, and hold rows out: they are used once, to evaluate the winner
    frame = data.load_adult(args.data_source)
    train, held_out = train_test_split(
        frame, test_size=args.test_size, random_state=args.random_state, stratify=frame[data.TARGET]
    )
    X_train, y_train = data.features_and_target(train)
    X_held_out, y_held_out = data.features_and_target(held_out)
    print(f"Data: {len(frame)} rows ({args.data_source}) -> {len(train)} for training, {len(held_out)} held out")

    # 2. Preprocessing: numbers imputed then standardised, categories imputed then one-hot encoded
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy=args.numeric_imputation_strategy)),
            ("scale", StandardScaler(with_mean=args.numeric_scaling_with_mean)),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy=args.categorical_imputation_strategy)),
            ("one_hot", OneHotEncoder(handle_unknown=args.ohe_handle_unknown)),
        ]
    )
    preprocessor = ColumnTransformer(
        [("numeric", numeric, data.NUMERIC_FEATURES), ("categorical", categorical, data.CATEGORICAL_FEATURES)],
        sparse_threshold=args.sparse_threshold,
    )
    # 3. The candidates: a grid of hyper-parameters per model family
    grids = {
        "logistic": {"C": args.lr_C_values, "solver": args.lr_solvers},
        "random_forest": {"n_estimators": args.rf_n_estimators, "max_depth": args.rf_max_depths},
    }
    if args.model_type != "both":
        grids = {args.model_type: grids[args.model_type]}
    candidates = search.make_candidates(grids)

    with mlflow.start_run(run_name=f"train-{args.model_type}") as run:
        cli.log_new_params(vars(args))
        data.log_split(train, held_out, args.data_source)  # Inputs in the UI, and splits/*.csv

        # 4. Model selection by cross-validated grid search, one nested run per candidate.
        # search.cross_validate gives exactly GridSearchCV's scores (see census/search.py), faster.
        print(f"Cross-validating {len(candidates)} candidates, {args.cv_splits} folds, {search.DEFAULT_N_JOBS} cores")
        results = search.cross_validate(
            preprocessor, candidates, X_train, y_train, args.cv_splits, args.random_state, args.lr_max_iter
        )
        winner = search.best(results)
        best_of_family = {search.best(results, family).candidate for family in grids}
        for result in results:
            with mlflow.start_run(run_name=result.candidate.name, nested=True):
                mlflow.log_params({"family": result.candidate.family, **result.candidate.param_dict})
                mlflow.log_metrics(result.cv_metrics())
                mlflow.set_tags(
                    {
                        "census.role": "candidate",
                        "census.best_in_family": str(result.candidate in best_of_family).lower(),
                        "census.winner": str(result is winner).lower(),
                    }
                )
            print(f"  {result.candidate.name}: ROC AUC {result.mean():.4f} ± {result.std():.4f}")
        for path, figure in charts.cv_chart(results, winner).items():
            mlflow.log_figure(figure, path)

        # 5. Refit the winner on all training rows; evaluate it on the held-out rows
        print(f"Winner: {winner.candidate.name}. Refitting it on all {len(train)} training rows...")
        model = search.refit(preprocessor, winner.candidate, X_train, y_train, args.random_state, args.lr_max_iter)
        probability = model.predict_proba(X_held_out)[:, 1]
        held_out_metrics = charts.classification_metrics(y_held_out, probability)
        mlflow.log_metrics({f"held_out_{name}": value for name, value in held_out_metrics.items()})
        mlflow.log_metrics({f"best_cv_{name}_mean": winner.mean(name) for name in search.SCORING})
        figures = charts.evaluation_charts(y_held_out, probability, winner.candidate.name) | charts.feature_chart(model)
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        mlflow.set_tags({"census.winner": winner.candidate.name, "census.winner_family": winner.candidate.family})

        # 6. Log the winner as an MLflow model that takes census rows as people send them
        # (whole numbers, missing values: see census/model.py), then register it
        with tempfile.TemporaryDirectory() as folder:
            mlflow.sklearn.save_model(
                model,
                f"{folder}/pipeline",
                pip_requirements=REQUIREMENTS,
                skops_trusted_types=search.SKOPS_TRUSTED_TYPES,
            )
            model_info = mlflow.pyfunc.log_model(
                name="model",
                python_model=MODEL_CODE,
                artifacts={"pipeline": f"{folder}/pipeline"},
                signature=SIGNATURE,  # the census columns; numbers typed "any": the model checks them
                input_example=X_train.head(5),
                pip_requirements=REQUIREMENTS,
            )
        registered_name = REGISTERED_MODEL_NAMES[winner.candidate.family]
        with cli.uninterrupted():  # a kill (Ctrl-C, SIGTERM) waits: a version gets its aliases, or none is made
            version = mlflow.register_model(
                model_info.model_uri,
                registered_name,
                tags=registry.version_tags(
                    held_out_metrics, args.data_source, args.test_size, args.random_state, held_out
                ),
            )
            # Alias "challenger" for every new version; "champion" only when it is better (census/registry.py)
            client = mlflow.MlflowClient()
            client.set_registered_model_alias(registered_name, registry.CHALLENGER, version.version)
            decision = registry.decide(registered_name, version, model, held_out, args.promote)
            if decision.promote:
                client.set_registered_model_alias(registered_name, registry.CHAMPION, version.version)
            mlflow.set_tags({"census.registered_model": registered_name, "census.model_version": version.version})

    print(f"Held-out ROC AUC {held_out_metrics['roc_auc']:.4f}, accuracy {held_out_metrics['accuracy']:.4f}")
    print(f"Registered {registered_name} version {version.version} (@{registry.CHALLENGER}); {decision.message}.")
    print(f"Done in {time.perf_counter() - started:.1f} s.")
    cli.print_ui_hint(run, "the parent run; its nested runs are the candidates")
    experiment = mlflow.get_experiment(run.info.experiment_id).name
    cli.print_next(
        "test the winner on the rows this run held out (talk pt. 6)",
        cli.mlflow_run_command("test", {"run_id": run.info.run_id, "model_uri": model_info.model_uri}, experiment),
    )


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e train --env-manager=local --experiment-name adult-classifier . -P model_type=logistic",
        description=__doc__.split("\n\n")[0],
    )
    add = parser.add_argument
    add("--model-type", default="both", choices=MODEL_TYPES, help="which model family to search")
    add(
        "--test-size",
        type=cli.fraction(low_open=True, high_open=True),
        default=0.2,
        help="share of rows held out, in (0, 1)",
    )
    add("--cv-splits", type=cli.whole_number(2), default=3, help="stratified cross-validation folds")
    add("--random-state", type=cli.whole_number(0), default=42, help="seed of the split, the folds and the models")
    imputations = ["median", "mean", "most_frequent", "constant"]
    add("--numeric-imputation-strategy", default="median", choices=imputations, help="SimpleImputer for numbers")
    add("--numeric-scaling-with-mean", type=cli.boolean, default=True, help="StandardScaler(with_mean=...)")
    add("--categorical-imputation-strategy", default="most_frequent", choices=["most_frequent", "constant"])
    add("--ohe-handle-unknown", default="ignore", choices=["ignore", "error", "infrequent_if_exist", "warn"])
    add("--sparse-threshold", type=cli.fraction(), default=0.3, help="ColumnTransformer, in [0, 1]")
    add("--lr-max-iter", type=cli.whole_number(1), default=1000, help="LogisticRegression(max_iter=...)")
    add("--lr-C-values", type=LR_C_VALUES, default="[0.1, 1.0, 10.0]", help="JSON list of LogisticRegression C")
    add("--lr-solvers", type=LR_SOLVER_LIST, default='["lbfgs"]', help="JSON list of LogisticRegression solvers")
    add("--rf-n-estimators", type=RF_SIZES, default="[150, 300]", help="JSON list of forest sizes")
    add("--rf-max-depths", type=RF_DEPTHS, default="[null, 12]", help="JSON list of forest depths; null = unlimited")
    add("--data-source", default="local", choices=data.DATA_SOURCES, help="local (offline) or openml (internet)")
    add("--promote", type=cli.boolean, default=False, help="make this version champion without comparing")
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli.run(main)

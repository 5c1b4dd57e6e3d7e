"""Train: pick the best census-income classifier by cross-validated grid search, log it all to MLflow.

The talk's notebook, as an MLflow Project entry point: every parameter comes from the command line
(see ``python train.py --help``), so a run can be repeated or varied without touching the code.

    mlflow run census_project -e train --env-manager local --experiment-name adult-classifier

What one run logs:
* a parent run: the parameters, the train/held-out split (Inputs + ``splits/*.csv``), the winner's
  held-out metrics and charts, and the winner itself (signature + input example), registered as
  ``adult-best-random-forest`` or ``adult-best-logistic`` with alias ``champion``;
* one nested child run per candidate configuration, with its cross-validated scores; the best of
  each family is tagged ``census.best_in_family=true``, the overall winner ``census.winner=true``.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from census import data, pipeline
from census.evaluate import classification_metrics, log_cv_chart, log_evaluation_charts, log_feature_chart
from census.params import (
    ArgumentParser,
    BadParameter,
    exit_on_bad_parameter,
    log_new_params,
    one_of,
    parse_bool,
    parse_json_list,
)

# Where the last training run's ids are written for scripts (make demo-census reads it).
LAST_TRAINING_FILE = Path(__file__).resolve().parent / "last_training_run.json"


def parse_args(argv=None):
    parser = ArgumentParser(
        prog="train.py", description="Train and select a census-income classifier, tracked with MLflow."
    )
    add = parser.add_argument
    add("--model-type", default="both", help="which family to search: both | logistic | random_forest (default: both)")
    add(
        "--test-size",
        type=float,
        default=0.2,
        help="share of rows held out for the final evaluation, in (0, 1) (default: 0.2)",
    )
    add("--cv-splits", type=int, default=3, help="number of stratified cross-validation folds, >= 2 (default: 3)")
    add("--random-state", type=int, default=42, help="seed of the split, the folds and the models (default: 42)")
    add(
        "--numeric-imputation-strategy",
        default="median",
        help=f"SimpleImputer strategy for numbers: {', '.join(pipeline.NUMERIC_IMPUTATION_STRATEGIES)}",
    )
    add(
        "--numeric-scaling-with-mean",
        default="true",
        help="StandardScaler(with_mean=...): true or false (default: true)",
    )
    add(
        "--categorical-imputation-strategy",
        default="most_frequent",
        help=f"SimpleImputer strategy for categories: {', '.join(pipeline.CATEGORICAL_IMPUTATION_STRATEGIES)}",
    )
    add(
        "--ohe-handle-unknown",
        default="ignore",
        help=f"OneHotEncoder(handle_unknown=...): {', '.join(pipeline.OHE_HANDLE_UNKNOWN)} (default: ignore)",
    )
    add(
        "--sparse-threshold",
        type=float,
        default=0.3,
        help="ColumnTransformer(sparse_threshold=...), in [0, 1] (default: 0.3)",
    )
    add("--lr-max-iter", type=int, default=1000, help="LogisticRegression(max_iter=...) (default: 1000)")
    add(
        "--lr-C-values",
        default="[0.1, 1.0, 10.0]",
        help="JSON list of LogisticRegression C values to try (default: '[0.1, 1.0, 10.0]')",
    )
    add(
        "--lr-solvers",
        default='["lbfgs"]',
        help=f"JSON list of LogisticRegression solvers to try, among {', '.join(pipeline.LR_SOLVERS)}",
    )
    add("--rf-n-estimators", default="[150, 300]", help="JSON list of forest sizes to try (default: '[150, 300]')")
    add(
        "--rf-max-depths",
        default="[null, 12]",
        help="JSON list of forest max depths to try; null = unlimited (default: '[null, 12]')",
    )
    add(
        "--data-source",
        default="local",
        help="local (data/adult.data.gz, offline) or openml (downloads; needs internet) (default: local)",
    )
    return parser.parse_args(argv)


def _positive_number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(value)
    return float(value)


def _positive_int(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(value)
    return value


def _depth(value):
    return None if value is None else _positive_int(value)


def _solver(value) -> str:
    if value not in pipeline.LR_SOLVERS:
        raise ValueError(value)
    return value


def validate(args) -> dict:
    """Every parameter checked before any work starts; returns the parsed settings."""
    if not 0 < args.test_size < 1:
        raise BadParameter("test_size", f"{args.test_size} is outside (0, 1)", "Use e.g. -P test_size=0.2")
    if args.cv_splits < 2:
        raise BadParameter("cv_splits", f"{args.cv_splits} folds cannot cross-validate", "Use -P cv_splits=2 or more")
    if not 0 <= args.sparse_threshold <= 1:
        raise BadParameter(
            "sparse_threshold", f"{args.sparse_threshold} is outside [0, 1]", "Use e.g. -P sparse_threshold=0.3"
        )
    if args.lr_max_iter < 1:
        raise BadParameter(
            "lr_max_iter", f"{args.lr_max_iter} is not a positive number of iterations", "Use e.g. -P lr_max_iter=1000"
        )
    return {
        "model_type": one_of("model_type", args.model_type, pipeline.MODEL_TYPES),
        "numeric_imputation_strategy": one_of(
            "numeric_imputation_strategy", args.numeric_imputation_strategy, pipeline.NUMERIC_IMPUTATION_STRATEGIES
        ),
        "numeric_scaling_with_mean": parse_bool("numeric_scaling_with_mean", args.numeric_scaling_with_mean),
        "categorical_imputation_strategy": one_of(
            "categorical_imputation_strategy",
            args.categorical_imputation_strategy,
            pipeline.CATEGORICAL_IMPUTATION_STRATEGIES,
        ),
        "ohe_handle_unknown": one_of("ohe_handle_unknown", args.ohe_handle_unknown, pipeline.OHE_HANDLE_UNKNOWN),
        "lr_C_values": parse_json_list(
            "lr_C_values", args.lr_C_values, _positive_number, "positive numbers", "[0.1, 1.0, 10.0]"
        ),
        "lr_solvers": parse_json_list(
            "lr_solvers", args.lr_solvers, _solver, f"solvers among {', '.join(pipeline.LR_SOLVERS)}", '["lbfgs"]'
        ),
        "rf_n_estimators": parse_json_list(
            "rf_n_estimators", args.rf_n_estimators, _positive_int, "positive integers", "[150, 300]"
        ),
        "rf_max_depths": parse_json_list(
            "rf_max_depths", args.rf_max_depths, _depth, "positive integers or null", "[null, 12]"
        ),
        "data_source": one_of("data_source", args.data_source, data.DATA_SOURCES),
    }


def log_candidate_runs(results, winner) -> None:
    """One nested run per candidate, with its parameters and cross-validated scores."""
    best_of_family = {pipeline.best(results, family).candidate for family in {r.candidate.family for r in results}}
    for result in results:
        candidate = result.candidate
        with mlflow.start_run(run_name=candidate.name, nested=True):
            mlflow.log_params({"family": candidate.family, **candidate.param_dict})
            mlflow.log_metrics(
                {f"cv_{m}_{stat}": getattr(result, stat)(m) for m in pipeline.SCORING for stat in ("mean", "std")}
            )
            mlflow.set_tags(
                {
                    "census.role": "candidate",
                    "census.family": candidate.family,
                    "census.best_in_family": str(candidate in best_of_family).lower(),
                    "census.winner": str(candidate == winner.candidate).lower(),
                }
            )
        marks = (
            " <- winner"
            if candidate == winner.candidate
            else (" <- best of its family" if candidate in best_of_family else "")
        )
        print(
            f"  {candidate.name}: ROC AUC {result.mean():.4f} ± {result.std():.4f}, "
            f"accuracy {result.mean('accuracy'):.4f}, F1 {result.mean('f1'):.4f}{marks}"
        )


def model_requirements() -> list[str]:
    """The logged model's pip requirements, declared from this environment: MLflow would otherwise
    infer them by re-importing the model in a subprocess, which takes longer than the search."""
    versions = [f"mlflow=={mlflow.__version__}", f"pandas=={pd.__version__}", f"numpy=={np.__version__}"]
    return versions + mlflow.sklearn.get_default_pip_requirements(include_skops=True)


@exit_on_bad_parameter
def main(argv=None) -> None:
    args = parse_args(argv)
    settings = validate(args)
    started = time.perf_counter()

    frame = data.load_adult(settings["data_source"])
    train, held_out = data.split(frame, args.test_size, args.random_state)
    X_train, y_train = data.features_and_target(train)
    X_held_out, y_held_out = data.features_and_target(held_out)
    print(f"Data: {len(frame)} rows ({settings['data_source']}) -> {len(train)} for training, {len(held_out)} held out")

    preprocessor = pipeline.build_preprocessor(
        settings["numeric_imputation_strategy"],
        settings["numeric_scaling_with_mean"],
        settings["categorical_imputation_strategy"],
        settings["ohe_handle_unknown"],
        args.sparse_threshold,
    )
    candidates = pipeline.make_candidates(
        settings["model_type"],
        settings["lr_C_values"],
        settings["lr_solvers"],
        settings["rf_n_estimators"],
        settings["rf_max_depths"],
    )

    with mlflow.start_run() as run:
        log_new_params(vars(args))
        mlflow.set_tags({"census.role": "training", "census.model_type": settings["model_type"]})
        data.log_split(train, held_out, settings["data_source"])

        print(
            f"Cross-validating {len(candidates)} candidates with {args.cv_splits} stratified folds "
            f"on {pipeline.DEFAULT_N_JOBS} cores..."
        )
        results = pipeline.cross_validate(
            preprocessor, candidates, X_train, y_train, args.cv_splits, args.random_state, args.lr_max_iter
        )
        winner = pipeline.best(results)
        print("Cross-validation results (mean ± std over the folds):")
        log_candidate_runs(results, winner)
        log_cv_chart(results, winner)

        print(f"Refitting the winner {winner.candidate.name} on all {len(train)} training rows...")
        model = pipeline.refit(preprocessor, winner.candidate, X_train, y_train, args.random_state, args.lr_max_iter)
        probability = model.predict_proba(X_held_out)[:, 1]
        held_out_metrics = classification_metrics(y_held_out, probability)
        mlflow.log_metrics({f"held_out_{name}": value for name, value in held_out_metrics.items()})
        mlflow.log_metrics({f"best_cv_{m}_mean": winner.mean(m) for m in pipeline.SCORING})
        log_evaluation_charts(y_held_out, probability, label=winner.candidate.name)
        log_feature_chart(model)
        mlflow.set_tags({"census.winner": winner.candidate.name, "census.winner_family": winner.candidate.family})

        registered_name = pipeline.REGISTERED_MODEL_NAMES[winner.candidate.family]
        # Numbers declared as floats in the signature, so that a missing value (NaN) is accepted.
        X_example = X_train.astype(dict.fromkeys(data.NUMERIC_FEATURES, "float64"))
        model_info = mlflow.sklearn.log_model(
            sk_model=model,
            name="model",
            signature=infer_signature(X_example, model.predict(X_train)),
            input_example=X_example.head(5),
            registered_model_name=registered_name,
            pip_requirements=model_requirements(),
            skops_trusted_types=pipeline.SKOPS_TRUSTED_TYPES,
        )
        version = model_info.registered_model_version
        MlflowClient().set_registered_model_alias(registered_name, pipeline.CHAMPION_ALIAS, version)
        mlflow.set_tags({"census.registered_model": registered_name, "census.model_version": version})
        print(
            f"Held-out ROC AUC {held_out_metrics['roc_auc']:.4f}, accuracy {held_out_metrics['accuracy']:.4f}, "
            f"F1 {held_out_metrics['f1']:.4f}"
        )
        print(
            f"Registered {registered_name} version {version} with alias @{pipeline.CHAMPION_ALIAS} "
            f"(model id {model_info.model_id}). Done in {time.perf_counter() - started:.1f} s."
        )

    experiment = mlflow.get_experiment(run.info.experiment_id).name
    model_uri = f"models:/{model_info.model_id}"
    test_command = (
        f"mlflow run census_project -e test --env-manager local --experiment-name {shlex.quote(experiment)} "
        f"-P run_id={run.info.run_id} -P model_uri={model_uri}"
    )
    LAST_TRAINING_FILE.write_text(
        json.dumps(
            {
                "run_id": run.info.run_id,
                "model_uri": model_uri,
                "experiment_name": experiment,
                "registered_model": registered_name,
                "version": int(version),
                "test_command": test_command,
            },
            indent=2,
        )
        + "\n"
    )
    print("\nNext, test the winner on the held-out split (from the repository root):")
    print(test_command)


if __name__ == "__main__":
    main()

"""Benchmark: time the default ``train`` entry point and check its search against a plain GridSearchCV.

    python benchmarks/census_search.py              # train timing + the plain-search comparison
    python benchmarks/census_search.py --skip-plain # train timing only (the plain search is slow)

1. Runs ``mlflow run census_project -e train --env-manager local`` with the MLproject's defaults
   (model_type=both, the talk's grids) into a throw-away store, and prints its wall time, the CPU
   time it used, the machine's load, and the winner's held-out ROC AUC.
   Target: <= 60 s wall on 2 cores, held-out ROC AUC >= 0.915.
2. Re-runs the same search the textbook way (GridSearchCV per family over the whole Pipeline,
   one core, no shortcuts) with the parameters the run logged, and checks that every candidate's
   logged CV mean and std, and the winner, are exactly the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "census_project"
# The project's own modules (train.py and its census package), and the repository's devtools.
sys.path[:0] = [str(PROJECT_DIR), str(REPO_ROOT)]

from devtools.processes import load_average, venv_env  # noqa: E402

TARGET_SECONDS, TARGET_ROC_AUC = 60.0, 0.915


def cpu_seconds_of_children() -> float | None:
    try:
        import resource  # not on Windows
    except ImportError:
        return None
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    return f"load average {load_average()} (1/5/15 min)"


def time_train(store: Path):
    """Run the default train entry point in ``store``; return (wall s, CPU s, parent run, client)."""
    # sqlite:/// + absolute path: sqlite:////tmp/... on Linux/macOS, sqlite:///C:/... on Windows
    tracking_uri = "sqlite:///" + (store / "mlflow.db").resolve().as_posix()
    env = venv_env(  # `mlflow run --env-manager local` runs the MLproject's `python ...` from PATH
        {
            "MLFLOW_TRACKING_URI": tracking_uri,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": (store / "mlartifacts").as_posix(),  # see default_store.py
        }
    )
    # The store's tables are created first, so that the timing is the entry point's alone.
    subprocess.run([sys.executable, "-c", "import mlflow; mlflow.search_experiments()"], env=env, check=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "run",
        str(PROJECT_DIR),
        "-e",
        "train",
        "--env-manager",
        "local",
        "--experiment-name",
        "benchmark",
    ]
    print(f"[{load()}]\n$ mlflow run census_project -e train --env-manager local --experiment-name benchmark")
    cpu_before, started = cpu_seconds_of_children(), time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - started
    cpu = None if cpu_before is None else cpu_seconds_of_children() - cpu_before
    mlflow.set_tracking_uri(tracking_uri)  # the comparison below reads the run's split and model here
    client = MlflowClient()
    experiment = client.get_experiment_by_name("benchmark")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return wall, cpu, parent, children


def compare_with_plain_search(parent, children) -> bool:
    """GridSearchCV over the same grid, split and folds; True when every score is identical."""
    from sklearn.base import clone

    from census import data, registry, search

    # What the run used: its training rows, its preprocessing (the logged model's, cloned unfitted)
    # and its grids (the parameters `mlflow run` logged, shell-quoted).
    params = {name: shlex.split(value)[0] for name, value in parent.data.params.items()}
    X, y = data.features_and_target(data.load_split(parent.info.run_id, "train"))
    model = registry.load_census_model(f"models:/{parent.outputs.model_outputs[0].model_id}")
    preprocessor = clone(model.pipeline.named_steps["preprocess"])
    grids = {
        "logistic": {"C": json.loads(params["lr_C_values"]), "solver": json.loads(params["lr_solvers"])},
        "random_forest": {
            "n_estimators": json.loads(params["rf_n_estimators"]),
            "max_depth": json.loads(params["rf_max_depths"]),
        },
    }
    if params["model_type"] != "both":
        grids = {params["model_type"]: grids[params["model_type"]]}
    candidates = search.make_candidates(grids)
    cv_splits, random_state, lr_max_iter = (int(params[k]) for k in ("cv_splits", "random_state", "lr_max_iter"))
    print(f"\n[{load()}]\nPlain GridSearchCV, one core, same grid and folds ({len(candidates)} candidates)...")
    started = time.perf_counter()
    plain = search.plain_grid_search(preprocessor, candidates, X, y, cv_splits, random_state, lr_max_iter)
    print(f"Plain search: {time.perf_counter() - started:.1f} s wall (CV only, no refit)")

    logged = {child.info.run_name: child.data.metrics for child in children}
    equal = True
    for result in plain:
        metrics = logged[result.candidate.name]
        for metric in search.SCORING:
            for stat in ("mean", "std"):
                same = metrics[f"cv_{metric}_{stat}"] == getattr(result, stat)(metric)
                equal &= same
                if not same:
                    print(
                        f"  DIFFERENT {result.candidate.name} cv_{metric}_{stat}: "
                        f"{metrics[f'cv_{metric}_{stat}']!r} (fast) vs {getattr(result, stat)(metric)!r} (plain)"
                    )
    same_winner = search.best(plain).candidate.name == parent.data.tags["census.winner"]
    print(
        f"Every CV mean/std identical to the plain search: {'yes' if equal else 'NO'}; "
        f"same winner ({search.best(plain).candidate.name}): {'yes' if same_winner else 'NO'}"
    )
    return equal and same_winner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-plain", action="store_true", help="only time the train entry point")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="census-benchmark-") as folder:
        wall, cpu, parent, children = time_train(Path(folder))
        roc_auc = parent.data.metrics["held_out_roc_auc"]
        print(f"\n[{load()}]")
        print(
            f"train (default parameters, {len(children)} candidates, {os.cpu_count()} cores): {wall:.1f} s wall"
            + ("" if cpu is None else f", {cpu:.1f} s CPU")
        )
        print(f"winner {parent.data.tags['census.winner']}: held-out ROC AUC {roc_auc:.4f}")
        print(
            f"targets: wall <= {TARGET_SECONDS:.0f} s: {'met' if wall <= TARGET_SECONDS else 'MISSED'}; "
            f"ROC AUC >= {TARGET_ROC_AUC}: {'met' if roc_auc >= TARGET_ROC_AUC else 'MISSED'}"
        )
        if not args.skip_plain and not compare_with_plain_search(parent, children):
            sys.exit(1)


if __name__ == "__main__":
    main()

"""Seed 003's information-retrieval API, over the runs that logging_example.py logged.

    python query_runs.py [--experiment-name logging_example] [--owner mlops-course]

or, from the repository root:

    mlflow run tracking_example -e query --env-manager local

1. create_experiment   with description/owner tags (reused, and tagged, when it already exists)
2. search_experiments  filtered by the owner tag
3. search_runs         filtered by run name, ordered by metrics.random_4 (best first)
4. search_runs + get_run  the best successful run, in full
"""

import argparse

import mlflow
from logging_example import EXPERIMENT_NAME, RUN_NAME

DESCRIPTION = "The talk's first example: one parameter, five metrics and a text artifact, logged by hand."


def ensure_experiment(name: str, owner: str) -> str:
    """Create the experiment with descriptive tags, or reuse it (tagging it) if it exists."""
    tags = {"description": DESCRIPTION, "owner": owner}
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(name, tags=tags)
        print(f"Created experiment {name!r} (ID {experiment_id}) with tags {tags}")
        return experiment_id
    # logging_example.py (or `mlflow run --experiment-name`) created it without tags: add them.
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_experiment_tag(experiment.experiment_id, key, value)
    print(f"Experiment {name!r} already exists (ID {experiment.experiment_id}): set its tags {tags}")
    return experiment.experiment_id


def print_table(runs) -> None:
    """One line per run: ID, name, status, seed, random_4."""
    print(f"{'run ID':<32}  {'run name':<12}  {'status':<8}  {'seed':>4}  {'random_4':>8}")
    for run in runs:
        random_4 = run.data.metrics.get("random_4")
        print(
            f"{run.info.run_id:<32}  {run.info.run_name:<12}  {run.info.status:<8}  "
            f"{run.data.params.get('seed', '-'):>4}  {'-' if random_4 is None else f'{random_4:g}':>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment-name", default=EXPERIMENT_NAME)
    parser.add_argument("--owner", default="mlops-course")
    args = parser.parse_args()

    # 1. Create the experiment (with description and owner tags), or reuse it
    experiment_id = ensure_experiment(args.experiment_name, args.owner)

    # 2. Which experiments does this owner have?
    owned = mlflow.search_experiments(filter_string=f"tags.owner = '{args.owner}'")
    print(f"\nExperiments owned by {args.owner!r}: " + ", ".join(f"{e.name} (ID {e.experiment_id})" for e in owned))

    # 3. The example's runs, highest random_4 first (the newest first among equals)
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"attributes.run_name = '{RUN_NAME}'",
        order_by=["metrics.random_4 DESC", "attributes.start_time DESC"],
        output_format="list",
    )
    if not runs:
        print(
            f"\nNo runs yet in {args.experiment_name!r}: run main first, e.g.\n"
            f"  mlflow run tracking_example --env-manager local --experiment-name {args.experiment_name} -P seed=42"
        )
        return
    print(f"\nRuns named {RUN_NAME!r} in {args.experiment_name!r}, by metrics.random_4 DESC:")
    print_table(runs)

    # 4. The best successful run, fetched in full by its ID
    finished = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"attributes.run_name = '{RUN_NAME}' and attributes.status = 'FINISHED'",
        order_by=["metrics.random_4 DESC"],
        max_results=1,
        output_format="list",
    )
    if not finished:
        print("\nNo successful run yet (odd seeds fail on purpose): try -P seed=42")
        return
    best = mlflow.get_run(finished[0].info.run_id)
    print(f"\nBest successful run {best.info.run_id}:")
    print(f"  params:    {best.data.params}")
    print(f"  metrics:   {best.data.metrics}")
    print(f"  artifacts: {best.info.artifact_uri}")
    print(
        "\nNext: open it in the UI (mlflow ui, or `make ui`), experiment "
        f"{args.experiment_name!r} -> run {best.info.run_id[:8]}..."
    )


if __name__ == "__main__":
    main()

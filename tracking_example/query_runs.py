"""Information retrieval over the runs of logging_example.py (course notes "MLflow metadata and
information retrieval"): create_experiment, search_experiments, search_runs, get_run.

    python query_runs.py [--experiment-name logging_example] [--owner mlops-course]

Run directly, it only reads (and tags the experiment). `mlflow run` always records a run for an
entry point, so as an MLflow Project it keeps that run, named "query", in its own experiment:

    mlflow run -e query --env-manager=local --experiment-name logging_example_queries .
"""

import mlflow
from logging_example import EXPERIMENT_NAME, RUN_NAME

import cli

DESCRIPTION = "The talk's first example: one parameter, five metrics and a text artifact, logged by hand."


def main() -> None:
    args = parse_args()

    # 1. Create the experiment with descriptive tags, or reuse (and tag) it if it exists
    experiment = mlflow.get_experiment_by_name(args.experiment_name)
    tags = {"description": DESCRIPTION, "owner": args.owner}
    if experiment is None:
        experiment_id = mlflow.create_experiment(args.experiment_name, tags=tags)
        print(f"Created experiment {args.experiment_name!r} (ID {experiment_id}) with tags {tags}")
    else:
        experiment_id = experiment.experiment_id
        for key, value in tags.items():
            mlflow.MlflowClient().set_experiment_tag(experiment_id, key, value)
        print(f"Experiment {args.experiment_name!r} already exists (ID {experiment_id}): set its tags {tags}")

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
    if runs:
        print(f"\nRuns named {RUN_NAME!r} in {args.experiment_name!r}, by metrics.random_4 DESC:")
        print_table(runs)

    # 4. The best successful run, fetched in full by its ID
    finished = [run for run in runs if run.info.status == "FINISHED"]
    best = mlflow.get_run(finished[0].info.run_id) if finished else None
    if best is not None:
        print(f"\nBest successful run {best.info.run_id}:")
        print(f"  params:    {best.data.params}")
        print(f"  metrics:   {best.data.metrics}")
        print(f"  artifacts: {best.info.artifact_uri}")

    if cli.under_mlflow_run():  # `mlflow run` made a run for this entry point: name it, keep what was found
        with mlflow.start_run(run_name="query"):
            mlflow.set_tags({"query.experiment_id": experiment_id, "query.runs_found": len(runs)})
            if best is not None:
                mlflow.set_tag("query.best_run_id", best.info.run_id)
                mlflow.log_metric("best_random_4", best.data.metrics["random_4"])
    if best is None:
        print(f"\nNo runs yet in {args.experiment_name!r}: run main first." if not runs else "\nNo successful run yet.")
        cli.print_next("log a successful run", "python {here}/logging_example.py 42")
    else:
        cli.print_ui_hint(best, f"the best run of {args.experiment_name!r}")


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="python query_runs.py --owner mlops-course", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--experiment-name", default=EXPERIMENT_NAME, help="the experiment to query")
    parser.add_argument("--owner", default="mlops-course", help="the owner tag to set and search for")
    return parser.parse_args(argv)


def print_table(runs) -> None:
    """One line per run: ID, name, status, seed, random_4."""
    print(f"{'run ID':<32}  {'run name':<12}  {'status':<8}  {'seed':>4}  {'random_4':>8}")
    for run in runs:
        random_4 = run.data.metrics.get("random_4")
        shown = "-" if random_4 is None else f"{random_4:g}"
        seed = run.data.params.get("seed", "-")
        print(f"{run.info.run_id:<32}  {run.info.run_name:<12}  {run.info.status:<8}  {seed:>4}  {shown:>8}")


if __name__ == "__main__":
    cli.run(main)

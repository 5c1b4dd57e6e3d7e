"""The llmops_project's LLM flow on the offline model, timed: what a student without an API key runs.

Starts llmops_project/local_llm/serve.py on a free port, then, in a throw-away store, runs the
entry points the way a student does (``mlflow run --env-manager local``):

    register_all_prompts  ->  [generate_answers -P max_questions=N  ->  evaluate_responses] x repeat
                              (+ generate_answers_with_agent -P search_backend=offline, with --agent)

and prints, per repetition, each entry point's wall time (interpreter start and MLflow set-up
included, as a student waits for it), the generation loop's own time (metric
``generation_wall_seconds``), and the number of judge assessments recorded with an error (from
the store: every assessment on the evaluated traces whose ``error`` is set). With ``--agent``,
how many of the agent's traces contain a ``web_search_tool`` span. Then the best and median.

    .venv/bin/python benchmarks/offline_llm_flow.py [--repeat 5] [--questions 4] [--agent]

Needs the offline extra (make local-llm-install). Targets (issue 9), 2 cores: generate <= 20 s,
evaluate <= 60 s, 0 errored assessments. A busy machine only ever makes the times worse, so note
the load average printed at the start and the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = "llmops_project"
SERVE = REPO_ROOT / PROJECT / "local_llm" / "serve.py"
sys.path[:0] = [str(REPO_ROOT), str(SERVE.parent)]

import serve  # noqa: E402  llmops_project/local_llm/serve.py

from devtools.processes import free_port, load_average, stop_process, venv_env  # noqa: E402


def mlflow_run(env: dict, entry: str, **params) -> tuple[float, str]:
    """Run one entry point; return (wall seconds, id of the top-level run it created)."""
    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    before = set()
    if experiment:
        before = {r.info.run_id for r in client.search_runs([experiment.experiment_id], max_results=10_000)}
    command = [sys.executable, "-m", "mlflow", "run", PROJECT, "-e", entry, "--env-manager", "local"]
    for key, value in params.items():
        command += ["-P", f"{key}={value}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{entry} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    new = [r for r in client.search_runs([experiment.experiment_id], max_results=10_000) if r.info.run_id not in before]
    return seconds, new[0].info.run_id


def traces_of(run_id: str, env: dict) -> list:
    import mlflow

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = mlflow.MlflowClient().get_run(run_id)
    found = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
    return [mlflow.get_trace(t.info.trace_id) for t in found]


def errored_assessments(traces: list) -> tuple[int, int, list[str]]:
    """(assessments with an error, all assessments, the first few errors) on these traces."""
    assessments = [a for t in traces for a in t.info.assessments if a.source.source_type != "HUMAN"]
    errors = [a for a in assessments if a.error is not None]
    shown = [f"{a.name}: {(a.error.error_message or a.error.error_code or '')[:160]}" for a in errors[:3]]
    return len(errors), len(assessments), shown


def has_search_span(trace) -> bool:
    return any(span.name == "web_search_tool" for span in trace.data.spans)


def summary(label: str, values: list[float]) -> str:
    return f"{label:28s} best {min(values):6.1f} s   median {statistics.median(values):6.1f} s   ({len(values)} runs)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--agent", action="store_true", help="also run generate_answers_with_agent each time")
    parser.add_argument("--no-evaluate", action="store_true", help="skip evaluate_responses")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away store and server log")
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        help="an option for serve.py, e.g. --server-option=--temperature=0",
    )
    parser.add_argument(
        "--client-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for the entry points",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="offline-llm-flow-"))
    port = free_port()
    env = venv_env(  # `mlflow run --env-manager local` runs the MLproject's `python ...` from PATH
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir.as_posix()}/mlflow.db",
            "_MLFLOW_SERVER_ARTIFACT_ROOT": f"{workdir.as_posix()}/mlartifacts",
            "MLFLOW_EXPERIMENT_NAME": "offline-llm-flow",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "OPENAI_API_KEY": "local",
        }
    )
    for variable in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"):
        env.pop(variable, None)
    env.update(setting.split("=", 1) for setting in args.client_env)

    print(f"load average at start: {load_average()}   (cores: {os.cpu_count()})", flush=True)
    started = time.perf_counter()
    server = serve.start_in_background(port, workdir / "server.log", *args.server_option)
    print(f"serve.py ready in {time.perf_counter() - started:.1f} s on port {port}", flush=True)
    rows = []
    try:
        seconds, _ = mlflow_run(env, "register_all_prompts")
        print(f"register_all_prompts {seconds:.1f} s", flush=True)
        for attempt in range(1, args.repeat + 1):
            row = {}
            row["generate"], generation_run = mlflow_run(env, "generate_answers", max_questions=args.questions)
            import mlflow

            metrics = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(generation_run).data.metrics
            row["generation loop"] = metrics["generation_wall_seconds"]
            line = (
                f"#{attempt}  generate_answers {row['generate']:5.1f} s (loop {row['generation loop']:4.1f} s, "
                f"{int(metrics['successful'])}/{int(metrics['total_questions'])} answered)"
            )
            if not args.no_evaluate:
                row["evaluate"], _ = mlflow_run(env, "evaluate_responses", generation_run_id=generation_run)
                errors, total, shown = errored_assessments(traces_of(generation_run, env))
                row["errors"] = errors
                line += f"   evaluate_responses {row['evaluate']:5.1f} s, {errors}/{total} assessments errored"
                line += "".join(f"\n      {e}" for e in shown)
            if args.agent:
                row["agent"], agent_run = mlflow_run(
                    env, "generate_answers_with_agent", max_questions=args.questions, search_backend="offline"
                )
                traces = traces_of(agent_run, env)
                row["tool traces"] = sum(has_search_span(t) for t in traces)
                line += f"   agent {row['agent']:5.1f} s, web_search_tool span in {row['tool traces']}/{len(traces)}"
            print(line + f"   [load {load_average()}]", flush=True)
            rows.append(row)
    finally:
        stop_process(server, timeout=30)

    print()
    for key in ("generate", "generation loop", "evaluate", "agent"):
        if rows and key in rows[0]:
            print(summary(key, [r[key] for r in rows]))
    if rows and "errors" in rows[0]:
        print(f"errored assessments over {len(rows)} evaluate runs: {sum(r['errors'] for r in rows)}")
    if rows and "tool traces" in rows[0]:
        print(f"agent traces with a web_search_tool span: {[r['tool traces'] for r in rows]} of {args.questions}")
    print(f"load average at end: {load_average()}")
    if args.keep:
        print(f"store and server log kept in {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

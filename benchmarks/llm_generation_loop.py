"""Benchmark of the generation loop: concurrency 1 vs the default, and the per-question overhead.

Runs the real ``generate_answers.py`` against the repository's deterministic OpenAI-compatible test
server (devtools/openai_server.py) that waits a fixed delay before each reply, in a throw-away store,
and reads the loop's own wall time (metric ``generation_wall_seconds``: interpreter start-up,
imports and MLflow set-up are excluded) back from MLflow:

1. N questions, 1 s per request, concurrency 1 (sequential);
2. the same with the default concurrency (MLproject);  target: <= 0.3 x sequential;
3. N questions against an instant server, concurrency 1: wall time per question, minus the same
   OpenAI SDK call made bare (no MLflow) = the loop's overhead (tracing, logging);  target: < 50 ms.
   Best of 3 repetitions each, as a busy machine only ever makes a figure worse.

    python benchmarks/llm_generation_loop.py [--questions 40] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "llmops_project"
sys.path[:0] = [str(REPO_ROOT), str(PROJECT_DIR)]

import generate_answers  # noqa: E402  the entry point's own options

from devtools.openai_server import FakeOpenAIServer  # noqa: E402
from devtools.processes import load_average  # noqa: E402


def run_generation(env: dict, questions: int, concurrency: int) -> float:
    """Run generate_answers.py; return its generation loop's wall time in seconds."""
    from mlflow.tracking import MlflowClient

    command = [
        sys.executable,
        "generate_answers.py",
        "--max-questions",
        str(questions),
        "--concurrency",
        str(concurrency),
    ]
    subprocess.run(command, cwd=PROJECT_DIR, env=env, check=True, capture_output=True, text=True)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(env["MLFLOW_EXPERIMENT_NAME"])
    run = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert run.data.metrics["successful"] == questions, run.data.metrics
    return run.data.metrics["generation_wall_seconds"]


BARE_CALLS = """
import sys, time
from openai import OpenAI
client, n = OpenAI(max_retries=0), int(sys.argv[1])
client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": "warm-up"}])
start = time.perf_counter()
for i in range(n):
    client.chat.completions.create(model="gpt-4.1-mini", messages=[{"role": "user", "content": f"Question: q{i}"}])
print(time.perf_counter() - start)
"""


def bare_sdk_seconds(env: dict, questions: int) -> float:
    """The same number of chat calls with the OpenAI SDK alone: the provider's time as the client sees it."""
    done = subprocess.run(
        [sys.executable, "-c", BARE_CALLS, str(questions)], env=env, check=True, capture_output=True, text=True
    )
    return float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the server waits per request")
    args = parser.parse_args()
    default_concurrency = generate_answers.parse_args([]).concurrency

    with tempfile.TemporaryDirectory() as store:
        server = FakeOpenAIServer(delay=args.delay).start()
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{Path(store).as_posix()}/mlflow.db",
            "_MLFLOW_SERVER_ARTIFACT_ROOT": f"{Path(store).as_posix()}/mlartifacts",
            "MLFLOW_EXPERIMENT_NAME": "benchmark",
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "benchmark",
        }
        env.pop("MLFLOW_RUN_ID", None)
        try:
            print("Registering the prompts in a throw-away store ...", flush=True)
            subprocess.run(
                [sys.executable, "register_all_prompts.py"], cwd=PROJECT_DIR, env=env, check=True, capture_output=True
            )
            print(f"[load average {load_average()}]", flush=True)
            print(f"{args.questions} questions, {args.delay:.1f} s per request:", flush=True)
            sequential = run_generation(env, args.questions, 1)
            print(f"  concurrency 1: {sequential:7.2f} s", flush=True)
            concurrent = run_generation(env, args.questions, default_concurrency)
            ratio = concurrent / sequential
            print(
                f"  concurrency {default_concurrency}: {concurrent:7.2f} s  = {ratio:.2f} x sequential "
                f"(target <= 0.30: {'met' if ratio <= 0.3 else 'MISSED'})",
                flush=True,
            )
            server.delay = 0.0
            instant = min(run_generation(env, args.questions, 1) for _ in range(3))
            bare = min(bare_sdk_seconds(env, args.questions) for _ in range(3))
            total_ms, bare_ms = 1000 * instant / args.questions, 1000 * bare / args.questions
            overhead_ms = total_ms - bare_ms
            print(
                f"Instant server, concurrency 1: {total_ms:.1f} ms per question, of which the bare SDK call "
                f"{bare_ms:.1f} ms: overhead {overhead_ms:.1f} ms per question "
                f"(target < 50 ms: {'met' if overhead_ms < 50 else 'MISSED'})"
            )
            print(f"[load average {load_average()}]", flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()

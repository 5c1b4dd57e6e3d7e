"""THE generation loop, shared by generate_answers (OpenAI SDK) and generate_answers_with_agent
(LangChain agent). Each entry point only supplies an *answerer*: question -> Reply.

* questions are answered by ``concurrency`` worker threads (1 = one after the other);
* each question runs in a fresh ``contextvars.Context``, so its autologged call starts its own
  trace (no parent span leaks between questions) and we can read back that trace's id;
* a question whose provider call still fails after the client's retries is recorded as
  ``failed`` with its error, never as answer text; evaluation reads only ``ok`` rows;
* results come back in question order, whatever order the threads finish in.
"""

from __future__ import annotations

import contextvars
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass

import mlflow
import pandas as pd
from tqdm import tqdm

from quiz import QuizError, cli
from quiz.prompts import PromptSet
from quiz.questions import Question

STEP_TAG = "quiz.step"  # "generation" on generation runs: evaluate_responses looks for it
ANSWERS_ARTIFACT = "answers.csv"
ANSWER_COLUMNS = [
    "number",
    "category",
    "question",
    "weight",
    "status",
    "answer",
    "error",
    "prompt_template",
    "prompt_version",
    "model",
    "latency_seconds",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tool_calls",
    "trace_id",
]


@dataclass
class Reply:
    """What an answerer returns for one question."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int | None = None  # None: this answerer has no tools


Answerer = Callable[[Question], Reply]


@contextmanager
def generation_run(params: dict) -> Iterator[mlflow.ActiveRun]:
    """The generation run: resumes the run ``mlflow run`` created (MLFLOW_RUN_ID), or starts one
    in the current experiment. An exception inside ends it FAILED."""
    with mlflow.start_run() as run:
        mlflow.set_tag(STEP_TAG, "generation")
        cli.log_arguments(params)
        yield run


def _answer_one(answerer: Answerer, question: Question) -> dict:
    started = time.perf_counter()
    try:
        reply, error = answerer(question), ""
    except Exception as problem:  # recorded per question; the run decides below whether to fail
        reply, error = None, f"{type(problem).__name__}: {problem}"
    row = {
        "number": question.number,
        "category": question.category,
        "question": question.text,
        "weight": question.weight,
        "status": "ok" if reply is not None and reply.text.strip() else "failed",
        "answer": reply.text if reply is not None else "",
        "error": error or ("" if reply is None or reply.text.strip() else "empty answer"),
        "latency_seconds": round(time.perf_counter() - started, 4),
        "prompt_tokens": reply.prompt_tokens if reply else 0,
        "completion_tokens": reply.completion_tokens if reply else 0,
        "tool_calls": reply.tool_calls if reply else None,
        "trace_id": mlflow.get_last_active_trace_id(thread_local=True) or "",
    }
    if row["status"] == "failed":
        row["answer"] = ""  # never store error text (or an empty reply) as an answer
    return row


def answer_all(questions: list[Question], answerer: Answerer, concurrency: int) -> list[dict]:
    """Answer every question; rows in question order."""
    rows: list[dict | None] = [None] * len(questions)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="answer") as pool:
        futures = {
            pool.submit(contextvars.Context().run, _answer_one, answerer, question): index
            for index, question in enumerate(questions)
        }
        with tqdm(total=len(questions), desc="Answering", unit="question") as progress:
            for future in as_completed(futures):
                rows[futures[future]] = future.result()
                progress.update()
    return rows


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(table: pd.DataFrame, wall_seconds: float) -> dict[str, float]:
    ok = table[table["status"] == "ok"]
    latencies = ok["latency_seconds"].tolist()
    metrics = {
        "total_questions": len(table),
        "successful": len(ok),
        "failed": len(table) - len(ok),
        "success_rate": len(ok) / len(table) if len(table) else 0.0,
        "prompt_tokens": int(ok["prompt_tokens"].sum()),
        "completion_tokens": int(ok["completion_tokens"].sum()),
        "total_tokens": int(ok["total_tokens"].sum()),
        "latency_p50_seconds": _percentile(latencies, 50),
        "latency_p95_seconds": _percentile(latencies, 95),
        "generation_wall_seconds": wall_seconds,
    }
    if ok["tool_calls"].notna().any():
        metrics["tool_calls_per_answer"] = float(ok["tool_calls"].mean()) if len(ok) else 0.0
    return metrics


def generate(
    questions: list[Question],
    answerer: Answerer,
    prompt_set: PromptSet,
    *,
    model: str,
    concurrency: int,
    max_failure_rate: float,
) -> pd.DataFrame:
    """Answer, log answers.csv and the metrics, fail the run when too many questions failed,
    and print the evaluate_responses command. Returns the answers table."""
    prompt_set.log_to_run()
    started = time.perf_counter()
    rows = answer_all(questions, answerer, concurrency)
    wall_seconds = time.perf_counter() - started

    table = pd.DataFrame(rows)
    table["prompt_template"] = prompt_set.template_name
    table["prompt_version"] = int(prompt_set.user.version)
    table["model"] = model
    table["total_tokens"] = table["prompt_tokens"] + table["completion_tokens"]
    table = table[ANSWER_COLUMNS]
    mlflow.log_text(table.to_csv(index=False), ANSWERS_ARTIFACT)
    metrics = summarize(table, wall_seconds)
    mlflow.log_metrics(metrics)
    mlflow.flush_trace_async_logging()  # every trace stored before the run ends

    print(
        f"Answered {metrics['successful']}/{metrics['total_questions']} questions "
        f"in {wall_seconds:.1f} s (concurrency {concurrency}); answers.csv logged."
    )
    failed = table[table["status"] == "failed"]
    if len(failed):
        print(f"{len(failed)} question(s) failed, first error: {failed['error'].iloc[0]}")
    if metrics["successful"] == 0:
        raise QuizError(
            f"no question was answered ({len(failed)} failed; first error: {failed['error'].iloc[0]}). "
            "Check that the provider is running and reachable (OPENAI_BASE_URL) and the key is valid"
        )
    if len(failed) / len(table) > max_failure_rate:
        raise QuizError(
            f"{len(failed)} of {len(table)} questions failed, more than max_failure_rate={max_failure_rate}. "
            "See the 'error' column of answers.csv, fix the provider, or raise -P max_failure_rate"
        )
    print_evaluate_command()
    return table


def print_evaluate_command() -> None:
    run = mlflow.active_run()
    print(
        "\nNext, evaluate these answers (from inside llmops_project/):\n"
        f"  mlflow run -e evaluate_responses --env-manager=local "
        f"--experiment-id {run.info.experiment_id} . -P generation_run_id={run.info.run_id}"
    )

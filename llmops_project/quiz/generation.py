"""THE generation loop, shared by generate_answers.py (OpenAI SDK) and generate_answers_with_agent.py
(LangChain agent). Each entry point hands it an ``answer(question) -> Reply`` function.

* questions are answered by ``concurrency`` worker threads (1 = one after the other);
* each question runs in a fresh ``contextvars.Context``, so its autologged call starts its own
  trace (no parent span leaks between questions) and we can read back that trace's id;
* a question whose provider call still fails after the client's retries is recorded as
  ``failed`` with its error, never as answer text; evaluation reads only ``ok`` rows;
* results come back in question order, whatever order the threads finish in;
* each question's tokens, cost (when MLflow knows the model's price) and latency are read back
  from its trace, the one source of the run's totals (the same figures the UI shows per trace).
"""

from __future__ import annotations

import contextvars
import io
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

import mlflow
import pandas as pd
from tqdm import tqdm

import cli
from quiz import provider
from quiz.questions import Question

STEP_TAG = "quiz.step"  # "generation" on generation runs: evaluate_responses looks for it
ANSWERS_ARTIFACT = "answers.csv"
ALIAS = "production"  # the prompts are loaded through this alias (register_all_prompts sets it)
EXPERIMENT = "se-answers"  # the README's experiment: what a command shown before any run names
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
    "cost_usd",
    "tool_calls",
    "trace_id",
]


@dataclass
class Reply:
    """What an ``answer`` function returns for one question."""

    text: str
    tool_calls: int | None = None  # None: this answerer has no tools
    # Tokens, cost and latency are not here: they are read from the question's trace.

    @classmethod
    def from_chat_completion(cls, response) -> Reply:
        """From the OpenAI SDK's ChatCompletion."""
        return cls(text=response.choices[0].message.content or "")

    @classmethod
    def from_agent_messages(cls, messages) -> Reply:
        """From a LangChain agent's final messages: the answer and the tool calls made."""
        return cls(text=str(messages[-1].text), tool_calls=sum(1 for m in messages if m.type == "tool"))


def experiment_name(run=None) -> str:
    """The name of ``run``'s experiment (by default the active run's), which the commands shown to a
    student name (``cli.mlflow_run_command``); with no run, the README's ``EXPERIMENT``."""
    run = run or mlflow.active_run()
    return mlflow.get_experiment(run.info.experiment_id).name if run else EXPERIMENT


def command_here(entry: str, params: dict | None = None, run=None) -> str:
    """``cli.mlflow_run_command`` for the experiment of ``run`` (see ``experiment_name``), from
    inside this folder: the command a one-line error shows (``cli.print_next`` shows both forms)."""
    return cli.mlflow_run_command(entry, params, experiment_name(run)).replace("{here}", ".")


def require_prompts(*prompts) -> None:
    """``mlflow.genai.load_prompt(..., allow_missing=True)`` gives None for a prompt with no version
    under the alias: say what to run instead of failing later."""
    if any(prompt is None for prompt in prompts):
        raise cli.UserError(
            f"the prompts have no version with alias @{ALIAS} in this tracking store. Register them first: "
            + command_here("register_all_prompts")
        )


def user_message(prompt, question: Question) -> str:
    """A user prompt template filled in with one question (MLflow's ``{{variable}}`` syntax)."""
    return prompt.format(category=question.category, question=question.text, weight=question.weight)


def chat_answerer(client, system, prompt, model: str, temperature: float, max_tokens: int, seed: int | None = None):
    """The answer function of compare and optimize (and optimize's predict_fn): one chat completion per
    question with the system prompt and ``prompt`` filled in, as generate_answers.py does, plus a
    seed, so that candidates differ by what they are, not by the sampler's luck."""

    def answer(question: Question) -> Reply:
        response = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": system.template},
                {"role": "user", "content": user_message(prompt, question)},
            ],
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
        )
        return Reply.from_chat_completion(response)

    return answer


def answer_all(questions: list[Question], answer: Callable[[Question], Reply], concurrency: int) -> pd.DataFrame:
    """Answer every question with ``answer``; one row per question, in question order. The loop's
    wall time is kept in ``table.attrs["wall_seconds"]``."""
    started = time.perf_counter()
    rows: list[dict | None] = [None] * len(questions)
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="answer") as pool:
        futures = {
            pool.submit(contextvars.Context().run, _answer_one, answer, question): index
            for index, question in enumerate(questions)
        }
        try:
            with tqdm(total=len(questions), desc="Answering", unit="question") as progress:
                for future in as_completed(futures):
                    rows[futures[future]] = future.result()
                    progress.update()
        except BaseException:  # Ctrl-C, kill, closed terminal (cli.run): questions not started are dropped
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    wall_seconds = time.perf_counter() - started
    mlflow.flush_trace_async_logging()  # every trace stored before we read it back
    table = pd.DataFrame([{**row, **trace_figures(row["trace_id"], row["latency_seconds"])} for row in rows])
    table.attrs["wall_seconds"] = wall_seconds
    return table


def trace_figures(trace_id: str, measured_seconds: float) -> dict:
    """A question's tokens, cost and latency, as its trace records them (MLflow sums the token usage
    and, for models in its price catalog, the cost of every LLM call in the trace). Without a trace
    (tracing off), no tokens and the latency measured around the call."""
    trace = mlflow.get_trace(trace_id) if trace_id else None
    usage = (trace.info.token_usage if trace else None) or {}
    cost = (trace.info.cost if trace else None) or {}
    duration = trace.info.execution_time_ms if trace else None
    return {
        "prompt_tokens": int(usage.get("input_tokens", 0)),
        "completion_tokens": int(usage.get("output_tokens", 0)),
        "total_tokens": int(usage.get("total_tokens", 0)),
        "cost_usd": cost.get("total_cost"),
        "latency_seconds": measured_seconds if duration is None else duration / 1000,
    }


def _answer_one(answer: Callable[[Question], Reply], question: Question) -> dict:
    started = time.perf_counter()
    try:
        reply, error = answer(question), ""
    except Exception as problem:  # recorded per question; the run decides afterwards whether to fail
        reply, error = None, f"{type(problem).__name__}: {problem}"
    ok = reply is not None and bool(reply.text.strip())
    return {
        "number": question.number,
        "category": question.category,
        "question": question.text,
        "weight": question.weight,
        "status": "ok" if ok else "failed",
        "answer": reply.text if ok else "",  # never store error text (or an empty reply) as an answer
        "error": error or ("" if ok else "empty answer"),
        "latency_seconds": round(time.perf_counter() - started, 4),
        "tool_calls": reply.tool_calls if reply else None,
        "trace_id": mlflow.get_last_active_trace_id(thread_local=True) or "",
    }


def answered(run) -> pd.DataFrame:
    """The successfully answered rows of a generation run's answers.csv (evaluate_responses and
    review read them; failed questions are never judged or reviewed)."""
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{ANSWERS_ARTIFACT}")
    except Exception:
        raise cli.UserError(
            f"run {run.info.run_id} has no {ANSWERS_ARTIFACT}. "
            "Pass the id of a generate_answers, generate_answers_with_agent or compare candidate run"
        ) from None
    table = pd.read_csv(io.StringIO(text), keep_default_na=False)
    ok = table[table["status"] == "ok"].reset_index(drop=True)
    ok.attrs["failed"] = len(table) - len(ok)  # questions of that run left out
    return ok


def traced_answers(run) -> pd.DataFrame:
    """The run's answered questions with their traces (a run without traces cannot be reviewed)."""
    table = answered(run)
    table = table[table["trace_id"] != ""].reset_index(drop=True)
    table["trace"] = [mlflow.get_trace(trace_id) for trace_id in table["trace_id"]]
    table = table[table["trace"].notna()].reset_index(drop=True)
    if table.empty:
        raise cli.UserError(
            f"run {run.info.run_id} has no traced answer to review. "
            "Generate answers with tracing on (the generate entry points do), e.g. "
            + command_here("generate_answers", run=run)
        )
    return table


def answers_table(answers: pd.DataFrame, prompt, model: str) -> pd.DataFrame:
    """The answers with the prompt and model that made them, in the columns of answers.csv."""
    table = answers.assign(prompt_template=prompt.name, prompt_version=int(prompt.version), model=model)
    return table[ANSWER_COLUMNS]


def _percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summarize(answers: pd.DataFrame) -> dict[str, float]:
    """The run's metrics: counts; tokens, cost (when known) and latencies of the answered questions,
    all from their traces (see ``trace_figures``); tool calls per answer."""
    ok = answers[answers["status"] == "ok"]
    latencies = ok["latency_seconds"].tolist()
    metrics = {
        "total_questions": len(answers),
        "successful": len(ok),
        "failed": len(answers) - len(ok),
        "success_rate": len(ok) / len(answers) if len(answers) else 0.0,
        "prompt_tokens": int(ok["prompt_tokens"].sum()),
        "completion_tokens": int(ok["completion_tokens"].sum()),
        "total_tokens": int(ok["total_tokens"].sum()),
        "latency_p50_seconds": _percentile(latencies, 50),
        "latency_p95_seconds": _percentile(latencies, 95),
        "generation_wall_seconds": answers.attrs["wall_seconds"],
    }
    if ok["cost_usd"].notna().any():
        metrics["cost_usd"] = float(ok["cost_usd"].sum())
    if ok["tool_calls"].notna().any():
        metrics["tool_calls_per_answer"] = float(ok["tool_calls"].mean()) if len(ok) else 0.0
    return metrics


def require_some_answers(answers: pd.DataFrame) -> None:
    """No answer at all is a provider problem, not a result: stop (the run ends FAILED). A failure
    because the offline model server crashed says so."""
    failed = answers[answers["status"] == "failed"]
    if len(failed):
        provider.stop_if_crashed()
    if len(failed) == len(answers):
        raise cli.UserError(
            f"no question was answered ({len(failed)} failed; first error: {failed['error'].iloc[0]}). "
            "Check that the provider is running and reachable (OPENAI_BASE_URL), the key and the model name"
        )


def report(answers: pd.DataFrame, max_failure_rate: float) -> None:
    """Print how it went; fail the run when no question, or too many, were answered."""
    mlflow.flush_trace_async_logging()  # every trace stored before the run ends, failed or not
    failed = answers[answers["status"] == "failed"]
    print(f"Answered {len(answers) - len(failed)}/{len(answers)} questions; {ANSWERS_ARTIFACT} logged.")
    if len(failed):
        print(f"{len(failed)} question(s) failed, first error: {failed['error'].iloc[0]}")
    require_some_answers(answers)
    if len(failed) / len(answers) > max_failure_rate:
        raise cli.UserError(
            f"{len(failed)} of {len(answers)} questions failed, more than max_failure_rate={max_failure_rate}. "
            f"See the 'error' column of {ANSWERS_ARTIFACT}, fix the provider, or raise -P max_failure_rate"
        )


def print_next_steps(run) -> None:
    """The talk's next step (pt. 9): evaluate this run's answers."""
    cli.print_ui_hint(run, "the generation run; its Traces tab has one trace per question")
    cli.print_next(
        "evaluate these answers (talk pt. 9)",
        cli.mlflow_run_command("evaluate_responses", {"generation_run_id": run.info.run_id}, experiment_name(run)),
    )

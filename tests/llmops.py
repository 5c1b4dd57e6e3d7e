"""What the llmops_project's test files share: the project's own modules (imported as its scripts
see them, tests/examples.py), and helpers that read back what its entry points logged."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests import examples
from tests.harness import REPO_ROOT, ProjectResult, run_script

PROJECT = "llmops_project"
PROJECT_DIR = REPO_ROOT / PROJECT
# The project's own modules, as its scripts import them (with llmops_project's cli.py)
cli, evaluate_responses, register_all_prompts, agent_entry_point, search, questions, dataset, decision, labels = (
    examples.load(
        PROJECT,
        "cli",
        "evaluate_responses",
        "register_all_prompts",
        "generate_answers_with_agent",
        "quiz.search",
        "quiz.questions",
        "quiz.dataset",
        "quiz.decision",
        "quiz.labels",
    )
)
load_expectations, load_questions = questions.load_expectations, questions.load_questions
UNSURE = "(unsure)"  # the test server's judges say "no" to an answer holding it (judge_no)


def project_questions() -> list[dict]:
    with (PROJECT_DIR / "questions.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def register_prompts_in_process() -> None:
    """Register the prompts without a subprocess (the entry point has its own smoke test)."""
    for path in sorted((PROJECT_DIR / "prompts").glob("*.txt")):
        register_all_prompts.register(path.stem, path.read_text(encoding="utf-8"))


def refused_in_process(store, script: str, *args: str, env: dict | None = None) -> ProjectResult:
    """``python <script> args...`` (a script of llmops_project), run in this process, for input the
    script refuses before any run or model call: a subprocess per case costs ~3 s of CPU in imports.
    The same ``cli.run(main)`` as the script's last line, less what a pytest worker must not get: the
    signal handlers (cli), the offline-server watcher thread that ends its process on a crash, and
    litellm set aside for the whole process (quiz.provider). The exit status must be non-zero."""
    script_module, provider = examples.load(PROJECT, Path(script).stem, "quiz.provider")
    before = {r.info.run_id for r in store.all_runs()}
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [Path(script).name, *args])
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        patch.setattr(cli, "_handle_interruptions", lambda: None)
        patch.setattr(provider, "watch_for_crash", lambda: None)
        patch.setattr(provider, "hide_litellm", lambda: None)
        with pytest.raises(SystemExit) as exited, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.run(script_module.main)
    assert exited.value.code not in (0, None), f"{script} {args} should have failed:\n{out.getvalue()}{err.getvalue()}"
    runs = [r for r in store.all_runs() if r.info.run_id not in before]
    return ProjectResult(exited.value.code, out.getvalue(), err.getvalue(), runs)


def answers_csv(store, run) -> pd.DataFrame:
    text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/answers.csv")
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def artifact_table(run, name: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{name}")))


def traces_of(run) -> list:
    return mlflow.search_traces(locations=[run.info.experiment_id], run_id=run.info.run_id, return_type="list")


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error: ")]


def write_labels(path: Path, rows: list[dict], names=None) -> Path:
    """A labels CSV (review -P labels=...) with a column per criterion."""
    columns = ["question", *(names or labels.QUESTIONS), "comment"]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def human_feedback(trace_id: str) -> list:
    trace = mlflow.get_trace(trace_id)
    return [a for a in trace.info.assessments if a.feedback is not None and a.source.source_type == "HUMAN"]


def assert_totals_match_traces(run, traces) -> None:
    """The run's token, cost and latency figures are those of its traces (what the UI shows)."""
    metrics = run.data.metrics
    usage = [t.info.token_usage or {} for t in traces]
    assert metrics["prompt_tokens"] == sum(u.get("input_tokens", 0) for u in usage) > 0
    assert metrics["completion_tokens"] == sum(u.get("output_tokens", 0) for u in usage) > 0
    assert metrics["total_tokens"] == sum(u.get("total_tokens", 0) for u in usage)
    durations = sorted(t.info.execution_time_ms / 1000 for t in traces)
    assert metrics["latency_p50_seconds"] == pytest.approx(durations[(len(durations) + 1) // 2 - 1])
    assert metrics["latency_p95_seconds"] == pytest.approx(durations[-1])
    costs = [t.info.cost["total_cost"] for t in traces if t.info.cost]
    if costs:  # MLflow prices the model (its catalog knows the OpenAI models)
        assert metrics["cost_usd"] == pytest.approx(sum(costs))
    else:
        assert "cost_usd" not in metrics


def generate_and_judge(store, server, experiment: str, count: int, unsure: list[int] = ()) -> str:
    """A generation run of the first ``count`` questions, judged by evaluate_responses; the answers to
    the questions numbered in ``unsure`` hold UNSURE, so every judge says "no" to them. Its run id."""
    register_prompts_in_process()
    questions = [r["Question"] for r in project_questions()[:count]]
    server.answers = {questions[n - 1]: f"A short answer, marked {UNSURE}, that every judge rejects." for n in unsure}
    server.judge_no = [UNSURE]
    where = {"MLFLOW_EXPERIMENT_NAME": experiment}
    generated = run_script(store, f"{PROJECT}/generate_answers.py", "--max-questions", str(count), env=where)
    run_id = generated.run.info.run_id
    run_script(store, f"{PROJECT}/evaluate_responses.py", "--generation-run-id", run_id, env=where)
    return run_id

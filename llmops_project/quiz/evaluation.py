"""What the judges read, and what comes back, for every entry point that judges answers
(evaluate_responses, compare, optimize): the evaluation data built from traces, the count of judge
calls and errors, and the per-question table (evaluation_results.csv). The scorers themselves are
the talk's, in evaluate_responses.py."""

from __future__ import annotations

import mlflow
import pandas as pd

from quiz.decision import is_judge


def evaluation_data(answers: pd.DataFrame, expectations: dict) -> pd.DataFrame:
    """What the judges read: each answer's trace, and its question's correctness guidelines."""
    return pd.DataFrame(
        {
            "trace": [mlflow.get_trace(trace_id) for trace_id in answers["trace_id"]],
            "expectations": [{"guidelines": expectations[q]} for q in answers["question"]],
        }
    )


def judge_counts(results, scorers) -> dict[str, int]:
    """judge_calls: verdicts asked of a judge model (one per judge and answer); judge_errors: those
    that came back with an error or no value. Which scorers are judges, the objects tell."""
    table = results.tables["eval_results"]
    judges = [s.name for s in scorers if is_judge(s)]
    errors = 0
    for name in judges:
        value = table.get(f"{name}/value", pd.Series([None] * len(table)))
        error = table.get(f"{name}/error_message", pd.Series([None] * len(table)))
        errors += int((value.isna() | error.notna()).sum())
    return {"judge_calls": len(judges) * len(table), "judge_errors": errors}


def per_question(answers: pd.DataFrame, results, scorers) -> pd.DataFrame:
    """evaluation_results.csv: one row per question, each scorer's value and rationale."""
    table = results.tables["eval_results"].set_index("trace_id")
    rows = answers[["number", "category", "question", "trace_id"]].copy()
    for column in (f"{s.name}/{field}" for s in scorers for field in ("value", "rationale")):
        rows[column] = rows["trace_id"].map(table[column]) if column in table else None
    return rows

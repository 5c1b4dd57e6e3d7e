"""The rule ``compare`` uses to declare a winner among (prompt template, model) candidates.

With a handful of questions, a higher average can be luck. So a candidate wins only when:

1. it is *eligible*: every question answered and every judge verdict returned (no judge error);
2. it has the highest overall score (the mean, over questions, of the share of scorers it passes;
   a verdict of "unknown" counts as not passed, a failed question as 0);
3. against EVERY other candidate, question by question (the same questions, the same judges):
   * its overall score is higher by at least ``MIN_MARGIN``, and
   * it is better on clearly more questions than it is worse: a one-sided sign test over the
     questions where the two differ gives p <= ``ALPHA``. (6 better, 0 worse gives p = 0.016;
     4 better, 0 worse gives only p = 0.0625: with 4 questions nothing can win.)

Otherwise the decision is "no clear winner", with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

MIN_MARGIN = 0.05  # overall score points (scores are shares, 0..1)
ALPHA = 0.05  # largest one-sided sign-test p-value that counts as "better"
PASSING = {True, "yes", "true", "pass", "passed"}  # what a passed verdict looks like


@dataclass
class Candidate:
    """One (template, model) of a comparison, with its per-question scores."""

    template: str
    model: str
    scores: pd.Series  # per-question score, indexed by question number (failed question: 0)
    failed_questions: list[int] = field(default_factory=list)
    judge_errors: int = 0

    @property
    def name(self) -> str:
        return f"{self.template} @ {self.model}"

    @property
    def eligible(self) -> bool:
        return not self.failed_questions and not self.judge_errors

    @property
    def overall(self) -> float:
        return float(self.scores.mean()) if len(self.scores) else 0.0


@dataclass
class Decision:
    winner: Candidate | None
    reason: str

    @property
    def text(self) -> str:
        return f"winner: {self.winner.name}" if self.winner else "no clear winner"


def passed(value) -> float:
    """1.0 for a passed verdict (True, "yes"), 0.0 for anything else ("no", "unknown", missing)."""
    if isinstance(value, str):
        value = value.strip().lower()
    return 1.0 if value in PASSING else 0.0


def passed_table(results: pd.DataFrame, scorers: list[str], questions: list[int]) -> pd.DataFrame:
    """From evaluation_results.csv-shaped rows (``number``, ``<scorer>/value``): 1.0 where a question's
    verdict passed, 0.0 otherwise ("unknown", or a question with no row: it failed to answer); one
    row per question of ``questions``, one column per scorer."""
    table = results.set_index("number")[[f"{name}/value" for name in scorers]].map(passed)
    return table.reindex(questions, fill_value=0.0)


def question_scores(results: pd.DataFrame, scorers: list[str], questions: list[int]) -> pd.Series:
    """Per-question score: the share of ``scorers`` passed; a question with no row scores 0."""
    return passed_table(results, scorers, questions).mean(axis=1)


def pass_rates(results: pd.DataFrame, scorers: list[str], questions: list[int]) -> dict[str, float]:
    """``<scorer>/mean`` for the comparison table, counted as the rule counts: the share of the exam's
    questions whose verdict passed ("unknown", or a question not answered, counts as not passed).
    MLflow's own ``<scorer>/mean`` leaves unknown verdicts out, and is NaN when all are unknown."""
    rates = passed_table(results, scorers, questions).mean(axis=0)
    return {f"{name}/mean": float(rates[f"{name}/value"]) for name in scorers}


def sign_test(better: int, worse: int) -> float:
    """One-sided p-value of ``better`` wins out of ``better + worse`` if both were equally good."""
    n = better + worse
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(better, n + 1)) / 2**n


def paired(a: Candidate, b: Candidate) -> tuple[int, int, float]:
    """(questions where a is better, where a is worse, sign-test p of a better than b)."""
    difference = a.scores - b.scores.reindex(a.scores.index, fill_value=0.0)
    better, worse = int((difference > 0).sum()), int((difference < 0).sum())
    return better, worse, sign_test(better, worse)


def decide(candidates: list[Candidate]) -> Decision:
    """The winner by the rule above, or None and why."""
    if len(candidates) < 2:
        return Decision(None, "only one candidate: nothing to compare it with")
    ranked = sorted(candidates, key=lambda c: c.overall, reverse=True)
    leader = ranked[0]
    if not leader.eligible:
        problems = []
        if leader.failed_questions:
            problems.append(f"failed questions {leader.failed_questions}")
        if leader.judge_errors:
            problems.append(f"{leader.judge_errors} judge error(s)")
        return Decision(None, f"the best score, {leader.name}, has {' and '.join(problems)}: it cannot win")
    for other in ranked[1:]:
        margin = leader.overall - other.overall
        better, worse, p = paired(leader, other)
        if margin < MIN_MARGIN:
            how = "tied with" if margin == 0 else f"only {margin:+.2f} ahead of"
            return Decision(
                None, f"{leader.name} is {how} {other.name} (needs {MIN_MARGIN:+.2f} or more on the overall score)"
            )
        if p > ALPHA:
            return Decision(
                None,
                f"{leader.name} beats {other.name} on {better} question(s) and loses on {worse}: "
                f"sign test p = {p:.3f} > {ALPHA} (too few questions to tell; compare on more)",
            )
    runner_up = ranked[1]
    better, worse, p = paired(leader, runner_up)
    return Decision(
        leader,
        f"{leader.overall:.2f} vs {runner_up.overall:.2f} for {runner_up.name}; better on {better} question(s), "
        f"worse on {worse} (sign test p = {p:.3f} <= {ALPHA})",
    )


def comparison_table(candidates: list[Candidate], metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per candidate: overall score, then its run's metrics (pass rates, tokens, cost,
    latency), failed questions and judge errors."""
    rows = []
    for candidate in candidates:
        row = {"template": candidate.template, "model": candidate.model, "overall_score": round(candidate.overall, 4)}
        row.update(metrics[candidate.name])
        row["failed_questions"] = " ".join(map(str, candidate.failed_questions))
        row["judge_errors"] = candidate.judge_errors
        row["eligible"] = candidate.eligible
        rows.append(row)
    return pd.DataFrame(rows).sort_values("overall_score", ascending=False, kind="stable")

"""How ``compare`` (and ``optimize``) choose among (prompt template, model) candidates: which
evidence a decision may rest on, then the rule. This docstring is the rule; ``RULE`` is its one-line
form (the ``decision_rule`` tag), and the README quotes it.

The evidence: every candidate is scored by the same scorers, but not every scorer deserves trust.

* A code scorer (``enough_words``, ``not_too_many_words``) computes its verdict exactly: trusted.
* A judge (an LLM-as-a-judge: ``mlflow.genai.judges.Judge``) is trusted only when the latest
  ``review`` that measured it in the experiment, the same judge name with the same judge model,
  found it agreeing with the human labels beyond chance: Cohen's kappa >= ``MIN_KAPPA`` on at
  least ``MIN_LABELLED`` labelled answers.
* A judge measured on enough answers and found wanting (kappa below ``MIN_KAPPA``, or undefined:
  the human and the judge always said the same thing) is set aside and *not asked* by ``compare``:
  its verdicts could decide nothing, and each would cost a judge call (a paid one online; 1.5 s of
  the offline model). What it says of a candidate's answers, ``evaluate_responses`` still shows
  (``-P generation_run_id=`` the candidate's run).
* A judge that no review has measured, or only on fewer than ``MIN_LABELLED`` answers, is
  *advisory until reviewed*: asked, its verdicts shown beside the others (the pass rates, the
  chart, hatched), never counted. A review on enough answers decides whether it counts or is no
  longer asked.
* An *aligned* judge (``align``: a judge taught by a reviewer's labels, registered in the experiment
  as ``<judge>_aligned_to_<reviewer>``; ``compare -P judges=aligned``) is a judge like any other, by
  its own name and model. Its measurement is the one ``align`` makes on the labelled answers it
  held out, whose questions the alignment never saw: the same figures as a review's (agreement and
  kappa against the human labels), recorded the same way (``judge_agreement.csv`` on the align
  run), so the same thresholds apply. Measured on the answers it learnt from, any judge would look
  better than it is; and no review can measure it directly, because the reviewers' labels carry
  the criterion's name, not the aligned judge's. Not aligned, not measured: advisory. Aligned again
  and not yet measured (the align run stopped before measuring it): advisory too, whatever an
  older version of it measured.

The rule, on the trusted scorers only. With a handful of questions, a higher average can be luck.
So a candidate wins only when:

1. it is *eligible*: every question answered and every trusted judge's verdict returned (no error);
2. it has the highest overall score: the mean, over questions, of the share of trusted scorers it
   passes (a verdict of "unknown" counts as not passed, a failed question as 0);
3. against EVERY other candidate, question by question (the same questions, the same scorers):
   * its overall score is higher by at least ``MIN_MARGIN``, and
   * it is better on clearly more questions than it is worse: a one-sided sign test over the
     questions where the two differ gives p <= ``ALPHA``. (6 better, 0 worse gives p = 0.016;
     4 better, 0 worse gives only p = 0.0625: with 4 questions nothing can win.)

Otherwise the decision is "no clear winner", with the reason. Every reason comes back as text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

MIN_MARGIN = 0.05  # overall score points (scores are shares, 0..1)
ALPHA = 0.05  # largest one-sided sign-test p-value that counts as "better"
# Landis & Koch's scale (1977): kappa 0.41-0.60 is "moderate" agreement, below it "fair" or worse.
# Under 0.4 a judge's verdicts are too close to chance for a decision to rest on them.
MIN_KAPPA = 0.4
# With fewer labelled answers kappa is too unsteady to trust: on 4 answers, one verdict changed by
# the reviewer moves it by 0.5 or more; on 8, by about 0.25.
MIN_LABELLED = 8
# A verdict in words, as a judge gives it ("yes"/"no") or a human (the Review page, the terminal, a labels
# file: also y/n, true/false, pass/fail, 1/0). labels.verdict reads a human's with these same words.
PASS_WORDS = frozenset({"yes", "y", "true", "pass", "passed", "1"})
FAIL_WORDS = frozenset({"no", "n", "false", "fail", "failed", "0"})
PASSING = {True, *PASS_WORDS}  # what a passed verdict looks like (True is also 1 and 1.0)
NOT_ASKED = "not asked"  # the end of the reason of a judge measured and found wanting

RULE = (
    f"scorers: code scorers, and judges measured (by review, or on align's held-out answers) at kappa >= {MIN_KAPPA} "
    f"on >= {MIN_LABELLED} answers; "
    f"winner: eligible (no failed question, no trusted judge error), best overall score, and against every other "
    f"candidate a margin >= {MIN_MARGIN} and a one-sided sign test over the questions p <= {ALPHA}"
)


def passed(value) -> bool:
    """The one reading of a verdict, a judge's or a human's: True, 1, and the ``PASS_WORDS`` (any
    case: "yes", "y", "pass", "1"...) pass; False, "no", "unknown", None, NaN or anything else do not."""
    if isinstance(value, str):
        value = value.strip().lower()
    try:
        return value in PASSING
    except TypeError:  # unhashable (a list, a dict): not a verdict
        return False


# --- the evidence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """One judge measured against the human labels by a review run."""

    judge: str  # the judge's name (= the assessments' name)
    judge_model: str  # its model URI (= the LLM_JUDGE assessments' source id), e.g. openai:/gpt-4.1-mini
    labelled: int  # answers both the human and the judge gave a verdict on
    agreement: float
    kappa: float | None  # None: undefined (both always said the same thing)
    run_id: str = ""  # the review run that measured it


@dataclass
class Trust:
    """The scorers a decision may use (``kept``) and, for every judge set aside, why; of those, the
    ``advisory`` ones (not measured on enough answers) are still asked, shown and not counted."""

    kept: list[str]
    set_aside: dict[str, str] = field(default_factory=dict)
    why_kept: dict[str, str] = field(default_factory=dict)
    advisory: list[str] = field(default_factory=list)

    def asked(self, scorers) -> list:
        """The scorers a comparison runs: the trusted ones and the advisory ones; not the judges a
        measurement found wanting."""
        return [s for s in scorers if s.name in self.kept or s.name in self.advisory]

    def not_asked(self) -> dict[str, str]:
        """The judges set aside and not asked (measured on enough answers and found wanting), with why."""
        return {name: reason for name, reason in self.set_aside.items() if name not in self.advisory}

    def counted(self, scorers) -> list:
        """The scorers a decision counts, and an optimizer may learn from: the trusted ones only."""
        return [s for s in scorers if s.name in self.kept]

    def lines(self) -> list[str]:
        """One line per scorer, trusted first: what the output prints."""
        width = max([30, *map(len, [*self.kept, *self.set_aside])])  # an aligned judge's name is longer
        trusted = [f"  trusted     {name:{width}s} {self.why_kept.get(name, '')}" for name in self.kept]
        aside = [f"  set aside   {name:{width}s} {reason}" for name, reason in self.set_aside.items()]
        return trusted + aside

    def set_aside_text(self) -> str:
        """'english: never reviewed; correctness: kappa 0.00 on 4 answers ...' (tags, comparison.csv)."""
        return "; ".join(f"{name}: {reason}" for name, reason in self.set_aside.items()) or "none"


def is_judge(scorer) -> bool:
    """An LLM-as-a-judge (Guidelines, RelevanceToQuery, ExpectationsGuidelines, an aligned judge...),
    as opposed to a code scorer, told by the object itself."""
    from mlflow.genai.judges import Judge

    return isinstance(scorer, Judge)


def judge_model(scorer) -> str | None:
    """A judge's model URI (what its assessments record as their source id)."""
    return getattr(scorer, "model", None)


def trustworthy(measured: Measurement) -> bool:
    """Whether a judge so measured may decide: kappa >= MIN_KAPPA on >= MIN_LABELLED answers."""
    return measured.kappa is not None and measured.kappa >= MIN_KAPPA and measured.labelled >= MIN_LABELLED


def trusted(scorers, measurements: dict[tuple[str, str], Measurement]) -> Trust:
    """Sort ``scorers`` into those a decision may use and the judges it sets aside (with the reason),
    by the rule above. ``measurements``: the latest review measurement per (judge name, judge model)."""
    trust = Trust(kept=[])
    for scorer in scorers:
        if not is_judge(scorer):
            trust.kept.append(scorer.name)
            trust.why_kept[scorer.name] = "code scorer: exact"
            continue
        measured = measurements.get((scorer.name, judge_model(scorer)))
        if measured is None:
            trust.set_aside[scorer.name] = "never reviewed (advisory until a review measures it)"
            trust.advisory.append(scorer.name)
            continue
        if measured.labelled == 0:  # an aligned judge whose latest alignment did not measure it
            trust.set_aside[scorer.name] = f"not measured since its latest alignment (run {measured.run_id[:8]})"
            trust.advisory.append(scorer.name)
            continue
        kappa = "n/a" if measured.kappa is None else f"{measured.kappa:.2f}"
        found = f"kappa {kappa} on {measured.labelled} answers"
        if trustworthy(measured):
            trust.kept.append(scorer.name)
            trust.why_kept[scorer.name] = found
            continue
        reason = f"{found} (needs >= {MIN_KAPPA} on >= {MIN_LABELLED})"
        if measured.labelled < MIN_LABELLED:  # too few answers to tell either way: advisory
            trust.set_aside[scorer.name] = reason
            trust.advisory.append(scorer.name)
        else:  # enough answers, and no better than chance: compare does not ask it
            trust.set_aside[scorer.name] = f"{reason}; {NOT_ASKED}"
    return trust


# --- the candidates ----------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One candidate of a comparison (a prompt version, a model, a token budget): its verdicts,
    question by question."""

    name: str  # e.g. "basic @ gpt-4.1-mini", "basic v2 @ gpt-4.1-mini", "basic @ gpt-4.1-mini (8 tokens)"
    template: str
    version: int
    model: str
    verdicts: pd.DataFrame  # index: question numbers; a column per scorer: 1.0 passed, 0.0 not (failed question: 0)
    failed_questions: list[int] = field(default_factory=list)
    judge_errors: dict[str, int] = field(default_factory=dict)  # per judge: verdicts that came back with an error
    max_tokens: int | None = None

    def scores(self, kept: list[str]) -> pd.Series:
        """Per-question score: the share of the ``kept`` scorers passed."""
        return self.verdicts[kept].mean(axis=1) if kept else pd.Series(0.0, index=self.verdicts.index)

    def overall(self, kept: list[str]) -> float:
        scores = self.scores(kept)
        return float(scores.mean()) if len(scores) else 0.0

    def errors(self, kept: list[str]) -> int:
        return sum(count for name, count in self.judge_errors.items() if name in kept)

    def eligible(self, kept: list[str]) -> bool:
        return not self.failed_questions and not self.errors(kept)


def candidate(
    name: str,
    template: str,
    version: int,
    model: str,
    max_tokens: int | None,
    results: pd.DataFrame,
    scorers,
    questions: list[int],
    failed: list[int],
) -> Candidate:
    """A candidate from its evaluation: ``results`` shaped like evaluation_results.csv (``number``,
    ``<scorer>/value``, one row per answered question), the exam's question numbers, and the
    numbers of the questions it failed to answer."""
    names = [s.name for s in scorers]
    errors = {s.name: int(results[f"{s.name}/value"].isna().sum()) for s in scorers if is_judge(s)}
    verdicts = passed_table(results, names, questions)
    return Candidate(name, template, int(version), model, verdicts, list(failed), errors, max_tokens)


def passed_table(results: pd.DataFrame, scorers: list[str], questions: list[int]) -> pd.DataFrame:
    """From evaluation_results.csv-shaped rows (``number``, ``<scorer>/value``): 1.0 where a question's
    verdict passed, 0.0 otherwise ("unknown", or a question with no row: it failed to answer); one
    row per question of ``questions``, one column per scorer."""
    table = results.set_index("number")[[f"{name}/value" for name in scorers]].map(lambda v: float(passed(v)))
    table.columns = scorers
    return table.reindex(questions, fill_value=0.0)


def pass_rates(candidate: Candidate) -> dict[str, float]:
    """``<scorer>/mean`` for the comparison table, counted as the rule counts: the share of the exam's
    questions whose verdict passed ("unknown", or a question not answered, counts as not passed).
    MLflow's own ``<scorer>/mean`` leaves unknown verdicts out, and is NaN when all are unknown."""
    return {f"{name}/mean": float(rate) for name, rate in candidate.verdicts.mean(axis=0).items()}


# --- the decision ----------------------------------------------------------------------------------


@dataclass
class Decision:
    winner: Candidate | None
    reason: str
    trust: Trust

    @property
    def text(self) -> str:
        return f"winner: {self.winner.name}" if self.winner else "no clear winner"


def sign_test(better: int, worse: int) -> float:
    """One-sided p-value of ``better`` wins out of ``better + worse`` if both were equally good."""
    n = better + worse
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(better, n + 1)) / 2**n


def paired(a: Candidate, b: Candidate, kept: list[str]) -> tuple[int, int, float]:
    """(questions where a is better, where a is worse, sign-test p of a better than b)."""
    a_scores = a.scores(kept)
    difference = a_scores - b.scores(kept).reindex(a_scores.index, fill_value=0.0)
    better, worse = int((difference > 0).sum()), int((difference < 0).sum())
    return better, worse, sign_test(better, worse)


def decide(candidates: list[Candidate], trust: Trust) -> Decision:
    """The winner by the rule above, on the scorers ``trust`` keeps, or None and why."""
    kept = trust.kept
    if len(candidates) < 2:
        return Decision(None, "only one candidate: nothing to compare it with", trust)
    if not kept:
        return Decision(None, "no trusted scorer: every judge was set aside and there is no code scorer", trust)
    ranked = sorted(candidates, key=lambda c: c.overall(kept), reverse=True)
    leader = ranked[0]
    if not leader.eligible(kept):
        problems = []
        if leader.failed_questions:
            problems.append(f"failed questions {leader.failed_questions}")
        if leader.errors(kept):
            problems.append(f"{leader.errors(kept)} judge error(s)")
        return Decision(None, f"the best score, {leader.name}, has {' and '.join(problems)}: it cannot win", trust)
    for other in ranked[1:]:
        margin = leader.overall(kept) - other.overall(kept)
        better, worse, p = paired(leader, other, kept)
        if margin < MIN_MARGIN:
            how = "tied with" if margin == 0 else f"only {margin:+.2f} ahead of"
            return Decision(
                None,
                f"{leader.name} is {how} {other.name} (needs {MIN_MARGIN:+.2f} or more on the overall score)",
                trust,
            )
        if p > ALPHA:
            return Decision(
                None,
                f"{leader.name} beats {other.name} on {better} question(s) and loses on {worse}: "
                f"sign test p = {p:.3f} > {ALPHA} (too few questions to tell; compare on more)",
                trust,
            )
    runner_up = ranked[1]
    better, worse, p = paired(leader, runner_up, kept)
    return Decision(
        leader,
        f"{leader.overall(kept):.2f} vs {runner_up.overall(kept):.2f} for {runner_up.name} on {', '.join(kept)}; "
        f"better on {better} question(s), worse on {worse} (sign test p = {p:.3f} <= {ALPHA})",
        trust,
    )


def comparison_table(candidates: list[Candidate], metrics: dict[str, dict], trust: Trust) -> pd.DataFrame:
    """One row per candidate: overall score (on the trusted scorers), the pass rate of every scorer asked, its
    run's figures (tokens, cost, latency), failed questions and judge errors, and which evidence the
    decision used and set aside."""
    rows = []
    for one in candidates:
        row = {"candidate": one.name, "template": one.template, "version": one.version, "model": one.model}
        row["max_tokens"] = one.max_tokens
        row["overall_score"] = round(one.overall(trust.kept), 4)
        row.update({name: round(rate, 4) for name, rate in pass_rates(one).items()})
        row.update(metrics[one.name])
        row["failed_questions"] = " ".join(map(str, one.failed_questions))
        row["judge_errors"] = sum(one.judge_errors.values())
        row["eligible"] = one.eligible(trust.kept)
        row["trusted_scorers"] = " ".join(trust.kept)
        row["set_aside"] = trust.set_aside_text()
        rows.append(row)
    return pd.DataFrame(rows).sort_values("overall_score", ascending=False, kind="stable")

"""Human labels for ``review``: what a person is asked about each answer, where the answers come
from (MLflow's Review page, the trace's Add feedback, the terminal or a labels file), and how well
each judge agrees with the humans (share agreeing and Cohen's kappa).

The criteria are the judges of evaluate_responses.py (whatever is a ``Judge`` there), under the
judges' own names: a trace then holds, for each criterion, the judge's verdict (source LLM_JUDGE,
its model as source id) beside the human one (source HUMAN, the reviewer as source id).

Labels file (CSV, one row per question, ``review_labels.example.csv``)::

    question,correctness,relevance_to_query,software_engineering_related,reference_to_definition,english,comment
    What is computer science?,no,yes,yes,no,yes,Too vague: no algorithms or data structures.

``question`` is the exact text of questions.csv; a verdict is yes or no (also y/n, true/false,
pass/fail, 1/0: ``decision.PASS_WORDS`` and ``FAIL_WORDS``, the words ``decision.passed`` reads), or
empty for "not judged"; ``comment`` is optional.

In MLflow's Review page (MLflow 3.14+, UI: the experiment's Review), each criterion is a *label
schema* of the experiment (its name, its question as the instruction, a Yes/No input), and the
answers of a generation run are a *review queue*. An answer given there is the same assessment as
one logged by ``review``: name = the criterion, value True/False, source HUMAN (the UI's user;
"default" on a server without login).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException

from cli import UserError
from quiz import decision
from quiz.decision import Measurement, is_judge, passed

# What a reviewer is asked, per judge of the talk; another judge is asked about its own guidelines.
QUESTIONS = {
    "correctness": "Is it correct, by the question's guidelines?",
    "relevance_to_query": "Does it answer the question asked?",
    "software_engineering_related": "Does it put the question in the context of software engineering?",
    "reference_to_definition": "Does it reference or quote relevant definitions?",
    "english": "Is it in English?",
}
# Where the Review page keeps what a question needs: it shows the request and the answer only, and a
# question's correctness guidelines are the trace's expectation "guidelines" (evaluate_responses logs
# it, and review where it is missing), one click away.
IN_THE_REVIEW_PAGE = {"correctness": "(Its guidelines: View full trace, Assess, the expectation 'guidelines'.)"}
YES, NO = decision.PASS_WORDS, decision.FAIL_WORDS  # a verdict in a labels file or the terminal, read as passed() does
REVIEW_STEP = "review"  # the quiz.step tag of review runs (generation.STEP_TAG)
ALIGNMENT_STEP = "alignment"  # ... and of align runs, which measure the judges they align on held-out answers
# The tag an align run sets, before registering an aligned judge, to the judge's model: until that run
# has measured it, the judge's newest version is unmeasured, whatever older runs measured
REGISTERED_TAG = "quiz.registered."
AGREEMENT_ARTIFACT = "judge_agreement.csv"


def with_expectations(answers: pd.DataFrame, expectations: dict) -> pd.DataFrame:
    """The answers, each trace holding its question's correctness guidelines: logged where missing
    (as evaluate_responses does), so that a reviewer in the Review page and a judge of
    ``{{ expectations }}`` find them."""
    missing = [
        row
        for row in answers.itertuples()
        if not any(a.expectation is not None and a.name == "guidelines" for a in row.trace.info.assessments)
    ]
    for row in missing:
        mlflow.log_expectation(trace_id=row.trace_id, name="guidelines", value=expectations[row.question])
    if not missing:
        return answers
    return answers.assign(trace=[mlflow.get_trace(trace_id) for trace_id in answers["trace_id"]])


def criteria(scorers) -> dict[str, str]:
    """{judge name: the question a reviewer is asked} for every judge among ``scorers``, in their order."""
    found = {}
    for scorer in scorers:
        if is_judge(scorer):
            guidelines = getattr(scorer, "guidelines", None)
            asked = " ".join(guidelines) if isinstance(guidelines, list) else guidelines
            found[scorer.name] = QUESTIONS.get(scorer.name) or f"{asked or scorer.name}: does the answer pass?"
    return found


def verdict(text: str) -> bool | None:
    """'yes' -> True, 'no' -> False, '' -> None (not judged); anything else raises ValueError."""
    word = text.strip().lower()
    if not word:
        return None
    if word in YES or word in NO:
        return word in YES
    raise ValueError(word)


@dataclass
class Label:
    question: str
    verdicts: dict[str, bool]  # criterion -> verdict (criteria left empty are absent)
    comment: str = ""


def read_labels(path: Path, questions: list[str], names: list[str]) -> dict[str, Label]:
    """{question text: Label} from a labels CSV with columns for the criteria ``names``, every cell
    checked before anything is logged."""
    example = f"question,{','.join(names)},comment"
    fix = f"Fix {path.name} (header {example}; verdicts yes or no, or empty)"
    if not path.is_file():
        raise UserError(f"labels file {path} does not exist. Pass a CSV such as -P labels=review_labels.example.csv")
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in ("question", "comment", *names)]
        if "question" not in columns or unknown or not set(names) & set(columns):
            raise UserError(
                f"{path.name}: header is {','.join(columns)}, unexpected {unknown or 'missing columns'}. {fix}"
            )
        labels = {}
        for line, row in enumerate(reader, start=2):
            question = (row.get("question") or "").strip()
            if question not in questions:
                raise UserError(f"{path.name} line {line}: {question!r} is not a question of questions.csv. {fix}")
            if question in labels:
                raise UserError(f"{path.name} line {line}: {question!r} is labelled twice. {fix}")
            verdicts = {}
            for name in names:
                try:
                    value = verdict(row.get(name) or "")
                except ValueError:
                    raise UserError(
                        f"{path.name} line {line}: {name} = {row[name]!r} is not yes or no. {fix}"
                    ) from None
                if value is not None:
                    verdicts[name] = value
            labels[question] = Label(question, verdicts, (row.get("comment") or "").strip())
    return labels


# --- verdicts on a trace -------------------------------------------------------------------------------


def _feedback(trace, source_type: str):
    """The trace's valid feedback of that source, oldest first."""
    found = [
        a
        for a in trace.info.assessments
        if a.feedback is not None and a.source.source_type == source_type and a.valid is not False
    ]
    return sorted(found, key=lambda a: a.create_time_ms or 0)


def human_feedback(trace) -> list:
    """The trace's valid human verdicts (feedback, not the expectations judges are given), oldest first."""
    return _feedback(trace, "HUMAN")


def human_verdicts(trace, names, reviewer: str | None = None) -> dict[str, bool]:
    """{criterion: verdict}: per criterion of ``names``, the latest HUMAN verdict on this trace from
    ``reviewer``, or from anyone when ``reviewer`` is None (the Review page, Add feedback, the
    terminal and the labels file all log the same kind of assessment)."""
    latest = {}
    for a in human_feedback(trace):
        if a.name in names and (reviewer is None or a.source.source_id == reviewer) and a.feedback.error is None:
            latest[a.name] = passed(a.feedback.value)
    return latest


def judge_verdicts(trace, names) -> dict[tuple[str, str], bool]:
    """{(judge, judge model): verdict}: each judge's latest verdict on this trace, errors left out."""
    latest = {}
    for a in _feedback(trace, "LLM_JUDGE"):
        if a.name in names and a.feedback.error is None:
            latest[(a.name, a.source.source_id)] = passed(a.feedback.value)
    return latest


def pairs(traces, names, reviewer: str | None = None) -> dict[tuple[str, str], list[tuple[bool, bool]]]:
    """Per (judge, judge model): (human verdict, judge verdict) on every trace both judged: one pair
    per trace and judge, each the latest (see ``human_verdicts``)."""
    found: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    for trace in traces:
        human = human_verdicts(trace, names, reviewer)
        for (name, model), judged in judge_verdicts(trace, names).items():
            if name in human:
                found.setdefault((name, model), []).append((human[name], judged))
    return found


def kappa(human: list[bool], judge: list[bool]) -> float | None:
    """Cohen's kappa of two raters on the same items (None when chance agreement is 1: both
    raters always said the same one thing, so agreement beyond chance is undefined). Computed in
    fractions: a kappa of exactly 2/5 is 0.4, at the trust threshold, not 0.3999999999999998."""
    n = len(human)
    observed = Fraction(sum(h == j for h, j in zip(human, judge, strict=True)), n)
    yes_h, yes_j = Fraction(sum(human), n), Fraction(sum(judge), n)
    chance = yes_h * yes_j + (1 - yes_h) * (1 - yes_j)
    return None if chance == 1 else float((observed - chance) / (1 - chance))


COLUMNS = ["judge", "judge_model", "labelled", "agreement", "kappa", "human_yes", "judge_yes"]


def agreement_table(pairs: dict[tuple[str, str], list[tuple[bool, bool]]], order=()) -> pd.DataFrame:
    """One row per (judge, judge model), in the order of the judge names ``order`` (then the others):
    items both judged, share agreeing, Cohen's kappa, and the counts of yes from the humans and from
    the judge."""
    rank = {name: position for position, name in enumerate(order)}
    rows = []
    for (name, model), both in sorted(pairs.items(), key=lambda item: (rank.get(item[0][0], len(rank)), item[0])):
        human, judge = [h for h, _ in both], [j for _, j in both]
        rows.append(
            {
                "judge": name,
                "judge_model": model,
                "labelled": len(both),
                "agreement": sum(h == j for h, j in both) / len(both),
                "kappa": kappa(human, judge),
                "human_yes": sum(human),
                "judge_yes": sum(judge),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def measurements(experiment_id: str) -> dict[tuple[str, str], Measurement]:
    """The latest measurement of each (judge, judge model) in the experiment: from the
    judge_agreement.csv of the finished review runs and align runs (an aligned judge, on its held-out
    answers), newest run first (what ``compare`` trusts or sets aside). An aligned judge registered
    by an align run that did not measure it (stopped, failed, or every held-out verdict an error)
    counts as measured on 0 answers: its newest version is not the one older runs measured."""
    runs = [
        run
        for step, finished in ((REVIEW_STEP, " and attributes.status = 'FINISHED'"), (ALIGNMENT_STEP, ""))
        for run in mlflow.search_runs([experiment_id], f"tags.`quiz.step` = '{step}'{finished}", output_format="list")
    ]
    runs.sort(key=lambda run: run.info.start_time, reverse=True)
    found: dict[tuple[str, str], Measurement] = {}
    for run in runs:
        for row in _agreement_rows(run):
            if (row.judge, row.judge_model) not in found:
                found[(row.judge, row.judge_model)] = measurement(row, run.info.run_id)
        for tag, model in run.data.tags.items():
            name = tag.removeprefix(REGISTERED_TAG)
            if tag.startswith(REGISTERED_TAG) and (name, model) not in found:
                found[(name, model)] = Measurement(name, model, 0, 0.0, None, run.info.run_id)
    return found


def _agreement_rows(run) -> list:
    """The rows of a finished run's judge_agreement.csv (none for an unfinished run, an empty table, or
    a table written before judges were told apart by model: not evidence for any model)."""
    if run.info.status != "FINISHED":
        return []
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{AGREEMENT_ARTIFACT}")
    except Exception:  # a review that measured nothing logs an empty table; an old one may have none
        return []
    table = pd.read_csv(io.StringIO(text))
    return list(table.itertuples()) if "judge_model" in table else []


def measurement(row, run_id: str = "") -> Measurement:
    """A row of an agreement table (agreement_table, judge_agreement.csv) as a Measurement."""
    kappa_value = None if row.kappa is None or pd.isna(row.kappa) else float(row.kappa)
    return Measurement(row.judge, row.judge_model, int(row.labelled), float(row.agreement), kappa_value, run_id)


def print_agreement(
    table: pd.DataFrame,
    counted: str | None,
    title: str = "Judges against the humans",
    artifact: str = AGREEMENT_ARTIFACT,
    trusted_column: bool = True,
) -> None:
    """The agreement table as review prints it (align prints its before/after with the same words),
    and which artifact of the run holds it. ``trusted_column``: whether compare would trust each
    judge so measured (not for align's "before": compare never uses those re-stated judges)."""
    if table.empty:
        print("\nNo answer has both a human verdict and a judge's yet: nothing to compare.")
        return
    whose = f"{counted}'s latest verdict" if counted else "the latest human verdict, by anyone,"
    print(f"\n{title} ({whose} per answer; {artifact} on the run):")
    width = max(30, *(len(name) for name in table["judge"]))  # an aligned judge's name may be longer
    trust = "  trusted by compare?" if trusted_column else ""
    print(f"  {'judge':{width}s} {'model':22s} {'labelled':>8s} {'agreement':>9s} {'kappa':>6s}{trust}")
    for row in table.itertuples():
        kappa = "n/a" if row.kappa is None or pd.isna(row.kappa) else f"{row.kappa:.2f}"
        trusted = ("  yes" if decision.trustworthy(measurement(row)) else "  no") if trusted_column else ""
        figures = f"{row.labelled:8d} {row.agreement:9.2f} {kappa:>6s}"
        print(f"  {row.judge:{width}s} {row.judge_model:22s} {figures}{trusted}")
    print(
        "kappa: 1 = agrees as well as possible, 0 = no better than chance; n/a = everyone said the same. "
        f"compare trusts a judge at kappa >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED} answers."
    )


# --- MLflow's Review page: label schemas and a review queue ---------------------------------------------


def ensure_label_schemas(experiment_id: str, asked: dict[str, str]) -> list[str]:
    """One label schema per criterion in the experiment (its name, its question as the instruction,
    with where the page keeps what it needs: ``IN_THE_REVIEW_PAGE``; a Yes/No input), created once:
    an existing one is kept, its question brought up to date. The ids, in the order of ``asked``.
    (The Review page lists schemas newest first: created in reverse.)"""
    from mlflow.genai import label_schemas

    ids = {}
    for name, asked_here in reversed(asked.items()):
        question = " ".join(filter(None, [asked_here, IN_THE_REVIEW_PAGE.get(name)]))
        try:
            schema = label_schemas.get_label_schema(name, experiment_id=experiment_id)
        except MlflowException as missing:
            if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            schema = label_schemas.create_label_schema(
                name,
                type="feedback",
                input=label_schemas.InputPassFail(positive_label="Yes", negative_label="No"),
                instruction=question,
                experiment_id=experiment_id,
            )
        if not isinstance(schema.input, label_schemas.InputPassFail):
            raise UserError(
                f"the experiment's label schema {name!r} is not a Yes/No question, so the Review page cannot ask "
                "for this judge's verdict. Delete it in the UI (Review > questions) and run review again"
            )
        if schema.instruction != question:
            schema = label_schemas.update_label_schema(schema.schema_id, instruction=question)
        ids[name] = schema.schema_id
    return [ids[name] for name in asked]


def ensure_review_queue(experiment_id: str, name: str, schema_ids: list[str], trace_ids: list[str]):
    """The review queue ``name`` asking those schemas about those traces, created once (adding the
    same traces again adds nothing); an existing queue that asks other questions is set to ask these."""
    from mlflow.genai import review_queues

    try:
        queue = review_queues.get_review_queue(name=name, experiment_id=experiment_id)
    except MlflowException as missing:
        if missing.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        queue = review_queues.create_review_queue(
            name, queue_type="custom", schema_ids=schema_ids, experiment_id=experiment_id
        )
    else:
        if set(queue.schema_ids) != set(schema_ids):  # a question deleted and created again, or a judge added
            queue = _ask_anew(queue, schema_ids)
    review_queues.add_items_to_review_queue(queue.queue_id, item_ids=list(trace_ids))
    return queue


def _ask_anew(queue, schema_ids: list[str]):
    """The queue, asking ``schema_ids`` instead of the questions it was set up with. MLflow locks a
    queue's questions once it holds items ("Remove the items before changing its questions"): its
    items are taken out, the questions changed, and the items put back, to review again. The
    verdicts already given are assessments on the traces: they stay, and review counts them."""
    from mlflow.genai import review_queues

    items = [item.item_id for item in review_queues.list_review_queue_items(queue.queue_id, max_results=1000)]
    if items:
        review_queues.remove_items_from_review_queue(queue.queue_id, item_ids=items)
    queue = review_queues.update_review_queue(queue.queue_id, schema_ids=schema_ids)
    if items:
        review_queues.add_items_to_review_queue(queue.queue_id, item_ids=items)
    print(
        f"The review queue {queue.name!r} asked other questions (one deleted or added since): it now asks "
        f"these {len(schema_ids)}, its answers are to review again (verdicts given stay on the traces)"
    )
    return queue


def mark_reviewed(queue, trace_id: str, reviewer: str) -> None:
    """The queue's item of this trace marked complete by ``reviewer``, so that the Review page counts
    it reviewed: verdicts logged from the terminal or a file do not tell the queue by themselves (in
    the page, its Complete button does). Marking it again changes nothing, nor who completed it."""
    from mlflow.genai import review_queues

    review_queues.set_review_queue_item_status(
        queue.queue_id, item_id=trace_id, status="complete", completed_by=reviewer
    )


def queue_name(run) -> str:
    """The review queue of a generation run: its run name and the start of its id (unique, readable)."""
    return f"{run.info.run_name} {run.info.run_id[:8]}"

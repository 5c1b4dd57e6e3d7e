"""Human labels for ``review``: the criteria a person judges, the labels file, and how well each
judge agrees with the humans (share agreeing and Cohen's kappa).

The criteria carry the names of the LLM judges of evaluate_responses.py, so that a trace holds,
for each criterion, the judge's verdict (source LLM_JUDGE) beside the human one (source HUMAN).

Labels file (CSV, one row per question, ``review_labels.example.csv``)::

    question,correctness,relevance_to_query,software_engineering_related,reference_to_definition,english,comment
    What is computer science?,no,yes,yes,no,yes,Too vague: no algorithms or data structures.

``question`` is the exact text of questions.csv; a verdict is yes or no (also y/n, true/false,
pass/fail), or empty for "not judged"; ``comment`` is optional.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cli import UserError

# (name, what the reviewer is asked): the judges' names, in the order they are asked
CRITERIA = [
    ("correctness", "Is it correct, by the question's criteria (shown above)?"),
    ("relevance_to_query", "Does it answer the question asked?"),
    ("software_engineering_related", "Does it put the question in the context of software engineering?"),
    ("reference_to_definition", "Does it reference or quote relevant definitions?"),
    ("english", "Is it in English?"),
]
NAMES = [name for name, _ in CRITERIA]
YES, NO = {"yes", "y", "true", "pass", "1"}, {"no", "n", "false", "fail", "0"}


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


def read_labels(path: Path, questions: list[str]) -> dict[str, Label]:
    """{question text: Label} from a labels CSV, every cell checked before anything is logged."""
    example = f"question,{','.join(NAMES)},comment"
    fix = f"Fix {path.name} (header {example}; verdicts yes or no, or empty)"
    if not path.is_file():
        raise UserError(f"labels file {path} does not exist. Pass a CSV such as -P labels=review_labels.example.csv")
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in ("question", "comment", *NAMES)]
        if "question" not in columns or unknown or not set(NAMES) & set(columns):
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
            for name in NAMES:
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


def passed(value) -> bool:
    """A judge's verdict as yes/no: "yes" or True passes; "no", "unknown" or missing do not."""
    return str(value).strip().lower() in ("yes", "true")


def kappa(human: list[bool], judge: list[bool]) -> float | None:
    """Cohen's kappa of two raters on the same items (None when chance agreement is 1: both
    raters always said the same one thing, so agreement beyond chance is undefined)."""
    n = len(human)
    observed = sum(h == j for h, j in zip(human, judge, strict=True)) / n
    yes_h, yes_j = sum(human) / n, sum(judge) / n
    chance = yes_h * yes_j + (1 - yes_h) * (1 - yes_j)
    return None if chance == 1 else (observed - chance) / (1 - chance)


def agreement_table(pairs: dict[str, list[tuple[bool, bool]]]) -> pd.DataFrame:
    """One row per judge: items both judged, share agreeing, Cohen's kappa, and the counts of
    yes from the humans and from the judge."""
    rows = []
    for name, both in pairs.items():
        human, judge = [h for h, _ in both], [j for _, j in both]
        rows.append(
            {
                "judge": name,
                "labelled": len(both),
                "agreement": sum(h == j for h, j in both) / len(both),
                "kappa": kappa(human, judge),
                "human_yes": sum(human),
                "judge_yes": sum(judge),
            }
        )
    return pd.DataFrame(rows, columns=["judge", "labelled", "agreement", "kappa", "human_yes", "judge_yes"])

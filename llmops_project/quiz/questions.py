"""The exam: questions.csv (Category,Question,Weight) and the per-question expectations."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from cli import UserError
from quiz import EXPECTATIONS_JSON, QUESTIONS_CSV

COLUMNS = ["Category", "Question", "Weight"]
WEIGHTS = range(1, 5)  # the prompts say "Difficulty: {{weight}}/4"


@dataclass(frozen=True)
class Question:
    number: int  # 1-based position in questions.csv
    category: str
    text: str
    weight: int


def load_questions(path: Path = QUESTIONS_CSV, max_questions: int = -1) -> list[Question]:
    """The first ``max_questions`` questions (-1 = all), each row checked."""
    if max_questions == 0:
        raise UserError("max_questions=0 selects no question. Use -1 for all, or a positive number")
    fix = f"Fix {path.name} (header {','.join(COLUMNS)}; weights 1-4)"
    if not path.is_file():
        raise UserError(f"{path} does not exist. Run from the project folder or restore the file")
    with path.open(newline="", encoding="utf-8") as file:
        rows = list(csv.reader(file, skipinitialspace=True))
    if not rows or [cell.strip() for cell in rows[0]] != COLUMNS:
        raise UserError(f"{path.name}: header is {rows[0] if rows else 'missing'}, expected {COLUMNS}. {fix}")
    questions = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if len(row) != len(COLUMNS):
            raise UserError(
                f"{path.name} line {line}: {len(row)} fields, expected 3 (quote a question that contains commas). {fix}"
            )
        category, text, weight = (cell.strip() for cell in row)
        if not category or not text:
            raise UserError(f"{path.name} line {line}: empty Category or Question. {fix}")
        if not weight.isdigit() or int(weight) not in WEIGHTS:
            raise UserError(f"{path.name} line {line}: Weight {weight!r} is not a whole number 1-4. {fix}")
        questions.append(Question(len(questions) + 1, category, text, int(weight)))
    if not questions:
        raise UserError(f"{path.name} has no questions. {fix}")
    return questions if max_questions < 0 else questions[:max_questions]


def load_expectations(path: Path = EXPECTATIONS_JSON) -> dict[str, list[str]]:
    """{question text: [correctness guideline, ...]} (the talk's question-specific criteria)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as problem:
        raise UserError(f"cannot read {path.name}: {problem}. Restore it from the repository") from None
    data.pop("_about", None)
    for question, guidelines in data.items():
        if not (isinstance(guidelines, list) and guidelines and all(isinstance(g, str) for g in guidelines)):
            raise UserError(f"{path.name}: {question!r} needs a non-empty list of guideline strings. Fix the file")
    return data

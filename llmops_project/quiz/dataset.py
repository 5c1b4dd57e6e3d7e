"""The exam as an MLflow GenAI evaluation dataset (the UI's Datasets page), built from the files.

``questions.csv`` and ``expectations.json`` stay the one source of truth: edit them, and the next
evaluation brings the dataset up to date. One record per question: ``inputs`` = the question's
fields (what the prompt templates are filled with), ``expectations`` = ``{"guidelines": [...]}``
(what the ``correctness`` judge checks).

MLflow's own dataset digest changes on every write, and open-source MLflow keeps no dataset
versions, so the dataset carries two tags of ours:

* ``content_digest``: a hash of the records; equal files give an equal digest;
* ``version``: 1, 2, 3... raised only when the content digest changes.

``sync`` is idempotent: unchanged files write nothing (same MLflow digest, same version).
"""

from __future__ import annotations

import hashlib
import json

import mlflow
from mlflow.genai import datasets

from cli import UserError
from quiz.questions import load_expectations, load_questions

NAME = "se-exam"  # the dataset's name in the tracking store
DIGEST_TAG = "content_digest"
VERSION_TAG = "version"


def records(questions=None, expectations=None) -> list[dict]:
    """The exam's records, in question order (every question must have guidelines)."""
    questions = load_questions() if questions is None else questions
    expectations = load_expectations() if expectations is None else expectations
    missing = [q.text for q in questions if q.text not in expectations]
    if missing:
        raise UserError(f"expectations.json has no correctness guidelines for {missing[0]!r}. Add them")
    return [
        {
            "inputs": {"category": q.category, "question": q.text, "weight": q.weight},
            "expectations": {"guidelines": expectations[q.text]},
        }
        for q in questions
    ]


def content_digest(exam: list[dict]) -> str:
    text = json.dumps([[r["inputs"], r["expectations"]] for r in exam], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def sync(experiment_id: str, exam: list[dict] | None = None):
    """The exam dataset, created or brought up to date, and linked to ``experiment_id``.
    Returns ``(dataset, version, changed)``."""
    exam = records() if exam is None else exam
    digest = content_digest(exam)
    found = datasets.search_datasets(filter_string=f"name = '{NAME}'", order_by=["created_time ASC"])
    if not found:
        dataset = datasets.create_dataset(name=NAME, experiment_id=[experiment_id], tags={VERSION_TAG: "0"})
    else:
        dataset = found[0]  # two concurrent first runs could create two: the oldest wins
        if experiment_id not in dataset.experiment_ids:
            dataset = datasets.add_dataset_to_experiments(dataset.dataset_id, [experiment_id])
    tags = dataset.tags or {}
    if tags.get(DIGEST_TAG) == digest:
        return dataset, int(tags[VERSION_TAG]), False

    # Changed files: drop records of questions that are gone, upsert the others (keyed on inputs)
    wanted = {json.dumps(r["inputs"], sort_keys=True) for r in exam}
    stale = [
        row["dataset_record_id"]
        for _, row in dataset.to_df().iterrows()
        if json.dumps(row["inputs"], sort_keys=True) not in wanted
    ]
    if stale:
        dataset.delete_records(stale)
    dataset.merge_records(exam)
    version = int(tags.get(VERSION_TAG) or 0) + 1
    datasets.set_dataset_tags(dataset.dataset_id, {DIGEST_TAG: digest, VERSION_TAG: str(version)})
    return datasets.get_dataset(dataset_id=dataset.dataset_id), version, True


def expectations_of(dataset) -> dict[str, list[str]]:
    """{question text: guidelines}, as stored in the dataset."""
    table = dataset.to_df()
    pairs = zip(table["inputs"], table["expectations"], strict=True)
    return {inputs["question"]: expected["guidelines"] for inputs, expected in pairs}


def log_use(dataset, version: int) -> None:
    """Record on the active run which exam dataset (and version) it was judged against."""
    mlflow.log_input(dataset, context="evaluation", tags={VERSION_TAG: str(version)})
    mlflow.log_params({"dataset_name": dataset.name, "dataset_version": version})
    mlflow.set_tags({"quiz.dataset_id": dataset.dataset_id, "quiz.dataset_digest": dataset.tags[DIGEST_TAG]})

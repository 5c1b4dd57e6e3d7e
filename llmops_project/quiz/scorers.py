"""The talk's evaluation criteria (pt. 3-4), plus the per-question correctness judge.

The code scorers read the answer from the trace's outputs, which differ by generator:
the OpenAI SDK's trace ends in a ChatCompletion ({'choices': [...]}), the LangChain agent's in
its final state ({'messages': [...]}).
"""

from __future__ import annotations

from mlflow.entities import Feedback
from mlflow.genai.scorers import ExpectationsGuidelines, Guidelines, RelevanceToQuery, scorer

MIN_WORDS, MAX_WORDS = 10, 1000


def answer_text(outputs) -> str:
    """The final answer in an OpenAI or LangChain trace output (or a plain string)."""
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict) and outputs.get("choices"):
        content = outputs["choices"][-1]["message"]["content"]
    elif isinstance(outputs, dict) and outputs.get("messages"):
        content = outputs["messages"][-1]["content"]
    else:
        return ""
    if isinstance(content, list):  # content blocks
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


@scorer
def enough_words(outputs) -> Feedback:
    word_count = len(answer_text(outputs).split())
    score = word_count >= MIN_WORDS
    rationale = (
        f"The response has more than {MIN_WORDS} words: {word_count}"
        if score
        else f"The response does not have enough words because it has less than {MIN_WORDS} words: {word_count}."
    )
    return Feedback(value=score, rationale=rationale)


@scorer
def not_too_many_words(outputs) -> Feedback:
    word_count = len(answer_text(outputs).split())
    score = word_count <= MAX_WORDS
    rationale = (
        f"The response has less than {MAX_WORDS} words: {word_count}"
        if score
        else f"The response has too many words: {word_count}."
    )
    return Feedback(value=score, rationale=rationale)


def guidelines_model(model: str | None = None):
    """The talk's scorers, then 'correctness': each question's own guidelines from
    expectations.json, judged by MLflow's expectation-aware ExpectationsGuidelines."""
    yield Guidelines(model=model, name="english", guidelines="The answer should be in English.")
    yield Guidelines(
        model=model,
        name="software_engineering_related",
        guidelines="The answer is correctly contextualizing the question within the domain of software engineering.",
    )
    yield Guidelines(
        model=model,
        name="reference_to_definition",
        guidelines="The answer should reference and/or quote relevant definitions "
        "for the concepts mentioned in the question.",
    )
    yield RelevanceToQuery(model=model)
    yield enough_words
    yield not_too_many_words
    yield ExpectationsGuidelines(model=model, name="correctness")


SCORER_NAMES = [
    "english",
    "software_engineering_related",
    "reference_to_definition",
    "relevance_to_query",
    "enough_words",
    "not_too_many_words",
    "correctness",
]

"""What ``optimize`` needs besides the slide's calls (``mlflow.genai.optimize_prompts``, then
``set_prompt_alias`` on a clear decision): the template to start from, the exam split into train and
held-out questions, the rows and the ``predict_fn`` the optimizer runs, the optimizers, and the tags
that say where a prompt version came from.

* ``metaprompt`` (default): ``MetaPromptOptimizer``, one pass. It scores the template on the train
  questions, asks the reflection model once for a better template (a JSON answer), and scores that.
  No extra package; the fastest (3 model calls per train question, plus one).
* ``gepa``: ``GepaPromptOptimizer`` (the ``gepa`` package), iterative: it reflects on the questions
  scored below 1 and proposes new templates, within ``GEPA_CALLS_PER_QUESTION`` x the train questions
  of ``predict_fn`` calls.

``optimize_prompts`` registers its result as a new version of the prompt whatever happened: when the
optimizer failed to improve (e.g. the reflection model's answer was unusable), that version holds the
same template. ``changed`` tells, and ``optimize`` says so.
"""

from __future__ import annotations

import random
import re

import mlflow

import cli
from quiz import comparison, generation, options
from quiz.questions import Question

OPTIMIZERS = ("metaprompt", "gepa")
CHAMPION = comparison.CHAMPION  # -P template=champion: the template whose version holds @champion
GEPA_CALLS_PER_QUESTION = 4  # GEPA's budget: predict_fn calls per train question
REFLECTION_TOKENS = 1024  # the reflection answer is one template: plenty, and it fits a small local model
REFLECTION_TEXT_CHARS = 160  # offline, per stretch of text between a template's variables (reflection_format)
MIN_TRAIN, MIN_HELD_OUT = 1, 2  # questions


def starting_prompt(template: str):
    """The prompt version to optimize: the one @champion holds (``champion``: whichever template
    holds it), else the named template's @production."""
    names = options.user_templates() if template == CHAMPION else [template]
    for name in names:
        found = mlflow.genai.load_prompt(f"prompts:/{name}@{CHAMPION}", allow_missing=True, cache_ttl_seconds=0)
        if found:
            return found
    if template == CHAMPION:
        compare = generation.command_here("compare", {"templates": "basic,practical"})
        raise cli.UserError(
            f"no prompt template has the alias @{CHAMPION} yet. Let compare pick one first ({compare}), "
            "or name one: -P template=basic"
        )
    found = mlflow.genai.load_prompt(f"prompts:/{template}@{generation.ALIAS}", allow_missing=True)
    generation.require_prompts(found)
    return found


def split(questions: list[Question], held_out: float, seed: int) -> tuple[list[Question], list[Question]]:
    """(train, held-out) questions, seeded, each part in exam order; the held-out ones are never shown
    to the optimizer, so the comparison after it is fair."""
    shuffled = list(questions)
    random.Random(seed).shuffle(shuffled)
    count = round(held_out * len(shuffled))
    held, train = shuffled[:count], shuffled[count:]
    if len(train) < MIN_TRAIN or len(held) < MIN_HELD_OUT:
        raise cli.UserError(
            f"{len(questions)} question(s) split into {len(train)} to optimize on and {len(held)} held out; "
            f"optimizing needs at least {MIN_TRAIN} and comparing at least {MIN_HELD_OUT}. "
            "Use more questions or another split, e.g. -P max_questions=12 -P held_out=0.5"
        )
    return sorted(train, key=lambda q: q.number), sorted(held, key=lambda q: q.number)


def train_rows(questions: list[Question], expectations: dict) -> list[dict]:
    """optimize_prompts' train_data: the template's variables, and the question's correctness guidelines."""
    return [
        {
            "inputs": {"category": q.category, "question": q.text, "weight": q.weight},
            "expectations": {"guidelines": expectations[q.text]},
        }
        for q in questions
    ]


def predict_fn(client, system, prompt, model: str, temperature: float, max_tokens: int, seed: int):
    """What optimize_prompts calls for each row: THE answerer of compare (quiz/generation.py), which
    fills in ``prompt``'s template, the one the optimizer swaps for each candidate template."""
    answer = generation.chat_answerer(client, system, prompt, model, temperature, max_tokens, seed)

    def predict(category: str, question: str, weight) -> str:
        return answer(Question(0, category, question, int(weight))).text

    return predict


def optimizer(name: str, reflection_model: str, train_questions: int, prompt, offline: bool = False):
    """The prompt optimizer ``name`` for ``prompt``. ``offline``: the reflection model is the offline
    server's, which MetaPromptOptimizer also asks for its answer's exact shape (``reflection_format``)."""
    if name == "gepa":
        from mlflow.genai.optimize.optimizers import GepaPromptOptimizer

        return GepaPromptOptimizer(
            reflection_model=reflection_model, max_metric_calls=GEPA_CALLS_PER_QUESTION * train_questions
        )
    from mlflow.genai.optimize.optimizers import MetaPromptOptimizer

    asked = {"max_completion_tokens": REFLECTION_TOKENS}
    if offline:
        asked["response_format"] = reflection_format(prompt)
    return MetaPromptOptimizer(reflection_model=reflection_model, lm_kwargs=asked)


def reflection_format(prompt) -> dict:
    """Structured output for MetaPromptOptimizer's reflection answer: the JSON it parses,
    ``{"<prompt name>": "<new template>"}``, the template keeping the prompt's variables in their
    order (MLflow refuses a template that lost one) with at most ``REFLECTION_TEXT_CHARS`` characters
    of one-line text around each (no braces, quotes, backslashes or control characters).

    Sent to the offline server only. Asked for plain JSON (MLflow's JSON mode), its 135M model nests
    objects where the template is due, and MetaPromptOptimizer returns the prompt unchanged: with
    this, it writes a template, and the comparison after it judges that template. OpenAI's models
    answer the plain JSON mode as asked, and this schema was not tried against OpenAI here."""
    text = r'[^{}"\\\x00-\x1f]' + f"{{0,{REFLECTION_TEXT_CHARS}}}"
    variables = re.findall(r"\{\{\s*(\w+)\s*\}\}", prompt.template)
    pattern = "^" + text + "".join(r"\{\{" + variable + r"\}\}" + text for variable in variables) + "$"
    schema = {
        "type": "object",
        "properties": {prompt.name: {"type": "string", "pattern": pattern}},
        "required": [prompt.name],
        "additionalProperties": False,
    }
    return {"type": "json_schema", "json_schema": {"name": "improved_prompts", "strict": True, "schema": schema}}


def changed(old, new) -> bool:
    return " ".join(new.template.split()) != " ".join(old.template.split())


def origin_tags(old, result, run_id: str, is_changed: bool) -> dict[str, str]:
    """The tags of the version optimize_prompts registered: where it came from and how."""
    return {
        "quiz.optimized_from": f"{old.name} v{old.version}",
        "quiz.optimizer": result.optimizer_name,
        "quiz.optimize_run": run_id,
        "quiz.template_changed": str(is_changed).lower(),
    }


def print_split(prompt, name: str, train: list[Question], held_out: list[Question], seed: int) -> None:
    def numbers(questions):
        return ", ".join(f"Q{q.number}" for q in questions)

    print(f"Optimizing {prompt.name} v{prompt.version} with {name} on {len(train)} question(s): {numbers(train)}")
    print(f"Held out for the comparison: {numbers(held_out)} (seed {seed})")


def report(old, new, result, is_changed: bool) -> None:
    """On the optimize run (tags, the scores on the train questions) and printed: what was registered,
    and whether its template changed."""
    mlflow.set_tags(
        {"quiz.optimized_prompt": f"{new.name} v{new.version}", "quiz.template_changed": str(is_changed).lower()}
    )
    scores = {"initial_score": result.initial_eval_score, "final_score": result.final_eval_score}
    mlflow.log_metrics({name: value for name, value in scores.items() if value is not None})
    print(
        f"\noptimize_prompts registered {new.name} v{new.version} "
        f"(score on the train questions {result.initial_eval_score} -> {result.final_eval_score})."
    )
    if is_changed:
        print(f"New template:\n{new.template}")
        return
    mlflow.set_tag("decision", "no comparison: the template did not change")
    print(
        f"Its template is the same as v{old.version}'s: {result.optimizer_name} changed nothing "
        "(MLflow registers a version all the same). Nothing to compare."
    )


def run_name(name: str, prompt) -> str:
    return f"{name}-{prompt.name}-v{prompt.version}"

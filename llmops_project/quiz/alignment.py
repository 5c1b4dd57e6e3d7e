"""What ``align`` needs besides the slide's call (``judge.align(traces, optimizer)``): judges that
MLflow can align, the labelled answers split by question, the optimizers and their minimums, the
aligned judge's name, and the judges measured against the humans before and after.

**Which judges.** MLflow 3.17.2 cannot usefully align the talk's built-in judges: SIMBA and GEPA
refuse ``Guidelines`` and ``RelevanceToQuery`` (their instructions hold template variables that
``make_judge`` does not accept), and MemAlign returns a judge that raises when it is called
(``Guidelines.__call__`` takes no ``expectations``); an aligned ``ExpectationsGuidelines`` is a
generic judge whose memory is never put in its prompt. So ``align`` aligns a re-statement of each
criterion written with ``mlflow.genai.judges.make_judge``: the same guideline text (read from the
talk's judge, so evaluate_responses.py stays its one source), ``{{ inputs }}`` and ``{{ outputs }}``
(and ``{{ expectations }}`` for correctness), and a True/False verdict (``feedback_value_type=bool``),
because the optimizers compare the judge's answer with the human label as text: a yes/no judge never
"agrees" with a label True. "Before" is that re-statement unaligned, "after" the aligned one: the
same judge, with and without what it learnt.

**Which optimizer** (``-P optimizer``; ``memalign`` by default, measured by
benchmarks/align_optimizers.py, see the README):

* ``memalign`` (MLflow's default): distils guidelines from the labels and keeps the labelled
  examples to retrieve the most similar ones for each new answer; works from 1 labelled answer
  (1 chat and 1 embeddings request to align on 12), but needs an embeddings endpoint
  (``/v1/embeddings``: OpenAI, or the offline server, which serves the model's own embeddings);
* ``simba`` and ``gepa`` (DSPy): rewrite the judge's instructions; at least 10 labelled answers to
  align on (``MIN_LABELS``). SIMBA's default budget made 1,124 chat requests to align on 12
  answers, so a small one is set here (136); GEPA's, 4 judge calls per answer, made 57.

**The aligned judge's name** says what it is: ``<criterion>_aligned_to_<reviewer>``. The optimizers
find the human labels by the judge's name, so the criterion's name is used while aligning, and the
result is renamed after. A MemAlign judge reads its labelled examples back from the traces by name
whenever it is loaded (``load``): under the criterion's name, as they were logged.
"""

from __future__ import annotations

import copy
import importlib.util
import math
import random
import re
from dataclasses import dataclass

import pandas as pd

import cli
from quiz import decision, generation, labels, provider

OPTIMIZERS = ("memalign", "simba", "gepa")
MIN_LABELS = {"memalign": 1, "simba": 10, "gepa": 10}  # labelled answers to align on (MLflow 3.17.2's checks)
MIN_HELD_OUT = 2  # held-out labelled answers per judge: with fewer, agreement is one answer's luck
ARTIFACT = "judge_alignment.csv"  # before and after, per judge
ALIGNED = "_aligned_to_"  # <criterion>_aligned_to_<reviewer>
EMBEDDING_MODEL = "openai:/text-embedding-3-small"  # MemAlign's default; the offline server answers any name
# MemAlign's default vector size, passed to it explicitly so that require_embeddings asks the provider
# exactly what MemAlign will ask (a server that rejects `dimensions` is then one line, not a traceback)
EMBEDDING_DIM = 512
SIMBA_BUDGET = {"max_steps": 2, "num_candidates": 2}  # DSPy's defaults (8, 6): 1,124 requests for 12 answers
GEPA_CALLS_PER_ANSWER = 4  # MLflow's default budget for GEPA: 4 judge calls per labelled answer

ASKED = {  # what each criterion's re-statement asks, beyond the guideline text of the talk's judge
    "relevance_to_query": "Does the answer address the question that was asked, rather than another question?",
}


def statement(scorer) -> str:
    """The instructions of a criterion's ``make_judge`` re-statement (template variables included)."""
    read = "Read the exam question in {{ inputs }} and the answer in {{ outputs }}."
    if scorer.name == "correctness" or "expectations" in {f.name for f in scorer.get_input_fields()}:
        return (
            f"{read} The question's correctness guidelines are in {{{{ expectations }}}}. "
            "Is the answer correct by every one of those guidelines? Answer true if it is, false if it is not."
        )
    guidelines = getattr(scorer, "guidelines", None)
    text = " ".join(guidelines) if isinstance(guidelines, list) else guidelines
    asked = ASKED.get(scorer.name) or f"Does the answer meet this guideline: {text}"
    return f"{read} {asked} Answer true if it does, false if it does not."


def restated(scorers, model: str) -> dict:
    """{criterion: its make_judge re-statement} for every judge among ``scorers``, in their order."""
    from mlflow.genai.judges import make_judge

    return {
        s.name: make_judge(name=s.name, instructions=statement(s), model=model, feedback_value_type=bool)
        for s in scorers
        if decision.is_judge(s)
    }


def aligned_name(criterion: str, reviewer: str) -> str:
    """correctness, instructor -> correctness_aligned_to_instructor (letters, digits and _ only)."""
    return f"{criterion}{ALIGNED}{re.sub(r'[^A-Za-z0-9]+', '_', reviewer).strip('_').lower() or 'anyone'}"


def criterion_of(name: str) -> str:
    return name.split(ALIGNED)[0]


# --- the labelled answers, split by question -------------------------------------------------------


@dataclass
class Split:
    align: list[str]  # questions whose answers the optimizer learns from
    held_out: list[str]  # questions whose answers measure the judge before and after

    def lines(self, numbers: dict[str, int]) -> list[str]:
        shown = {
            part: ", ".join(f"Q{numbers[q]}" for q in sorted(qs, key=numbers.get)) for part, qs in vars(self).items()
        }
        return [
            f"  align on   {len(self.align):3d} question(s): {shown['align']}",
            f"  held out   {len(self.held_out):3d} question(s): {shown['held_out']}",
        ]

    def of(self, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The rows of ``table`` (labelled answers, column ``question``) in each part: (align, held out)."""
        return table[table["question"].isin(self.align)], table[table["question"].isin(self.held_out)]


def split(questions: list[str], held_out: float, seed: int) -> Split:
    """The labelled questions in two parts, seeded: ``held_out`` of them (at least one) measure, the
    others align. By question, so that no answer to a held-out question teaches the judge."""
    shuffled = sorted(set(questions))
    random.Random(seed).shuffle(shuffled)
    count = min(len(shuffled), max(1, round(held_out * len(shuffled))))
    return Split(align=shuffled[count:], held_out=shuffled[:count])


def labelled(answers: pd.DataFrame, criterion: str, reviewer: str | None) -> pd.DataFrame:
    """The answers (rows of ``generation.traced_answers``) with a human verdict on ``criterion``
    (``reviewer``'s, or anyone's latest when None), in column ``human``."""
    verdicts = [labels.human_verdicts(trace, [criterion], reviewer).get(criterion) for trace in answers["trace"]]
    found = answers.assign(human=verdicts)
    return found[found["human"].notna()].reset_index(drop=True)


def more_to_review(have: int, need: int, held_out: float) -> int:
    """Answers of new questions to label so that the alignment part has ``need`` (the held-out share
    of them goes to the other part)."""
    return math.ceil((need - have) / max(1e-9, 1 - held_out))


def reviewer_only(trace, criterion: str, reviewer: str | None):
    """The trace as the optimizer should see it: of the human verdicts on ``criterion``, only
    ``reviewer``'s (a copy; the stored trace is unchanged). None: everyone's, as stored."""
    if reviewer is None:
        return trace
    kept = copy.deepcopy(trace)
    kept.info.assessments = [
        a
        for a in kept.info.assessments
        if not (a.name == criterion and a.source.source_type == "HUMAN" and a.source.source_id != reviewer)
    ]
    return kept


def reviewers(table: pd.DataFrame, criterion: str) -> str:
    """Who labelled these answers on ``criterion``: their names joined by _, for the aligned judge's name."""
    names = {a.source.source_id for t in table["trace"] for a in labels.human_feedback(t) if a.name == criterion}
    return "_".join(sorted(names)) or "anyone"


# --- the optimizers --------------------------------------------------------------------------------

EXTRA = "requirements-align.txt"  # dspy, litellm, gepa: the repository's optional extra for aligning judges


def require_extra(what: str = "aligning a judge", module: str = "dspy") -> None:
    """Stop with one line when the optional extra that ``what`` needs is not installed."""
    if importlib.util.find_spec(module) is None:
        raise cli.UserError(
            f"{what} needs {module}, of the optional extra {EXTRA} (dspy, litellm, gepa), which is not installed. "
            f"Install it: make align-install (from the repository root), or pip install -r {EXTRA}; then run "
            "mlflow run with --env-manager=local (an environment MLflow builds has python_env.yaml's packages only)"
        )


def require_embeddings(embedding_model: str) -> None:
    """MemAlign embeds the labelled examples while aligning and each answer while judging: one line,
    before any run, when the provider does not serve ``/v1/embeddings`` (some OpenAI-compatible
    servers do not), instead of a traceback from inside the optimizer."""
    provider_name, _, model = embedding_model.partition(":/")
    if provider_name != "openai":
        return  # another provider: MLflow and litellm reach it their own way
    try:
        provider.openai_client().embeddings.create(
            model=model, input=["What is software engineering?"], dimensions=EMBEDDING_DIM
        )
    except Exception as problem:  # any answer but vectors: the provider cannot serve MemAlign
        said = str(problem).splitlines()[0][:200]
        raise cli.UserError(
            f"MemAlign needs embeddings, and {provider.endpoint()}/embeddings did not give them for {model} ({said}). "
            "Use a provider that serves them (OpenAI, the offline server: make local-llm), another "
            "-P embedding_model, or -P optimizer=gepa with at least 10 labelled answers to align on"
        ) from None


def optimizer(name: str, model: str, embedding_model: str, labelled_answers: int):
    """The alignment optimizer ``name``, with the judge model as its own LLM, on a small budget."""
    from mlflow.genai.judges import optimizers

    if name == "memalign":
        return optimizers.MemAlignOptimizer(
            reflection_lm=model, embedding_model=embedding_model, embedding_dim=EMBEDDING_DIM
        )
    if name == "simba":
        return optimizers.SIMBAAlignmentOptimizer(
            model=model, batch_size=min(10, labelled_answers), simba_kwargs=SIMBA_BUDGET
        )
    return optimizers.GEPAAlignmentOptimizer(model=model, max_metric_calls=GEPA_CALLS_PER_ANSWER * labelled_answers)


def renamed(aligned, name: str):
    """The aligned judge under ``name``, what it learnt kept: a MemAlign judge keeps its distilled
    guidelines and the ids of its labelled examples (read back by ``load``); a SIMBA or GEPA judge is
    its new instructions."""
    from mlflow.genai.judges import make_judge

    if str(aligned.kind).endswith("MEMORY_AUGMENTED"):
        from mlflow.genai.judges.optimizers.memalign.optimizer import MemoryAugmentedJudge

        base = aligned._base_judge
        judge = MemoryAugmentedJudge(
            base_judge=make_judge(
                name=name, instructions=base.instructions, model=base.model, feedback_value_type=bool
            ),
            reflection_lm=aligned._reflection_lm,
            retrieval_k=aligned._retrieval_k,
            embedding_model=aligned._embedding_model,
            embedding_dim=aligned._embedding_dim,
            _defer_init=True,
        )
        judge._semantic_memory = copy.deepcopy(aligned._semantic_memory)
        judge._episodic_trace_ids = list(aligned._episodic_trace_ids)
        return judge
    return make_judge(name=name, instructions=aligned.instructions, model=aligned.model, feedback_value_type=bool)


def load(name: str, experiment_id: str):
    """A registered aligned judge, ready to judge, as ``compare`` and ``align``'s "after" use it. A
    MemAlign judge reads its labelled examples back from their traces, where the human verdicts carry
    the criterion's name: it is given the criterion's name while it reads them."""
    from mlflow.genai.scorers import get_scorer

    judge = get_scorer(name=name, experiment_id=experiment_id)
    if str(judge.kind).endswith("MEMORY_AUGMENTED"):
        from mlflow.genai.judges import make_judge

        own = judge._base_judge
        judge._base_judge = make_judge(
            name=criterion_of(name), instructions=own.instructions, model=own.model, feedback_value_type=bool
        )
        try:
            judge._lazy_init()  # embeds the examples: the embeddings endpoint must answer
        finally:
            judge._base_judge = own
    return judge


def registered(experiment_id: str) -> list[str]:
    """The names of the aligned judges registered in the experiment, sorted."""
    from mlflow.genai.scorers import list_scorers

    return sorted({s.name for s in list_scorers(experiment_id=experiment_id) if ALIGNED in s.name})


# --- before and after ------------------------------------------------------------------------------


def with_verdict(trace, criterion: str, feedback):
    """A copy of ``trace`` whose one judge verdict on ``criterion`` is ``feedback``, under the
    criterion's name as the human verdicts are: what ``labels.pairs`` reads. Not logged: the stored
    trace keeps the verdicts evaluate_responses gave it."""
    verdict = copy.copy(feedback)
    verdict.name = criterion
    kept = copy.copy(trace)
    kept.info = copy.copy(trace.info)
    kept.info.assessments = [
        a for a in trace.info.assessments if not (a.name == criterion and a.source.source_type == "LLM_JUDGE")
    ] + [verdict]
    return kept


@dataclass
class Measured:
    """A judge measured against the humans on the held-out answers."""

    judge: str
    table: pd.DataFrame  # one row shaped like review's judge_agreement.csv; none when every verdict errored
    errors: int  # verdicts that came back with an error, left out of the table (their count only: no error text)


def measured(judge, answers: pd.DataFrame, reviewer: str | None) -> Measured:
    """The judge called on each answer and measured against the humans as review measures
    (``labels.pairs``: the latest human verdict, ``reviewer``'s or anyone's; a verdict that came back
    with an error is left out)."""
    criterion = criterion_of(judge.name)
    judged, errors = [], 0
    for trace in answers["trace"]:
        feedback = judge(trace=trace)
        errors += feedback.error is not None
        judged.append(with_verdict(trace, criterion, feedback))
    table = labels.agreement_table(labels.pairs(judged, [criterion], reviewer)).assign(judge=judge.name)
    return Measured(judge.name, table, errors)


def alignment_rows(criterion: str, optimizer_name: str, aligned_on: int, measured: dict[str, Measured]) -> list[dict]:
    """judge_alignment.csv's rows of one criterion, one per moment of ``measured`` (before, after)."""
    return [
        {"when": when, "criterion": criterion, "optimizer": optimizer_name, "aligned_on": aligned_on}
        | {"judge_errors": found.errors}
        | dict.fromkeys(labels.COLUMNS)
        | {"judge": found.judge, "labelled": 0}
        | (found.table.iloc[0].to_dict() if len(found.table) else {})
        for when, found in measured.items()
    ]


def with_aligned(scorers, experiment_id: str) -> list:
    """``scorers`` with each judge that has aligned versions in the experiment replaced by them
    (``compare -P judges=aligned``); the others as they are. Its callers check ``require_extra``
    first, before any run starts."""
    names = registered(experiment_id)
    if not names:
        align = generation.command_here("align", {"judges": "correctness"})
        raise cli.UserError(
            f"no aligned judge is registered in this experiment. Align one first: {align}, or leave out -P judges"
        )
    found = []
    for scorer in scorers:
        mine = [name for name in names if criterion_of(name) == scorer.name]
        found += [load(name, experiment_id) for name in mine] if mine else [scorer]
    return found

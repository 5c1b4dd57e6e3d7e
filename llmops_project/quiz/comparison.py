"""One comparison of candidates, as ``compare`` runs it and ``optimize`` repeats it on held-out
questions: each candidate (a prompt version, a model, a token budget) answers the same questions
with THE generation loop and is judged by the same scorers, in a nested run of its own; each is
also an app version (a LoggedModel) its traces and metrics link to. What to decide from them is
quiz/decision.py's; which prompt version gets @champion is ``champion_move``'s, and the entry
point's ``main()`` makes the move with ``mlflow.genai.set_prompt_alias``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import mlflow
import pandas as pd

from quiz import dataset, decision, generation, options, provider
from quiz.evaluation import evaluation_data, judge_counts, per_question
from quiz.questions import Question

CHAMPION = "champion"  # prompt alias of the template version that won a comparison against the former champion
# Prompt version tag: the model and token budget the version won with. @champion names a prompt
# version only; when the candidates differed in model or budget, those were part of what won.
WON_WITH = "quiz.won_with"
BRIEF = ["template", "version", "model", "max_tokens", "overall_score", "enough_words/mean", "total_tokens"]
BRIEF += ["latency_p95_seconds", "failed_questions", "judge_errors"]  # printed; comparison.csv has every column
SHOWN = ["total_tokens", "cost_usd", "latency_p50_seconds", "latency_p95_seconds"]


@dataclass
class Spec:
    """What one candidate is: a prompt version, a model, a token budget, and the name it goes by."""

    prompt: object  # a PromptVersion of the registry
    model: str
    max_tokens: int
    name: str = ""


def specs(prompts: list, models: list[str], budgets: list[int]) -> list[Spec]:
    """Every (prompt version, model, budget), named by what tells them apart: 'basic @ gpt-4.1-mini',
    with ' v2' when two versions of one template compete, ' (8 tokens)' when budgets differ."""
    versions = len({p.name for p in prompts}) < len(prompts)
    found = []
    for model in models:
        for prompt in prompts:
            for budget in budgets:
                name = f"{prompt.name}{f' v{prompt.version}' if versions else ''} @ {model}"
                found.append(Spec(prompt, model, budget, name + (f" ({budget} tokens)" if len(budgets) > 1 else "")))
    return found


def run_candidates(
    candidates: list[Spec],
    questions: list[Question],
    scorers,
    system,
    exam,
    temperature: float,
    seed: int,
    concurrency: int,
) -> tuple[list[decision.Candidate], dict[str, dict], dict[str, object]]:
    """Each candidate in its nested run: answers, judged by ``scorers`` with mlflow.genai.evaluate.
    Returns the candidates' verdicts, their runs' figures and their runs, by candidate name."""
    exam_dataset, version = exam
    expectations = dataset.expectations_of(exam_dataset)
    client = provider.openai_client()
    numbers = [q.number for q in questions]
    results, figures, runs = [], {}, {}
    for spec in candidates:
        print(f"\n=== {spec.name}: {len(questions)} questions (prompt {spec.prompt.name} v{spec.prompt.version})")
        params = candidate_params(spec, system, temperature, seed)
        with (
            mlflow.start_run(run_name=run_name(spec), nested=True) as child,
            # The candidate as an app version: a LoggedModel its traces and evaluation link to
            mlflow.set_active_model(name=app_version(spec)) as app,
        ):
            os.environ["MLFLOW_ACTIVE_MODEL_ID"] = app.model_id  # also for the loop's new threads
            mlflow.set_tag(generation.STEP_TAG, "generation")  # review and evaluate_responses accept it
            mlflow.log_params(params)
            if not app.params:
                mlflow.log_model_params(params, model_id=app.model_id)
            dataset.log_use(exam_dataset, version)

            answer = generation.chat_answerer(
                client, system, spec.prompt, spec.model, temperature, spec.max_tokens, seed
            )
            answers = generation.answer_all(questions, answer, concurrency=concurrency)
            mlflow.log_text(
                generation.answers_table(answers, spec.prompt, spec.model).to_csv(index=False),
                generation.ANSWERS_ARTIFACT,
            )
            summary = generation.summarize(answers)
            ok = answers[answers["status"] == "ok"].reset_index(drop=True)
            generation.require_some_answers(answers)

            # The same judges as evaluate_responses, on this candidate's traces
            data = evaluation_data(ok, expectations)
            evaluated = mlflow.genai.evaluate(data=data, scorers=scorers, model_id=app.model_id)
            summary.update(judge_counts(evaluated, scorers))
            if summary["judge_errors"]:
                provider.stop_if_crashed()  # judges that got no answer because the offline server died
            table = per_question(ok, evaluated, scorers)
            mlflow.log_text(table.to_csv(index=False), "evaluation_results.csv")
            failed = answers.loc[answers["status"] != "ok", "number"].tolist()
            one = decision.candidate(
                spec.name,
                spec.prompt.name,
                spec.prompt.version,
                spec.model,
                spec.max_tokens,
                table,
                scorers,
                numbers,
                failed,
            )
            mlflow.log_metrics(summary, model_id=app.model_id)  # the run's and the app version's
        os.environ.pop("MLFLOW_ACTIVE_MODEL_ID")
        results.append(one)
        figures[spec.name] = {**shown(evaluated.metrics, summary), **{"app_version": app.model_id}}
        runs[spec.name] = child
    return results, figures, runs


def run_name(spec: Spec) -> str:
    """The candidate's nested run: basic-gpt-4.1-mini, basic-v2-gpt-4.1-mini, basic-gpt-4.1-mini-8-tokens."""
    return re.sub(r"[ @()]+", "-", spec.name.replace(" @ ", "-")).strip("-")


def app_version(spec: Spec) -> str:
    """The candidate's LoggedModel name, e.g. quiz-basic-v1-gpt-4_1-mini (MLflow forbids / : . % ' " in it),
    with -8-tokens when budgets differ."""
    budget = f"-{spec.max_tokens}-tokens" if spec.name.endswith(" tokens)") else ""
    return "quiz-" + re.sub(r"[/:.%'\"]", "_", f"{spec.prompt.name}-v{spec.prompt.version}-{spec.model}{budget}")


def candidate_params(spec: Spec, system, temperature: float, seed: int) -> dict:
    return {
        "prompt_template": spec.prompt.name,
        "prompt_version": spec.prompt.version,
        "prompt_system": f"system@production=v{system.version}",
        "model": spec.model,
        "temperature": temperature,
        "seed": seed,
        "max_tokens": spec.max_tokens,
    }


def shown(metrics: dict, summary: dict) -> dict:
    """A candidate's figures in the comparison table: tokens, cost, latency (the pass rates are the
    rule's, from decision.pass_rates)."""
    return {name: summary.get(name, metrics.get(name)) for name in SHOWN}


def chart(table: pd.DataFrame, trust: decision.Trust, decision_text: str | None = None):
    """Pass rate per scorer and overall score, one group of bars per candidate, under the decision
    (``decision_text``); the judges ``trust`` set aside are named in the legend with their reason:
    hatched bars for those still asked ("never reviewed"), no bars for those not asked ("kappa 0.00
    on 8 answers")."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    columns = ["overall_score"] + [c for c in table.columns if c.endswith("/mean")]
    labels = [name.replace(" @ ", "\n").replace(" (", "\n(") for name in table["candidate"]]
    figure, axes = plt.subplots(figsize=(3.5 + 2.4 * len(table), 4.8))
    width = 0.8 / len(columns)

    def set_aside(name: str) -> str:  # the reason without its threshold, which the legend's title gives once
        return f"{name}: set aside, {trust.set_aside[name].split(' (')[0]}"

    for i, column in enumerate(columns):
        name = column.removesuffix("/mean")
        aside = name in trust.set_aside
        axes.bar(
            [x + i * width for x in range(len(table))],
            table[column].fillna(0).tolist(),
            width,
            label=set_aside(name) if aside else name,
            hatch="//" if aside else None,
            alpha=0.45 if aside else 1.0,
        )
    axes.set_xticks([x + 0.4 - width / 2 for x in range(len(table))], labels)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("pass rate / score")
    title = "Same questions; overall score on the trusted scorers only"
    axes.set_title(title + (f"\nDecision: {decision_text}" if decision_text else ""), fontsize=10)
    handles, names = axes.get_legend_handles_labels()
    for name in trust.not_asked():  # no bar: a legend entry after the bars
        handles.append(Line2D([], [], linestyle="none"))
        names.append(f"{set_aside(name)}, {decision.NOT_ASKED}")
    axes.legend(
        handles,
        names,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1, 1),
        title=f"judges are trusted at kappa >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED} answers",
        title_fontsize=7,
    )
    figure.tight_layout()
    return figure


def champion_move(verdict, prompts: list) -> tuple[tuple[str, int] | None, list[str], str]:
    """Where @champion goes after the decision ``verdict`` among the versions ``prompts``: (prompt
    name, version) to point it at, or None to leave it; the other templates it leaves; and the line
    to print. It moves only to a clear winner, and only when the current champion (if any) was among
    the candidates the winner beat: a champion never compared stays (one that won again is pointed at
    once more, for its ``WON_WITH`` tag). Each template is a prompt of its own, with its own aliases:
    within the winner's prompt, ``set_prompt_alias`` moves the alias (it replaces the one there), but
    another template's @champion must be deleted."""
    winner = verdict.winner
    if winner is None:
        return None, [], f"@{CHAMPION} unchanged (no clear winner)"
    compared = [f"{p.name} v{p.version}" for p in prompts]
    current = {
        name: found
        for name in options.user_templates()
        if (found := mlflow.genai.load_prompt(f"prompts:/{name}@{CHAMPION}", allow_missing=True, cache_ttl_seconds=0))
    }
    for name, found in current.items():
        if name == winner.template and int(found.version) == winner.version:  # the alias stays; WON_WITH is renewed
            again = f"@{CHAMPION} stays {name} v{found.version} (it won again, with {won_with(winner)})"
            return (name, winner.version), [], again
        if f"{name} v{found.version}" not in compared:
            return (
                None,
                [],
                f"@{CHAMPION} stays {name} v{found.version}: it was not among the candidates. "
                f"Compare them: -P templates={name},{winner.template}",
            )
    was = ", ".join(f"{n} v{p.version}" for n, p in current.items()) or "none"
    return (
        (winner.template, winner.version),
        [name for name in current if name != winner.template],
        f"@{CHAMPION} is now {winner.template} v{winner.version} (was {was}), which won with {won_with(winner)}",
    )


def won_with(winner: decision.Candidate) -> str:
    """The model and token budget a winning prompt version won with (its ``WON_WITH`` tag)."""
    return f"{winner.model}, max_tokens {winner.max_tokens}" if winner.max_tokens else winner.model


def log_trust(trust: decision.Trust) -> None:
    """On the run: the thresholds, the scorers the decision uses, and each judge set aside and why;
    printed too."""
    print("Evidence (quiz/decision.py: code scorers, and judges measured as trustworthy):")
    print("\n".join(trust.lines()))
    mlflow.log_params(
        {"trust_min_kappa": decision.MIN_KAPPA, "trust_min_labelled": decision.MIN_LABELLED}
        | {"trusted_scorers": " ".join(trust.kept), "set_aside_judges": " ".join(trust.set_aside) or "none"}
    )
    mlflow.set_tags({f"set_aside.{name}": reason for name, reason in trust.set_aside.items()})


def record(
    results: list[decision.Candidate], figures: dict[str, dict], trust: decision.Trust, verdict, run_id: str
) -> pd.DataFrame:
    """On the comparison run: comparison.csv, comparison.png and the decision's tags; on each candidate's
    app version, whether it won. The table."""
    table = decision.comparison_table(results, figures, trust)
    mlflow.log_text(table.to_csv(index=False), "comparison.csv")
    mlflow.log_figure(chart(table, trust, verdict.text), "comparison.png")
    mlflow.set_tags({"decision": verdict.text, "decision_reason": verdict.reason, "decision_rule": decision.RULE})
    if verdict.winner:
        mlflow.set_tag("winner", verdict.winner.name)
    for one in results:
        won = verdict.winner is not None and verdict.winner.name == one.name
        tags = {"quiz.compare_run": run_id, "quiz.decision": "winner" if won else "compared"}
        mlflow.set_logged_model_tags(figures[one.name]["app_version"], tags)
    return table


def print_outcome(table: pd.DataFrame, verdict, champion_line: str) -> None:
    print("\nComparison (every pass rate in comparison.csv; comparison.png on the run):")
    print(table[[c for c in BRIEF if c in table and table[c].notna().any()]].to_string(index=False))
    print(f"\nDecision: {verdict.text}. {verdict.reason}")
    print(champion_line)

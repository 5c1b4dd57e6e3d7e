"""Compare prompt templates and models on the same exam, with the same judges, and pick a winner
only when it is clearly better (the talk: "MLflow may help in selecting the best models and prompts").

    mlflow run -e compare --env-manager=local --experiment-name $EXPERIMENT_ID . \\
        -P templates=basic,practical -P max_questions=8

For each (template, model), one nested run generates the answers with THE generation loop
(quiz/generation.py) and judges them with the scorers of evaluate_responses.py; each candidate is
also an app version (a LoggedModel, UI: the experiment's Versions / Models tab) its traces link to.
This run gets the comparison table, a chart and the decision (quiz/decision.py has the rule); a
clear winner's prompt version gets the alias @champion, moved only when it beat the champion.
"""

import os
import re

import evaluate_responses
import mlflow
import pandas as pd

import cli
from quiz import dataset, decision, generation, options, provider
from quiz.questions import load_questions

CHAMPION = "champion"  # prompt alias of the template that won a comparison against the former champion


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    questions = load_questions(max_questions=args.max_questions)
    exam_records = dataset.records()

    mlflow.openai.autolog()
    with mlflow.start_run(run_name="compare") as run:
        mlflow.set_tag(generation.STEP_TAG, "comparison")
        cli.log_new_params(vars(args))
        exam, version, _ = dataset.sync(run.info.experiment_id, exam_records)
        dataset.log_use(exam, version)
        expectations = dataset.expectations_of(exam)
        # The templates under comparison, from the prompt registry (the versions @production)
        system = mlflow.genai.load_prompt("prompts:/system@production", allow_missing=True)
        prompts = {t: mlflow.genai.load_prompt(f"prompts:/{t}@production", allow_missing=True) for t in args.templates}
        generation.require_prompts(system, *prompts.values())
        scorers = list(evaluate_responses.guidelines_model(args.judge_model))
        client = provider.openai_client()

        candidates, figures, apps, runs = [], {}, {}, {}
        for model in args.models:
            for template, prompt in prompts.items():
                name = f"{template} @ {model}"
                print(f"\n=== {name}: {len(questions)} questions (prompt {template} v{prompt.version})")
                with (
                    mlflow.start_run(run_name=f"{template}-{model}", nested=True) as child,
                    # The candidate as an app version: a LoggedModel its traces and evaluation link to
                    mlflow.set_active_model(name=app_version(template, prompt, model)) as app,
                ):
                    os.environ["MLFLOW_ACTIVE_MODEL_ID"] = app.model_id  # also for the loop's new threads
                    mlflow.set_tag(generation.STEP_TAG, "generation")  # review and evaluate_responses accept it
                    mlflow.log_params(candidate_params(args, system, prompt, model))
                    if not app.params:
                        mlflow.log_model_params(candidate_params(args, system, prompt, model), model_id=app.model_id)
                    dataset.log_use(exam, version)

                    answer = answerer(client, system, prompt, model, args)
                    answers = generation.answer_all(questions, answer, concurrency=args.concurrency)
                    mlflow.log_text(
                        generation.answers_table(answers, prompt, model).to_csv(index=False),
                        generation.ANSWERS_ARTIFACT,
                    )
                    summary = generation.summarize(answers)
                    ok = answers[answers["status"] == "ok"].reset_index(drop=True)
                    require_some_answers(answers)

                    # The same judges as evaluate_responses, on this candidate's traces
                    data = evaluate_responses.evaluation_data(ok, expectations)
                    results = mlflow.genai.evaluate(data=data, scorers=scorers, model_id=app.model_id)
                    summary.update(evaluate_responses.judge_counts(results))
                    if summary["judge_errors"]:
                        provider.stop_if_crashed()  # judges that got no answer because the offline server died
                    table = evaluate_responses.per_question(ok, results)
                    mlflow.log_text(table.to_csv(index=False), "evaluation_results.csv")
                    candidate = decision.Candidate(
                        template,
                        model,
                        decision.question_scores(table, [s.name for s in scorers], [q.number for q in questions]),
                        failed_questions=answers.loc[answers["status"] != "ok", "number"].tolist(),
                        judge_errors=int(summary["judge_errors"]),
                    )
                    summary["overall_score"] = candidate.overall
                    mlflow.log_metrics(summary, model_id=app.model_id)  # the run's and the app version's
                os.environ.pop("MLFLOW_ACTIVE_MODEL_ID")
                candidates.append(candidate)
                rates = decision.pass_rates(table, [s.name for s in scorers], [q.number for q in questions])
                figures[name], apps[name], runs[name] = {**results.metrics, **summary, **rates}, app, child

        # The comparison: a table and a chart on this run, then the decision by the rule
        table = decision.comparison_table(candidates, {name: shown(m) for name, m in figures.items()})
        mlflow.log_text(table.to_csv(index=False), "comparison.csv")
        mlflow.log_figure(chart(table), "comparison.png")
        verdict = decision.decide(candidates)
        mlflow.set_tags({"decision": verdict.text, "decision_reason": verdict.reason, "decision_rule": RULE})
        for name, app in apps.items():
            won = verdict.winner is not None and verdict.winner.name == name
            tags = {"quiz.compare_run": run.info.run_id, "quiz.decision": "winner" if won else "compared"}
            mlflow.set_logged_model_tags(app.model_id, tags)
        if verdict.winner:
            mlflow.set_tag("winner", verdict.winner.name)
            champion_line = promote(verdict.winner, prompts, args.templates)
        else:
            champion_line = f"@{CHAMPION} unchanged (no clear winner)"

    print("\nComparison (all pass rates in comparison.csv; comparison.png on the run):")
    print(table[[c for c in BRIEF if c in table]].to_string(index=False))
    print(f"\nDecision: {verdict.text}. {verdict.reason}")
    print(champion_line)
    best = verdict.winner or max(candidates, key=lambda c: c.overall)
    cli.print_ui_hint(run, "the comparison run; its child runs are the candidates")
    cli.print_next(
        f"review the answers of {best.name} yourself and measure the judges against you",
        f"mlflow run -e review --env-manager=local --experiment-id {run.info.experiment_id} {{here}} "
        f"-P generation_run_id={runs[best.name].info.run_id}",
    )


RULE = (
    f"eligible (no failed question, no judge error), best overall score, and against every other candidate "
    f"a margin >= {decision.MIN_MARGIN} and a one-sided sign test over the questions p <= {decision.ALPHA}"
)


def parse_args(argv: list[str] | None = None):
    templates = options.user_templates()
    parser = cli.ArgumentParser(
        example="mlflow run -e compare --env-manager=local --experiment-name se-answers . -P templates=basic,practical",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--templates",
        type=options.names(templates),
        default="basic,concise,practical,academic",  # the talk's four, in its order
        help="comma-separated user prompt templates",
    )
    parser.add_argument("--models", type=options.names([]), default="gpt-4.1-mini", help="comma-separated chat models")
    parser.add_argument(
        "--max-questions", type=cli.whole_number(-1), default=-1, help="the first N questions (-1 = all)"
    )
    parser.add_argument(
        "--judge-model",
        type=evaluate_responses.judge_uri,
        default="openai:/gpt-4.1-mini",
        help="<provider>:/<model> of every judge",
    )
    parser.add_argument("--concurrency", type=cli.whole_number(1), default=8, help="questions at once")
    parser.add_argument("--temperature", type=float, default=0.7, help="for every candidate")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed (providers that honour it)")
    parser.add_argument("--max-tokens", type=cli.whole_number(1), default=500, help="longest answer, in tokens")
    return parser.parse_args(argv)


def app_version(template: str, prompt, model: str) -> str:
    """The candidate's LoggedModel name, e.g. quiz-basic-v1-gpt-4_1-mini (MLflow forbids / : . % ' " in it)."""
    return "quiz-" + re.sub(r"[/:.%'\"]", "_", f"{template}-v{prompt.version}-{model}")


def candidate_params(args, system, prompt, model: str) -> dict:
    return {
        "prompt_template": prompt.name,
        "prompt_version": prompt.version,
        "prompt_system": f"system@production=v{system.version}",
        "model": model,
        "temperature": args.temperature,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
    }


def answerer(client, system, prompt, model: str, args):
    """The answer function handed to the generation loop: one chat completion per question, as in
    generate_answers.py, with the comparison's temperature and seed."""

    def answer(question):
        response = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": system.template},
                {"role": "user", "content": generation.user_message(prompt, question)},
            ],
            temperature=args.temperature,
            max_tokens=args.max_tokens,
            seed=args.seed,
        )
        return generation.Reply.from_chat_completion(response)

    return answer


def require_some_answers(answers: pd.DataFrame) -> None:
    """A candidate with no answer at all is a provider problem, not a result: stop (runs FAILED)."""
    failed = answers[answers["status"] == "failed"]
    if len(failed):
        provider.stop_if_crashed()
    if len(failed) == len(answers):
        raise cli.UserError(
            f"no question was answered (first error: {failed['error'].iloc[0]}). "
            "Check that the provider is running and reachable (OPENAI_BASE_URL), the key and the model name"
        )


BRIEF = ["template", "model", "overall_score", "correctness/mean", "total_tokens", "cost_usd"]
BRIEF += ["latency_p95_seconds", "failed_questions", "judge_errors"]  # printed; the CSV has every column
SHOWN = ["total_tokens", "cost_usd", "latency_p50_seconds", "latency_p95_seconds"]


def shown(metrics: dict) -> dict:
    """The figures of the comparison table: every scorer's pass rate, tokens, cost, latency."""
    rates = {name: round(value, 4) for name, value in sorted(metrics.items()) if name.endswith("/mean")}
    return {**rates, **{name: metrics.get(name) for name in SHOWN}}


def chart(table: pd.DataFrame):
    """Pass rate per scorer and overall score, one group of bars per candidate."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    columns = ["overall_score"] + [c for c in table.columns if c.endswith("/mean")]
    labels = [f"{t}\n{m}" for t, m in zip(table["template"], table["model"], strict=True)]
    figure, axes = plt.subplots(figsize=(max(6, 2.2 * len(table)), 4.5))
    width = 0.8 / len(columns)
    for i, column in enumerate(columns):
        values = table[column].fillna(0).tolist()
        axes.bar([x + i * width for x in range(len(table))], values, width, label=column.removesuffix("/mean"))
    axes.set_xticks([x + 0.4 - width / 2 for x in range(len(table))], labels)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("pass rate / score")
    axes.set_title("Candidates on the same questions and judges")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
    figure.tight_layout()
    return figure


def promote(winner, prompts: dict, compared: list[str]) -> str:
    """Point @champion at the winner's prompt version, but only when the current champion (if any)
    was one of the candidates it beat: a champion that was not compared stays."""
    prompt = prompts[winner.template]
    current = {
        name: found
        for name in options.user_templates()
        if (found := mlflow.genai.load_prompt(f"prompts:/{name}@{CHAMPION}", allow_missing=True, cache_ttl_seconds=0))
    }
    for name, found in current.items():
        if name == prompt.name and int(found.version) == int(prompt.version):
            return f"@{CHAMPION} stays {name} v{found.version} (it won again)"
        if name not in compared or int(found.version) != int(prompts[name].version):
            return (
                f"@{CHAMPION} stays {name} v{found.version}: it was not among the candidates. "
                f"Compare them: -P templates={name},{prompt.name}"
            )
    for name in current:  # beaten: the alias leaves it
        mlflow.genai.delete_prompt_alias(name, alias=CHAMPION)
    mlflow.genai.set_prompt_alias(prompt.name, alias=CHAMPION, version=int(prompt.version))
    was = ", ".join(f"{n} v{p.version}" for n, p in current.items()) or "none"
    return f"@{CHAMPION} is now {prompt.name} v{prompt.version} (was {was})"


if __name__ == "__main__":
    cli.run(main)

"""Compare prompt templates, models and token budgets on the same exam, with the same scorers, and
pick a winner only on evidence you can trust, and only when it is clearly better (the talk: "MLflow
may help in selecting the best models and prompts").

    mlflow run -e compare --env-manager=local --experiment-name $EXPERIMENT_ID . \\
        -P templates=basic,practical -P max_questions=6

Every candidate (template x model x max_tokens) answers the same questions in a nested run of its
own (THE generation loop, quiz/generation.py) and is judged by the scorers of evaluate_responses.py;
each is also an app version (a LoggedModel, UI: the experiment's Versions tab) its traces link to.
Which scorers may decide is quiz/decision.py's rule: the code scorers, and the judges that a review
(-e review) measured as agreeing with the humans. The others are set aside with the reason: a judge
measured on enough answers and found wanting is not asked at all; one not yet measured on enough is
asked and shown, not counted. ``-P judges=aligned`` puts the judges that ``align`` taught in place of
the talk's judges of the same criteria, under the same rule (trusted only as measured on align's
held-out answers).
This run gets the comparison table, a chart and the decision; a clear winner's prompt version gets
the alias @champion, moved only when it beat the champion, and the tag quiz.won_with: the model
and max_tokens it won with (a comparison of budgets or models decides those, not the prompt).
"""

import evaluate_responses
import mlflow

import cli
from quiz import alignment, comparison, dataset, decision, generation, labels, options, provider
from quiz.questions import load_questions


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    if args.judges == options.ALIGNED_JUDGES:
        alignment.require_extra("judging with an aligned judge")
        provider.before_litellm_calls()  # MemAlign judges embed through litellm, then evaluate runs
    questions = load_questions(max_questions=args.max_questions)
    exam_records = dataset.records()

    mlflow.openai.autolog()
    with mlflow.start_run(run_name="compare") as run:
        mlflow.set_tag(generation.STEP_TAG, "comparison")
        cli.log_new_params(vars(args))
        exam, version, _ = dataset.sync(run.info.experiment_id, exam_records)
        dataset.log_use(exam, version)
        # The templates under comparison, from the prompt registry (the versions @production)
        system = mlflow.genai.load_prompt("prompts:/system@production", allow_missing=True)
        prompts = [mlflow.genai.load_prompt(f"prompts:/{t}@production", allow_missing=True) for t in args.templates]
        generation.require_prompts(system, *prompts)
        scorers = list(evaluate_responses.guidelines_model(args.judge_model))
        if args.judges == options.ALIGNED_JUDGES:  # align's judges, registered here, for the talk's
            scorers = alignment.with_aligned(scorers, run.info.experiment_id)

        # The evidence: code scorers, and the judges whose latest review found them agreeing with you
        trust = decision.trusted(scorers, labels.measurements(run.info.experiment_id))
        comparison.log_trust(trust)

        # Every candidate on the same questions with the same scorers, each in its nested run
        candidates = comparison.specs(prompts, args.models, args.max_tokens)
        results, figures, runs = comparison.run_candidates(
            candidates,
            questions,
            trust.asked(scorers),  # not the judges found wanting: they could decide nothing
            system,
            (exam, version),
            args.temperature,
            args.seed,
            args.concurrency,
        )

        # The decision by the rule; the table, the chart and the decision on this run
        verdict = decision.decide(results, trust)
        table = comparison.record(results, figures, trust, verdict, run.info.run_id)
        target, beaten, champion_line = comparison.champion_move(verdict, prompts)
        with cli.uninterrupted():  # a kill waits: @champion moves whole, never left on no template or on two
            if target:  # a clear winner that beat the champion: its version gets the alias, and what it won with
                mlflow.genai.set_prompt_alias(target[0], alias=comparison.CHAMPION, version=target[1])
                mlflow.genai.set_prompt_version_tag(*target, comparison.WON_WITH, comparison.won_with(verdict.winner))
            for name in beaten:  # ... and the beaten champion's template (another prompt) loses it
                mlflow.genai.delete_prompt_alias(name, alias=comparison.CHAMPION)

    comparison.print_outcome(table, verdict, champion_line)
    best = verdict.winner or max(results, key=lambda c: c.overall(trust.kept))
    cli.print_ui_hint(run, "the comparison run; its child runs are the candidates")
    cli.print_next(
        f"review the answers of {best.name} yourself and measure the judges against you",
        cli.mlflow_run_command(
            "review", {"generation_run_id": runs[best.name].info.run_id}, generation.experiment_name(run)
        ),
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
        "--max-tokens",
        type=options.whole_numbers,
        default="500",
        help="longest answer, in tokens; comma-separated budgets to compare them too, e.g. 8,500",
    )
    parser.add_argument(
        "--max-questions", type=cli.whole_number(-1), default=-1, help="the first N questions (-1 = all)"
    )
    options.add_model_uri(parser, "--judge-model", "<provider>:/<model> of every judge")
    options.add_judges(
        parser, "the talk's judges, or in their place the aligned ones registered in this experiment (align)"
    )
    parser.add_argument("--concurrency", type=cli.whole_number(1), default=8, help="questions at once")
    parser.add_argument("--temperature", type=float, default=0.7, help="for every candidate")
    parser.add_argument("--seed", type=int, default=42, help="sampling seed (providers that honour it)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli.run(main)

"""Optimize the champion prompt with MLflow, then let the comparison decide whether it is better
(the talk's "MLflow may help in selecting the best prompts", one step further: MLflow writes one).

    mlflow run -e optimize --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=12

The template version that holds @champion (or ``-P template=<name>``: its @champion, else its
@production) is rewritten by ``mlflow.genai.optimize_prompts`` (MetaPromptOptimizer by default; GEPA
with ``-P optimizer=gepa``) on part of the exam's questions, scored by the scorers ``compare`` trusts
(quiz/decision.py: the code scorers, and the judges measured well enough). MLflow registers the
result as a new version of the prompt, tagged here with its origin and optimizer. Then the same
comparison as ``compare`` runs on the held-out questions, which the optimizer never saw: the
starting version against the optimized one; @champion moves only on a clear decision.
"""

import evaluate_responses
import mlflow

import cli
from quiz import alignment, comparison, dataset, decision, generation, labels, optimization, options, provider
from quiz.questions import load_questions


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    if args.optimizer == "gepa":
        alignment.require_extra("GEPA", module="gepa")
    if args.judges == options.ALIGNED_JUDGES:
        alignment.require_extra("judging with an aligned judge")
    provider.before_litellm_calls()  # the reflection model is called through litellm when it is installed
    train, held_out = optimization.split(load_questions(max_questions=args.max_questions), args.held_out, args.seed)
    exam_records = dataset.records()

    mlflow.openai.autolog()
    with mlflow.start_run(run_name=f"optimize-{args.template}") as run:
        mlflow.set_tag(generation.STEP_TAG, "optimization")
        cli.log_new_params(vars(args))
        exam, version, _ = dataset.sync(run.info.experiment_id, exam_records)
        dataset.log_use(exam, version)
        system = mlflow.genai.load_prompt("prompts:/system@production", allow_missing=True)
        generation.require_prompts(system)
        prompt = optimization.starting_prompt(args.template)
        optimization.print_split(prompt, args.optimizer, train, held_out, args.seed)

        # The evidence the optimizer and the decision may use: the scorers compare trusts
        scorers = list(evaluate_responses.guidelines_model(args.judge_model))
        if args.judges == options.ALIGNED_JUDGES:
            scorers = alignment.with_aligned(scorers, run.info.experiment_id)
        trust = decision.trusted(scorers, labels.measurements(run.info.experiment_id))
        comparison.log_trust(trust)
        trusted = trust.counted(scorers)

        # The slide's call: MLflow rewrites the template on the train questions, and registers the result
        client = provider.openai_client()
        with mlflow.start_run(run_name=optimization.run_name(args.optimizer, prompt), nested=True):
            mlflow.set_tag(generation.STEP_TAG, "prompt-optimization")
            result = mlflow.genai.optimize_prompts(
                predict_fn=optimization.predict_fn(
                    client, system, prompt, args.model, args.temperature, args.max_tokens, args.seed
                ),
                train_data=optimization.train_rows(train, dataset.expectations_of(exam)),
                prompt_uris=[prompt.uri],
                optimizer=optimization.optimizer(
                    args.optimizer, args.reflection_model, len(train), prompt, provider.offline_server()
                ),
                scorers=trusted,
            )
        optimized = result.optimized_prompts[0]
        changed = optimization.changed(prompt, optimized)
        for key, value in optimization.origin_tags(prompt, result, run.info.run_id, changed).items():
            mlflow.genai.set_prompt_version_tag(optimized.name, optimized.version, key, value)
        optimization.report(prompt, optimized, result, changed)

        runs = {}
        if not changed:
            champion_line = f"@{comparison.CHAMPION} unchanged: nothing to compare"
        else:
            # The same comparison as compare, on the held-out questions: the starting version against the optimized one
            candidates = comparison.specs([prompt, optimized], [args.model], [args.max_tokens])
            results, figures, runs = comparison.run_candidates(
                candidates, held_out, trusted, system, (exam, version), args.temperature, args.seed, args.concurrency
            )
            verdict = decision.decide(results, trust)
            table = comparison.record(results, figures, trust, verdict, run.info.run_id)
            target, beaten, champion_line = comparison.champion_move(verdict, [prompt, optimized])
            for name in beaten:  # a clear winner beat the champion: it loses the alias, the winner's version gets it
                mlflow.genai.delete_prompt_alias(name, alias=comparison.CHAMPION)
            if target:
                mlflow.genai.set_prompt_alias(target[0], alias=comparison.CHAMPION, version=target[1])
                mlflow.genai.set_prompt_version_tag(*target, comparison.WON_WITH, comparison.won_with(verdict.winner))

    if changed:
        comparison.print_outcome(table, verdict, champion_line)
    else:
        print(champion_line)
    cli.print_ui_hint(run, f"the optimize run; Prompts > {optimized.name} shows v{optimized.version} and its tags")
    print_next_step(generation.experiment_name(run), optimized, runs, prompt.name, args)


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e optimize --env-manager=local --experiment-name se-answers . -P template=basic",
        description=__doc__.split("\n\n")[0],
    )
    templates = [optimization.CHAMPION, *options.user_templates()]
    parser.add_argument(
        "--template",
        default=optimization.CHAMPION,
        choices=templates,
        help="template to optimize (champion = the one @champion)",
    )
    parser.add_argument(
        "--optimizer", default="metaprompt", choices=optimization.OPTIMIZERS, help="MLflow's prompt optimizer"
    )
    parser.add_argument(
        "--max-questions",
        type=cli.whole_number(3),
        default=12,
        help="the first N questions, split into train and held-out",
    )
    options.add_held_out(parser, "share of them held out for the comparison")
    parser.add_argument("--model", default="gpt-4.1-mini", help="chat model that answers")
    options.add_model_uri(parser, "--reflection-model", "<provider>:/<model> that rewrites the template")
    options.add_model_uri(parser, "--judge-model", "<provider>:/<model> of the talk's judges")
    options.add_judges(parser, "the talk's judges, or the aligned ones (align)")
    parser.add_argument("--max-tokens", type=cli.whole_number(1), default=500, help="longest answer, in tokens")
    parser.add_argument("--temperature", type=float, default=0.7, help="for every answer")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split and of the sampling")
    parser.add_argument("--concurrency", type=cli.whole_number(1), default=8, help="questions at once")
    return parser.parse_args(argv)


def print_next_step(experiment: str, optimized, runs: dict, template: str, args) -> None:
    """What to run next: review the optimized version's answers (it was compared: ``runs`` holds the
    candidates' generation runs by name), or try the other optimizer on more questions (it changed nothing)."""
    if runs:
        candidate = next(name for name in runs if f" v{optimized.version} " in name)
        cli.print_next(
            "review the optimized prompt's answers yourself",
            cli.mlflow_run_command("review", {"generation_run_id": runs[candidate].info.run_id}, experiment),
        )
    else:
        other = next(name for name in optimization.OPTIMIZERS if name != args.optimizer)
        params = {"template": template, "optimizer": other, "max_questions": 2 * args.max_questions}
        cli.print_next(
            f"try {other}, or more questions to optimize on", cli.mlflow_run_command("optimize", params, experiment)
        )


if __name__ == "__main__":
    cli.run(main)

"""Align a judge to a reviewer's labels, then measure it on answers it never saw (the talk's loop,
continued: "how far to trust the judges", and what to do when the answer is "not enough").

    mlflow run -e align --env-manager=local --experiment-name $EXPERIMENT_ID . -P judges=correctness -P reviewer=ada

From the answers reviewed in the experiment (or the generation runs you name), the ones with a
human verdict on the judge's criterion are split by question, seeded: an alignment part the
optimizer learns from, and a held-out part that measures the judge before and after. MLflow's
``Judge.align`` does the learning (MemAlign by default: it distils guidelines from the labels and
recalls the most similar labelled examples). The aligned judge is registered in the experiment as
``<judge>_aligned_to_<reviewer>`` (UI: the experiment's Judges page); its held-out agreement and
Cohen's kappa are recorded as a review records them, so that ``compare -P judges=aligned`` trusts it
or sets it aside by the same rule (quiz/decision.py). The talk's built-in judges cannot be aligned
usefully in MLflow 3.17: what is aligned is each criterion re-stated with make_judge, the same
guideline text with a True/False verdict (quiz/alignment.py says why).
"""

import evaluate_responses
import mlflow
import pandas as pd

import cli
from quiz import alignment, decision, generation, labels, options, provider
from quiz.questions import load_expectations, load_questions


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    alignment.require_extra()  # dspy: MLflow's alignment optimizers
    if args.optimizer == "memalign":
        alignment.require_embeddings(args.embedding_model)
    provider.before_litellm_calls()
    reviewer = None if args.reviewer.lower() == "none" else args.reviewer  # whose labels: None = anyone's latest
    talk = list(evaluate_responses.guidelines_model(args.judge_model))
    judges = {name: judge for name, judge in alignment.restated(talk, args.judge_model).items() if name in args.judges}
    numbers = {q.text: q.number for q in load_questions()}

    with mlflow.start_run(run_name=f"align-{reviewer or 'anyone'}") as run:
        mlflow.set_tag(generation.STEP_TAG, labels.ALIGNMENT_STEP)
        cli.log_new_params(vars(args))
        answers = reviewed_answers(args.generation_run_ids, run.info.experiment_id)
        # correctness reads each question's criteria, as evaluate_responses gives them
        answers = labels.with_expectations(answers, load_expectations())

        # The labelled answers of each judge's criterion, split by question: learn from one part, measure on the other
        found = {name: alignment.labelled(answers, name, reviewer) for name in judges}
        require_labels(found)
        parts = alignment.split([q for table in found.values() for q in table["question"]], args.held_out, args.seed)
        print(f"Labelled answers split by question (seed {args.seed}, {args.held_out:.0%} held out):")
        print("\n".join(parts.lines(numbers)))
        mlflow.log_params({"align_questions": len(parts.align), "held_out_questions": len(parts.held_out)})
        # Every judge's parts checked before the first is aligned: one short of labels, and nothing is registered
        halves = {name: parts.of(table) for name, table in found.items()}
        for name, (learn, held) in halves.items():
            require_enough(name, len(learn), len(held), args)

        before, after, rows = [], [], []
        for name, judge in judges.items():
            learn, held = halves[name]
            who = reviewer or alignment.reviewers(learn, name)
            traces = [alignment.reviewer_only(t, name, reviewer) for t in learn["trace"]]
            print(f"\nAligning {name} on {len(traces)} labelled answer(s) with {args.optimizer} ...")

            # The slide's call: the judge learns from the human labels on these traces
            aligned = judge.align(
                traces=traces,
                optimizer=alignment.optimizer(args.optimizer, args.judge_model, args.embedding_model, len(traces)),
            )
            # ... registered in the experiment under a name that says what it is (UI: Judges)
            aligned_name = alignment.aligned_name(name, who)
            mlflow.set_tag(labels.REGISTERED_TAG + aligned_name, args.judge_model)  # unmeasured until measured below
            alignment.renamed(aligned, aligned_name).register(experiment_id=run.info.experiment_id, name=aligned_name)

            # Before and after, on the held-out answers: the judge as registered, loaded back as compare loads it
            measured = {
                "before": alignment.measured(judge, held, reviewer),
                "after": alignment.measured(alignment.load(aligned_name, run.info.experiment_id), held, reviewer),
            }
            before.append(measured["before"].table)
            after.append(measured["after"].table)
            rows += alignment.alignment_rows(name, args.optimizer, len(traces), measured)
            log_figures(name, measured, len(traces), len(held))

        mlflow.log_text(pd.DataFrame(rows).to_csv(index=False), alignment.ARTIFACT)
        aligned_judges = pd.concat(after, ignore_index=True)  # the aligned judges' measurement, as review records one
        mlflow.log_text(aligned_judges.to_csv(index=False), labels.AGREEMENT_ARTIFACT)

    labels.print_agreement(
        pd.concat(before, ignore_index=True),
        reviewer,
        "Before: the judges, not aligned, on the held-out answers",
        artifact=alignment.ARTIFACT,
        trusted_column=False,
    )
    labels.print_agreement(aligned_judges, reviewer, "After: the aligned judges, as registered, on the same answers")
    cli.print_ui_hint(run, "the align run; the aligned judges are on the experiment's Judges page")
    cli.print_next(
        "let MLflow rewrite the champion prompt, the aligned judges weighed like any (trusted only if measured well)",
        cli.mlflow_run_command(
            "optimize", {"max_questions": 8, "held_out": 0.75, "judges": "aligned"}, generation.experiment_name(run)
        ),
    )


def parse_args(argv: list[str] | None = None):
    judges = [s.name for s in evaluate_responses.guidelines_model() if decision.is_judge(s)]
    parser = cli.ArgumentParser(
        example="mlflow run -e align --env-manager=local --experiment-name se-answers . -P judges=correctness",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--generation-run-ids",
        default="none",
        help="comma-separated generation runs whose labels to use; 'none' = every reviewed run of the experiment",
    )
    parser.add_argument(
        "--judges", type=options.names(judges), default="correctness", help="comma-separated judges to align"
    )
    parser.add_argument(
        "--reviewer", default="none", help="whose labels to align to; 'none' = the latest human verdict, by anyone"
    )
    parser.add_argument(
        "--optimizer", default="memalign", choices=alignment.OPTIMIZERS, help="MLflow's alignment optimizer"
    )
    options.add_model_uri(parser, "--judge-model", "<provider>:/<model> of the judges, also the optimizer's own model")
    options.add_model_uri(
        parser,
        "--embedding-model",
        "MemAlign's embedding model (served at OPENAI_BASE_URL /embeddings)",
        default=alignment.EMBEDDING_MODEL,
    )
    options.add_held_out(parser, "share of the labelled questions held out")
    parser.add_argument("--seed", type=int, default=42, help="seed of the split")
    return parser.parse_args(argv)


def reviewed_answers(run_ids: str, experiment_id: str) -> pd.DataFrame:
    """The traced answers of the generation runs named, or of every run reviewed in the experiment."""
    if run_ids.lower() == "none":
        reviews = mlflow.search_runs(
            [experiment_id], f"tags.`{generation.STEP_TAG}` = '{labels.REVIEW_STEP}'", output_format="list"
        )
        ids = sorted({r.data.tags["quiz.reviewed_run_id"] for r in reviews if "quiz.reviewed_run_id" in r.data.tags})
        if not ids:
            review = generation.command_here("review", {"generation_run_id": "<ID>"})
            raise cli.UserError(
                "no answer of this experiment was reviewed yet, so there is no human label to align a judge to. "
                f"Review some first: {review}"
            )
    else:
        ids = [i.strip() for i in run_ids.split(",") if i.strip()]
    runs = [evaluate_responses.find_generation_run(i, experiment_id) for i in ids]
    return pd.concat([generation.traced_answers(r) for r in runs], ignore_index=True)


def require_labels(found: dict[str, pd.DataFrame]) -> None:
    for name, table in found.items():
        if table.empty:
            review = generation.command_here("review", {"generation_run_id": "<ID>"})
            raise cli.UserError(
                f"no reviewed answer has a human verdict on {name}. Label some first ({review}), "
                "or pass -P reviewer=none to use anyone's labels"
            )


def require_enough(name: str, learn: int, held: int, args) -> None:
    """Enough labelled answers in each part, or one line saying how many more to review."""
    need = alignment.MIN_LABELS[args.optimizer]
    if learn < need:
        more = alignment.more_to_review(learn, need, args.held_out)
        fewest = min(alignment.MIN_LABELS, key=alignment.MIN_LABELS.get)  # memalign, which learns from 1
        other = (
            f", or use -P optimizer={fewest}, which learns from {alignment.MIN_LABELS[fewest]}"
            if fewest != args.optimizer
            else ""
        )
        raise cli.UserError(
            f"{name} has {learn} labelled answer(s) to align on and {args.optimizer} needs {need}. "
            f"Review about {more} more answer(s) of other questions with review{other}"
        )
    if held < alignment.MIN_HELD_OUT:
        raise cli.UserError(
            f"the held-out part has {held} labelled answer(s) on {name}; measuring a judge needs at least "
            f"{alignment.MIN_HELD_OUT}. Review more answers, or hold out more, e.g. -P held_out=0.5"
        )


def log_figures(name: str, measured: dict[str, alignment.Measured], aligned_on: int, held_out: int) -> None:
    """<judge>/aligned_on, /held_out, and /before_agreement, /after_agreement, /before_kappa,
    /after_kappa (each when measured: kappa when defined, none when every verdict errored)."""
    mlflow.log_metrics({f"{name}/aligned_on": aligned_on, f"{name}/held_out": held_out})
    for when, found in measured.items():
        for row in found.table.itertuples():
            mlflow.log_metric(f"{name}/{when}_agreement", row.agreement)
            if row.kappa is not None and pd.notna(row.kappa):
                mlflow.log_metric(f"{name}/{when}_kappa", row.kappa)


if __name__ == "__main__":
    cli.run(main)

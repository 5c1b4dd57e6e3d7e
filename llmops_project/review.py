"""Review the answers of a generation run yourself, then measure each judge against you
(the talk: "Support for annotating LLM-responses with human feedback").

    mlflow run -e review --env-manager=local --experiment-id <EXPERIMENT_ID> . -P generation_run_id=<RUN_ID>

Shows each question and answer in the terminal and asks for the criteria a person can judge
(quiz/labels.py: correctness and the guidelines); ``-P labels=review_labels.example.csv`` reads
them from a file instead. Each verdict goes on the answer's trace with mlflow.log_feedback, source
HUMAN and your name. Stop with q and run the same command later: what you labelled is kept, and
nothing is logged twice. Then, for every judge that also judged those traces: the share of
answers on which it agrees with you, and Cohen's kappa (agreement beyond chance).
"""

import getpass
from pathlib import Path

import evaluate_responses
import mlflow
import pandas as pd
from mlflow.entities import AssessmentSource

import cli
from quiz import generation, labels
from quiz.questions import load_expectations, load_questions


def main() -> None:
    args = parse_args()
    reviewer = args.reviewer if args.reviewer.lower() != "none" else getpass.getuser()
    exam = [q.text for q in load_questions()]
    prepared = None if args.labels.lower() == "none" else labels.read_labels(Path(args.labels), exam)

    with mlflow.start_run(run_name=f"review-{reviewer}") as run:
        mlflow.set_tag(generation.STEP_TAG, "review")
        cli.log_new_params({**vars(args), "reviewer": reviewer})
        generation_run = evaluate_responses.find_generation_run(args.generation_run_id, run.info.experiment_id)
        mlflow.set_tag("quiz.reviewed_run_id", generation_run.info.run_id)
        traces = traced_answers(generation_run)
        source = AssessmentSource(source_type="HUMAN", source_id=reviewer)

        # Your verdicts, each on the answer's trace, beside the judges' (UI: the trace's Assessments)
        logged = already = 0
        if prepared is not None:
            unanswered = set(prepared) - set(traces["question"])
            print(f"{len(prepared)} labelled question(s) in {args.labels}; {len(unanswered)} not answered by that run")
        for answer in traces.itertuples():
            done = human_verdicts(answer.trace, reviewer)
            if set(labels.NAMES) <= set(done):
                already += 1
                continue
            label = prepared.get(answer.question) if prepared is not None else ask(answer, done)
            if label is None:
                if prepared is None:  # q: stop here; the same command resumes
                    break
                continue  # the file has no row for this question
            for name, value in label.verdicts.items():
                if name not in done:
                    mlflow.log_feedback(
                        trace_id=answer.trace_id, name=name, value=value, source=source, rationale=label.comment or None
                    )
                    logged += 1
        print(f"\n{logged} verdict(s) logged by {reviewer}; {already} answer(s) were reviewed already")
        mlflow.log_metrics({"human_verdicts_logged": logged})

        # Can we trust the judges? Each one against the humans, on the same traces
        table = labels.agreement_table(pairs(traces.trace_id, reviewer))
        mlflow.log_text(table.to_csv(index=False), "judge_agreement.csv")
        for row in table.itertuples():
            mlflow.log_metrics({f"{row.judge}/agreement": row.agreement, f"{row.judge}/labelled": row.labelled})
            if row.kappa is not None and pd.notna(row.kappa):
                mlflow.log_metric(f"{row.judge}/kappa", row.kappa)

    print_agreement(table)
    cli.print_ui_hint(run, "the review run; your feedback is on each trace of the generation run")
    if table.empty:
        cli.print_next(
            "let the judges judge these answers too, then review again to compare",
            f"mlflow run -e evaluate_responses --env-manager=local --experiment-id {run.info.experiment_id} "
            f"{{here}} -P generation_run_id={generation_run.info.run_id}",
        )


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example=(
            "mlflow run -e review --env-manager=local --experiment-name se-answers . "
            "-P generation_run_id=<GENERATION_RUN_ID> -P labels=review_labels.example.csv"
        ),
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--generation-run-id",
        default="none",
        help="run whose answers to review; 'none' = the latest finished generation run of this experiment",
    )
    parser.add_argument("--labels", default="none", help="labels CSV; 'none' = ask in the terminal")
    parser.add_argument("--reviewer", default="none", help="your name; 'none' = your login name")
    return parser.parse_args(argv)


def traced_answers(run) -> pd.DataFrame:
    """The run's answered questions with their traces (a run without traces cannot be reviewed)."""
    table = generation.answered(run)
    table = table[table["trace_id"] != ""].reset_index(drop=True)
    table["trace"] = [mlflow.get_trace(trace_id) for trace_id in table["trace_id"]]
    table = table[table["trace"].notna()].reset_index(drop=True)
    if table.empty:
        raise cli.UserError(
            f"run {run.info.run_id} has no traced answer to review. "
            "Generate answers with tracing on (the generate entry points do), e.g. "
            "mlflow run -e generate_answers --env-manager=local --experiment-name se-answers ."
        )
    return table


def human_verdicts(trace, reviewer: str) -> dict[str, bool]:
    """{criterion: verdict} this reviewer already gave on this trace."""
    return {
        a.name: a.feedback.value
        for a in trace.info.assessments
        if a.feedback is not None
        and a.source.source_type == "HUMAN"
        and a.source.source_id == reviewer
        and a.name in labels.NAMES
        and a.valid is not False
    }


def ask(answer, done: dict) -> labels.Label | None:
    """Show one question and its answer; ask each criterion not judged yet. None = stop (q)."""
    guidelines = load_expectations().get(answer.question, [])
    print("\n" + "=" * 100)
    print(f"Q{answer.number} ({answer.category}): {answer.question}")
    print("Criteria: " + " ".join(guidelines))
    print("-" * 100)
    print(answer.answer)
    print("-" * 100)
    verdicts = {}
    for name, question in labels.CRITERIA:
        if name in done:
            continue
        while True:
            try:
                reply = input(f"{question} [y/n, Enter = skip, q = stop] ").strip().lower()
            except EOFError:
                return None
            if reply == "q":
                return None
            try:
                value = labels.verdict(reply)
            except ValueError:
                print("  y, n, Enter or q")
                continue
            if value is not None:
                verdicts[name] = value
            break
    try:
        comment = input("Comment (optional, Enter = none): ").strip()
    except EOFError:
        comment = ""
    return labels.Label(answer.question, verdicts, comment)


def pairs(trace_ids, reviewer: str) -> dict[str, list[tuple[bool, bool]]]:
    """Per judge: (human verdict, judge verdict) on every trace both judged (the judge's latest)."""
    found: dict[str, list[tuple[bool, bool]]] = {}
    for trace_id in trace_ids:
        trace = mlflow.get_trace(trace_id)  # again: it now holds the verdicts just logged
        human = human_verdicts(trace, reviewer)
        judged = sorted(
            (a for a in trace.info.assessments if a.feedback is not None and a.source.source_type == "LLM_JUDGE"),
            key=lambda a: a.create_time_ms,
        )
        latest = {a.name: a.feedback.value for a in judged if a.feedback.error is None}
        for name in labels.NAMES:
            if name in human and name in latest:
                found.setdefault(name, []).append((bool(human[name]), labels.passed(latest[name])))
    return found


def print_agreement(table: pd.DataFrame) -> None:
    if table.empty:
        print("\nNo judge has judged these answers yet: nothing to compare your verdicts with.")
        return
    print("\nJudges against the human verdicts (judge_agreement.csv on the run):")
    print(f"  {'judge':30s} {'labelled':>8s} {'agreement':>9s} {'kappa':>6s}")
    for row in table.itertuples():
        kappa = "n/a" if row.kappa is None or pd.isna(row.kappa) else f"{row.kappa:.2f}"
        print(f"  {row.judge:30s} {row.labelled:8d} {row.agreement:9.2f} {kappa:>6s}")
    print("kappa: 1 = agrees as well as possible, 0 = no better than chance; n/a = everyone said the same")


if __name__ == "__main__":
    cli.run(main)

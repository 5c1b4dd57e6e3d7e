"""Review the answers of a generation run yourself, then measure each judge against you
(the talk: "Support for annotating LLM-responses with human feedback").

    mlflow run -e review --env-manager=local --experiment-name $EXPERIMENT_ID . -P generation_run_id=<RUN_ID>

First it sets up MLflow's Review page for those answers: one question per judge of
evaluate_responses.py (a label schema of the experiment: the judge's name, the question, Yes/No)
and a review queue holding the run's traces; both are created once, however often you run this.
Then you label: in the browser (the link it prints; ``-P labels=ui`` asks nothing here), in the
terminal (the default: each question and answer, y/n per criterion; q stops, the same command
resumes), or from a file (``-P labels=review_labels.example.csv``). Terminal and file verdicts go on
the answer's trace with mlflow.log_feedback, source HUMAN and your name, never twice, and the queue
marks that answer reviewed by you, as the Review page does.

Last, for every judge that judged those traces: the share of answers on which it agrees with the
humans, and Cohen's kappa (agreement beyond chance). It counts one human verdict per trace and
judge, whatever its source (Review page, the trace's Add feedback, terminal, file): the latest one
by ``-P reviewer`` when you name one, else the latest one by anyone. ``compare`` reads these
figures to decide which judges it may trust.
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

TERMINAL, UI = "terminal", "ui"  # -P labels=: ask in the terminal; ask nothing (label in the Review page)


def main() -> None:
    args = parse_args()
    counted = None if args.reviewer.lower() == "none" else args.reviewer  # whose verdicts count: None = anyone's
    reviewer = counted or getpass.getuser()  # who logs the terminal's and the file's verdicts
    asked = labels.criteria(evaluate_responses.guidelines_model())  # {judge name: the question asked}
    exam = [q.text for q in load_questions()]
    prepared = (
        None
        if args.labels.lower() in (TERMINAL, UI, "none")
        else labels.read_labels(Path(args.labels), exam, list(asked))
    )
    # A generation run given by its id is read, traces and all, before this run starts: a wrong id
    # leaves no run. The default ("none": the newest of this run's experiment) is found once it runs.
    latest = evaluate_responses.latest(args.generation_run_id)
    generation_run = None if latest else evaluate_responses.find_generation_run(args.generation_run_id)
    traces = generation.traced_answers(generation_run) if generation_run else None

    with mlflow.start_run(run_name=f"review-{reviewer}") as run:
        mlflow.set_tag(generation.STEP_TAG, "review")
        cli.log_new_params({**vars(args), "reviewer": reviewer})
        mlflow.log_param("verdicts_counted", counted or "anyone's latest")
        if generation_run is None:
            generation_run = evaluate_responses.find_generation_run(args.generation_run_id, run.info.experiment_id)
            traces = generation.traced_answers(generation_run)
        mlflow.set_tag("quiz.reviewed_run_id", generation_run.info.run_id)

        # MLflow's Review page: a Yes/No question per judge (label schemas), the run's answers as a queue,
        # each trace holding its question's guidelines (the Review page's reviewer reads them there)
        traces = labels.with_expectations(traces, load_expectations())
        schema_ids = labels.ensure_label_schemas(run.info.experiment_id, asked)
        queue = labels.ensure_review_queue(
            run.info.experiment_id, labels.queue_name(generation_run), schema_ids, traces["trace_id"]
        )
        mlflow.set_tag("quiz.review_queue", queue.name)
        page = cli.ui_page(f"/experiments/{run.info.experiment_id}/review-queue") + f"&selectedQueueId={queue.queue_id}"
        print(f"Review page for these {len(traces)} answers (queue {queue.name!r}):\n  {page}")

        # Your verdicts from the terminal or the file, each on the answer's trace, beside the judges'
        source = AssessmentSource(source_type="HUMAN", source_id=reviewer)
        logged = already = 0
        if prepared is not None:
            unanswered = set(prepared) - set(traces["question"])
            print(f"{len(prepared)} labelled question(s) in {args.labels}; {len(unanswered)} not answered by that run")
        for answer in traces.itertuples() if args.labels.lower() != UI else []:
            done = labels.human_verdicts(answer.trace, asked, reviewer)
            if set(asked) <= set(done):
                already += 1
                labels.mark_reviewed(queue, answer.trace_id, reviewer)
                continue
            label = prepared.get(answer.question) if prepared is not None else ask(answer, asked, done)
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
            labels.mark_reviewed(queue, answer.trace_id, reviewer)  # the Review page's count: reviewed, by you
        if args.labels.lower() != UI:
            done_before = f"{already} answer(s) were reviewed by {reviewer} already"
            print(f"\n{logged} verdict(s) logged by {reviewer}; {done_before}")
        mlflow.log_metrics({"human_verdicts_logged": logged})

        # Can we trust the judges? Each one (name and model) against the humans, on the same traces
        reviewed = [mlflow.get_trace(trace_id) for trace_id in traces["trace_id"]]  # with today's verdicts
        require_verdicts(reviewed, asked, counted, generation_run, page)
        table = labels.agreement_table(labels.pairs(reviewed, asked, counted), order=asked)
        mlflow.log_text(table.to_csv(index=False), labels.AGREEMENT_ARTIFACT)
        mlflow.log_param("judge_models", " ".join(sorted(set(table["judge_model"]))) or "none")
        for row in table.itertuples():
            mlflow.log_metrics({f"{row.judge}/agreement": row.agreement, f"{row.judge}/labelled": row.labelled})
            if row.kappa is not None and pd.notna(row.kappa):
                mlflow.log_metric(f"{row.judge}/kappa", row.kappa)

    labels.print_agreement(table, counted)
    cli.print_ui_hint(run, "the review run; the verdicts are on each trace of the generation run")
    labelled = not table.empty or any(labels.human_verdicts(trace, asked, counted) for trace in reviewed)
    print_next_step(generation.experiment_name(run), generation_run.info.run_id, table, labelled)


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
    parser.add_argument(
        "--labels",
        default=TERMINAL,
        help="'terminal' (ask here), 'ui' (ask nothing: label in MLflow's Review page), or a labels CSV",
    )
    parser.add_argument(
        "--reviewer",
        default="none",
        help="whose verdicts count, and your name on the ones logged here; 'none' = count anyone's, log as your login",
    )
    return parser.parse_args(argv)


def print_next_step(experiment: str, generation_run_id: str, table: pd.DataFrame, labelled: bool) -> None:
    """What to run next: label in the Review page (nothing labelled yet), let the judges judge these
    answers (labelled, but no judge verdict to compare with), or compare on what is now measured."""
    this_run = {"generation_run_id": generation_run_id}
    if table.empty and not labelled:
        cli.print_next(
            "label these answers in the Review page (the link above), then run review again to measure the judges",
            cli.mlflow_run_command("review", {**this_run, "labels": UI}, experiment),
        )
    elif table.empty:
        cli.print_next(
            "let the judges judge these answers too, then review again to compare",
            cli.mlflow_run_command("evaluate_responses", this_run, experiment),
        )
    else:
        cli.print_next(
            "compare prompt templates on the evidence you can now trust",
            cli.mlflow_run_command("compare", {"templates": "basic,practical", "max_questions": 6}, experiment),
        )


def require_verdicts(traces, asked: dict, counted: str | None, generation_run, page: str) -> None:
    """A named reviewer with no verdict on any of these answers is a mistake (a misspelt name, or
    verdicts given in the UI under another name): say so, rather than measure nothing."""
    if counted is None or any(labels.human_verdicts(trace, asked, counted) for trace in traces):
        return
    givers = sorted({a.source.source_id for t in traces for a in labels.human_feedback(t)})
    raise cli.UserError(
        f"reviewer {counted!r} has no verdict on the answers of run {generation_run.info.run_id} "
        f"(verdicts there are by: {', '.join(givers) or 'nobody yet'}). Label them in the Review page ({page}), "
        "pass one of those names with -P reviewer, or leave -P reviewer out to count anyone's"
    )


def ask(answer, asked: dict[str, str], done: dict) -> labels.Label | None:
    """Show one question and its answer; ask each criterion not judged yet. None = stop (q)."""
    guidelines = load_expectations().get(answer.question, [])
    print("\n" + "=" * 100)
    print(f"Q{answer.number} ({answer.category}): {answer.question}")
    print("Guidelines: " + " ".join(guidelines))
    print("-" * 100)
    print(answer.answer)
    print("-" * 100)
    verdicts = {}
    for name, question in asked.items():
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


if __name__ == "__main__":
    cli.run(main)

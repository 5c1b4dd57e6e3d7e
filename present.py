"""`make present`: walk the talk's hands-on steps live, slide by slide. `make demo` walks them straight through.

    python present.py              # pause for Enter between steps (q quits)
    python present.py --no-pause   # straight through (what `make demo` runs)
    python present.py --list       # the steps
    python present.py --from 9     # start at step 9; --only 9 runs just that one
    python present.py --to 14      # stop after step 14 (the ML half); --from 15 walks the LLM half
    python present.py --ui         # start the MLflow UI first, on the store the steps write to
    python present.py --build-offline-model   # make demo's first run: compile the offline model meanwhile

For each step it prints the slide's title and the exact command as the slide shows it, from the
folder the talk runs it in (the ids of earlier steps filled in), runs it and shows its output, then
says what to look at and gives a direct link to that run, model, prompt or trace in the UI.
A step that fails on purpose (seed 43) is shown as the talk intends; any other failure stops the
walk with the command to retry.

A walk from step 1 writes to new dated experiments (adult-classifier-<date>, se-answers-<date>,
se-answers-agents-<date>); --from N and --only N write to the newest ones the store holds, next to
the earlier steps. A command that an earlier step's script printed ("Next, ...") is taken from that
output: Printed(step, what) below.

The LLM steps use OpenAI when OPENAI_API_KEY is set (or any OpenAI-compatible server given by
OPENAI_BASE_URL), and otherwise the offline model of llmops_project/local_llm, started here and
stopped at the end. Without either, they are skipped and the walk ends by saying how to fix that.

To add a step, add one row to STEPS where the talk shows it (the runner is present_runner.py).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
from datetime import datetime
from pathlib import Path

from present_runner import (
    STAMP,
    STAMP_FORMAT,
    Printed,
    Step,
    Walk,
    failed_run_page,
    logged_model_page,
    registered_model_page,
    review_queue_page,
    run_page,
    traces_page,
    walk_through,
)

# --quick: the same commands with grids small enough for CI (MLflow's examples shrink their runs too)
QUICK_FOREST = ("-P", '"rf_n_estimators=[10]"', "-P", '"rf_max_depths=[12]"')
QUICK_TRAIN = ("-P", "cv_splits=2", "-P", '"lr_C_values=[1.0]"', *QUICK_FOREST)


def serve_instead(predict: str, walk: Walk) -> str:
    """The talk's `mlflow models serve` of the model that the printed `mlflow models predict` uses."""
    model_uri = shlex.split(predict)[shlex.split(predict).index("-m") + 1]
    return f'mlflow models serve --env-manager local -m "{model_uri}" -p {walk.serve_port}'


def held_out_batch(monitor: str, walk: Walk) -> str:
    """test.py prints the drifted batch; the notes first monitor a batch like the training data."""
    return monitor.replace("batch=shifted", "batch=held_out")


def every_labelled_question(generate: str, walk: Walk) -> str:
    """register_all_prompts prints the talk's 4 questions; the walk answers the 8 that
    review_labels.example.csv labels, so that align has labelled answers to learn from and others,
    never seen, to measure on (4 and 4)."""
    return generate.replace("-P max_questions=4", "-P max_questions=8")


def with_example_labels(review: str, walk: Walk) -> str:
    """evaluate_responses.py prints the interactive review; the walk answers with the shipped example labels."""
    return f"{review} -P labels=review_labels.example.csv -P reviewer=instructor"


STEPS = [
    Step(
        "A taste of MLflow's Tracking API (pt. 2): a successful run",
        "tracking_example",
        "python logging_example.py 42",
        "experiment logging_example: the run, its parameter, five metrics and the examples/example.txt artifact",
        run_page,
    ),
    Step(
        "A taste of MLflow's Tracking API (pt. 2): a failing run, on purpose",
        "tracking_example",
        "python logging_example.py 43",
        "the red cross: the run ended FAILED, with everything it logged before the error (pt. 4)",
        failed_run_page("tracking_example/logging_example.py"),
        fails_on_purpose=True,
    ),
    Step(
        'Course notes "MLflow metadata and information retrieval": search the runs',
        "tracking_example",
        "mlflow run -e query --env-manager=local --experiment-name logging_example_queries .",
        "the table printed above comes from mlflow.search_runs; the best run is linked",
        run_page,
    ),
    Step(
        "Autologging APIs (pt. 2)",
        "autologging_example",
        "python autologging_example.py",
        "params, metrics, the dataset, the model and estimator.html, none logged by hand (pt. 3-7)",
        run_page,
        name="autolog",
    ),
    Step(
        "Model serving via MLflow (pt. 1): the CLI",
        "autologging_example",
        Printed("autolog", "predict with it"),
        'the predictions: {"predictions": [0, 1, 2]}; the logged model in the UI',
        logged_model_page,
    ),
    Step(
        "Model serving via MLflow (pt. 2): a web endpoint",
        "autologging_example",
        Printed("autolog", "predict with it", then=serve_instead),
        "the same predictions, over HTTP, from the curl request shown",
        logged_model_page,
    ),
    Step(
        "Model registration via MLflow (pt. 1-4): the Register button, as a command",
        "autologging_example",
        Printed("autolog", "register it"),
        "Models > iris-classifier-dt: its versions, and the alias champion",
        registered_model_page,
    ),
    Step(
        'Course notes "MLflow tracking and autologging": the complete example',
        "autologging_example",
        'mlflow run -e random_forest --env-manager=local --experiment-name "Iris Experiment" .',
        "autolog plus manual logging: test_accuracy and Artifacts > feature_importance.png",
        run_page,
    ),
    Step(
        "A realistic MLOps scenario with MLflow (pt. 1-3): the notebook, run headless",
        "census_project",
        "python run_notebook.py --experiment-name census-notebook",
        "the parent run notebook-grid-search and its nested runs, one per candidate (pt. 2); "
        "Models > adult-best-random-forest, alias notebook (pt. 3); make notebook opens the notebook itself",
        run_page,
        quick=("--quick",),
    ),
    Step(
        "MLflow Project Example (pt. 3): train",
        "census_project",
        "mlflow run -e train --env-manager=local --experiment-name {census} . -P model_type=both",
        "the parent run and its nested candidate runs; compare them in the chart view (talk pt. 2 of the scenario)",
        run_page,
        name="train",
        quick=QUICK_TRAIN,
    ),
    Step(
        "MLflow Project Example (pt. 5): re-run with other parameters",
        "census_project",
        "mlflow run -e train --env-manager=local --experiment-name {census} . "
        "-P model_type=random_forest -P test_size=0.25 -P cv_splits=5 -P random_state=123",
        "a second training run; the output said whether its model beat the champion (census README, Champion)",
        run_page,
        quick=QUICK_FOREST,
    ),
    Step(
        "MLflow Project Example (pt. 6): test the best model",
        "census_project",
        Printed("train", "test the winner"),
        "test metrics and charts/ (confusion matrix, ROC, precision-recall, calibration)",
        run_page,
        name="test",
    ),
    Step(
        "Monitoring with Evidently (course notes): a batch like the training data",
        "census_project",
        Printed("test", "check the data for drift", then=held_out_batch),
        "monitoring.status=pass; Artifacts > monitoring/drift_report.html",
        run_page,
    ),
    Step(
        "Monitoring with Evidently (course notes): a drifted batch",
        "census_project",
        Printed("test", "check the data for drift"),
        "monitoring.status=fail, dataset_drift=1: the report shows which columns drifted",
        run_page,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 5): register the prompts",
        "llmops_project",
        "mlflow run -e register_all_prompts --env-manager=local --experiment-name {answers} .",
        "Prompts: the six templates, each with the alias production (pt. 5-6)",
        lambda walk, shown: walk.page("prompts/basic"),
        name="prompts",
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 7): generate answers",
        "llmops_project",
        Printed("prompts", "generate answers", then=every_labelled_question),
        "the run's Traces tab: one trace per question, with the prompt and the answer (pt. 8)",
        traces_page,
        name="generate",
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 9): evaluate the answers",
        "llmops_project",
        Printed("generate", "evaluate these answers"),
        "the evaluation run, and the assessments (english, correctness, ...) on each trace",
        run_page,
        name="evaluate",
        llm=True,
    ),
    Step(
        "LLMOps with MLflow: human feedback, and how far to trust the judges (review)",
        "llmops_project",
        Printed("evaluate", "review these answers", then=with_example_labels),
        "the Review page: a Yes/No question per judge and the queue of the answers, to label in the browser; "
        "the review run's agreement and kappa per judge, HUMAN and LLM_JUDGE assessments side by side on each trace",
        review_queue_page,
        llm=True,
    ),
    Step(
        "LLMOps with MLflow: select the best prompt by evaluation, on evidence you trust (compare)",
        "llmops_project",
        "mlflow run -e compare --env-manager=local --experiment-name {answers} . "
        "-P templates=basic -P max_tokens=8,500 -P max_questions=6",
        "the comparison run: which scorers it trusted and which judges it set aside (and why), "
        "comparison.csv, comparison.png and the decision tag; its child runs are the candidates; "
        "Prompts > basic: @champion, and the tag quiz.won_with (the budget that won)",
        run_page,
        name="compare",
        llm=True,
    ),
    Step(
        "LLMOps with MLflow: teach a judge the reviewer's verdicts, measure it on held-out answers (align)",
        "llmops_project",
        "mlflow run -e align --env-manager=local --experiment-name {answers} . "
        "-P judges=correctness -P reviewer=instructor",
        "the align run: the split, judge_alignment.csv (agreement and kappa before and after, held-out answers); "
        "the experiment's Judges page: correctness_aligned_to_instructor",
        run_page,
        name="align",
        llm=True,
        needs="dspy",
    ),
    Step(
        "LLMOps with MLflow: let MLflow rewrite the champion prompt, then compare on held-out questions (optimize)",
        "llmops_project",
        "mlflow run -e optimize --env-manager=local --experiment-name {answers} . -P max_questions=8 -P held_out=0.75"
        "{aligned_judges}",
        "Prompts > basic: the new version, tagged quiz.optimized_from, quiz.optimizer and quiz.template_changed "
        "(offline, a 135M model's rewrite: read it before trusting it); the optimize run: the evidence it "
        "trusted (the aligned judge weighed by the same rule), its optimization child run, the two candidates "
        "on the held-out questions, and its decision tag",
        lambda walk, shown: walk.page("prompts/basic"),
        name="optimize",
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 10-11): an agent with a search tool",
        "llmops_project",
        "mlflow run -e generate_answers_with_agent --env-manager=local --experiment-name {agents} . -P max_questions=2",
        "a trace: the web_search_tool span and its result; then Details & Timeline (pt. 11)",
        traces_page,
        llm=True,
    ),
]


def main() -> None:
    args = parse_args()
    steps = list(enumerate(STEPS, start=1))
    if args.list:
        for number, step in steps:
            print(f"{number:2d}. {step.slide}   [{step.folder}]")
        return
    chosen = [(n, s) for n, s in steps if (n == args.only if args.only else args.start <= n <= args.to)]
    walk = Walk(
        STEPS,
        stamp=args.stamp,
        fresh=chosen[0][0] == 1 and not args.only,  # from step 1: new dated experiments; else the newest ones
        quick=args.quick,
        ui=f"http://127.0.0.1:{args.ui_port}",
        serve_port=args.serve_port,
    )
    walk_through(
        walk,
        chosen,
        pause=not args.no_pause,
        ui_port=args.ui_port if args.ui else None,
        links_file=args.links_file,
        build=args.build_offline_model,
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-pause", action="store_true", help="run every step without waiting for Enter")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--from", dest="start", type=int, default=1, help="start at this step")
    parser.add_argument("--to", type=int, default=len(STEPS), help="stop after this step")
    parser.add_argument("--only", type=int, help="run only this step")
    parser.add_argument("--ui", action="store_true", help="start the MLflow UI in the background first")
    parser.add_argument("--ui-port", type=int, default=int(os.environ.get("UI_PORT", 5000)))
    parser.add_argument("--serve-port", type=int, default=1234, help="the port of the `models serve` step (the talk's)")
    parser.add_argument("--quick", action="store_true", help="small census grids (CI); same commands otherwise")
    parser.add_argument("--links-file", type=Path, help="write the UI links shown, one per line (for tests)")
    parser.add_argument(
        "--build-offline-model",
        action="store_true",
        help="no OPENAI_API_KEY and the offline model not installed yet (make demo passes it then): compile it in "
        "the background while the ML steps run; the first LLM step waits for it and installs it",
    )
    parser.add_argument(
        "--stamp",
        default=datetime.now().strftime(STAMP_FORMAT),
        help="the date stamp of new experiment names, YYYY-MM-DD-HH-MM (default: now)",
    )
    args = parser.parse_args()
    if not all(1 <= n <= len(STEPS) for n in (args.only or args.start, args.to)):
        parser.error(f"steps are numbered 1 to {len(STEPS)}")
    if args.start > args.to:
        parser.error(f"--from {args.start} comes after --to {args.to}")
    if not re.fullmatch(STAMP, args.stamp):
        parser.error(f"--stamp {args.stamp}: expected YYYY-MM-DD-HH-MM, e.g. --stamp 2026-11-23-17-05")
    return args


if __name__ == "__main__":
    main()

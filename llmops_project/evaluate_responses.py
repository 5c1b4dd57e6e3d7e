"""Talk pt. 9: judge the answers of a generation run with LLM-as-a-judge and code scorers.

    mlflow run -e evaluate_responses --env-manager=local --experiment-id <EXPERIMENT_ID> . \
        -P generation_run_id=<GENERATION_RUN_ID>

Only questions answered successfully (status 'ok' in the run's answers.csv) are evaluated: their
traces get one assessment per scorer, this run gets the aggregate metrics and
evaluation_results.csv (one row per question).
"""

import io

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from quiz import QuizError, cli, generation, provider, scorers
from quiz.questions import load_expectations

RESULTS_ARTIFACT = "evaluation_results.csv"


def parse_args():
    defaults = cli.entry_point_defaults("evaluate_responses")
    parser = cli.ArgumentParser(prog="evaluate_responses.py", description=__doc__)
    parser.add_argument(
        "--generation-run-id",
        default=defaults["generation_run_id"],
        help="run to evaluate; 'none' = the latest finished generation run of this experiment",
    )
    parser.add_argument(
        "--judge-model",
        default=defaults["judge_model"],
        help="judge model URI, <provider>:/<model> (OPENAI_BASE_URL applies to openai:/...)",
    )
    return parser.parse_args()


def find_generation_run(client: MlflowClient, run_id: str, experiment_id: str):
    if run_id.lower() != "none":
        try:
            return client.get_run(run_id)
        except Exception:
            raise QuizError(
                f"generation run {run_id!r} not found in this tracking store. "
                "Pass the run id printed by generate_answers"
            ) from None
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{generation.STEP_TAG}` = 'generation' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise QuizError(
            "no finished generation run in this experiment. Run generate_answers first, "
            "or pass -P generation_run_id=<id>"
        )
    return runs[0]


def load_answers(client: MlflowClient, run) -> pd.DataFrame:
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{generation.ANSWERS_ARTIFACT}")
    except Exception:
        raise QuizError(
            f"run {run.info.run_id} has no {generation.ANSWERS_ARTIFACT}. "
            "Pass the id of a generate_answers or generate_answers_with_agent run"
        ) from None
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call (the judges call the provider)
    if ":/" not in args.judge_model:
        raise QuizError(
            f"judge_model {args.judge_model!r} is not a model URI. Use <provider>:/<model>, e.g. openai:/gpt-4.1-mini"
        )
    expectations = load_expectations()

    with mlflow.start_run() as run:
        mlflow.set_tag("quiz.step", "evaluation")
        cli.log_arguments(vars(args))
        client = MlflowClient()
        generation_run = find_generation_run(client, args.generation_run_id, run.info.experiment_id)
        mlflow.set_tag("quiz.evaluated_run_id", generation_run.info.run_id)
        answers = load_answers(client, generation_run)
        answered = answers[answers["status"] == "ok"].reset_index(drop=True)
        print(
            f"Evaluating {len(answered)} answers of run {generation_run.info.run_id} "
            f"({len(answers) - len(answered)} failed questions left out) with judge {args.judge_model}"
        )
        if answered.empty:
            raise QuizError("that run has no successful answer to evaluate. Generate answers again")

        missing = [q for q in answered["question"] if q not in expectations]
        if missing:
            raise QuizError(f"expectations.json has no correctness guidelines for {missing[0]!r}. Add them")
        data = pd.DataFrame(
            {
                "trace": [mlflow.get_trace(trace_id) for trace_id in answered["trace_id"]],
                "expectations": [{"guidelines": expectations[q]} for q in answered["question"]],
            }
        )
        results = mlflow.genai.evaluate(data=data, scorers=list(scorers.guidelines_model(args.judge_model)))

        table = results.tables["eval_results"].set_index("trace_id")
        per_question = answered[["number", "category", "question", "trace_id"]].copy()
        for name in scorers.SCORER_NAMES:
            for field in ("value", "rationale"):
                column = f"{name}/{field}"
                per_question[column] = per_question["trace_id"].map(table[column]) if column in table else None
        mlflow.log_text(per_question.to_csv(index=False), RESULTS_ARTIFACT)

    print("\nPass rates:")
    for name, value in sorted(results.metrics.items()):
        print(f"  {name:40s} {value:.2f}")
    print(
        f"Per-question results: {RESULTS_ARTIFACT} in run {run.info.run_id}; "
        "assessments on each trace (MLflow UI, 'Traces' tab)."
    )


if __name__ == "__main__":
    cli.run(main)

"""Evaluate the answers of a generation run: LLM-as-a-judge plus code scorers (talk pt. 9).

    mlflow run -e evaluate_responses --env-manager=local --experiment-name $EXPERIMENT_ID . \\
        -P generation_run_id=<GENERATION_RUN_ID>

The evaluation criteria of the talk (running example pt. 3-4) are defined below. Only questions
answered successfully (status "ok" in the run's answers.csv) are judged: each of their traces gets
one assessment per scorer; this run gets the pass rates and evaluation_results.csv.
"""

import mlflow
import pandas as pd
from mlflow.entities import Feedback
from mlflow.genai.scorers import ExpectationsGuidelines, Guidelines, RelevanceToQuery, scorer

import cli
from quiz import dataset, evaluation, generation, options, provider


@scorer
def enough_words(outputs: dict) -> Feedback:
    text = answer_text(outputs)
    word_count = len(text.split())
    score = word_count >= 10
    rationale = (
        f"The response has more than 10 words: {word_count}"
        if score
        else f"The response does not have enough words because it has less than 10 words: {word_count}."
    )
    return Feedback(value=score, rationale=rationale)


@scorer
def not_too_many_words(outputs: dict) -> Feedback:
    text = answer_text(outputs)
    word_count = len(text.split())
    score = word_count <= 1000
    rationale = (
        f"The response has less than 1000 words: {word_count}"
        if score
        else f"The response has too many words: {word_count}."
    )
    return Feedback(value=score, rationale=rationale)


def guidelines_model(model: str = None):
    yield Guidelines(model=model, name="english", guidelines="The answer should be in English.")
    yield Guidelines(
        model=model,
        name="software_engineering_related",
        guidelines="The answer is correctly contextualizing the question within the domain of software engineering.",
    )
    yield Guidelines(
        model=model,
        name="reference_to_definition",
        guidelines="The answer should reference and/or quote relevant definitions "
        "for the concepts mentioned in the question.",
    )
    yield RelevanceToQuery(model=model)
    yield enough_words
    yield not_too_many_words
    # Beyond the slide: each question's own correctness criteria (expectations.json), judged
    # against the "guidelines" expectation of every row of the evaluation data.
    yield ExpectationsGuidelines(model=model, name="correctness")


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call (the judges call the provider)
    exam_records = dataset.records()  # questions.csv + expectations.json, checked before any run
    # A generation run given by its id is read, answers and all, before this run starts: a wrong id
    # leaves no run. The default ("none": the newest of this run's experiment) is found once it runs.
    generation_run = None if latest(args.generation_run_id) else find_generation_run(args.generation_run_id)
    answers = load_answers(generation_run, exam_records) if generation_run else None

    with mlflow.start_run(run_name="evaluate") as run:
        mlflow.set_tag(generation.STEP_TAG, "evaluation")
        cli.log_new_params(vars(args))
        if generation_run is None:
            generation_run = find_generation_run(args.generation_run_id, run.info.experiment_id)
            answers = load_answers(generation_run, exam_records)
        mlflow.set_tag("quiz.evaluated_run_id", generation_run.info.run_id)
        # The exam as an MLflow evaluation dataset (UI: Datasets), kept in step with the files;
        # this run records which one it was judged against (input, params dataset_name/_version)
        exam, version, _ = dataset.sync(run.info.experiment_id, exam_records)
        dataset.log_use(exam, version)
        expectations = dataset.expectations_of(exam)
        print(f"Judging {len(answers)} answers of run {generation_run.info.run_id} with {args.judge_model}")

        # The evaluation data: each answer's trace, with its question's correctness guidelines
        data = evaluation.evaluation_data(answers, expectations)
        scorers = list(guidelines_model(args.judge_model))
        results = mlflow.genai.evaluate(data=data, scorers=scorers)
        counts = evaluation.judge_counts(results, scorers)
        if counts["judge_errors"]:
            provider.stop_if_crashed()  # judges that got no answer because the offline server died
        mlflow.log_metrics(counts)
        mlflow.log_text(
            evaluation.per_question(answers, results, scorers).to_csv(index=False), "evaluation_results.csv"
        )

    print("\nPass rates:")
    for name, value in sorted(results.metrics.items()):
        print(f"  {name:40s} {value:.2f}")
    cli.print_ui_hint(run, "the evaluation run; the assessments are on each trace of the generation run")
    cli.print_next(
        "review these answers yourself, and measure how far the judges agree with you",
        cli.mlflow_run_command(
            "review", {"generation_run_id": generation_run.info.run_id}, generation.experiment_name(run)
        ),
    )


def answer_text(outputs) -> str:
    """The final answer in a trace's outputs: an OpenAI ChatCompletion ({'choices': [...]}, as on
    the slide), a LangChain agent's final state ({'messages': [...]}), or a plain string."""
    if isinstance(outputs, str):
        return outputs
    if isinstance(outputs, dict) and outputs.get("choices"):
        content = outputs["choices"][-1]["message"]["content"]
    elif isinstance(outputs, dict) and outputs.get("messages"):
        content = outputs["messages"][-1]["content"]
    else:
        return ""
    if isinstance(content, list):  # content blocks
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e evaluate_responses --env-manager=local --experiment-name se-answers . "
        "-P generation_run_id=<GENERATION_RUN_ID>",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument(
        "--generation-run-id",
        default="none",
        help="run to evaluate; 'none' = the latest finished generation run of this experiment",
    )
    options.add_model_uri(parser, "--judge-model", "<provider>:/<model>, e.g. openai:/gpt-4.1-mini")
    return parser.parse_args(argv)


def latest(run_id: str) -> bool:
    """Whether ``-P generation_run_id`` asks for the newest generation run of the experiment ("none")."""
    return run_id.lower() == "none"


def find_generation_run(run_id: str, experiment_id: str | None = None):
    """The run to evaluate: the given one, or for "none" the newest finished generation run of the
    experiment ``experiment_id``."""
    client = mlflow.MlflowClient()
    if not latest(run_id):
        try:
            return client.get_run(run_id)
        except mlflow.exceptions.MlflowException:
            raise cli.UserError(
                f"generation run {run_id!r} not found in this tracking store. Pass the run id generate_answers printed"
            ) from None
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{generation.STEP_TAG}` = 'generation' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        raise cli.UserError(
            "no finished generation run in this experiment. "
            "Run generate_answers first, or pass -P generation_run_id=<id>"
        )
    return runs[0]


def load_answers(run, exam_records: list[dict]) -> pd.DataFrame:
    """The successfully answered questions of a generation run (failed ones are never judged), each
    a question of the exam (``dataset.records``: questions.csv, each with its guidelines)."""
    answered = generation.answered(run)
    print(f"{answered.attrs['failed']} failed question(s) of that run left out")
    if answered.empty:
        raise cli.UserError("that run has no successful answer to evaluate. Generate answers again")
    exam = {record["inputs"]["question"] for record in exam_records}
    missing = [q for q in answered["question"] if q not in exam]
    if missing:
        raise cli.UserError(f"expectations.json has no correctness guidelines for {missing[0]!r}. Add them")
    return answered


if __name__ == "__main__":
    cli.run(main)

"""Generate model answers with the OpenAI SDK, every call traced by autolog (talk pt. 7-8).

    mlflow run -e generate_answers --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=4

Works with OpenAI (OPENAI_API_KEY) or any OpenAI-compatible server (OPENAI_BASE_URL, e.g. the
offline model of local_llm/ or Ollama).
"""

import mlflow

import cli
from quiz import generation, options, provider
from quiz.questions import load_questions


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    questions = load_questions(max_questions=args.max_questions)

    # Autologging for the OpenAI SDK: one trace per chat completion call, i.e. per question
    mlflow.openai.autolog()
    with mlflow.start_run(run_name=f"generate-{args.prompt_template}-{args.model}") as run:
        mlflow.set_tag(generation.STEP_TAG, "generation")
        cli.log_new_params(vars(args))
        # The prompt templates, from the prompt registry through their alias (talk pt. 5-6)
        system = mlflow.genai.load_prompt("prompts:/system@production", allow_missing=True)
        user = mlflow.genai.load_prompt(f"prompts:/{args.prompt_template}@production", allow_missing=True)
        generation.require_prompts(system, user)
        mlflow.log_params({f"prompt_{p.name}": f"{p.name}@production=v{p.version}" for p in (system, user)})
        client = provider.openai_client()

        def answer(question):
            response = client.chat.completions.create(
                model=args.model,
                messages=[
                    {"role": "system", "content": system.template},
                    {"role": "user", "content": generation.user_message(user, question)},
                ],
                temperature=args.temperature,
                max_tokens=args.max_tokens,
            )
            return generation.Reply.from_chat_completion(response)

        print(f"Answering {len(questions)} questions with {args.model} at {provider.endpoint()}")
        answers = generation.answer_all(questions, answer, concurrency=args.concurrency)
        # The answers table (evaluate_responses reads it) and the run's metrics
        mlflow.log_text(
            generation.answers_table(answers, user, args.model).to_csv(index=False), generation.ANSWERS_ARTIFACT
        )
        mlflow.log_metrics(generation.summarize(answers))
        generation.report(answers, args.max_failure_rate)

    generation.print_next_steps(run)


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e generate_answers --env-manager=local --experiment-name se-answers . -P max_questions=4",
        description=__doc__.split("\n\n")[0],
    )
    options.add_generation_arguments(parser, model="gpt-4.1-mini", max_tokens=500)
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli.run(main)

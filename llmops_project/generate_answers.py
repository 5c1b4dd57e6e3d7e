"""Talk pt. 7: generate model answers with the OpenAI SDK; every call traced by autolog.

mlflow run -e generate_answers --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=4
"""

import mlflow

from quiz import cli, generation, prompts, provider
from quiz.questions import load_questions


def parse_args():
    defaults = cli.entry_point_defaults("generate_answers")
    parser = cli.ArgumentParser(prog="generate_answers.py", description=__doc__)
    cli.add_generation_arguments(parser, defaults)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    questions = load_questions(max_questions=args.max_questions)

    mlflow.openai.autolog()  # one trace per chat completion call, i.e. per question
    with generation.generation_run(vars(args)):
        prompt_set = prompts.load_prompt_set(args.prompt_template)  # once per run
        client = provider.openai_client()

        def answer(question):
            response = client.chat.completions.create(
                model=args.model,
                messages=prompt_set.messages(question),
                temperature=args.temperature,
                max_tokens=args.max_tokens,
            )
            usage = response.usage
            return generation.Reply(
                text=response.choices[0].message.content or "",
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
            )

        print(f"Answering {len(questions)} questions with {args.model} at {provider.endpoint()}")
        generation.generate(
            questions,
            answer,
            prompt_set,
            model=args.model,
            concurrency=args.concurrency,
            max_failure_rate=args.max_failure_rate,
        )


if __name__ == "__main__":
    cli.run(main)

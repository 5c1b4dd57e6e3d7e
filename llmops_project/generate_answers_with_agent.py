"""Talk pt. 10: generate answers with a LangChain agent that may call web_search_tool.

mlflow run -e generate_answers_with_agent --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=2
"""

import mlflow
from langchain.agents import create_agent

from quiz import cli, generation, prompts, provider, search
from quiz.questions import load_questions


def parse_args():
    defaults = cli.entry_point_defaults("generate_answers_with_agent")
    parser = cli.ArgumentParser(prog="generate_answers_with_agent.py", description=__doc__)
    cli.add_generation_arguments(parser, defaults)
    parser.add_argument(
        "--search-results-count",
        type=cli.whole_number(1),
        default=defaults["search_results_count"],
        help="results per web search (default and maximum)",
    )
    parser.add_argument(
        "--search-backend",
        default=defaults["search_backend"],
        help="auto (DuckDuckGo if reachable, else offline), ddgs or offline",
    )
    return parser.parse_args()


def reply_from(messages) -> generation.Reply:
    """The agent's final state -> answer text, tokens of every model call, tool calls made."""
    usage = [m.usage_metadata for m in messages if getattr(m, "usage_metadata", None)]
    return generation.Reply(
        text=str(messages[-1].text),
        prompt_tokens=sum(u.get("input_tokens", 0) for u in usage),
        completion_tokens=sum(u.get("output_tokens", 0) for u in usage),
        tool_calls=sum(1 for m in messages if m.type == "tool"),
    )


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    questions = load_questions(max_questions=args.max_questions)

    mlflow.langchain.autolog()  # one trace per agent run, with model and tool spans
    with generation.generation_run(vars(args)):
        prompt_set = prompts.load_prompt_set(args.prompt_template, with_tools=True)  # once per run
        backend = search.choose_backend(args.search_backend)
        mlflow.set_tag("quiz.search_backend_used", backend.name)
        agent = create_agent(
            provider.chat_model(args.model, args.temperature, args.max_tokens),
            tools=[search.make_web_search_tool(backend, args.search_results_count)],
            system_prompt=prompt_set.system_text,
        )

        def answer(question):
            state = agent.invoke({"messages": [{"role": "user", "content": prompt_set.user_text(question)}]})
            return reply_from(state["messages"])

        print(
            f"Answering {len(questions)} questions with an agent on {args.model} at {provider.endpoint()}, "
            f"search backend: {backend.name}"
        )
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

"""Generate answers with a LangChain agent that calls web_search_tool; autolog traces every model
and tool call (talk pt. 5-6 of the running example, pt. 10-11 of MLflow for LLM applications).

    mlflow run -e generate_answers_with_agent --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=2

Offline, the search runs on a bundled corpus of reference notes (-P search_backend=offline; "auto"
uses DuckDuckGo when the internet is reachable).
"""

import mlflow
from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.tools import tool

import cli
from quiz import generation, options, provider, search
from quiz.questions import load_questions


def make_web_search_tool(searcher: search.Searcher):
    """The talk's web_search_tool, bound to this run's searcher (its backend and search_results_count)."""

    @tool
    def web_search_tool(query: str, max_results: int = 3) -> str:
        """
        Tool function for LLM to search the web and get formatted results.
        This combines search_web and format_search_results into a single tool.

        Args:
            query: Search query string
            max_results: Maximum number of results to return (default: 3)

        Returns:
            Markdown-formatted enumeration of search results where,
            for each result, the first line is the title of a Web page with an hyper-ref to the page's URL,
            and the second line is a snippet/summary of the content.
        """
        results = searcher.search_web(query, max_results=max_results)
        return search.format_search_results(results)

    return web_search_tool


@wrap_model_call
def search_first(request, handler):
    """The tools prompt says "Always use the provided web search tool": the agent's first model call
    must call a tool (tool_choice="required"); later calls choose freely, so the loop can end."""
    if not any(message.type == "tool" for message in request.messages):
        request = request.override(tool_choice="required")
    return handler(request)


def main() -> None:
    args = parse_args()
    provider.require_api_key()  # checked before any MLflow call
    questions = load_questions(max_questions=args.max_questions)
    searcher = search.Searcher.choose(args.search_backend, max_results=args.search_results_count)

    # Autologging for LangChain: one trace per question, with a span per model and tool call
    mlflow.langchain.autolog()
    with mlflow.start_run(run_name=f"agent-{args.prompt_template}-{args.model}") as run:
        mlflow.set_tags({generation.STEP_TAG: "generation", "quiz.search_backend_used": searcher.backend.name})
        cli.log_new_params(vars(args))
        # The prompt templates, from the prompt registry, plus the tools addendum of the system prompt
        system = mlflow.genai.load_prompt("prompts:/system@production", allow_missing=True)
        tools = mlflow.genai.load_prompt("prompts:/tools@production", allow_missing=True)
        user = mlflow.genai.load_prompt(f"prompts:/{args.prompt_template}@production", allow_missing=True)
        generation.require_prompts(system, tools, user)
        mlflow.log_params({f"prompt_{p.name}": f"{p.name}@production=v{p.version}" for p in (system, tools, user)})
        agent = create_agent(
            provider.chat_model(args.model, args.temperature, args.max_tokens),
            tools=[make_web_search_tool(searcher)],
            system_prompt=f"{system.template.strip()}\n\n{tools.template.strip()}",
            middleware=[search_first],
        )

        def answer(question):
            state = agent.invoke({"messages": [{"role": "user", "content": generation.user_message(user, question)}]})
            return generation.Reply.from_agent_messages(state["messages"])

        print(f"Answering {len(questions)} questions with an agent on {args.model} at {provider.endpoint()}")
        print(f"Search backend: {searcher.backend.name}, at most {args.search_results_count} results per search")
        answers = generation.answer_all(questions, answer, concurrency=args.concurrency)
        mlflow.log_text(
            generation.answers_table(answers, user, args.model).to_csv(index=False), generation.ANSWERS_ARTIFACT
        )
        mlflow.log_metrics(generation.summarize(answers))
        generation.report(answers, args.max_failure_rate)

    generation.print_next_steps(run)


def parse_args(argv: list[str] | None = None):
    parser = cli.ArgumentParser(
        example="mlflow run -e generate_answers_with_agent --env-manager=local --experiment-name se-answers-agents . "
        "-P max_questions=2",
        description=__doc__.split("\n\n")[0],
    )
    options.add_generation_arguments(parser, model="gpt-5-mini", max_tokens=1500)
    parser.add_argument(
        "--search-results-count",
        type=cli.whole_number(1),
        default=3,
        help="the most results one web search returns",
    )
    parser.add_argument("--search-backend", default="auto", choices=search.BACKENDS, help="auto, ddgs or offline")
    return parser.parse_args(argv)


if __name__ == "__main__":
    cli.run(main)

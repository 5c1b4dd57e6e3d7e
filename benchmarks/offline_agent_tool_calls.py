"""Does the offline agent show its tool? Traces with a ``web_search_tool`` span, on the local model.

Starts llmops_project/local_llm/serve.py on a free port and runs the agent of
``generate_answers_with_agent`` on it: LangChain's ``create_agent``, the project's
``web_search_tool`` over the bundled offline corpus, the talk's system + tools prompts, the
``basic`` user template, the entry point's defaults (temperature 0.7, max_tokens 1500), with
``mlflow.langchain.autolog()`` into a throw-away store. Then it counts, per run, the traces that
contain a ``web_search_tool`` span (target, issue 9: at least 3 of 4), and the searches whose query
contains a content word of the question (a word of 4 or more letters that is not a function word
such as "what" or "which"; target, issue 23: at least 80%). Each query is printed beside its
question, so you can judge the rule too.

With the entry point's ``search_first`` middleware (the default) the agent's first model call sends
``tool_choice="required"``: the local server then always makes that call a tool call, of a tool
the request offered, with arguments the model writes. ``--no-middleware`` runs the agent without
it (``tool_choice`` unset: the model chooses).

    .venv/bin/python benchmarks/offline_agent_tool_calls.py [--questions 4] [--repeat 3] [--no-middleware]
    .venv/bin/python benchmarks/offline_agent_tool_calls.py --questions 20 --repeat 1   # every question
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "llmops_project"
SERVE = PROJECT_DIR / "local_llm" / "serve.py"
sys.path[:0] = [str(REPO_ROOT), str(PROJECT_DIR), str(SERVE.parent)]

import serve  # noqa: E402  llmops_project/local_llm/serve.py
from generate_answers_with_agent import make_web_search_tool, search_first  # noqa: E402  the entry point's own

from devtools.processes import free_port, load_average, stop_process  # noqa: E402
from quiz import PROMPTS_DIR, generation, search  # noqa: E402
from quiz.questions import load_questions  # noqa: E402

# The entry point's tool, bound to the bundled corpus; search_results_count 3
WEB_SEARCH_TOOL = make_web_search_tool(search.Searcher(search.OfflineSearch(), max_results=3))

# Words that say nothing about a question's topic: a query made only of them does not search for it.
FUNCTION_WORDS = set(
    "what which when where whom whose does done have were these those there their them they "  # noqa: SIM905
    "with from into onto among between about some many much make makes made exist exists kind kinds "
    "type types difference distinguish other than then also your".split()
)


def content_words(text: str) -> set[str]:
    """The question's words that name its topic: 4+ letters, not a function word, lower case."""
    return {word for word in re.findall(r"[a-z]+", text.lower()) if len(word) >= 4 and word not in FUNCTION_WORDS}


def mentions_the_question(query: str, question: str) -> bool:
    """Does the search query contain a content word of the question (as a word, or a word's start:
    'requirement' in 'requirements')?"""
    query_words = re.findall(r"[a-z]+", query.lower())
    return any(word.startswith(content) for content in content_words(question) for word in query_words)


def user_template():
    """prompts/basic.txt as the prompt registry would hand it to the entry point."""
    from mlflow.entities.model_registry import PromptVersion

    return PromptVersion(name="basic", version=1, template=(PROMPTS_DIR / "basic.txt").read_text(encoding="utf-8"))


def system_prompt() -> str:
    parts = [(PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8").strip() for name in ("system", "tools")]
    return "\n\n".join(parts)


def run_agent(base_url: str, count: int, middleware: bool) -> tuple[int, int, float, list[tuple[str, str]]]:
    """(traces with a web_search_tool span, traces, seconds, [(question, query) for every search])
    for one agent run over ``count`` questions."""
    import mlflow
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI

    experiment = mlflow.set_experiment(f"agent-{time.time_ns()}")
    mlflow.langchain.autolog()
    agent = create_agent(
        ChatOpenAI(model="gpt-5-mini", base_url=base_url, api_key="local", temperature=0.7, max_tokens=1500),
        tools=[WEB_SEARCH_TOOL],
        system_prompt=system_prompt(),
        middleware=[search_first] if middleware else [],
    )
    user = user_template()
    started = time.perf_counter()
    trace_questions = {}
    for question in load_questions(max_questions=count):
        agent.invoke({"messages": [{"role": "user", "content": generation.user_message(user, question)}]})
        trace_questions[mlflow.get_last_active_trace_id()] = question.text
    seconds = time.perf_counter() - started
    mlflow.flush_trace_async_logging()
    traces = mlflow.search_traces(locations=[experiment.experiment_id], return_type="list")
    searches, with_tool = [], 0
    for trace in traces:
        calls = [span for span in trace.data.spans if span.name == "web_search_tool"]
        with_tool += bool(calls)
        question = trace_questions.get(trace.info.trace_id, "?")
        searches += [(question, str((span.inputs or {}).get("query", ""))) for span in calls]
    return with_tool, len(traces), seconds, searches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-middleware", action="store_true", help="run the agent without search_first")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="offline-agent-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir.as_posix()}/mlflow.db"
    os.environ["_MLFLOW_SERVER_ARTIFACT_ROOT"] = f"{workdir.as_posix()}/mlartifacts"
    port = free_port()
    server = serve.start_in_background(port, workdir / "server.log")
    print(f"load average at start: {load_average()}", flush=True)
    all_searches = []
    try:
        for attempt in range(1, args.repeat + 1):
            url = f"http://127.0.0.1:{port}/v1"
            with_tool, total, seconds, searches = run_agent(url, args.questions, not args.no_middleware)
            on_topic = sum(mentions_the_question(query, question) for question, query in searches)
            print(
                f"#{attempt}  web_search_tool span in {with_tool}/{total} traces; "
                f"{on_topic}/{len(searches)} queries mention the question   ({seconds:.1f} s)"
                f"   [load average {load_average()}]",
                flush=True,
            )
            for question, query in searches:
                print(
                    f"     {'ok' if mentions_the_question(query, question) else '--'}  {query!r:50.50}  <- {question}"
                )
            all_searches += searches
    finally:
        stop_process(server, timeout=30)
    on_topic = sum(mentions_the_question(query, question) for question, query in all_searches)
    share = on_topic / max(len(all_searches), 1)
    print(f"all runs: {on_topic}/{len(all_searches)} queries ({share:.0%}) contain a content word of the question")
    print(f"middleware: {'none' if args.no_middleware else 'search_first'}; store: {workdir}")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()

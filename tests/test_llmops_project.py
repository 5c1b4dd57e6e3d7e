"""llmops_project: the talk's quiz-answer generator, against the deterministic test server.

Entry points run as a student runs them (``mlflow run ... --env-manager local``); what they did is
read back from the store (prompt registry, runs, traces, assessments, artifacts) and from the
requests the test server received.
"""

from __future__ import annotations

import io
import shutil

import mlflow
import pandas as pd
import pytest

from tests.fixtures_llm import answer_for
from tests.harness import run_project, run_script
from tests.llmops import (
    PROJECT,
    PROJECT_DIR,
    agent_entry_point,
    answers_csv,
    assert_totals_match_traces,
    cli,
    dataset,
    error_lines,
    evaluate_responses,
    load_expectations,
    load_questions,
    project_questions,
    refused_in_process,
    register_all_prompts,
    register_prompts_in_process,
    search,
    traces_of,
)

SCORER_NAMES = [s.name for s in evaluate_responses.guidelines_model()]
ALIAS = register_all_prompts.ALIAS

PROMPT_FILES = sorted(p.stem for p in (PROJECT_DIR / "prompts").glob("*.txt"))
THE_TALKS_QUESTIONS = [
    ("Definition", "What is computer science?", "1"),
    ("Definition", "What is an algorithm?", "1"),
    ("Definition", "Difference among information, data, and representation", "1"),
    ("Definition", "What is software?", "1"),
    ("Definition", "What is software engineering?", "1"),
    ("History", "What were software crises?", "1"),
    ("Commonsense", "What makes software development costs rise?", "1"),
    ("Commonsense", "What may delay software development?", "1"),
]


# --- content ------------------------------------------------------------------------------------


def test_questions_start_with_the_talks_eight_and_cover_the_course():
    rows = project_questions()
    assert [(r["Category"], r["Question"], r["Weight"]) for r in rows[:8]] == THE_TALKS_QUESTIONS
    assert len(rows) >= 48
    ours = {r["Category"] for r in rows[8:]}
    assert {"Definition", "Lifecycle", "Shell", "Python", "Git", "Testing"} <= ours
    assert len(load_questions()) == len(rows)  # every row passes validation


def test_expectations_cover_every_question_with_the_talks_criteria_for_q1_q2():
    expectations = load_expectations()
    assert set(expectations) == {r["Question"] for r in project_questions()}
    q1 = " ".join(expectations["What is computer science?"]).lower()
    for phrase in (
        "study of computation",
        "algorithms",
        "data structures",
        "software",
        "hardware",
        "should not argue that computer science is the study of computers",
    ):
        assert phrase in q1
    q2 = " ".join(expectations["What is an algorithm?"]).lower()
    for phrase in ("finite sequence of steps", "inputs", "outputs", "not confuse algorithms with programs"):
        assert phrase in q2


def test_prompt_files_hold_the_talks_texts_in_mlflow_syntax():
    assert PROMPT_FILES == ["academic", "basic", "concise", "practical", "system", "tools"]
    basic = (PROJECT_DIR / "prompts" / "basic.txt").read_text()
    assert "Question: {{question}}" in basic
    assert "Difficulty: {{weight}}/4" in basic
    assert "{category}" not in basic.replace("{{category}}", "")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("Category,Question\nDefinition,What is X?\n", "header"),
        ("Category,Question,Weight\nDefinition,What is X?,hard\n", "line 2: Weight 'hard'"),
        ("Category,Question,Weight\nDefinition,What is X?,9\n", "line 2: Weight '9'"),
        ("Category,Question,Weight\nDefinition,What is X, Y?,1\n", "line 2: 4 fields"),
        ("Category,Question,Weight\n,What is X?,1\n", "line 2: empty Category"),
        ("Category,Question,Weight\n", "no questions"),
    ],
)
def test_malformed_questions_csv_is_named_precisely(tmp_path, content, problem):
    path = tmp_path / "questions.csv"
    path.write_text(content)
    with pytest.raises(cli.UserError, match="questions.csv") as raised:
        load_questions(path)
    assert problem in str(raised.value)


# --- search backends and scorers (in process) ---------------------------------------------------


def test_offline_search_ranks_the_corpus_and_honours_the_results_count():
    backend = search.OfflineSearch()
    results = backend.search("What is a merge conflict in Git?", max_results=3)
    assert len(results) == 3
    assert results[0].url.startswith("https://git-scm.com/")
    assert all(r.url.startswith("https://") for r in backend.documents)
    # The agent's tool, bound to the offline backend with search_results_count=2
    web_search_tool = agent_entry_point.make_web_search_tool(search.Searcher(backend, max_results=2))
    assert web_search_tool.name == "web_search_tool"
    assert web_search_tool.invoke({"query": "software engineering", "max_results": 1}).count("\n- [") == 1
    assert web_search_tool.invoke({"query": "software engineering"}).count("\n- [") == 2  # default 3, capped
    assert web_search_tool.invoke({"query": "software engineering", "max_results": 9}).count("\n- [") == 2


def test_code_scorers_read_openai_and_langchain_outputs():
    eleven = "one two three four five six seven eight nine ten eleven"
    openai_output = {"choices": [{"message": {"role": "assistant", "content": eleven}}]}
    langchain_output = {"messages": [{"type": "human", "content": "q"}, {"type": "ai", "content": "too short"}]}
    assert evaluate_responses.enough_words(outputs=openai_output).value is True
    assert evaluate_responses.enough_words(outputs=langchain_output).value is False
    assert evaluate_responses.not_too_many_words(outputs={"messages": [{"content": "w " * 1001}]}).value is False
    assert evaluate_responses.not_too_many_words(outputs=openai_output).value is True


def test_prompt_registration_is_idempotent_and_versions_changed_text(mlflow_store):
    register = register_all_prompts.register
    assert register("basic", "Question: {{question}}") == (1, True)
    assert register("basic", "Question: {{question}}") == (1, False)
    assert register("basic", "Q: {{question}}") == (2, True)
    client = mlflow_store.client
    assert client.get_prompt_version_by_alias("basic", ALIAS).version == 2
    # An alias moved back by hand stays where it was put while the text is unchanged.
    mlflow.genai.set_prompt_alias("basic", alias=ALIAS, version=1)
    assert register("basic", "Q: {{question}}") == (2, False)
    assert client.get_prompt_version_by_alias("basic", ALIAS).version == 1
    assert "register_all_prompts" in client.get_prompt_version("basic", 2).commit_message


def test_a_rerun_moves_the_alias_a_stopped_registration_left_behind(mlflow_store):
    """A run that stopped (a crash) between registering a version and moving @production to it: the
    next run finds the same text, and moves the alias, since the run that registered that version did
    not finish. After a run that finished, an alias moved by hand stays where it was put."""
    register, client = register_all_prompts.register, mlflow_store.client
    assert register("basic", "Q: {{question}}") == (1, True)
    experiment_id = client.create_experiment("stopped-registrations")
    for status, moved in (("KILLED", True), ("FINISHED", False)):
        run_id = client.create_run(experiment_id).info.run_id
        text = f"Q ({status}): {{{{question}}}}"
        tags = {register_all_prompts.REGISTERED_BY: run_id}
        version = mlflow.genai.register_prompt(name="basic", template=text, tags=tags).version  # the alias not moved
        client.set_terminated(run_id, status=status)
        before = client.get_prompt_version_by_alias("basic", ALIAS).version
        assert register("basic", text) == (version, False)
        assert client.get_prompt_version_by_alias("basic", ALIAS).version == (version if moved else before)


def test_exam_dataset_is_registered_once_and_versioned_by_its_content(mlflow_store):
    first = mlflow.set_experiment("exam-a").experiment_id
    exam, version, changed = dataset.sync(first)
    assert (version, changed) == (1, True)
    records = exam.to_df()
    assert len(records) == len(load_questions())
    expectations = load_expectations()
    assert dataset.expectations_of(exam) == expectations  # expectations.json, verbatim
    digest = exam.digest

    # Unchanged files: nothing written, the same dataset in a second experiment too.
    second = mlflow.set_experiment("exam-b").experiment_id
    again, version, changed = dataset.sync(second)
    assert (again.dataset_id, again.digest, version, changed) == (exam.dataset_id, digest, 1, False)
    assert set(again.experiment_ids) == {first, second}
    assert len(mlflow.genai.datasets.search_datasets(filter_string=f"name = '{dataset.NAME}'")) == 1

    # Changed criteria and one question fewer: version 2, the records follow the files.
    edited = dataset.records()[:-1]
    edited[0]["expectations"] = {"guidelines": ["The answer should be short."]}
    updated, version, changed = dataset.sync(first, edited)
    assert (updated.dataset_id, version, changed) == (exam.dataset_id, 2, True)
    assert updated.digest != digest
    stored = dataset.expectations_of(updated)
    assert len(stored) == len(expectations) - 1
    assert stored[edited[0]["inputs"]["question"]] == ["The answer should be short."]


# --- entry points end to end --------------------------------------------------------------------


@pytest.mark.entry_point("llmops_project", "register_all_prompts")
def test_register_all_prompts(mlflow_store):
    first = run_project(mlflow_store, PROJECT, "register_all_prompts")
    client = mlflow_store.client
    assert first.run.info.status == "FINISHED"
    for name in PROMPT_FILES:
        version = client.get_prompt_version_by_alias(name, ALIAS)
        assert version.version == 1
        assert version.template == (PROJECT_DIR / "prompts" / f"{name}.txt").read_text()
        assert version.commit_message
    assert first.run.data.metrics["new_prompt_versions"] == len(PROMPT_FILES)
    assert first.run.info.run_name == "register-prompts"

    # Unchanged files: no new version (run directly, as `python register_all_prompts.py`).
    again = run_script(mlflow_store, f"{PROJECT}/register_all_prompts.py")
    assert again.run.data.metrics["new_prompt_versions"] == 0
    for name in PROMPT_FILES:
        assert mlflow.genai.load_prompt(f"prompts:/{name}@latest", cache_ttl_seconds=0).version == 1


@pytest.mark.entry_point("llmops_project", "generate_answers")
@pytest.mark.entry_point("llmops_project", "evaluate_responses")
def test_generate_answers_then_evaluate_responses(mlflow_store, llm_server):
    register_prompts_in_process()
    questions = [r["Question"] for r in project_questions()[:3]]
    llm_server.answers = {questions[2]: "Too short to count."}  # fewer than 10 words
    llm_server.fail_next = 2  # the first two attempts get HTTP 500: the client's retries recover

    generated = run_project(mlflow_store, PROJECT, "generate_answers", {"max_questions": 3})
    run = generated.run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "generate-basic-gpt-4.1-mini"
    metrics = run.data.metrics
    assert (metrics["total_questions"], metrics["successful"], metrics["failed"]) == (3, 3, 0)
    assert metrics["success_rate"] == 1.0
    assert metrics["latency_p95_seconds"] >= metrics["latency_p50_seconds"] > 0
    assert len(llm_server.chat_requests("plain")) == 3 + 2  # three questions, two retried attempts
    # Prompts loaded once per run and recorded with their versions.
    assert run.data.params["prompt_basic"] == "basic@production=v1"
    assert run.data.params["prompt_system"] == "system@production=v1"

    answers = answers_csv(mlflow_store, run)
    assert answers["number"].tolist() == [1, 2, 3]  # question order, whatever the threads did
    assert answers["question"].tolist() == questions
    assert answers["status"].tolist() == ["ok"] * 3
    assert answers["answer"].tolist() == [answer_for(questions[0]), answer_for(questions[1]), "Too short to count."]
    assert set(answers["prompt_version"]) == {1}
    assert set(answers["model"]) == {"gpt-4.1-mini"}
    assert metrics["total_tokens"] == answers["total_tokens"].sum() > 0

    traces = traces_of(run)
    assert len(traces) == 3  # one per question, retries included
    assert {t.info.trace_id for t in traces} == set(answers["trace_id"])
    assert_totals_match_traces(run, traces)
    assert "evaluate_responses" in generated.stdout
    assert run.info.run_id in generated.stdout

    judge_calls_before = len(llm_server.chat_requests("judge"))
    evaluated = run_project(mlflow_store, PROJECT, "evaluate_responses", {"generation_run_id": run.info.run_id})
    assert evaluated.run.info.status == "FINISHED"
    assert evaluated.run.info.run_name == "evaluate"
    # The judges went to OPENAI_BASE_URL (the test server), five LLM scorers per answer.
    assert len(llm_server.chat_requests("judge")) - judge_calls_before == 5 * 3
    assert evaluated.run.data.metrics["judge_calls"] == 5 * 3
    assert evaluated.run.data.metrics["judge_errors"] == 0
    # It records the exam dataset it was judged against (the UI's Datasets page lists it).
    # (mlflow.genai.evaluate logs the table of traces it judged as a second input, named "dataset".)
    [used] = [i for i in evaluated.run.inputs.dataset_inputs if i.dataset.name == dataset.NAME]
    exam = mlflow.genai.datasets.get_dataset(name=dataset.NAME)
    assert used.dataset.digest == exam.digest
    assert {t.key: t.value for t in used.tags}["version"] == "1"
    assert evaluated.run.data.params["dataset_version"] == "1"
    assert evaluated.run.data.tags["quiz.dataset_id"] == exam.dataset_id
    assert run.info.experiment_id in exam.experiment_ids

    expectations = load_expectations()
    for trace_id, question, answer in zip(answers["trace_id"], questions, answers["answer"], strict=True):
        trace = mlflow.get_trace(trace_id)
        feedback = {a.name: a.feedback.value for a in trace.info.assessments if a.feedback is not None}
        assert set(SCORER_NAMES) <= set(feedback), feedback
        assert feedback["enough_words"] is (len(answer.split()) >= 10)
        assert feedback["not_too_many_words"] is True
        assert feedback["english"] == "yes"  # the test server's verdict
        given = {a.name: a.expectation.value for a in trace.info.assessments if a.expectation is not None}
        assert given["guidelines"] == expectations[question]

    eval_metrics = evaluated.run.data.metrics
    assert eval_metrics["enough_words/mean"] == pytest.approx(2 / 3)
    assert eval_metrics["correctness/mean"] == 1.0
    table = pd.read_csv(
        io.StringIO(mlflow.artifacts.load_text(f"runs:/{evaluated.run.info.run_id}/evaluation_results.csv"))
    )
    assert table["question"].tolist() == questions
    assert table["enough_words/value"].tolist() == [True, True, False]


@pytest.mark.entry_point("llmops_project", "generate_answers_with_agent")
def test_generate_answers_with_agent_uses_the_search_tool(mlflow_store, llm_server):
    register_prompts_in_process()
    result = run_project(
        mlflow_store,
        PROJECT,
        "generate_answers_with_agent",
        {"max_questions": 2, "search_results_count": 2, "search_backend": "offline"},
    )
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "agent-basic-gpt-5-mini"
    assert run.data.metrics["successful"] == 2
    assert run.data.metrics["tool_calls_per_answer"] == 1.0
    # The agent's first model call must call a tool (the search_first middleware); later ones choose.
    tool_requests = llm_server.chat_requests("tools")
    first_calls = [r for r in tool_requests if not any(m.get("role") == "tool" for m in r["messages"])]
    assert [r.get("tool_choice") for r in first_calls] == ["required", "required"]
    assert {r.get("tool_choice") for r in tool_requests if r not in first_calls} <= {None, "auto"}
    assert run.data.params["prompt_tools"] == "tools@production=v1"
    assert run.data.tags["quiz.search_backend_used"] == "offline"
    # The tools addendum is in the system prompt the model received.
    assert "Always use the provided web search tool" in tool_requests[0]["messages"][0]["content"]

    answers = answers_csv(mlflow_store, run)
    traces = traces_of(run)
    assert len(traces) == 2
    assert_totals_match_traces(run, traces)  # the agent's two model calls per question, summed
    assert {t.info.trace_id for t in traces} == set(answers["trace_id"])
    by_id = {t.info.trace_id: t for t in traces}
    for trace_id, question, answer in zip(answers["trace_id"], answers["question"], answers["answer"], strict=True):
        trace = by_id[trace_id]
        assert answer.startswith(answer_for(question))
        tool_spans = [s for s in trace.data.spans if s.name == "web_search_tool"]
        assert len(tool_spans) == 1
        output = tool_spans[0].outputs  # LangChain records the ToolMessage
        assert output["content"].count("\n- [") == 2  # search_results_count results
        assert "References: https://" in answer
        # The code scorers read the answer from the LangChain trace's output.
        root_output = next(s for s in trace.data.spans if s.parent_id is None).outputs
        assert "messages" in root_output
        assert evaluate_responses.enough_words(outputs=root_output).value is True
        assert evaluate_responses.answer_text(root_output) == answer


# --- failure cases --------------------------------------------------------------------------------


def test_missing_api_key_fails_before_anything_is_logged(mlflow_store, llm_server):
    env = {"OPENAI_API_KEY": ""}
    under_mlflow_run = run_project(
        mlflow_store, PROJECT, "generate_answers", {"max_questions": 1}, env=env, expect_success=False
    )
    assert len(error_lines(under_mlflow_run)) == 1
    assert "OPENAI_API_KEY is not set" in error_lines(under_mlflow_run)[0]
    run = under_mlflow_run.run  # created by `mlflow run` before the script starts
    assert run.info.status == "FAILED"
    assert not run.data.metrics
    assert not mlflow_store.client.list_artifacts(run.info.run_id)
    assert not llm_server.chat_requests()

    direct = run_script(mlflow_store, f"{PROJECT}/evaluate_responses.py", env=env, expect_success=False)
    assert direct.returncode == 2
    assert "OPENAI_API_KEY is not set" in direct.stderr
    assert direct.runs == []  # run directly: no run is created at all


def test_a_wrong_generation_run_is_one_line_and_no_evaluation_run(mlflow_store, llm_server):
    """A generation run given by its id is read before the evaluation run starts: a wrong id, or a run
    with no answers.csv, leaves no run behind."""
    evaluate = f"{PROJECT}/evaluate_responses.py"
    unknown = "0" * 32
    result = refused_in_process(mlflow_store, evaluate, "--generation-run-id", unknown)
    [line] = error_lines(result)
    assert line.startswith(f"error: generation run {unknown!r} not found in this tracking store")
    assert result.runs == []
    experiment_id = mlflow_store.client.create_experiment("no-answers")
    empty = mlflow_store.client.create_run(experiment_id, tags={"quiz.step": "generation"}).info.run_id
    mlflow_store.client.set_terminated(empty)
    result = refused_in_process(mlflow_store, evaluate, "--generation-run-id", empty)
    [line] = error_lines(result)
    assert line.startswith(f"error: run {empty} has no answers.csv")
    assert [r.info.run_id for r in result.runs] == []
    assert not llm_server.chat_requests()


def test_unreachable_provider_records_failures_never_answers(mlflow_store):
    register_prompts_in_process()
    env = {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    # Run directly (python generate_answers.py): the script's own run must end FAILED too.
    result = run_script(
        mlflow_store, f"{PROJECT}/generate_answers.py", "--max-questions", "2", env=env, expect_success=False
    )
    assert len(error_lines(result)) == 1
    assert "no question was answered" in error_lines(result)[0]
    run = result.run
    assert run.info.status == "FAILED"
    assert (run.data.metrics["successful"], run.data.metrics["failed"]) == (0, 2)
    answers = answers_csv(mlflow_store, run)
    assert answers["status"].tolist() == ["failed", "failed"]
    assert answers["answer"].tolist() == ["", ""]
    assert all("Connection" in error for error in answers["error"])


def test_unknown_prompt_template_is_one_line_and_no_run(mlflow_store, llm_server):
    register_prompts_in_process()
    result = refused_in_process(
        mlflow_store, f"{PROJECT}/generate_answers.py", "--prompt-template", "poetic", "--max-questions", "1"
    )
    [line] = error_lines(result)
    assert line.startswith("error: argument --prompt-template: invalid choice: 'poetic' (choose from ")
    assert all(name in line for name in ("academic", "basic", "concise", "practical"))
    example = "mlflow run -e generate_answers --env-manager=local --experiment-name se-answers . -P max_questions=4"
    assert line.endswith(f". Example: {example}")
    assert result.runs == []
    assert not llm_server.chat_requests()


def test_malformed_questions_csv_stops_before_generation(mlflow_store, llm_server, tmp_path):
    copy = tmp_path / PROJECT
    shutil.copytree(PROJECT_DIR, copy, ignore=shutil.ignore_patterns("local_llm", "__pycache__"))  # a folder alone
    (copy / "questions.csv").write_text("Category,Question,Weight\nDefinition,What is X?,hard\n")
    result = run_script(mlflow_store, str(copy / "generate_answers.py"), expect_success=False)
    assert result.returncode == 2
    (line,) = error_lines(result)
    assert "questions.csv line 2: Weight 'hard'" in line
    assert "Fix questions.csv" in line
    assert result.runs == []
    assert not llm_server.chat_requests()

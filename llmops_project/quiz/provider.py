"""The LLM provider: any OpenAI-compatible endpoint, configured the standard way.

* ``OPENAI_API_KEY``  - required (a local server accepts any value)
* ``OPENAI_BASE_URL`` - optional, e.g. http://127.0.0.1:8080/v1 for the offline local model

Both clients retry 429, 5xx, time-outs and connection errors with exponential back-off
(the OpenAI SDK's own retry loop, which LangChain's ChatOpenAI reuses), so one question stays
one call, and one trace, however many attempts it takes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from cli import UserError

# The offline server's note (local_llm/llm_server/running.py, standard library only), loaded by its
# path: a module name such as local_llm would be shadowed by any local_llm.py beside a calling script.
RUNNING = Path(__file__).resolve().parents[1] / "local_llm" / "llm_server" / "running.py"

# MLflow 3.17's judges fetch a model catalog from GitHub before each call; offline, every fetch fails
# only after retries (an evaluation of 4 answers took 22 s instead of 6 s here). Empty = the catalog
# bundled with MLflow. Set here, on import, so that every entry point gets it; yours wins if set.
os.environ.setdefault("MLFLOW_MODEL_CATALOG_URI", "")

MAX_RETRIES = 4  # attempts after the first; back-off 0.5 s, 1 s, 2 s, 4 s (+ jitter)
TIMEOUT_SECONDS = 120.0  # per attempt
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def require_api_key() -> None:
    """Called first thing, before any MLflow call: no key, no run. Nor when the offline model server
    behind OPENAI_BASE_URL is known to have crashed: said now, in its one line, rather than after
    minutes of MLflow's judges retrying a server that is gone (10 attempts each, with back-off).
    And litellm is set aside for this process (see hide_litellm)."""
    hide_litellm()
    if not os.environ.get("OPENAI_API_KEY"):
        raise UserError(
            "OPENAI_API_KEY is not set. Set it to your OpenAI key (export OPENAI_API_KEY=sk-...), "
            "or to any value with OPENAI_BASE_URL pointing at a local server such as "
            "http://127.0.0.1:8080/v1 (see llmops_project/README.md, 'Before you start: pick a provider')"
        )
    stop_if_crashed()


def endpoint() -> str:
    return os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL


def crashed() -> str | None:
    """One line saying that the offline model server behind OPENAI_BASE_URL crashed (its signal and
    log file), when that is why the provider did not answer; None otherwise. A refused connection
    looks the same either way, so without this a crash would read as "check that it is running"."""
    if not RUNNING.exists():  # this folder copied without its local_llm/: no offline server of ours to ask
        return None
    spec = importlib.util.spec_from_file_location("local_llm_running", RUNNING)
    running = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(running)
    return running.crash_report(os.environ.get("OPENAI_BASE_URL"))


def stop_if_crashed() -> None:
    """Stop with the crash line if the offline server crashed: first thing (require_api_key), and after
    calls that failed (answers, judge verdicts), when that may be why."""
    if crash := crashed():
        raise UserError(crash)


def openai_client():
    """The OpenAI SDK client (reads OPENAI_API_KEY and OPENAI_BASE_URL itself)."""
    from openai import OpenAI

    return OpenAI(max_retries=MAX_RETRIES, timeout=TIMEOUT_SECONDS)


def chat_model(model: str, temperature: float, max_tokens: int):
    """LangChain's ChatOpenAI with the same endpoint and retry policy."""
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        max_retries=MAX_RETRIES,
        timeout=TIMEOUT_SECONDS,
    )


# litellm (installed for dspy, which aligns judges) fetches its model price list from GitHub when it is
# imported, and MLflow imports it to price every traced call: offline, that fetch fails after retries.
# The price list bundled with litellm instead; yours wins if set.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def hide_litellm() -> None:
    """Make ``import litellm`` fail in this process, as where the align extra is not installed.

    Installed (the align extra: dspy calls models through it), litellm changes what every LLM step
    does, not only align's: MLflow imports it to price each traced call (2.8 s of CPU per process,
    ~3 s more for every generate_answers, evaluate_responses or compare) and sends its judges through
    it instead of through its own gateway. Only align's optimizers and aligned judges need it; they
    call before_litellm_calls, which brings it back. Without it MLflow prices calls from its own
    bundled table (the same prices for OpenAI's models) and judges as the README says."""
    sys.modules.setdefault("litellm", None)  # None in sys.modules: `import litellm` raises ImportError


def before_litellm_calls() -> None:
    """Call first in an entry point whose optimizers or judges call models through litellm (align,
    optimize, compare with aligned judges) and that then runs mlflow.genai.evaluate or
    optimize_prompts: it undoes hide_litellm. And litellm's logging thread imports one of its modules
    on its first logged call; if MLflow is setting up its autologging hooks at that moment, each waits
    for the other's lock for ever (seen in 3 of 4 optimize runs). Imported here first, nothing is left
    to import then."""
    if "litellm" in sys.modules and sys.modules["litellm"] is None:
        del sys.modules["litellm"]
    if importlib.util.find_spec("litellm") is not None:
        import litellm.proxy.spend_tracking.savings  # noqa: F401

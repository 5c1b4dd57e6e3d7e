"""The LLM provider: any OpenAI-compatible endpoint, configured the standard way.

* ``OPENAI_API_KEY``  - required (a local server accepts any value)
* ``OPENAI_BASE_URL`` - optional, e.g. http://127.0.0.1:8080/v1 for the offline local model

Both clients retry 429, 5xx, time-outs and connection errors with exponential back-off
(the OpenAI SDK's own retry loop, which LangChain's ChatOpenAI reuses), so one question stays
one call, and one trace, however many attempts it takes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
import threading
import time
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
# How often a step checks that the offline server it talks to is still alive (a file read and a
# process lookup: nothing a student would notice).
CRASH_CHECK_SECONDS = 1.0
TIMEOUT_SECONDS = 120.0  # per attempt
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def require_api_key() -> None:
    """Called first thing, before any MLflow call: no key, no run. Nor when the offline model server
    behind OPENAI_BASE_URL is known to have crashed: said now, in its one line, rather than after
    minutes of MLflow's judges retrying a server that is gone (10 attempts each, with back-off).
    And litellm is set aside for this process (see hide_litellm); and if the offline server dies
    later, while the step runs, the step stops then (see watch_for_crash)."""
    hide_litellm()
    if not os.environ.get("OPENAI_API_KEY"):
        raise UserError(
            "OPENAI_API_KEY is not set. Set it to your OpenAI key (export OPENAI_API_KEY=sk-...), "
            "or to any value with OPENAI_BASE_URL pointing at a local server such as "
            "http://127.0.0.1:8080/v1 (see llmops_project/README.md, 'Before you start: pick a provider')"
        )
    stop_if_crashed()
    watch_for_crash()


def endpoint() -> str:
    return os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_URL


def crashed() -> str | None:
    """One line saying that the offline model server behind OPENAI_BASE_URL crashed (its signal and
    log file), when that is why the provider did not answer; None otherwise. A refused connection
    looks the same either way, so without this a crash would read as "check that it is running"."""
    running = _running()
    return running.crash_report(os.environ.get("OPENAI_BASE_URL")) if running else None


def offline_server() -> bool:
    """Whether OPENAI_BASE_URL is the offline model server of local_llm/ (serve.py's note says so)."""
    running = _running()
    return bool(running and running.server_note(os.environ.get("OPENAI_BASE_URL")))


@functools.cache
def _running():
    """local_llm/llm_server/running.py, or None when this folder was copied without its local_llm/
    (no offline server of ours to ask about)."""
    if not RUNNING.exists():
        return None
    spec = importlib.util.spec_from_file_location("local_llm_running", RUNNING)
    running = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(running)
    return running


# One report of a crash per process: the watcher's (watch_for_crash) or the main thread's (stop_if_crashed).
# Reentrant: the main thread may check again after it has reported (it never waits for itself).
_crash_reported = threading.RLock()


def stop_if_crashed() -> None:
    """Stop with the crash line if the offline server crashed: first thing (require_api_key), and after
    calls that failed (answers, judge verdicts), when that may be why."""
    if crash := crashed():
        _crash_reported.acquire()  # if the watcher saw it first, it is already saying it and exiting
        raise UserError(crash)


def watch_for_crash() -> None:
    """While the step runs, check every CRASH_CHECK_SECONDS that the offline server behind
    OPENAI_BASE_URL is alive; if it dies, stop at once: its crash line, the step's runs ended FAILED,
    exit status 2 (cli.fail's). Without this, a step whose judges were talking to it would say so
    only when MLflow gives up: its judges retry a refused connection 10 times with back-off up to
    30 s, 3 minutes per verdict (measured: a SIGSEGV 20 s into evaluate_responses was reported 182 s
    later). A daemon thread, started only for a running offline server of ours (serve.py's note)."""
    running, base_url = _running(), os.environ.get("OPENAI_BASE_URL")
    note = running.server_note(base_url) if running else None
    if note is None or not running.alive(note["pid"]):
        return
    threading.Thread(target=_watch, args=(running, base_url), name="offline-server-watch", daemon=True).start()


def _watch(running, base_url: str) -> None:
    while not (crash := running.crash_report(base_url)):
        time.sleep(CRASH_CHECK_SECONDS)
    if not _crash_reported.acquire(blocking=False):
        return  # the main thread is saying it
    # on a line of its own: a progress bar (MLflow's "Evaluating: ...") may be mid-line
    print(f"\nerror: {crash}", file=sys.stderr, flush=True)
    with contextlib.suppress(Exception):  # the store may be gone too: the line above is what matters
        _end_runs_failed()
    sys.stdout.flush()
    # Not sys.exit: MLflow's worker threads would go on retrying, and the process wait for them.
    os._exit(2)


def _end_runs_failed() -> None:
    """End FAILED every run of this process still RUNNING: the runs each thread has open (MLflow
    keeps one stack per thread; the watcher has none of its own), `mlflow run`'s, and their children."""
    import mlflow
    from mlflow.tracking import fluent

    client = mlflow.MlflowClient()
    stacks = fluent._active_run_stack.get_all_thread_values()  # MLflow's own, as its end_run reads it
    runs = [run for stack in stacks.values() for run in stack]
    if run_id := os.environ.get("MLFLOW_RUN_ID"):
        runs.append(client.get_run(run_id))
    for run in runs:
        children = client.search_runs(
            [run.info.experiment_id],
            f"tags.mlflow.parentRunId = '{run.info.run_id}' AND attributes.status = 'RUNNING'",
        )
        for one in [run, *children]:
            if client.get_run(one.info.run_id).info.status == "RUNNING":
                client.set_terminated(one.info.run_id, status="FAILED")


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

"""What the two walk tests share (test_present.py: the ML half, steps 1-14; test_present_llm.py:
the LLM half, steps 15-20): running present.py as `make present` does, and opening every link a
walk printed on a real `mlflow ui` of its store. The halves run on two pytest workers at once."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow

from tests import harness
from tests.harness import REPO_ROOT

LLM_HALF = 15  # the first LLM step: `--to 14` walks the ML half, `--from 15` the LLM half


def present(*arguments: str, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
    """`python present.py ...` from the repository root, as `make present` runs it."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "present.py"), *arguments],
        cwd=REPO_ROOT,
        env=harness.venv_env(kwargs.pop("env", {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def walk(links_file: Path, *arguments: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """A straight walk (`--no-pause --quick`) of the steps ``arguments`` choose: its output and the
    UI links it showed, one per step."""
    done = present(
        "--no-pause",
        "--quick",
        "--serve-port",
        str(harness.free_port()),
        "--links-file",
        str(links_file),
        *arguments,
        env=env or {},
    )
    return done, links_file.read_text().splitlines() if links_file.exists() else []


def steps_shown(output: str) -> tuple[list[int], int]:
    """The step numbers a walk's output announced ("━━ Step 3/20 · ..."), and the total it names."""
    steps = re.findall(r"^━━ Step (\d+)/(\d+) · (.+?) ━", output, flags=re.MULTILINE)
    return [int(number) for number, _, _ in steps], int(steps[0][1])


def assert_every_link_opens_and_names_what_exists(store: harness.Store, links: list[str]) -> None:
    """Each link is on the talk's UI address, opens on a real `mlflow ui` of the store, in the view
    the talk shows (README, "The UI's two views"), and names a run, model, trace or prompt that exists."""
    client = store.client
    port = harness.free_port()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store.tracking_uri]
    with harness.background_server(command + ["--port", str(port)], f"http://127.0.0.1:{port}/health"):
        for link in links:
            page, _, route = link.partition("/#/")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as response:
                assert response.status == 200
            assert page == "http://127.0.0.1:5000"
            route, _, query = route.partition("?")
            parts = route.split("/")
            if parts[0] == "experiments":
                assert query in ("workflowType=machine_learning", "workflowType=genai"), link
                assert client.get_experiment(parts[1])
                if parts[2] == "runs":
                    assert client.get_run(parts[3]).info.experiment_id == parts[1]
                elif parts[2] == "models":
                    assert client.get_logged_model(parts[3]).experiment_id == parts[1]
                else:
                    assert parts[2] == "traces"
                    assert mlflow.search_traces(locations=[parts[1]], return_type="list")
            elif parts[0] == "models":
                assert client.get_registered_model(parts[1])
            else:
                assert parts[0] == "prompts"
                assert client.get_prompt_version_by_alias(parts[1], "production")

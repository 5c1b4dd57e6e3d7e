"""What the walk tests share: running present.py as `make present` does, a part of the walk at a
time, and checking that every link a walk printed names what exists in its store.

The walk is tested in three parts, one test file each, so that pytest-xdist runs them on separate
workers at once (`--dist loadfile`): test_present.py walks the tracking and autologging steps,
test_present_census.py the census steps, test_present_llm.py the LLM steps. Together they walk
every step of present.STEPS, with the options `make present` offers (`--from N --to M`)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import mlflow
from mlflow.genai import review_queues

import present as present_py
from tests import harness
from tests.harness import REPO_ROOT

PARTS = {  # a part of the walk: the folders of its steps
    "tracking and autologging": ("tracking_example", "autologging_example"),
    "census": ("census_project",),
    "llm": ("llmops_project",),
}


def steps_of(part: str) -> list[int]:
    """The numbers of the part's steps (consecutive: present.STEPS follow the talk, folder by folder)."""
    numbers = [n for n, step in enumerate(present_py.STEPS, start=1) if step.folder in PARTS[part]]
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"the {part} steps are not consecutive"
    return numbers


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


def walk(part: str, links_file: Path, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """A straight walk (`--no-pause --quick`) of the part's steps: its output and the UI links it
    showed, one per step."""
    numbers = steps_of(part)
    done = present(
        "--no-pause",
        "--quick",
        "--from",
        str(numbers[0]),
        "--to",
        str(numbers[-1]),
        "--serve-port",
        str(harness.free_port()),
        "--links-file",
        str(links_file),
        env=env or {},
    )
    return done, links_file.read_text().splitlines() if links_file.exists() else []


def assert_the_part_walked(part: str, done: subprocess.CompletedProcess, links: list[str]) -> None:
    """The walk of ``part`` succeeded, announced each of its steps ("━━ Step 3/22 · ...") in order,
    out of all of present.STEPS, and showed one UI link per step."""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    announced = re.findall(r"^━━ Step (\d+)/(\d+) · (.+?) ━", done.stdout, flags=re.MULTILINE)
    shown = [n for n in steps_of(part) if not present_py.STEPS[n - 1].missing()]  # an extra not installed: skipped
    assert [int(number) for number, _, _ in announced] == shown
    assert {int(total) for _, total, _ in announced} == {len(present_py.STEPS)}
    assert len(links) == len(announced)


def assert_every_link_names_what_exists(store: harness.Store, links: list[str]) -> None:
    """Each link is on the talk's UI address, in the view the talk shows (README, "The UI's two
    views"), and names a run, model, trace, queue or prompt that exists in the store. (That such
    links open in the real UI is the browser test's: tests/test_ui_browser.py follows printed links
    in Chromium. A `mlflow ui` here, only to answer GET / for each link, cost ~7 s of CPU per part.)"""
    client = store.client
    for link in links:
        page, _, route = link.partition("/#/")
        assert page == "http://127.0.0.1:5000", link
        route, _, query = route.partition("?")
        query, _, extra = query.partition("&")
        parts = route.split("/")
        if parts[0] == "experiments":
            assert query in ("workflowType=machine_learning", "workflowType=genai"), link
            assert client.get_experiment(parts[1])
            if parts[2] == "review-queue":  # MLflow's Review page, on one queue
                queue_id = dict(pair.split("=") for pair in extra.split("&"))["selectedQueueId"]
                assert review_queues.get_review_queue(queue_id).experiment_id == parts[1]
            elif parts[2] == "runs":
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

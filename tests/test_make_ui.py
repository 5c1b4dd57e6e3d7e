"""`make ui` (default_store.py ui): it says "ready" only when the UI answers, and prints no library
warning a student cannot act on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.harness import REPO_ROOT, background_server, free_port

# Python's warning format, "<file>:<line>: <Category>: <message>": MLflow 3.17.2's server printed
# "StarletteDeprecationWarning: starlette.middleware.wsgi is deprecated ..." once per uvicorn worker.
PYTHON_WARNING = re.compile(r"^\S+:\d+: \w*Warning: .*$", re.MULTILINE)


def test_make_ui_says_ready_only_when_the_ui_answers(mlflow_store, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stderr = tmp_path / "stderr.txt"  # a file, not a pipe: nobody reads it while the server runs
    ui = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "default_store.py"), "ui", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=stderr.open("w"),
        text=True,
        start_new_session=True,  # its own group: stopped below with the server it starts
    )
    try:
        printed = []
        for line in ui.stdout:
            printed.append(line)
            if line.startswith("MLflow UI ready:"):
                # The moment it says so, the page the student opens answers.
                with urllib.request.urlopen(url, timeout=5) as answer:
                    assert answer.status == 200
                    assert b"<html" in answer.read(2000).lower()
                break
        assert printed[-1].strip() == f"MLflow UI ready: {url}", "".join(printed)
        assert printed[0].startswith("Starting the MLflow UI on ")
        assert "wait for 'ready'" in printed[0]
    finally:
        os.killpg(ui.pid, signal.SIGINT)  # Ctrl+C, as in its terminal
        ui.wait(timeout=60)
    # The server's workers had imported MLflow's app when the page answered: no warning on the way.
    printed_errors = stderr.read_text()
    assert "Uvicorn running on" in printed_errors  # the server's log is there, so is what it would warn
    assert "StarletteDeprecationWarning" not in printed_errors
    assert PYTHON_WARNING.findall(printed_errors) == []
    # Ctrl+C leaves nothing behind: the state file `make reset` reads is gone.
    assert not (Path(mlflow_store.tracking_uri.removeprefix("sqlite:///")).parent / ".mlflow-ui.json").exists()


def test_a_bare_mlflow_ui_typed_in_any_folder_serves_the_store_in_use(mlflow_store, tmp_path):
    """The talk's `mlflow ui`, in an example's folder with the venv active: the repository's store
    (the start-up hook's ui_defaults), not a new, empty mlflow.db of that folder."""
    mlflow_store.client.create_experiment("seen-by-a-bare-mlflow-ui")
    elsewhere = tmp_path / "an_example_folder"
    elsewhere.mkdir()
    port = free_port()
    command = [str(Path(sys.executable).parent / "mlflow"), "ui", "--host", "127.0.0.1", "--port", str(port)]
    with background_server(command, f"http://127.0.0.1:{port}/health", cwd=elsewhere):
        # An answer from another store is a 404 (HTTPError): the test fails at once, naming it.
        found = (
            f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=seen-by-a-bare-mlflow-ui"
        )
        with urllib.request.urlopen(found, timeout=30) as answer:
            assert answer.status == 200
    assert not (elsewhere / "mlflow.db").exists(), "a bare mlflow ui opened a store of its own folder"

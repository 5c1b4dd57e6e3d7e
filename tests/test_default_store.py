"""The embedded default store: one mlflow.db + mlartifacts/ at the repository root, whichever
folder a command runs from; an explicit MLFLOW_TRACKING_URI always wins."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import default_store
from tests.harness import REPO_ROOT

LOG_ONE_ARTIFACT = """
import mlflow
mlflow.set_experiment("store-check")
with mlflow.start_run():
    mlflow.log_text("hello", "hello.txt")
    print(mlflow.get_tracking_uri())
    print(mlflow.get_artifact_uri())
"""


def _python(code: str, cwd: Path, env: dict) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.split()


def _environment_without_store_settings() -> dict:
    env = dict(os.environ)
    for variable in ("MLFLOW_TRACKING_URI", default_store.ARTIFACT_ROOT_VARIABLE):
        env.pop(variable, None)
    return env


@pytest.fixture(scope="module", autouse=True)
def hook_installed():
    hook = Path(sysconfig.get_paths()["purelib"]) / default_store.HOOK_FILE_NAME
    assert hook.exists(), "run `make install` (or `python default_store.py install` in the venv)"


def test_apply_defaults_points_at_the_repository_root():
    environ: dict = {}
    default_store.apply_defaults(environ)
    assert default_store.sqlite_path(environ["MLFLOW_TRACKING_URI"]) == REPO_ROOT / "mlflow.db"
    assert Path(environ[default_store.ARTIFACT_ROOT_VARIABLE]) == REPO_ROOT / "mlartifacts"
    assert environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"  # local copies are instant
    assert environ["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"  # litellm's bundled price list: no download


def test_an_explicit_server_uri_wins_and_gets_no_local_artifact_root():
    environ = {"MLFLOW_TRACKING_URI": "http://localhost:5000"}
    default_store.apply_defaults(environ)
    assert environ == {"MLFLOW_TRACKING_URI": "http://localhost:5000", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}


def test_a_bare_mlflow_ui_gets_the_store_in_use_and_options_given_win():
    store = {"MLFLOW_TRACKING_URI": "sqlite:////data/course/mlflow.db"}
    default_store.apply_defaults(store)
    ui = dict(store)
    default_store.ui_defaults(ui, ["/venv/bin/python", "/venv/bin/mlflow", "ui", "--port", "5001"])
    assert ui["MLFLOW_BACKEND_STORE_URI"] == "sqlite:////data/course/mlflow.db"
    assert ui["MLFLOW_DEFAULT_ARTIFACT_ROOT"] == "/data/course/mlartifacts"

    given = dict(store)
    default_store.ui_defaults(given, ["python", "-m", "mlflow", "ui", "--backend-store-uri=sqlite:///x.db"])
    assert "MLFLOW_BACKEND_STORE_URI" not in given  # the option wins
    for other in (["/venv/bin/python", "/venv/bin/mlflow", "run", "."], ["python", "train.py"]):
        untouched = dict(store)
        default_store.ui_defaults(untouched, other)
        assert untouched == store  # only in `mlflow ui`: no variable that could go stale elsewhere
    server = {"MLFLOW_TRACKING_URI": "http://localhost:5000"}
    default_store.ui_defaults(server, ["/venv/bin/python", "/venv/bin/mlflow", "ui"])
    assert server == {"MLFLOW_TRACKING_URI": "http://localhost:5000"}  # a server: no local store to open


@pytest.mark.e2e  # several fresh interpreters of the venv: ~10 s
def test_every_process_of_the_venv_defaults_to_the_root_store(tmp_path):
    printed = _python(
        "import mlflow; print(mlflow.get_tracking_uri())", tmp_path, _environment_without_store_settings()
    )
    assert printed == [default_store.sqlite_uri(REPO_ROOT / "mlflow.db")]


@pytest.mark.e2e  # a fresh interpreter logs to a store: ~10 s
def test_artifacts_follow_the_database_not_the_working_directory(tmp_path):
    store_dir, elsewhere = tmp_path / "store", tmp_path / "some_example_folder"
    store_dir.mkdir()
    elsewhere.mkdir()
    env = _environment_without_store_settings()
    env["MLFLOW_TRACKING_URI"] = default_store.sqlite_uri(store_dir / "mlflow.db")

    tracking_uri, artifact_uri = _python(LOG_ONE_ARTIFACT, elsewhere, env)

    assert tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert Path(artifact_uri.removeprefix("file://")).is_relative_to(store_dir / "mlartifacts")
    assert list(store_dir.glob("mlartifacts/*/*/artifacts/hello.txt"))
    assert list(elsewhere.iterdir()) == [], "nothing may be written where the command ran"


# --- `mlflow run` against a tracking server that does not answer (the hook's check) -----------------


def test_the_hook_checks_the_server_in_the_mlflow_run_command_only():
    mlflow_cli, python = "/venv/bin/mlflow", "/venv/bin/python"
    assert default_store.is_mlflow_run([python, mlflow_cli, "run", "-e", "main", "."])
    assert default_store.is_mlflow_run([python, "-m", "mlflow", "run", "tracking_example"])  # devtools.run_project
    assert default_store.is_mlflow_run([python, "-X", "importtime", mlflow_cli, "run", "."])
    assert default_store.is_mlflow_run(["C:\\venv\\Scripts\\python.exe", "C:\\venv\\Scripts\\mlflow.EXE", "run", "."])
    assert not default_store.is_mlflow_run([python, mlflow_cli, "run", "--help"])  # needs no server
    assert not default_store.is_mlflow_run([python, mlflow_cli, "ui"])
    assert not default_store.is_mlflow_run([python, "logging_example.py", "42"])  # the script mlflow run starts
    assert not default_store.is_mlflow_run([python, "-c", "import mlflow"])
    assert not default_store.is_mlflow_run([python])


def test_the_check_passes_any_answer_and_a_local_store_and_names_what_failed():
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.harness import free_port

    assert default_store.unreachable("sqlite:////nowhere/mlflow.db") is None  # nothing to reach
    unauthorized = type("Answer", (BaseHTTPRequestHandler,), {"do_GET": lambda self: self.send_error(401)})
    unauthorized.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), unauthorized)  # classroom mode without a login
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert default_store.unreachable(f"http://127.0.0.1:{server.server_port}", timeout=5) is None
    finally:
        server.shutdown()
        server.server_close()
    port = free_port()
    refused = default_store.unreachable(f"http://alice:s3cret@127.0.0.1:{port}/", timeout=1)
    what = f"error: mlflow run cannot reach the tracking server MLFLOW_TRACKING_URI=http://127.0.0.1:{port}/ "
    assert refused.startswith(what + "(connection refused). Start it (make stack")
    assert "s3cret" not in refused
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        frozen = default_store.unreachable(f"http://127.0.0.1:{silent.getsockname()[1]}", timeout=0.5)
    assert "(no answer within 0.5 s)" in frozen

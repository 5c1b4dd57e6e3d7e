"""Processes the tools start: free ports, the venv on PATH, servers run until a ``with`` block ends."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


# Under pytest-xdist each worker (PYTEST_XDIST_WORKER: gw0, gw1, ...) takes its servers' ports from a
# block of its own, below every OS's range of ephemeral ports (Linux 32768-60999, macOS and Windows
# 49152-65535). A port the kernel calls free is free only until someone binds it: two workers could
# be told the same one, and the second worker's stack then took the first worker's server, which
# answered its health check, for its own (a test reached a server that was gone by its next request).
PORT_BLOCK_START = 20000
PORT_BLOCK_SIZE = 500  # ports per worker
PORT_BLOCKS = (32768 - PORT_BLOCK_START) // PORT_BLOCK_SIZE  # 25 blocks below the lowest ephemeral port
_next_port = itertools.count(random.randrange(PORT_BLOCK_SIZE))  # a child process starts elsewhere in the block


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (for servers the tools start); under pytest-xdist,
    one of this worker's block, which no other worker and no outgoing connection is ever given."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    number = worker.removeprefix("gw")
    if not number.isdigit():
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()[1]
    start = PORT_BLOCK_START + PORT_BLOCK_SIZE * (int(number) % PORT_BLOCKS)
    for _ in range(PORT_BLOCK_SIZE):
        port = start + next(_next_port) % PORT_BLOCK_SIZE
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:  # a server of this worker still holds it
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + PORT_BLOCK_SIZE - 1} (pytest-xdist worker {worker})")


def venv_on_path() -> dict[str, str]:
    """``{"PATH": ...}`` with this interpreter's bin folder first, as an activated venv has it:
    MLproject commands say ``python ...`` and ``mlflow run --env-manager local`` runs them from PATH."""
    return {"PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}


def venv_env(env: dict | None = None) -> dict[str, str]:
    """The environment for a child process: this one's, the venv first on PATH, then ``env``."""
    return {**os.environ, **venv_on_path(), **(env or {})}


def stop_process(process: subprocess.Popen, timeout: float = 20, group: bool = False) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL. ``group``: signal the process group the
    process leads (started with ``start_new_session=True``), so whatever it started stops too."""

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig) if group else process.send_signal(sig)

    if process.poll() is None or group:
        send(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        process.wait(timeout=timeout)


@contextlib.contextmanager
def background_server(command: list[str], ready_url: str, timeout: float = 180, env: dict | None = None, cwd=None):
    """Start ``command`` (its own process group), wait until ``ready_url`` answers 200, yield, then
    stop it and everything it started. Fails with the server's output if it exits or never answers."""
    with open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            command,
            cwd=cwd or REPO_ROOT,
            env=venv_env(env),
            stdin=devnull,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(process.stdout), daemon=True).start()  # never blocks the server
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"{command[:4]} exited:\n{''.join(output)[-4000:]}"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready_url, timeout=2) as response:
                if response.status == 200:
                    break
            assert time.monotonic() < deadline, (
                f"no answer on {ready_url} after {timeout} s:\n{''.join(output)[-4000:]}"
            )
            time.sleep(0.5)
        yield process
    finally:
        stop_process(process, group=True)


@contextlib.contextmanager
def model_server(model_uri: str):
    """`mlflow models serve --env-manager local -m <model_uri>` on a free port, as the READMEs run it;
    yields its base URL (POST <url>/invocations)."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "--env-manager", "local"]
    with background_server(
        command + ["-m", model_uri, "-h", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}/ping"
    ):
        yield f"http://127.0.0.1:{port}"


def post_json(url: str, body: dict, timeout: float = 60) -> tuple[int, dict]:
    """POST ``body`` as JSON; (HTTP status, decoded JSON answer), errors included."""
    return post(url, json.dumps(body).encode(), "application/json", timeout)


def post_csv(url: str, text: str, timeout: float = 60) -> tuple[int, dict]:
    """POST ``text`` as ``Content-Type: text/csv``; (HTTP status, decoded JSON answer), errors included."""
    return post(url, text.encode(), "text/csv", timeout)


def post(url: str, data: bytes, content_type: str, timeout: float = 60) -> tuple[int, dict]:
    """POST ``data``; (HTTP status, decoded JSON answer), errors included."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def load_average() -> str:
    """``1.23 1.10 0.98``: the load average over 1, 5 and 15 min, to print beside a measured figure."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # Windows
        return "n/a"

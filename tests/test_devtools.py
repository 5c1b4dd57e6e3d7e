"""devtools/, the maintainer package the tests, benchmarks and tools share: its pure parts, on their own."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from devtools.openai_server import FakeOpenAIServer, answer_for
from devtools.processes import free_port, load_average, post_json, stop_process, venv_env
from devtools.projects import printed_commands


def test_printed_commands_are_sorted_by_where_they_run():
    output = (
        "Next, test it:\n"
        "  from census_project/:     mlflow run -e test . -P run_id=abc\n"
        "  from the repository root: mlflow run -e test census_project -P run_id=abc\n"
        "  from nowhere: not a command\n"
    )
    assert printed_commands(output) == {
        "inside": ["mlflow run -e test . -P run_id=abc"],
        "root": ["mlflow run -e test census_project -P run_id=abc"],
    }


def test_the_venv_comes_first_on_path_and_the_callers_variables_win():
    env = venv_env({"EXTRA": "1"})
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)
    assert env["EXTRA"] == "1"
    assert venv_env({"PATH": "/only"})["PATH"] == "/only"


def is_running(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped by init has stopped)."""
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


def test_stop_process_stops_the_whole_process_group():
    # A shell that starts a child and waits, as `mlflow models serve` starts its workers.
    process = subprocess.Popen(
        ["sh", "-c", "sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    child = int(process.stdout.readline())
    assert is_running(child)
    stop_process(process, timeout=10, group=True)
    assert process.returncode is not None
    deadline = time.monotonic() + 5
    while is_running(child):
        assert time.monotonic() < deadline, f"process {child} of the stopped group still runs"
        time.sleep(0.1)
    stop_process(process)  # stopping an exited process is harmless


def test_the_test_server_answers_plain_judge_and_failing_requests():
    server = FakeOpenAIServer().start()
    try:
        url = server.base_url + "/chat/completions"
        status, body = post_json(url, {"messages": [{"role": "user", "content": "Question: What is Git?"}]})
        assert status == 200
        assert body["choices"][0]["message"]["content"] == answer_for("What is Git?")
        schema = {"type": "object", "properties": {"result": {"type": "string"}, "rationale": {"type": "string"}}}
        judge = {"messages": [], "response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
        status, body = post_json(url, judge)
        assert status == 200
        assert json.loads(body["choices"][0]["message"]["content"])["result"] == "yes"
        server.fail_next = 1
        assert post_json(url, {"messages": []})[0] == 500
        assert [server._kind(r) for r in server.chat_requests()] == ["plain", "judge", "plain"]
    finally:
        server.stop()


def test_free_port_and_load_average_are_usable():
    assert 1024 <= free_port() <= 65535
    figures = load_average().split()
    assert figures == ["n/a"] or len(figures) == 3 and all(float(x) >= 0 for x in figures)


def test_each_xdist_worker_takes_ports_from_a_block_of_its_own_and_skips_one_in_use(monkeypatch):
    """Two workers are never given the same port, nor one the kernel gives out for connections."""
    from devtools import processes

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    start = processes.PORT_BLOCK_START + 2 * processes.PORT_BLOCK_SIZE
    block = range(start, start + processes.PORT_BLOCK_SIZE)
    first = free_port()
    assert first in block
    with socket.socket() as held:  # a server of this worker holds the next port of the block
        taken = start + (first - start + 1) % processes.PORT_BLOCK_SIZE
        held.bind(("127.0.0.1", taken))
        second = free_port()
    assert second in block
    assert second not in (first, taken)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw0")
    assert free_port() in range(processes.PORT_BLOCK_START, start)

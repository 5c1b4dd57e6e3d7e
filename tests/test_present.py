"""present.py (`make present` / `make demo`): the walk of the talk's tracking and autologging steps
on a temporary store (test_present_census.py and test_present_llm.py walk the others, on other
pytest workers: tests/presenting.py); `make reset` and the port checks of `make ui` and of the walk's
`mlflow models serve` step; and the runner's pure parts."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import ViewType

import present as present_py
import present_runner
from present_runner import Printed, Shown, Step, Walk, WalkError
from tests import harness, presenting
from tests.harness import REPO_ROOT

PART = "tracking and autologging"
VENV_PYTHON = Path(sys.executable).relative_to(REPO_ROOT).as_posix()  # the tests run in the repository's venv


@pytest.fixture(scope="module")
def walk(module_store, tmp_path_factory):
    """The part's steps, straight through, once for the module (a few minutes: every example runs)."""
    return presenting.walk(PART, tmp_path_factory.mktemp("walk") / "links.txt")


def test_the_walk_runs_every_step_and_seed_43_fails_as_designed(module_store, walk):
    done, links = walk
    presenting.assert_the_part_walked(PART, done, links)
    assert presenting.steps_of(PART)[0] == 1
    assert "(It failed on purpose, exit status 1: odd seeds raise, as in the talk.)" in done.stdout
    client = module_store.client
    statuses = {
        (r.data.params.get("seed"), r.info.status)
        for r in client.search_runs([client.get_experiment_by_name("logging_example").experiment_id])
    }
    assert statuses == {("42", "FINISHED"), ("43", "FAILED")}
    # Every other run of the walk finished, and the talk's objects exist.
    others = [r for r in module_store.all_runs() if r.data.params.get("seed") != "43"]
    assert {r.info.status for r in others} == {"FINISHED"}
    assert client.get_model_version_by_alias("iris-classifier-dt", "champion")
    assert '{"predictions": [0, 1, 2]}' in done.stdout  # the talk's curl answer, from a real model server
    # The closing line an instructor plans a class with: each step that ran, with its seconds.
    per_step = re.search(r"^Seconds per step: (.+)$", done.stdout, re.MULTILINE).group(1)
    assert [int(item.split(":")[0]) for item in per_step.split(", ")] == presenting.steps_of(PART)


def test_the_commands_are_shown_as_the_slides_show_them(walk):
    done, _ = walk
    shown = re.findall(r"^\$ (.+)$", done.stdout, flags=re.MULTILINE)
    assert "cd tracking_example" in shown
    assert "python logging_example.py 43" in shown
    assert any(c.startswith('mlflow models predict --env-manager local -m "models:/m-') for c in shown)


def test_no_run_lands_in_the_default_experiment(module_store, walk):
    """Every command of the walk (the READMEs' commands) names its experiment."""
    runs = module_store.client.search_runs(["0"], run_view_type=ViewType.ALL)
    assert runs == []


def test_every_link_is_a_ui_page_naming_what_exists(module_store, walk):
    presenting.assert_every_link_names_what_exists(module_store, walk[1])


def test_list_shows_the_steps_without_running_anything(module_store):
    listed = presenting.present("--list")
    assert listed.returncode == 0
    numbered = [f"{n:2d}. {step.slide}   [{step.folder}]" for n, step in enumerate(present_py.STEPS, start=1)]
    assert listed.stdout.splitlines() == numbered  # every step, numbered, and nothing run
    assert numbered[-1].endswith(
        "Exemplifying MLflow for LLM Applications (pt. 10-11): an agent with a search tool   [llmops_project]"
    )


def test_a_taken_port_stops_the_serve_step_with_one_clear_line(module_store, walk):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = presenting.present("--no-pause", "--only", "6", "--serve-port", str(port))
    assert done.returncode == 1
    assert f"error: port {port} is taken" in done.stderr
    assert f"--serve-port {port + 1}" in done.stderr
    assert "Traceback" not in done.stderr


def test_make_ui_on_a_taken_port_says_so_and_exits_non_zero(mlflow_store):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, str(REPO_ROOT / "default_store.py"), "ui", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"error: port {port} is taken by ")
    assert f"UI_PORT={port + 50} make ui" in line


def test_reset_with_force_leaves_an_empty_working_store(mlflow_store):
    mlflow.set_experiment("to_be_forgotten")
    with mlflow.start_run():
        mlflow.log_text("gone soon", "notes.txt")
    reset = subprocess.run(
        [sys.executable, str(REPO_ROOT / "default_store.py"), "reset"],
        env={**os.environ, "FORCE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert reset.returncode == 0, reset.stderr
    assert "Deleted" in reset.stdout
    assert not Path(mlflow_store.artifact_root).exists()
    assert not Path(mlflow_store.tracking_uri.removeprefix("sqlite:///")).exists()
    # An empty store that works: a new run in it, and nothing of the old one (read in a new process:
    # this one's connection pool may still hold the deleted file).
    ran = harness.run_script(None, "tracking_example/logging_example.py", "42")
    assert "Run completed successfully." in ran.stdout
    names = subprocess.run(
        [sys.executable, "-c", "import mlflow; print(sorted(e.name for e in mlflow.search_experiments()))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert names.stdout.strip() == "['Default', 'logging_example']"


# --- the pure parts of the runner (fast) ------------------------------------------------------------


def _folder_cli(folder: str):
    """An example folder's cli.py, under its own module name (every folder's is called `cli`)."""
    spec = importlib.util.spec_from_file_location(f"{folder}_cli_for_present", REPO_ROOT / folder / "cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_next_commands_are_read_from_what_cli_print_next_prints(capsys):
    cli = _folder_cli("census_project")
    print("Done in 3.0 s.")
    cli.print_next("test the winner (pt. 6)", cli.mlflow_run_command("test", {"run_id": "abc"}, "adult"))
    cli.print_next("check the data", "mlflow run -e monitor --env-manager=local {here} -P batch=shifted")
    printed = present_runner.printed_next(capsys.readouterr().out)
    assert printed == {
        "test the winner (pt. 6)": "mlflow run -e test --env-manager=local --experiment-name adult . -P run_id=abc",
        "check the data": "mlflow run -e monitor --env-manager=local . -P batch=shifted",
    }


def test_every_printed_reference_names_a_step_that_prints_and_comes_earlier():
    names = {step.name: number for number, step in enumerate(present_py.STEPS, start=1) if step.name}
    for number, step in enumerate(present_py.STEPS, start=1):
        if isinstance(step.command, Printed):
            assert names[step.command.step] < number, step.slide


def test_a_fresh_walk_starts_new_experiments_and_a_later_one_reuses_the_newest(mlflow_store):
    mlflow.create_experiment("adult-classifier-2026-11-23-17-05")
    mlflow.create_experiment("adult-classifier-2026-11-23-18-40")
    mlflow.create_experiment("adult-classifier-notes")  # not one of the walk's: no date stamp
    later = Walk(present_py.STEPS, stamp="2026-11-24-09-00", fresh=False)
    assert later.experiment("adult-classifier") == "adult-classifier-2026-11-23-18-40"
    assert later.experiment("se-answers") == "se-answers-2026-11-24-09-00"  # none yet: a new one
    assert later.experiment("se-answers-agents") == "se-answers-agents-2026-11-24-09-00"
    fresh = Walk(present_py.STEPS, stamp="2026-11-24-09-00", fresh=True)
    assert fresh.experiment("adult-classifier") == "adult-classifier-2026-11-24-09-00"


def _train_printed(experiment_id: str, run_id: str = "aaa") -> Shown:
    """What step `train` shows: its run page in ``experiment_id`` and its "Next" test command."""
    return Shown(
        "mlflow run -e train ...",
        f"  http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{'a' * 32}   (the parent run)\n\n"
        "Next, test the winner on the rows this run held out (talk pt. 6):\n"
        f"  from census_project/:     mlflow run -e test . -P run_id={run_id}\n"
        f"  from the repository root:  mlflow run -e test census_project -P run_id={run_id}\n",
    )


[TRAIN] = [s for s in present_py.STEPS if s.name == "train"]
[TEST] = [s for s in present_py.STEPS if s.command == Printed("train", "test the winner")]


def test_printed_commands_outlive_the_walk_that_saw_them(mlflow_store):
    """What step `train` printed is kept beside the store: a later walk (another process) finds it,
    and no experiment shows it (the UI lists experiment tags as long JSON strings)."""
    experiment_id = mlflow.create_experiment("adult-classifier-2026-11-23-17-05")
    Walk(present_py.STEPS).record(TRAIN, _train_printed(experiment_id))
    assert not [t for t in mlflow_store.client.get_experiment(experiment_id).tags if not t.startswith("mlflow.")]
    kept = json.loads(
        (Path(mlflow_store.tracking_uri.removeprefix("sqlite:///")).parent / ".present-printed.json").read_text()
    )
    assert kept[mlflow_store.tracking_uri][experiment_id]["printed"]["train"] == {
        "test the winner on the rows this run held out (talk pt. 6)": "mlflow run -e test . -P run_id=aaa"
    }
    assert Walk(present_py.STEPS, fresh=False).command(TEST) == "mlflow run -e test . -P run_id=aaa"


def test_what_was_printed_for_an_experiment_of_an_emptied_store_is_not_used(mlflow_store):
    """make reset: a new store gives id 1 to a new experiment; what the file kept for the old one is ignored."""
    experiment_id = mlflow.create_experiment("adult-classifier-2026-11-23-17-05")
    Walk(present_py.STEPS).record(TRAIN, _train_printed(experiment_id))
    mlflow_store.client.delete_experiment(experiment_id)
    book = present_runner.printed_file()
    kept = json.loads(book.read_text())
    kept[mlflow_store.tracking_uri][mlflow.create_experiment("adult-classifier-2026-11-24-09-00")] = kept[
        mlflow_store.tracking_uri
    ].pop(experiment_id)  # the same record, under a new experiment's id
    book.write_text(json.dumps(kept))
    with pytest.raises(WalkError, match="has not printed"):
        Walk(present_py.STEPS, fresh=False).command(TEST)


def test_a_walk_moves_the_tags_of_earlier_walks_off_the_experiments(mlflow_store):
    """Walks before issue 29 kept the printed commands as experiment tags: the next walk moves them."""
    old = mlflow.create_experiment("adult-classifier-2026-11-23-17-05")
    command = {"test the winner on the rows this run held out": "mlflow run -e test . -P run_id=old"}
    mlflow_store.client.set_experiment_tag(old, "present.printed.train", json.dumps(command))
    assert Walk(present_py.STEPS, fresh=False).command(TEST) == "mlflow run -e test . -P run_id=old"
    assert "present.printed.train" not in mlflow_store.client.get_experiment(old).tags
    newer = mlflow.create_experiment("adult-classifier-2026-11-24-09-00")
    Walk(present_py.STEPS).record(TRAIN, _train_printed(newer, run_id="new"))
    assert Walk(present_py.STEPS, fresh=False).command(TEST) == "mlflow run -e test . -P run_id=new"


def test_a_printed_command_not_seen_yet_says_which_step_to_run(mlflow_store):
    train_number = next(n for n, s in enumerate(present_py.STEPS, start=1) if s.name == "train")
    run_it = re.escape(f"run it first ({VENV_PYTHON} present.py --from {train_number})")
    with pytest.raises(WalkError, match=rf"step {train_number} has not printed .* {run_it}"):
        Walk(present_py.STEPS, fresh=False).command(TEST)


@pytest.mark.parametrize(("llm", "provider", "shown"), [(True, True, True), (True, False, False), (False, True, False)])
def test_llm_commands_name_the_provider_the_walk_started(capsys, llm, provider, shown):
    step = Step("A slide", "llmops_project", "python -c \"print('answered')\"", "it", lambda w, s: s.output, llm=llm)
    walk = Walk([step], provider=present_runner.offline_provider(8081) if provider else {})
    present_runner.show(1, step, walk, {**os.environ})
    out = capsys.readouterr().out
    export = "$ export OPENAI_BASE_URL=http://127.0.0.1:8081/v1 OPENAI_API_KEY=local\n$ python -c"
    assert (export in out) is shown
    assert walk.links == ["answered\n"]  # the command's output, shown live and kept for the step


def test_from_after_to_is_refused_before_anything_runs(mlflow_store):
    done = presenting.present("--from", "15", "--to", "14")
    assert done.returncode == 2
    assert "--from 15 comes after --to 14" in done.stderr.strip().splitlines()[-1]
    assert [e.name for e in mlflow_store.client.search_experiments()] == ["Default"]


def test_a_failed_step_says_how_to_retry_it_from_a_fresh_shell_without_activating_the_venv(tmp_path):
    step = Step("A slide", "llmops_project", 'python -c "import sys; sys.exit(3)"', "it", lambda w, s: "")
    with pytest.raises(WalkError) as failed:
        present_runner.show(7, step, Walk([step]), {**os.environ})
    retry = str(failed.value).split("Retry it with: ")[1]
    assert retry == f"{VENV_PYTHON} present.py --only 7"
    # As printed, from the repository root, with nothing of the venv on PATH: it runs (--list is enough)
    fresh = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PATH")}
    fresh["PATH"] = "/usr/bin:/bin"
    listed = subprocess.run(
        [*retry.replace("--only 7", "--list").split()], cwd=REPO_ROOT, env=fresh, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert " 7. " in listed.stdout


def test_every_command_the_walk_prints_to_paste_runs_the_venvs_python_with_the_real_step_number(capsys):
    # A taken port stops the serve step (6 here) with the command that runs it on the next port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = f'mlflow models serve --env-manager local -m "models:/m-1" -p {port}'
        assert present_runner.serve_and_curl(serve, "autologging_example", {**os.environ}, 6) == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(f"choose another port: {VENV_PYTHON} present.py --only 6 --serve-port {port + 1}")
    )
    # A step whose optional extra is missing is skipped with the command that runs it once installed
    step = Step("A slide", "llmops_project", "python -c pass", "it", lambda w, s: "", needs="no_such_extra_module")
    present_runner.walk_through(Walk([step]), [(19, step)], pause=False, ui_port=None, links_file=None)
    assert f"make align-install, then {VENV_PYTHON} present.py --only 19)" in capsys.readouterr().out
    # The offline model's rebuild, in the walk's "Not run" block and in install.py's crash line
    assert f"\n       {VENV_PYTHON} llmops_project/local_llm/install.py --rebuild\n" in present_runner.REBUILD


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_llm_step_that_failed_because_the_walks_offline_server_crashed_says_so():
    server = subprocess.Popen([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    server.wait(timeout=60)
    step = Step("A slide", "llmops_project", 'python -c "import sys; sys.exit(2)"', "it", lambda w, s: "", llm=True)
    walk = Walk([step], server=server)
    with pytest.raises(WalkError) as failed:
        present_runner.show(16, step, walk, {**os.environ})
    assert str(failed.value).startswith(
        "step 16 failed (exit status 2); the offline model server crashed: SIGSEGV (signal 11); "
        "its log: .local-llm/present-server.log. Retry it with: "
    )


# A stand-in for local_llm/serve.py whose server answers GET /v1/models, then dies by SIGSEGV at the
# first chat request, as a llama.cpp built for the wrong CPU does.
FAKE_SERVE = '''
import subprocess, sys, time, urllib.request
from pathlib import Path

SERVER = """
import http.server, os, signal, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b'{"data": []}')
    def do_POST(self):
        os.kill(os.getpid(), signal.SIGSEGV)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


class LocalLLMError(Exception):
    pass


def bundled_model_path():
    return Path(__file__)


def start_in_background(port, log_path, *options, timeout=60):
    with open(log_path, "w") as log:
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return server
        except OSError:
            time.sleep(0.25)
    raise LocalLLMError("did not start")
'''


# The same stand-in, whose server answers every chat request and tells its process id.
ANSWERING_SERVE = FAKE_SERVE.replace(
    "os.kill(os.getpid(), signal.SIGSEGV)", "self.send_response(200); self.end_headers(); self.wfile.write(b'{}')"
).replace(
    "stderr=subprocess.STDOUT)",
    "stderr=subprocess.STDOUT)\n    Path(__file__).with_name('server.pid').write_text(str(server.pid))",
)
# A walk of one long LLM step with that stand-in as its offline model (argv[1]), as present.py walks.
WALKER = f"""
import importlib.util, sys
from pathlib import Path
sys.path.insert(0, {str(REPO_ROOT)!r})
import present_runner
from present_runner import Step, Walk
present_runner.LOCAL_LLM = Path(sys.argv[1])
find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: object() if name == "llama_cpp" else find_spec(name, *a)
command = 'python -c "import os, time; print(os.getpid(), flush=True); time.sleep(600)"'
step = Step("A long LLM step", "llmops_project", command, "it", lambda w, s: "", llm=True)
present_runner.walk_through(Walk([step, step]), [(1, step)], pause=False, ui_port=None, links_file=None)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
@pytest.mark.parametrize(
    ("signum", "to_the_group"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],  # kill; terminal closed; Ctrl-C
    ids=["SIGTERM to the walk", "SIGHUP to the walk", "SIGINT to the group"],
)
def test_a_walk_stopped_by_a_signal_stops_its_offline_server_and_step_and_says_where_to_go_on(
    tmp_path, signum, to_the_group
):
    (tmp_path / "serve.py").write_text(ANSWERING_SERVE)
    walker = subprocess.Popen(
        [sys.executable, "-c", WALKER, str(tmp_path / "serve.py")],
        env={k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=harness.as_a_terminals_job,
    )
    lines = iter(walker.stdout.readline, "")
    step_pid = int(next(line for line in lines if re.fullmatch(r"\d+\n", line)))  # the step runs
    server_pid = int((tmp_path / "server.pid").read_text())
    os.killpg(walker.pid, signum) if to_the_group else walker.send_signal(signum)
    _, err = walker.communicate(timeout=90)
    assert walker.returncode == 128 + signum, err[-3000:]
    assert err.splitlines()[-1] == (
        f"error: interrupted ({signal.Signals(signum).name}) at step 1; the walk stopped the servers it started. "
        f"Go on with: {VENV_PYTHON} present.py --from 1"
    )
    for pid in (server_pid, step_pid):  # neither its offline model server nor the step's command is left
        assert not present_runner.running.alive(pid) or present_runner.running.zombie(pid)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_an_offline_model_that_crashes_at_its_first_request_skips_the_llm_steps_with_the_fix(
    tmp_path, monkeypatch, capsys
):
    fake = tmp_path / "serve.py"
    fake.write_text(FAKE_SERVE)
    monkeypatch.setattr(present_runner, "LOCAL_LLM", fake)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "llama_cpp" else find_spec(name, *a)
    )
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    ml_step = Step("Not an LLM step", "tracking_example", "python -c \"print('ran')\"", "it", lambda w, s: "link")
    llm_step = Step("An LLM step", "llmops_project", "python -c \"print('never')\"", "it", lambda w, s: "", llm=True)
    walk = Walk([ml_step, llm_step])
    with pytest.raises(SystemExit) as stopped:
        present_runner.walk_through(walk, [(1, ml_step), (2, llm_step)], pause=False, ui_port=None, links_file=None)
    assert stopped.value.code == 1
    out, err = capsys.readouterr()
    assert "ran" in out  # the other steps still run
    assert "never" not in out
    assert (
        "Not run: the LLM steps, because the offline model server crashed: SIGSEGV (signal 11); "
        "its log: .local-llm/present-server.log (at its first request):\n  2. An LLM step" in err
    )
    rebuild = f"{VENV_PYTHON} llmops_project/local_llm/install.py --rebuild"
    assert f"Rebuild the offline model, from the repository root:\n       {rebuild}\n" in err
    assert walk.server.poll() == -11


# install.py, standing in for make demo's first run: --wheel-only "builds" until the walk's ML step has run
# (so the two overlap, or it gives up), then the foreground run "installs"
FAKE_INSTALL = """
import os, sys, time
from pathlib import Path
if "--wheel-only" in sys.argv:
    ran = Path(os.environ["FAKE_ML_STEP_RAN"])
    deadline = time.monotonic() + 60
    while not ran.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    group = Path("/proc/self/autogroup")  # Linux: its session's priority (present_runner.lower_priority)
    session = f", session {group.read_text().split()[-1]}" if group.exists() else ""
    print(f"built at niceness {os.nice(0)}{session}, the ML step ran meanwhile: {ran.exists()}", flush=True)
    sys.exit(int(os.environ["FAKE_BUILD_STATUS"]))
print("installed and checked", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="os.nice")
@pytest.mark.parametrize("build_status", [0, 1])
def test_the_offline_model_builds_while_the_ml_steps_run_and_the_first_llm_step_waits_for_it(
    tmp_path, monkeypatch, capfd, build_status
):
    fake = tmp_path / "install.py"
    fake.write_text(FAKE_INSTALL)
    ran = tmp_path / "ml-step-ran"
    monkeypatch.setattr(present_runner, "INSTALL", fake)
    monkeypatch.setenv("FAKE_ML_STEP_RAN", str(ran))
    monkeypatch.setenv("FAKE_BUILD_STATUS", str(build_status))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = []
    monkeypatch.setattr(present_runner, "start_offline_llm", lambda walk, env: started.append(walk) and None)
    ml_step = Step("An ML step", "tracking_example", f"python -c \"open(r'{ran}', 'w')\"", "it", lambda w, s: "")
    llm_step = Step("An LLM step", "llmops_project", "python -c \"print('answered')\"", "it", lambda w, s: "", llm=True)
    walk = Walk([ml_step, llm_step])
    chosen = [(1, ml_step), (2, llm_step)]
    if build_status == 0:
        present_runner.walk_through(walk, chosen, pause=False, ui_port=None, links_file=None, build=True)
    else:
        with pytest.raises(SystemExit) as stopped:
            present_runner.walk_through(walk, chosen, pause=False, ui_port=None, links_file=None, build=True)
        assert stopped.value.code == 1
    out, err = capfd.readouterr()
    assert "compiling llama.cpp in the background while the ML steps run" in out.split("Step 1/2")[0]
    session = ", session 10" if Path("/proc/self/autogroup").exists() else ""
    assert f"  built at niceness 10{session}, the ML step ran meanwhile: True" in out.split("Step 2/2")[0]
    if build_status == 0:  # installed in the foreground, then started, then the step
        assert out.index("installed and checked") < out.index("answered")
        assert started == [walk]
    else:  # nothing installed or started; the LLM steps are listed as not run, with the fix
        assert "installed and checked" not in out
        assert "answered" not in out
        assert started == []
        assert "Not run: the LLM steps, because the offline model could not be built (exit status 1;" in err
        assert "make local-llm-install" in err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups")
def test_a_walk_that_stops_stops_the_background_build_with_what_it_started(tmp_path, monkeypatch):
    """What walk_through's ``finally`` does to the build on Ctrl-C, kill or a closed terminal: pip, cmake and
    the compilers are the build's children, in its process group."""
    fake = tmp_path / "install.py"
    fake.write_text(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    monkeypatch.setattr(present_runner, "INSTALL", fake)
    build = present_runner.OfflineBuild()
    deadline = time.monotonic() + 30
    while not build.log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(build.log.read_text().split()[0])
    present_runner.stop(build.process)
    assert build.process.returncode is not None
    deadline = time.monotonic() + 10
    while present_runner.running.alive(child) and time.monotonic() < deadline:  # a zombie counts as ended
        time.sleep(0.1)
    assert not present_runner.running.alive(child)

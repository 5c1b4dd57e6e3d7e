"""What present.py needs to walk its table of steps: running a step's command while showing and keeping
its output, the `mlflow models serve` step and its curl request, the offline LLM start-up, the names
of the walk's dated experiments, and the UI links. No slide shows any of this; present.py holds the
steps themselves.

One source of truth: a step that runs a command an earlier step's script printed ("Next, ...:", see
each folder's cli.print_next) takes it from that output, not from a copy here. The walk records
those printed commands under the experiment the step wrote to, in a small file beside the store's
database (``.present-printed.json``; the repository root for a tracking server), so that ``--only N``
or ``--from N`` in a later minute, or a later day, finds them for as long as the store holds that
experiment. Not in the store itself: the UI would show them to the class, as long JSON strings in
every experiment list (the walk kept them as ``present.printed.<step>`` experiment tags until
issue 29; a walk moves those it finds into the file).
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import mlflow

import default_store

REPO_ROOT = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
LOCAL_LLM = REPO_ROOT / "llmops_project" / "local_llm" / "serve.py"
# The offline server's note and the printed-command helper (standard library only), loaded by path.
RUNNING = REPO_ROOT / "llmops_project" / "local_llm" / "llm_server" / "running.py"
IRIS = '{"inputs": [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]}'  # the talk's payload
STAMP = r"\d{4}(-\d{2}){4}"  # the walk's date stamp in experiment names: 2026-11-23-17-05
STAMP_FORMAT = "%Y-%m-%d-%H-%M"
SERVER_LOG_NAME = ".local-llm/present-server.log"  # the offline model server's output, when the walk starts it
INSTALL = REPO_ROOT / "llmops_project" / "local_llm" / "install.py"
BUILD_LOG_NAME = ".local-llm/present-build.log"  # install.py --wheel-only's output, when the walk runs it
BUILD_NICE = 10  # the background build's priority: the steps go first, the build takes what they leave
PRINTED_FILE = ".present-printed.json"  # the "Next" commands the named steps' scripts printed, per experiment
LEGACY_TAG_PREFIX = "present.printed."  # where earlier walks kept them: experiment tags, shown in the UI

NEXT_HEADING = re.compile(r"^Next, (?P<what>.+):$")
NEXT_INSIDE = re.compile(r"^  from (?P<folder>\S+)/:\s+(?P<command>.+)$")
RUN_ROUTE = re.compile(r"/#/(experiments/(?P<experiment>[\w-]+)/runs/(?P<run>\w+)\S*)")  # with any ?query


def load(name: str, path: Path):
    """A module of an example, loaded by its path (an example's modules are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


running = load("local_llm_running", RUNNING)


class WalkError(Exception):
    """An unexpected failure: the walk stops and says how to retry."""


# --- the table's vocabulary ----------------------------------------------------------------------


# {aligned_judges} in a step's command, when the walk aligns a judge: optimize weighs the aligned judge
# in place of the talk's one, by the same trust rule (quiz/decision.py)
ALIGNED_JUDGES = " -P judges=aligned"


@dataclass(frozen=True)
class Printed:
    """The command that the script of step ``step`` printed under "Next, <what>...:" (from inside its
    folder, the talk's form), changed by ``then(command, walk)`` when given."""

    step: str  # the ``name`` of the step whose output holds it
    what: str  # how its "Next, ..." line starts
    then: Callable[[str, Walk], str] | None = None


@dataclass
class Shown:
    """A step as it ran: the command shown and run, and what its script printed on stdout."""

    command: str
    output: str = ""

    @property
    def next(self) -> dict[str, str]:
        return printed_next(self.output)


@dataclass
class Step:
    slide: str  # the slide's title
    folder: str  # where the talk runs the command
    # as the slide shows it: {census}, {answers}, {agents}, {serve_port}, {aligned_judges} are filled in
    command: str | Printed
    look: str  # what to look at afterwards
    link: Callable[[Walk, Shown], str]  # the UI page of what the step made
    name: str = ""  # for steps whose printed commands later steps run (Printed(step=name, ...))
    quick: tuple[str, ...] = ()  # added to the command with --quick (small grids, for CI)
    fails_on_purpose: bool = False
    llm: bool = False
    needs: str = ""  # a module of an optional extra (e.g. dspy, requirements-align.txt): skipped without it

    def missing(self) -> bool:
        """Whether the optional extra this step needs is not installed (``make demo`` installs them)."""
        return bool(self.needs) and importlib.util.find_spec(self.needs) is None


@dataclass
class Walk:
    """What the steps share: the experiment names, the provider, the commands the scripts printed."""

    steps: list[Step]
    stamp: str = field(default_factory=lambda: datetime.now().strftime(STAMP_FORMAT))
    fresh: bool = True  # a walk from step 1 starts new dated experiments; --from/--only reuse the newest
    quick: bool = False
    ui: str = "http://127.0.0.1:5000"
    serve_port: int = 1234
    llm: str | None = None  # why the LLM steps cannot run, or None when they can
    provider: dict[str, str] = field(default_factory=dict)  # OPENAI_* variables the walk set (offline model)
    server: subprocess.Popen | None = None  # the offline model server the walk started, if any
    fixes: str = ""  # how to make the LLM steps run, when ``llm`` says why they cannot
    links: list[str] = field(default_factory=list)
    printed: dict[str, dict[str, str]] = field(default_factory=dict)  # step name -> {what: command}
    names: dict[str, str] = field(default_factory=dict)  # experiment family -> the walk's experiment

    def experiment(self, family: str) -> str:
        """The walk's experiment of ``family`` (adult-classifier -> adult-classifier-<stamp>): a fresh walk
        starts new dated names; otherwise the newest dated experiment of that family the store holds,
        so a step run again (--only, --from) writes next to the earlier steps."""
        if family not in self.names:
            existing = None if self.fresh else newest_dated_experiment(family)
            self.names[family] = existing or f"{family}-{self.stamp}"
        return self.names[family]

    def command(self, step: Step) -> str:
        if isinstance(step.command, Printed):
            command = self.printed_command(step.command)
        else:
            command = step.command.format(
                census=self.experiment("adult-classifier"),
                answers=self.experiment("se-answers"),
                agents=self.experiment("se-answers-agents"),
                serve_port=self.serve_port,
                aligned_judges=ALIGNED_JUDGES if self.aligns() else "",
            )
        return command + (" " + " ".join(step.quick) if self.quick and step.quick else "")

    def aligns(self) -> bool:
        """Whether the walk's align step can run (its optional extra is installed): the steps after it
        then use the judge it aligned ({aligned_judges}), and otherwise the talk's judges."""
        return any(step.name == "align" and not step.missing() for step in self.steps)

    def printed_command(self, reference: Printed) -> str:
        """The command step ``reference.step`` printed: from this walk's output, else from the store."""
        printed = self.printed.get(reference.step) or recorded_commands(reference.step)
        command = next((c for what, c in printed.items() if what.startswith(reference.what)), None)
        if command is None:
            number = next(n for n, s in enumerate(self.steps, start=1) if s.name == reference.step)
            raise WalkError(
                f"step {number} has not printed the command 'Next, {reference.what}...' in this store yet: "
                f"run it first ({walk_command('--from', number)})"
            )
        return reference.then(command, self) if reference.then else command

    def record(self, step: Step, shown: Shown) -> None:
        """Keep the commands a named step's script printed, here and beside the store (PRINTED_FILE)."""
        if not step.name or not shown.next:
            return
        self.printed[step.name] = shown.next
        if experiment_id := experiment_of(shown):
            move_legacy_tags()
            remember(mlflow.MlflowClient().get_experiment(experiment_id), {step.name: shown.next})

    def page(self, route: str) -> str:
        return f"{self.ui}/#/{route}"

    def server_crash(self) -> str | None:
        """That the offline model server the walk started has died, with its signal and log; else None."""
        if self.server is None or self.server.poll() is None:
            return None
        reason = running.exit_reason(self.server.returncode)
        return f"the offline model server crashed: {reason}; its log: {SERVER_LOG_NAME}"


# --- reading what the scripts printed, and the store -------------------------------------------------


def printed_next(output: str) -> dict[str, str]:
    """{what: command} of every "Next, <what>:" in a script's output (cli.print_next), each command
    in its form from inside the example's folder, as the talk runs it. A later one of the same
    ``what`` replaces an earlier one."""
    found, what = {}, None
    for line in output.splitlines():
        if heading := NEXT_HEADING.match(line):
            what = heading["what"]
        elif what and (inside := NEXT_INSIDE.match(line)):
            found[what], what = inside["command"], None
    return found


def printed_run(output: str) -> re.Match | None:
    """The last run page a script printed (cli.print_ui_hint): its experiment and run ids."""
    matches = list(RUN_ROUTE.finditer(output))
    return matches[-1] if matches else None


def experiment_of(shown: Shown) -> str | None:
    """The id of the experiment a step wrote to: that of the run page it printed, else the experiment
    its printed commands name."""
    if run := printed_run(shown.output):
        return run["experiment"]
    for command in shown.next.values():
        words = shlex.split(command)
        for option in ("--experiment-id", "--experiment-name"):
            if option in words:
                value = words[words.index(option) + 1]
                if option == "--experiment-id":
                    return value
                if found := mlflow.MlflowClient().get_experiment_by_name(value):
                    return found.experiment_id
    return None


def printed_file() -> Path:
    """Where the walk keeps what the steps printed: beside the store's mlflow.db (so each store has
    its own, as `make ui`'s state file), or at the repository root for a tracking server."""
    database = default_store.sqlite_path(mlflow.get_tracking_uri())
    return (database.parent if database else REPO_ROOT) / PRINTED_FILE


def _book() -> dict:
    """{tracking URI: {experiment id: {"created": its creation time, "printed": {step: {what: command}}}}}"""
    try:
        return json.loads(printed_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def remember(experiment, printed: dict[str, dict[str, str]]) -> None:
    """Add ``printed`` ({step name: {what: command}}) to what the file keeps for ``experiment``. The
    experiment's creation time is kept too: an id that a new store (make reset) gives to another
    experiment does not match it."""
    book = _book()
    experiments = book.setdefault(mlflow.get_tracking_uri(), {})
    kept = experiments.get(experiment.experiment_id, {})
    if kept.get("created") != experiment.creation_time:
        kept = {"created": experiment.creation_time, "printed": {}}
    kept["printed"].update(printed)
    experiments[experiment.experiment_id] = kept
    printed_file().write_text(json.dumps(book, indent=1) + "\n", encoding="utf-8")


def recorded_commands(step_name: str) -> dict[str, str]:
    """The commands a named step printed in an earlier walk on this store: the newest experiment's."""
    move_legacy_tags()
    kept = _book().get(mlflow.get_tracking_uri(), {})
    for experiment in mlflow.MlflowClient().search_experiments(order_by=["creation_time DESC"]):
        found = kept.get(experiment.experiment_id, {})
        if found.get("created") == experiment.creation_time and step_name in found["printed"]:
            return found["printed"][step_name]
    return {}


def move_legacy_tags() -> None:
    """Earlier walks kept the printed commands as experiment tags (present.printed.<step>), which the
    UI lists with every experiment: move them into the file, and off the experiments."""
    client = mlflow.MlflowClient()
    for experiment in client.search_experiments():
        legacy = {key: value for key, value in experiment.tags.items() if key.startswith(LEGACY_TAG_PREFIX)}
        if legacy:
            remember(
                experiment, {key.removeprefix(LEGACY_TAG_PREFIX): json.loads(value) for key, value in legacy.items()}
            )
            for key in legacy:
                client.delete_experiment_tag(experiment.experiment_id, key)


def newest_dated_experiment(family: str) -> str | None:
    """The newest active experiment named <family>-<date stamp>, or None."""
    pattern = re.compile(re.escape(family) + "-" + STAMP)
    dated = [e for e in mlflow.MlflowClient().search_experiments() if pattern.fullmatch(e.name)]
    return max(dated, key=lambda e: (e.creation_time or 0, e.name)).name if dated else None


def script_constants(path: Path) -> dict[str, str]:
    """A script's module-level string constants (RUN_NAME = "example_run"), read without importing it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def newest_run(experiment: str, run_name: str, status: str):
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    where = f"attributes.run_name = '{run_name}' and attributes.status = '{status}'"
    runs = client.search_runs([found.experiment_id], where, order_by=["attributes.start_time DESC"]) if found else []
    if not runs:
        earlier = walk_command("--from", 1)
        raise WalkError(f"no {status} run {run_name!r} in experiment {experiment!r}: run the earlier steps ({earlier})")
    return runs[0]


# --- the UI pages a step links to ------------------------------------------------------------------


def run_page(walk: Walk, shown: Shown) -> str:
    """The run page the step's script printed, on the walk's UI."""
    if run := printed_run(shown.output):
        return walk.page(run[1])
    raise WalkError(f"`{shown.command}` printed no run page (its cli.print_ui_hint line)")


def traces_page(walk: Walk, shown: Shown) -> str:
    """The Traces tab of the experiment of the run the step's script printed."""
    if run := printed_run(shown.output):
        return walk.page(f"experiments/{run['experiment']}/traces?workflowType=genai")
    raise WalkError(f"`{shown.command}` printed no run page (its cli.print_ui_hint line)")


def review_queue_page(walk: Walk, shown: Shown) -> str:
    """The Review page of the queue the step's script printed (review.py: "Review page for ...")."""
    if queue := re.search(r"/#/(experiments/\w+/review-queue\?\S*selectedQueueId=[\w-]+)", shown.output):
        return walk.page(queue[1])
    raise WalkError(f"`{shown.command}` printed no Review page")


def logged_model_page(walk: Walk, shown: Shown) -> str:
    """The page of the logged model (models:/m-...) the step's command uses."""
    model_id = re.search(r"models:/(m-\w+)", shown.command)[1]
    experiment_id = mlflow.MlflowClient().get_logged_model(model_id).experiment_id
    return walk.page(f"experiments/{experiment_id}/models/{model_id}?workflowType=machine_learning")


def registered_model_page(walk: Walk, shown: Shown) -> str:
    """The registered model whose alias the step's script printed (models:/<name>@<alias>)."""
    name = re.search(r"models:/([\w.-]+)@", shown.output)[1]
    return walk.page(f"models/{name}")


def failed_run_page(script: str) -> Callable[[Walk, Shown], str]:
    """The newest FAILED run of a script that names its experiment and run (EXPERIMENT_NAME, RUN_NAME):
    a failing run prints no page of its own."""

    def page(walk: Walk, shown: Shown) -> str:
        names = script_constants(REPO_ROOT / script)
        run = newest_run(names["EXPERIMENT_NAME"], names["RUN_NAME"], "FAILED")
        return walk.page(f"experiments/{run.info.experiment_id}/runs/{run.info.run_id}?workflowType=machine_learning")

    return page


# --- running a step --------------------------------------------------------------------------------


def show(number: int, step: Step, walk: Walk, env: dict) -> None:
    """Print the step's title and command, run it (its output live), then what to look at and the link."""
    command = walk.command(step)
    print(f"\n━━ Step {number}/{len(walk.steps)} · {step.slide} " + "━" * max(3, 100 - len(step.slide)))
    print(f"$ cd {step.folder}")
    if step.llm and walk.provider:  # the provider the walk started: needed to re-run the command by hand
        print("$ export " + " ".join(f"{name}={value}" for name, value in walk.provider.items()))
    print(f"$ {command}", flush=True)
    shown = Shown(command)
    if command.startswith("mlflow models serve"):
        status = serve_and_curl(command, step.folder, env, number)
    else:
        status, shown.output = run_command(command, step.folder, env)
    if status != 0 and not step.fails_on_purpose:
        crash = f"; {walk.server_crash()}" if step.llm and walk.server_crash() else ""
        raise WalkError(f"step {number} failed (exit status {status}){crash}. Retry it with: {retry_command(number)}")
    if step.fails_on_purpose:
        print(f"(It failed on purpose, exit status {status}: odd seeds raise, as in the talk.)")
    walk.record(step, shown)
    link = step.link(walk, shown)
    walk.links.append(link)
    print(f"\n→ Look at: {step.look}\n  {link}", flush=True)


def run_command(command: str, folder: str, env: dict) -> tuple[int, str]:
    """Run a command as typed in ``folder`` (the venv's `mlflow` and `python` first on PATH); show its
    output as it comes and return it with the exit status. Its errors go straight to stderr."""
    process = subprocess.Popen(
        shlex.split(command),
        cwd=REPO_ROOT / folder,
        env={**env, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"},  # line by line, as on a terminal
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    lines = []
    try:
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
        return process.wait(), "".join(lines)
    except KeyboardInterrupt as interruption:  # Ctrl-C reached the command too: let it end its run, then go
        if isinstance(interruption, Interrupted):  # a kill or a hang-up may have reached the walk alone
            process.send_signal(interruption.signum)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        raise


def serve_and_curl(command: str, folder: str, env: dict, number: int) -> int:
    """The talk's `mlflow models serve` (step ``number``), then its curl request (sent from Python), then
    stop the server."""
    port = int(shlex.split(command)[-1])
    if holder := default_store.port_in_use(port):
        print(
            f"error: port {port} is taken by {holder}, so `mlflow models serve -p {port}` cannot start. "
            f"Stop it, or choose another port: {walk_command('--only', number, '--serve-port', port + 1)}",
            file=sys.stderr,
        )
        return 1
    server = subprocess.Popen(
        shlex.split(command), cwd=REPO_ROOT / folder, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )  # its own process group: stopping it stops its workers too
    url = f"http://localhost:{port}/invocations"
    try:
        for _ in range(240):
            if server.poll() is not None:
                return server.returncode or 1
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        print(f"\n$ curl {url} -H \"Content-Type:application/json\" --data '{IRIS}'", flush=True)
        request = urllib.request.Request(url, data=IRIS.encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            print(response.read().decode(), flush=True)
        return 0
    finally:
        stop(server)


def stop(process: subprocess.Popen) -> None:
    """Stop a server we started, and what it started (its process group, where it has one)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except (AttributeError, ProcessLookupError):  # Windows, or a server not leading its own group
        process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_offline_llm(walk: Walk, env: dict):
    """The offline model of llmops_project/local_llm on a free port (its serve.py starts it), proven by
    one chat request; None, with the reason in ``walk.llm``, when it is not installed, does not start
    or crashes on that request. The variables it sets are kept in ``walk.provider``: the LLM steps
    print them, to re-run their commands by hand."""
    serve = load("local_llm_serve", LOCAL_LLM)
    if importlib.util.find_spec("llama_cpp") is None or serve.bundled_model_path() is None:
        walk.llm, walk.fixes = "no OPENAI_API_KEY is set and the offline model is not installed", BUILD_IT
        return None
    port = next(p for p in range(8080, 8180) if not default_store.port_in_use(p))
    log = REPO_ROOT / SERVER_LOG_NAME
    print(f"No OPENAI_API_KEY: starting the offline model (SmolLM2-135M on llama.cpp) on 127.0.0.1:{port} ...")
    try:
        server = serve.start_in_background(port, log)
    except serve.LocalLLMError as problem:
        walk.llm, walk.fixes = f"the offline model did not start ({str(problem).splitlines()[0]}; see {log})", REBUILD
        return None
    walk.server = server
    if not first_answer(port) and (crash := walk.server_crash()):
        walk.llm, walk.fixes = f"{crash} (at its first request)", REBUILD
        return None
    walk.provider = offline_provider(port)
    env.update(walk.provider)
    return server


class OfflineBuild:
    """The offline model's first build, while the ML steps run (``present.py --build-offline-model``,
    what make demo passes when the model is not installed yet): ``install.py --wheel-only`` compiles
    llama.cpp in the background, at low priority, on the core the ML steps leave idle (they run one
    process at a time), and changes nothing in the venv they use. The first LLM step waits for it,
    then runs install.py in the foreground: it installs the kept wheel and proves it (seconds)."""

    def __init__(self):
        self.log = REPO_ROOT / BUILD_LOG_NAME
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(INSTALL), "--wheel-only"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends pip, cmake and the compilers too
                preexec_fn=lower_priority if hasattr(os, "nice") else None,  # the steps go first
            )
        print(
            f"The offline model is not installed yet: compiling llama.cpp in the background while the ML steps run "
            f"(its output: {BUILD_LOG_NAME}); the first LLM step waits for it.",
            flush=True,
        )

    def install(self, walk: Walk, env: dict) -> bool:
        """Wait for the build, show its output, then install and check it in the foreground (install.py).
        False, with the reason in ``walk.llm``, when either fails."""
        if self.process.poll() is None:
            waited = running.clock(time.monotonic() - self.started)
            print(f"\nWaiting for the offline model's build (started {waited} ago) ...")
        status = self.process.wait()
        print(f"\nThe offline model's build ({BUILD_LOG_NAME}), run in the background:")
        print(textwrap.indent(self.log.read_text().rstrip(), "  "), flush=True)
        if status != 0:
            walk.llm = f"the offline model could not be built (exit status {status}; see above and {BUILD_LOG_NAME})"
            return False
        print(f"$ {running.python_command('llmops_project/local_llm/install.py')}", flush=True)
        status = subprocess.run([sys.executable, str(INSTALL)], env=env, stdin=subprocess.DEVNULL).returncode
        if status != 0:
            walk.llm, walk.fixes = f"the offline model's install failed (exit status {status}; see above)", REBUILD
            return False
        return True


def lower_priority() -> None:
    """In the build's process, before it starts: nice BUILD_NICE, for it and for its session.

    Linux (with autogroup scheduling, the default on desktops and many VMs) first shares the CPU
    fairly between sessions, and only then by nice value within each: a build in a session of its
    own took half the CPU from the steps whatever its nice (10 or 19; the ML steps of a cold make
    demo: 261 s alone, 350 s beside it). The session's own nice value (/proc/self/autogroup, which a
    process may lower for itself) puts the build behind the steps; elsewhere, nice alone does."""
    os.nice(BUILD_NICE)
    with contextlib.suppress(OSError):  # no autogroup (not Linux, or a kernel without it): nice alone
        Path("/proc/self/autogroup").write_text(str(BUILD_NICE))


def first_answer(port: int) -> bool:
    """Ask the offline model one short question, as the steps will: whether it answered."""
    body = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8, "temperature": 0}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status == 200
    except OSError:
        time.sleep(0.5)  # a crashed server's exit status may take a moment to be reaped
        return False


def walk_command(*options: str | int) -> str:
    """``present.py`` with these options as a student pastes it from a fresh shell at the repository
    root: this venv's Python by its path, so that nothing needs activating first."""
    return running.python_command("present.py", *map(str, options))


def retry_command(number: int) -> str:
    """The command that runs step ``number`` again (walk_command)."""
    return walk_command("--only", number)


def offline_provider(port: int) -> dict[str, str]:
    """The variables that point the OpenAI SDK at the offline model on ``port``."""
    return {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "local"}


def walk_through(
    walk: Walk, chosen: list[tuple[int, Step]], pause: bool, ui_port: int | None, links_file, build: bool = False
) -> None:
    """Run the chosen steps in order (with the UI and the offline model when needed), then stop what
    was started. ``build``: compile the offline model while the steps before the first LLM step run
    (OfflineBuild). Exits non-zero when a step failed or the LLM steps could not run, and when Ctrl-C,
    SIGTERM or SIGHUP stopped the walk: then with one line saying where to go on from."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_RUN_ID", None)
    (REPO_ROOT / ".local-llm").mkdir(exist_ok=True)
    servers = []
    skipped, seconds, started = [], {}, time.perf_counter()
    resume = chosen[0][0]  # the first step not done yet
    try:
        with interruptions_stop_the_walk():
            if ui_port:
                servers.append(default_store.start_ui(ui_port, background=True))
            offline_build = None
            if any(s.llm for _, s in chosen):
                if env.get("OPENAI_API_KEY"):
                    print(f"LLM steps: OPENAI_API_KEY is set, using {env.get('OPENAI_BASE_URL') or 'OpenAI'}")
                elif build:
                    offline_build = OfflineBuild()
                    servers.append(offline_build.process)
                elif server := start_offline_llm(walk, env):
                    servers.append(server)
            print(f"Tracking store: {mlflow.get_tracking_uri()}   UI: {walk.ui}")
            for number, step in chosen:
                resume = number
                if step.llm and offline_build:  # the first LLM step: the model built in the background
                    if offline_build.install(walk, env) and (server := start_offline_llm(walk, env)):
                        servers.append(server)
                    offline_build = None
                if step.llm and walk.llm:
                    skipped.append(f"{number}. {step.slide}")
                    continue
                if step.missing():  # an optional extra make demo installs; by hand, a choice: say so, go on
                    print(
                        f"\n(Step {number} skipped, {step.slide}: it needs {step.needs}, of an optional extra "
                        f"not installed here: make align-install, then {retry_command(number)})"
                    )
                    continue
                step_started = time.perf_counter()
                show(number, step, walk, env)
                seconds[number] = time.perf_counter() - step_started  # with --pause, before the Enter
                resume = number + 1
                if pause and number != chosen[-1][0] and input("[Enter] next step, q to quit: ").strip() == "q":
                    break
    except WalkError as problem:
        print(f"\nerror: {problem}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as interruption:  # said below, once the servers are stopped
        stopped_by = getattr(interruption, "signum", signal.SIGINT)
    else:
        stopped_by = None
    finally:
        for server in servers:
            stop(server)
        if links_file:
            links_file.write_text("".join(f"{link}\n" for link in walk.links))
    if stopped_by:
        go_on = f"Go on with: {walk_command('--from', resume)}" if resume <= len(walk.steps) else "It was done."
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            print(
                f"\nerror: interrupted ({signal.Signals(stopped_by).name}) at step {resume}; the walk stopped "
                f"the servers it started. {go_on}",
                file=sys.stderr,
                flush=True,
            )
        sys.exit(128 + stopped_by)
    print(f"\nWalked {len(chosen) - len(skipped)} step(s) in {time.perf_counter() - started:.0f} s.")
    if seconds:  # for planning a class: which steps take the time
        print("Seconds per step: " + ", ".join(f"{number}: {took:.0f}" for number, took in seconds.items()))
    if skipped:
        steps = "\n".join(f"  {s}" for s in skipped)
        print(NOT_RUN.format(reason=walk.llm, steps=steps, fixes=walk.fixes or BUILD_IT), file=sys.stderr)
        sys.exit(1)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (kill) or SIGHUP (the terminal closed) during the walk: stopped as Ctrl-C stops it, so
    that the servers it started are stopped too (their default action would have left them running)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def interruptions_stop_the_walk():
    """SIGTERM and SIGHUP raise Interrupted while the block runs (where they exist and are not ignored,
    as nohup ignores SIGHUP); a second signal, while the walk stops, is ignored."""
    stopping = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise Interrupted(signum)

    chosen = [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    before = {sig: signal.getsignal(sig) for sig in chosen}
    for sig in chosen:
        if before[sig] is not signal.SIG_IGN:
            signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


NOT_RUN = """
Not run: the LLM steps, because {reason}:
{steps}
Two ways to fix it:
{fixes}
  2. Use a provider: export OPENAI_API_KEY=sk-... (OpenAI), or point OPENAI_BASE_URL at an OpenAI-compatible
     server such as Ollama (export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=ollama)."""
BUILD_IT = """  1. Build the offline model once: install a C/C++ compiler (Debian/Ubuntu:
     sudo apt-get install build-essential; macOS: xcode-select --install), then `make local-llm-install`
     and run this again."""
REBUILD = """  1. Rebuild the offline model, from the repository root:
       {command}
     then run this again.""".format(command=running.python_command("llmops_project/local_llm/install.py", "--rebuild"))

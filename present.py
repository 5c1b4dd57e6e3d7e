"""`make present`: walk the talk's hands-on steps live, slide by slide. `make demo` walks them straight through.

    python present.py              # pause for Enter between steps (q quits)
    python present.py --no-pause   # straight through (what `make demo` runs)
    python present.py --list       # the steps
    python present.py --from 9     # start at step 9; --only 9 runs just that one
    python present.py --ui         # start the MLflow UI first, on the store the steps write to

For each step it prints the slide's title and the exact command as the slide shows it, from the
folder the talk runs it in (the ids of earlier steps filled in), runs it and shows its output, then
says what to look at and gives a direct link to that run, model, prompt or trace in the UI.
A step that fails on purpose (seed 43) is shown as the talk intends; any other failure stops the
walk with the command to retry.

The LLM steps use OpenAI when OPENAI_API_KEY is set (or any OpenAI-compatible server given by
OPENAI_BASE_URL), and otherwise the offline model of llmops_project/local_llm, started here and
stopped at the end. Without either, they are skipped and the walk ends by saying how to fix that.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import signal
import subprocess
import sys
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
SERVE_PORT = 1234  # the talk's `mlflow models serve ... -p 1234` (--serve-port changes it)
LOCAL_LLM = REPO_ROOT / "llmops_project" / "local_llm" / "serve.py"
IRIS = '{"inputs": [[5.1, 3.5, 1.4, 0.2], [7.0, 3.2, 4.7, 1.4], [6.3, 3.3, 6.0, 2.5]]}'  # the talk's payload
# --quick: the same commands with grids small enough for CI (MLflow's examples shrink their runs too)
QUICK_TRAIN = ["-P", "cv_splits=2", "-P", "lr_C_values=[1.0]", "-P", "rf_n_estimators=[10]", "-P", "rf_max_depths=[12]"]


class WalkError(Exception):
    """An unexpected failure: the walk stops and says how to retry."""


@dataclass
class Walk:
    """What the steps share: names chosen at the start, ids found after each step."""

    stamp: str = field(default_factory=lambda: datetime.now().strftime("%Y-%m-%d-%H-%M"))
    quick: bool = False
    ui: str = "http://127.0.0.1:5000"
    serve_port: int = SERVE_PORT
    llm: str | None = None  # why the LLM steps cannot run, or None when they can
    found: dict = field(default_factory=dict)
    links: list[str] = field(default_factory=list)

    @property
    def census(self) -> str:
        return f"adult-classifier-{self.stamp}"

    @property
    def answers(self) -> str:
        return f"se-answers-{self.stamp}"

    @property
    def agents(self) -> str:
        return f"se-answers-agents-{self.stamp}"

    def newest_run(self, experiment: str, run_name: str, status: str | None = None):
        """The newest run named ``run_name`` in ``experiment`` or, for a dated experiment name, in the
        newest experiment of the same name with another date (so --from N finds an earlier walk's)."""
        client = mlflow.MlflowClient()
        family = _undated(experiment)
        experiments = [experiment] + [
            e.name
            for e in client.search_experiments(order_by=["creation_time DESC"])
            if e.name != experiment and family != experiment and _undated(e.name) == family
        ]
        where = f"attributes.run_name = '{run_name}'" + (f" and attributes.status = '{status}'" if status else "")
        for name in experiments:
            if found := client.get_experiment_by_name(name):
                runs = client.search_runs([found.experiment_id], where, order_by=["attributes.start_time DESC"])
                if runs:
                    return runs[0]
        raise WalkError(f"no run {run_name!r} in experiment {experiment!r}: run the earlier steps first (--from 1)")

    def run_link(self, run) -> str:
        return f"{self.ui}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"


@dataclass
class Step:
    slide: str  # the slide's title
    folder: str  # where the talk runs the command
    command: Callable[[Walk], str]  # as the slide shows it, ids filled in
    look: str  # what to look at afterwards
    link: Callable[[Walk], str]  # the UI page of what the step made
    fails_on_purpose: bool = False
    llm: bool = False


def _undated(experiment: str) -> str:
    """An experiment name without the walk's date stamp (adult-classifier-2026-11-23-19-58 -> adult-classifier)."""
    return re.sub(r"-\d{4}(-\d{2}){4}$", "", experiment)


def _model_id(walk: Walk) -> str:
    run = walk.newest_run("autologging-example", "autologging_run", "FINISHED")
    return run.outputs.model_outputs[0].model_id


def _logged_model_page(walk: Walk) -> str:
    model_id = _model_id(walk)
    experiment_id = mlflow.MlflowClient().get_logged_model(model_id).experiment_id
    return f"{walk.ui}/#/experiments/{experiment_id}/models/{model_id}"


def _census_train(walk: Walk):
    return walk.newest_run(walk.census, "train-both", "FINISHED")


def _census_test_command(walk: Walk) -> str:
    """The talk's test command for the newest training run and the model it logged."""
    train = _census_train(walk)
    return (
        f"mlflow run -e test --env-manager=local --experiment-name {walk.census} . "
        f"-P run_id={train.info.run_id} -P model_uri=models:/{train.outputs.model_outputs[0].model_id}"
    )


def _generation(walk: Walk):
    return walk.newest_run(walk.answers, "generate-basic-gpt-4.1-mini", "FINISHED")


def _evaluate_command(walk: Walk) -> str:
    generation = _generation(walk)
    return (
        f"mlflow run -e evaluate_responses --env-manager=local --experiment-id {generation.info.experiment_id} . "
        f"-P generation_run_id={generation.info.run_id}"
    )


def _quick(walk: Walk, *params: str) -> str:
    return (" " + " ".join(shlex.quote(p).replace("'", '"') for p in params)) if walk.quick else ""


STEPS = [
    Step(
        "A taste of MLflow's Tracking API (pt. 2): a successful run",
        "tracking_example",
        lambda walk: "python logging_example.py 42",
        "experiment logging_example: the run, its parameter, five metrics and the examples/example.txt artifact",
        lambda walk: walk.run_link(walk.newest_run("logging_example", "example_run", "FINISHED")),
    ),
    Step(
        "A taste of MLflow's Tracking API (pt. 2): a failing run, on purpose",
        "tracking_example",
        lambda walk: "python logging_example.py 43",
        "the red cross: the run ended FAILED, with everything it logged before the error (pt. 4)",
        lambda walk: walk.run_link(walk.newest_run("logging_example", "example_run", "FAILED")),
        fails_on_purpose=True,
    ),
    Step(
        'Course notes "MLflow metadata and information retrieval": search the runs',
        "tracking_example",
        lambda walk: "mlflow run -e query --env-manager=local --experiment-name logging_example_queries .",
        "the table printed above comes from mlflow.search_runs; the best run is linked",
        lambda walk: walk.run_link(walk.newest_run("logging_example", "example_run", "FINISHED")),
    ),
    Step(
        "Autologging APIs (pt. 2)",
        "autologging_example",
        lambda walk: "python autologging_example.py",
        "params, metrics, the dataset, the model and estimator.html, none logged by hand (pt. 3-7)",
        lambda walk: walk.run_link(walk.newest_run("autologging-example", "autologging_run", "FINISHED")),
    ),
    Step(
        "Model serving via MLflow (pt. 1): the CLI",
        "autologging_example",
        lambda walk: (
            f'mlflow models predict --env-manager local -m "models:/{_model_id(walk)}" -i serving_input_example.json'
        ),
        'the predictions: {"predictions": [0, 1, 2]}; the logged model in the UI',
        _logged_model_page,
    ),
    Step(
        "Model serving via MLflow (pt. 2): a web endpoint",
        "autologging_example",
        lambda walk: f'mlflow models serve --env-manager local -m "models:/{_model_id(walk)}" -p {walk.serve_port}',
        "the same predictions, over HTTP, from the curl request shown",
        _logged_model_page,
    ),
    Step(
        "Model registration via MLflow (pt. 1-4): the Register button, as a command",
        "autologging_example",
        lambda walk: (
            "mlflow run -e register --env-manager=local --experiment-name autologging-example . "
            f"-P model_uri=models:/{_model_id(walk)}"
        ),
        "Models > iris-classifier-dt: its versions, and the alias champion",
        lambda walk: f"{walk.ui}/#/models/iris-classifier-dt",
    ),
    Step(
        'Course notes "MLflow tracking and autologging": the complete example',
        "autologging_example",
        lambda walk: 'mlflow run -e random_forest --env-manager=local --experiment-name "Iris Experiment" .',
        "autolog plus manual logging: test_accuracy and Artifacts > feature_importance.png",
        lambda walk: walk.run_link(walk.newest_run("Iris Experiment", "random_forest_run", "FINISHED")),
    ),
    Step(
        "MLflow Project Example (pt. 3): train",
        "census_project",
        lambda walk: (
            f"mlflow run -e train --env-manager=local --experiment-name {walk.census} . -P model_type=both"
            + _quick(walk, *QUICK_TRAIN)
        ),
        "the parent run and its nested candidate runs; compare them in the chart view (talk pt. 2 of the scenario)",
        lambda walk: walk.run_link(_census_train(walk)),
    ),
    Step(
        "MLflow Project Example (pt. 5): re-run with other parameters",
        "census_project",
        lambda walk: (
            f"mlflow run -e train --env-manager=local --experiment-name {walk.census} . "
            "-P model_type=random_forest -P test_size=0.25 -P cv_splits=5 -P random_state=123"
            + _quick(walk, "-P", "rf_n_estimators=[10]", "-P", "rf_max_depths=[12]")
        ),
        "a second training run; the output said whether its model beat the champion (census README, Champion)",
        lambda walk: walk.run_link(walk.newest_run(walk.census, "train-random_forest", "FINISHED")),
    ),
    Step(
        "MLflow Project Example (pt. 6): test the best model",
        "census_project",
        _census_test_command,
        "test metrics and charts/ (confusion matrix, ROC, precision-recall, calibration)",
        lambda walk: walk.run_link(walk.newest_run(walk.census, "test", "FINISHED")),
    ),
    Step(
        "Monitoring with Evidently (course notes): a batch like the training data",
        "census_project",
        lambda walk: (
            f"mlflow run -e monitor --env-manager=local --experiment-name {walk.census} . "
            f"-P run_id={_census_train(walk).info.run_id} -P batch=held_out"
        ),
        "monitoring.status=pass; Artifacts > monitoring/drift_report.html",
        lambda walk: walk.run_link(walk.newest_run(walk.census, "monitor-held_out", "FINISHED")),
    ),
    Step(
        "Monitoring with Evidently (course notes): a drifted batch",
        "census_project",
        lambda walk: (
            f"mlflow run -e monitor --env-manager=local --experiment-name {walk.census} . "
            f"-P run_id={_census_train(walk).info.run_id} -P batch=shifted"
        ),
        "monitoring.status=fail, dataset_drift=1: the report shows which columns drifted",
        lambda walk: walk.run_link(walk.newest_run(walk.census, "monitor-shifted", "FINISHED")),
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 5): register the prompts",
        "llmops_project",
        lambda walk: f"mlflow run -e register_all_prompts --env-manager=local --experiment-name {walk.answers} .",
        "Prompts: the six templates, each with the alias production (pt. 5-6)",
        lambda walk: f"{walk.ui}/#/prompts/basic",
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 7): generate answers",
        "llmops_project",
        lambda walk: (
            f"mlflow run -e generate_answers --env-manager=local --experiment-name {walk.answers} . -P max_questions=4"
        ),
        "the run's Traces tab: one trace per question, with the prompt and the answer (pt. 8)",
        lambda walk: f"{walk.ui}/#/experiments/{_generation(walk).info.experiment_id}/traces",
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 9): evaluate the answers",
        "llmops_project",
        _evaluate_command,
        "the evaluation run, and the assessments (english, correctness, ...) on each trace",
        lambda walk: walk.run_link(walk.newest_run(walk.answers, "evaluate", "FINISHED")),
        llm=True,
    ),
    Step(
        "Exemplifying MLflow for LLM Applications (pt. 10-11): an agent with a search tool",
        "llmops_project",
        lambda walk: (
            f"mlflow run -e generate_answers_with_agent --env-manager=local --experiment-name {walk.agents} . "
            "-P max_questions=2"
        ),
        "a trace: the web_search_tool span and its result; then Details & Timeline (pt. 11)",
        lambda walk: (
            f"{walk.ui}/#/experiments/"
            f"{walk.newest_run(walk.agents, 'agent-basic-gpt-5-mini', 'FINISHED').info.experiment_id}/traces"
        ),
        llm=True,
    ),
]


# --- running a step --------------------------------------------------------------------------------


def run_command(command: str, folder: str, env: dict) -> int:
    """Run a command as typed in ``folder`` (the venv's `mlflow` and `python` first on PATH)."""
    words = shlex.split(command)
    return subprocess.run(words, cwd=REPO_ROOT / folder, env=env, stdin=subprocess.DEVNULL).returncode


def serve_and_curl(command: str, folder: str, env: dict) -> int:
    """The talk's `mlflow models serve`, then its curl request (sent from Python), then stop the server."""
    port = int(shlex.split(command)[-1])
    if holder := default_store.port_in_use(port):
        print(
            f"error: port {port} is taken by {holder}, so `mlflow models serve -p {port}` cannot start. "
            f"Stop it, or choose another port: python present.py --only N --serve-port {port + 1}",
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
    """The offline model of llmops_project/local_llm on a free port (its serve.py starts it); None,
    with the reason in ``walk.llm``, when it is not installed or does not start."""
    spec = importlib.util.spec_from_file_location("local_llm_serve", LOCAL_LLM)
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    if importlib.util.find_spec("llama_cpp") is None or serve.bundled_model_path() is None:
        walk.llm = "no OPENAI_API_KEY is set and the offline model is not installed"
        return None
    port = next(p for p in range(8080, 8180) if not default_store.port_in_use(p))
    log = REPO_ROOT / ".local-llm" / "present-server.log"
    print(f"No OPENAI_API_KEY: starting the offline model (SmolLM2-135M on llama.cpp) on 127.0.0.1:{port} ...")
    try:
        server = serve.start_in_background(port, log)
    except serve.LocalLLMError as problem:
        walk.llm = f"the offline model did not start ({str(problem).splitlines()[0]}; see {log})"
        return None
    env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1", OPENAI_API_KEY="local")
    return server


def main() -> None:
    args = parse_args()
    steps = list(enumerate(STEPS, start=1))
    if args.list:
        for number, step in steps:
            print(f"{number:2d}. {step.slide}   [{step.folder}]")
        return
    chosen = [(n, s) for n, s in steps if (n == args.only if args.only else n >= args.start)]
    walk = Walk(quick=args.quick, ui=f"http://127.0.0.1:{args.ui_port}", serve_port=args.serve_port)
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_RUN_ID", None)
    (REPO_ROOT / ".local-llm").mkdir(exist_ok=True)
    servers = []
    if args.ui:
        servers.append(default_store.start_ui(args.ui_port, background=True))
    if any(s.llm for _, s in chosen):
        if env.get("OPENAI_API_KEY"):
            print(f"LLM steps: OPENAI_API_KEY is set, using {env.get('OPENAI_BASE_URL') or 'OpenAI'}")
        elif server := start_offline_llm(walk, env):
            servers.append(server)
    print(f"Tracking store: {mlflow.get_tracking_uri()}   UI: {walk.ui}")
    skipped, started = [], time.perf_counter()
    try:
        for number, step in chosen:
            if step.llm and walk.llm:
                skipped.append(f"{number}. {step.slide}")
                continue
            show(number, len(STEPS), step, walk, env)
            if not args.no_pause and number != chosen[-1][0] and input("[Enter] next step, q to quit: ").strip() == "q":
                break
    except WalkError as problem:
        print(f"\nerror: {problem}", file=sys.stderr)
        sys.exit(1)
    finally:
        for server in servers:
            stop(server)
        if args.links_file:
            args.links_file.write_text("".join(f"{link}\n" for link in walk.links))
    print(f"\nWalked {len(chosen) - len(skipped)} step(s) in {time.perf_counter() - started:.0f} s.")
    if skipped:
        print(NOT_RUN.format(reason=walk.llm, steps="\n".join(f"  {s}" for s in skipped)), file=sys.stderr)
        sys.exit(1)


NOT_RUN = """
Not run: the LLM steps, because {reason}:
{steps}
Two ways to fix it:
  1. Build the offline model once: install a C/C++ compiler (Debian/Ubuntu: sudo apt-get install build-essential;
     macOS: xcode-select --install), then `make local-llm-install` and run this again.
  2. Use a provider: export OPENAI_API_KEY=sk-... (OpenAI), or point OPENAI_BASE_URL at an OpenAI-compatible
     server such as Ollama (export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_API_KEY=ollama)."""


def show(number: int, total: int, step: Step, walk: Walk, env: dict) -> None:
    command = step.command(walk)
    print(f"\n━━ Step {number}/{total} · {step.slide} " + "━" * max(3, 100 - len(step.slide)))
    print(f"$ cd {step.folder}\n$ {command}", flush=True)
    serve = command.startswith("mlflow models serve")
    status = (serve_and_curl if serve else run_command)(command, step.folder, env)
    if status != 0 and not step.fails_on_purpose:
        raise WalkError(
            f"step {number} failed (exit status {status}). Retry it with: python present.py --only {number}"
        )
    if step.fails_on_purpose:
        print(f"(It failed on purpose, exit status {status}: odd seeds raise, as in the talk.)")
    link = step.link(walk)
    walk.links.append(link)
    print(f"\n→ Look at: {step.look}\n  {link}", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-pause", action="store_true", help="run every step without waiting for Enter")
    parser.add_argument("--list", action="store_true", help="list the steps and exit")
    parser.add_argument("--from", dest="start", type=int, default=1, help="start at this step")
    parser.add_argument("--only", type=int, help="run only this step")
    parser.add_argument("--ui", action="store_true", help="start the MLflow UI in the background first")
    parser.add_argument("--ui-port", type=int, default=int(os.environ.get("UI_PORT", 5000)))
    parser.add_argument("--serve-port", type=int, default=SERVE_PORT, help="the port of the `models serve` step")
    parser.add_argument("--quick", action="store_true", help="small census grids (CI); same commands otherwise")
    parser.add_argument("--links-file", type=Path, help="write the UI links shown, one per line (for tests)")
    args = parser.parse_args()
    if not (1 <= (args.only or args.start) <= len(STEPS)):
        parser.error(f"steps are numbered 1 to {len(STEPS)}")
    return args


if __name__ == "__main__":
    main()

"""`make tour`: a real-browser tour of the MLflow UI, one screenshot per "look at the UI" step of the talk.

    make tour                       # the repository's store (mlflow.db + mlartifacts/), after `make demo`
    make tour STORE=/some/folder    # a folder holding mlflow.db (and mlartifacts/), or a sqlite:/// URI
    python docs/ui_tour.py --help   # the same, with the repository's .venv activated

It starts `mlflow ui` on the store on a free port, drives a headless Chromium through the pages the
talk shows, and writes docs/ui/<part>-pt<N>-<what>.png, named after the slide: tracking-pt4-runs.png
is "A taste of MLflow's Tracking API (pt. 4)"; the census notebook's and the LLM selection's pages
(compare, the exam dataset, review, the aligned judge, the optimized prompt), which no numbered slide
shows, are <part>-<what>.png. The
browser is the system's: Debian's `chromium` on Linux (`make browser` installs it), an installed
Google Chrome on macOS; Playwright for Python drives it and downloads nothing.

Runs, models, prompts and traces are found through MlflowClient queries on the same server
(experiment names, parent/child links, prompt aliases, traces with assessments or tool spans), never
by hard-coded run names or ids. Every step waits for page content (a link to the expected run, a
metric name, a chart), never for a fixed time, and shoots only once no spinner or skeleton is on
screen. A part whose runs are missing from the store is skipped with a message; a step whose page
never shows what it waits for is reported with a screenshot; either way the exit status is then 1.

tests/test_ui_browser.py reuses `mlflow_ui`, `launch_browser` and `UiPage`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: import the repository's modules
    sys.path.insert(0, str(REPO_ROOT))

import default_store  # noqa: E402
from devtools.processes import background_server, free_port  # noqa: E402

OUT_DIR = REPO_ROOT / "docs" / "ui"
VIEWPORT = {"width": 1400, "height": 900}
LINUX_CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium on a machine without a sandbox, GPU or open network (each flag avoids a failure
# or a stall there: the sandbox needs user namespaces, QUIC and background updates try the network).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE_TIMEOUT_MS = 30_000
SERVER_START_TIMEOUT = 180
# The UI keeps first-visit pop-ups and the "GenAI | Model training" switch of its side bar in the
# browser's localStorage (keys read in MLflow 3.17's bundled JavaScript). A fresh browser profile
# would show the assistant panel, the registry's promotion dialog and the "Detect issues" hint over
# the page: pretend they were seen and closed, as on a student's second visit.
SEEN_POPUPS = {
    "mlflow.assistant.panelOpen_v1": "false",
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
    "_mlflow_model_registry_promo_modal_dismissed_v1": "true",
    "mlflow.detectIssues.guidanceShown_v1": "true",
    "_mlflow_dark_mode_toggle_enabled": "false",
}
WORKFLOW_KEY = "mlflow.workflowType_v1"
MODEL_TRAINING, GENAI = "machine_learning", "genai"
# True while a spinner, a skeleton or a progress bar is visible in the viewport, or a CSS animation
# (spinners spin, skeletons shimmer) runs on a visible element. Charts below the fold keep their
# spinner until scrolled to: they do not count.
BUSY_JS = """() => {
  const visible = e => {
    if (!e || !e.getBoundingClientRect) return false;
    const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.bottom > 0 && r.right > 0 && r.top < innerHeight && r.left < innerWidth;
  };
  const marked = '[class*="-spin-spinning"], [class*="-skeleton"], [role="progressbar"]';
  return Array.from(document.querySelectorAll(marked)).some(visible) || document.getAnimations().some(
    a => a.playState === 'running' && !(a instanceof CSSTransition) && visible(a.effect && a.effect.target));
}"""
# True once the page has not been busy for half a second (a chart may start loading as another ends).
QUIET_JS = f"""() => {{
  if (({BUSY_JS})()) {{ window.__tourQuietSince = null; return false; }}
  window.__tourQuietSince = window.__tourQuietSince || performance.now();
  return performance.now() - window.__tourQuietSince > 500;
}}"""


class BrowserUnavailable(RuntimeError):
    """No system browser (or no Playwright) to drive: the message says how to get one."""


# --- the browser ---------------------------------------------------------------------------------


def browser_launch_options() -> dict:
    """Playwright's launch options for the system browser; BrowserUnavailable says what is missing."""
    system = platform.system()
    if system == "Linux":
        path = LINUX_CHROMIUM if LINUX_CHROMIUM.exists() else shutil.which("chromium")
        if not path:
            raise BrowserUnavailable(
                "Chromium is not installed: run `make browser` as root, or `sudo apt-get install chromium`"
            )
        return {"executable_path": str(path)}
    if system == "Darwin":
        return {"channel": "chrome"}  # Google Chrome, installed the usual way
    raise BrowserUnavailable(f"no system browser is set up for {system}: use Linux or macOS")


@contextlib.contextmanager
def launch_browser():
    """A headless system Chromium/Chrome, driven by Playwright; closed afterwards."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as error:
        raise BrowserUnavailable(f"Playwright is not installed ({error}): run `make dev-install`") from error
    options = browser_launch_options()
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(headless=True, args=CHROMIUM_FLAGS, **options)
        except Error as error:
            first_line = str(error).strip().splitlines()[0]
            raise BrowserUnavailable(f"the system browser ({options}) did not start: {first_line}") from error
        try:
            yield browser
        finally:
            browser.close()


# --- the MLflow UI server --------------------------------------------------------------------------


def use_store(store: str | None) -> str:
    """Make STORE the store in use (MLFLOW_TRACKING_URI, and its artifacts folder) and return its URI:
    a folder holding mlflow.db, a sqlite:/// URI, or by default the repository's mlflow.db."""
    if store and "://" in store:
        uri, database = store, default_store.sqlite_path(store)
    else:
        database = (Path(store).resolve() if store else REPO_ROOT) / "mlflow.db"
        uri = default_store.sqlite_uri(database)
    if database is not None and not database.is_file():
        hint = "give a folder holding mlflow.db, or a sqlite:/// URI" if store else "run `make demo` first"
        raise SystemExit(f"ui_tour: no MLflow store at {database}: {hint}")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    if database is not None:
        os.environ[default_store.ARTIFACT_ROOT_VARIABLE] = (database.parent / "mlartifacts").as_posix()
    return uri


@contextlib.contextmanager
def mlflow_ui() -> Iterator[str]:
    """`mlflow ui` on the store in use, started as `make ui` starts it, on a free port; yields its URL."""
    port = free_port()
    command = default_store.ui_command(port) + ["--workers", "1"]  # one browser: one worker starts faster
    quiet = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}  # no calls out of a closed network
    url = f"http://127.0.0.1:{port}"
    with background_server(command, f"{url}/health", timeout=SERVER_START_TIMEOUT, env=quiet):
        yield url


# --- one browser tab on the UI -------------------------------------------------------------------


class UiPage:
    """A tab on the MLflow UI in one side-bar mode (MODEL_TRAINING or GENAI), with the pop-ups seen;
    or, with ``workflow=None``, a fresh browser's first visit (nothing in its localStorage)."""

    def __init__(self, browser, base_url: str, workflow: str | None, out_dir: Path | None = None):
        self.base_url, self.out_dir = base_url, out_dir
        self.context = browser.new_context(viewport=VIEWPORT, color_scheme="light", locale="en-US")
        if workflow is not None:
            storage = {**SEEN_POPUPS, WORKFLOW_KEY: json.dumps(workflow)}
            self.context.add_init_script(
                "try {" + "".join(f"localStorage.setItem({k!r}, {v!r});" for k, v in storage.items()) + "} catch (e) {}"
            )
        self.page = self.context.new_page()
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)

    def close(self) -> None:
        self.context.close()

    def open(self, route: str, *texts: str):
        """Go to ``#<route>`` and wait until each of ``texts`` is on the page."""
        self.page.goto(f"{self.base_url}/#{route}")
        for text in texts:
            self.text(text).wait_for()
        return self.page

    def text(self, text: str):
        return self.page.get_by_text(text, exact=False).first

    def run_link(self, run_id: str):
        """The link to a run (run tables, breadcrumbs): run names may change, run ids do not."""
        return self.page.locator(f"a[href*='/runs/{run_id}']").first

    def settled(self) -> None:
        """Wait until no spinner or skeleton is on screen; no focus ring, no hovered row either."""
        self.page.evaluate("window.__tourQuietSince = null")
        self.page.wait_for_function(QUIET_JS, polling=100)
        self.page.evaluate("document.activeElement && document.activeElement.blur && document.activeElement.blur()")
        self.page.mouse.move(VIEWPORT["width"] - 1, 0)

    def shot(self, name: str) -> Path:
        """Screenshot of the viewport, once settled, as ``<out_dir>/<name>.png``."""
        self.settled()
        path = self.out_dir / f"{name}.png"
        self.page.screenshot(path=path)
        return path


# --- what the store holds: found by queries, not by names --------------------------------------


def newest(items, key=lambda r: r.info.start_time):
    return max(items, key=key) if items else None


def experiment_runs(client, experiment_name: str):
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None, []
    return experiment, client.search_runs([experiment.experiment_id], max_results=5000)


def nested_training(client, exclude: set[str]):
    """(experiment, parent, its children) for the run with the most nested runs (census `train` with
    both model families beats a re-run with one), the newest among equals; None if no run has any."""
    found = []
    for experiment in client.search_experiments():
        if experiment.name in exclude:
            continue
        runs = client.search_runs([experiment.experiment_id], max_results=5000)
        by_id = {r.info.run_id: r for r in runs}
        for run_id in {r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}:
            if run_id in by_id:
                children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == run_id]
                found.append((experiment, by_id[run_id], children))
    return max(found, key=lambda f: (len(f[2]), f[1].info.start_time), default=None)


def traces_of_store(client) -> list:
    """Every trace of every experiment, newest first."""
    traces = []
    for experiment in client.search_experiments():
        traces += client.search_traces(locations=[experiment.experiment_id], max_results=500)
    return sorted(traces, key=lambda t: t.info.request_time, reverse=True)


def feedback_names(trace) -> list[str]:
    return [a.name for a in trace.info.assessments if a.feedback is not None]


def feedback_sources(trace) -> set[str]:
    """The kinds of source (HUMAN, LLM_JUDGE, CODE) of the trace's feedback."""
    return {str(a.source.source_type) for a in trace.info.assessments if a.feedback is not None}


def runs_tagged(client, tag: str, value: str) -> list:
    """Every run of the store whose tag ``tag`` is ``value``."""
    ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(ids, filter_string=f"tags.`{tag}` = '{value}'", max_results=5000) if ids else []


def has_tool_span(trace) -> bool:
    return any(str(span.span_type) == "TOOL" for span in trace.data.spans)


def trace_route(trace) -> str:
    """The trace's panel, opened from its run's Traces tab (no time filter there)."""
    run_id = trace.info.request_metadata.get("mlflow.sourceRun")
    experiment_id = trace.info.experiment_id
    query = urlencode({"selectedEvaluationId": trace.info.trace_id})
    if run_id:
        return f"/experiments/{experiment_id}/runs/{run_id}/traces?{query}"
    return f"/experiments/{experiment_id}/traces?{query}"


def root_span_name(trace) -> str:
    return next(s.name for s in trace.data.spans if s.parent_id is None)


def open_trace(ui: UiPage, trace) -> None:
    ui.open(trace_route(trace))
    ui.page.get_by_role("dialog").get_by_text(root_span_name(trace), exact=True).first.wait_for()


def show_assessments(ui: UiPage, trace) -> None:
    """Open the trace panel's Assessments pane and wait for each feedback's name."""
    ui.page.get_by_role("button", name="Assess", exact=False).first.click()
    for name in feedback_names(trace):
        ui.page.get_by_role("dialog").get_by_text(name, exact=True).first.wait_for()


def expand_parent_run(ui: UiPage, parent_id: str, children) -> None:
    """Click the [+] before the parent run's name and wait for its children's links."""
    row = ui.page.locator("[role=row]").filter(has=ui.page.locator(f"a[href*='/runs/{parent_id}']"))
    row.first.locator("button").first.click()
    for child in children:
        ui.run_link(child.info.run_id).wait_for()


def toggle_run_columns(ui: UiPage, names: list[str]) -> None:
    """Tick (or untick) these attributes, params and metrics in the runs table's "Columns" menu."""
    ui.page.get_by_role("button", name="Columns").click()
    search, tree = ui.page.get_by_placeholder("Search columns"), ui.page.get_by_test_id("column-selector-tree")
    for name in names:
        search.fill(name)
        node = tree.locator("[class*='-tree-treenode']").filter(has=ui.page.get_by_text(name, exact=True))
        node.locator("[class*='-tree-checkbox']").first.click()
    ui.page.keyboard.press("Escape")
    tree.wait_for(state="hidden")


# --- the tour --------------------------------------------------------------------------------------


class Tour:
    """The talk's UI steps on one store; ``shots`` lists what was written, ``problems`` what was not."""

    def __init__(self, browser, base_url: str, client, out_dir: Path):
        self.browser, self.base_url, self.client, self.out_dir = browser, base_url, client, out_dir
        self.shots: list[Path] = []
        self.problems: list[str] = []

    def page(self, workflow: str) -> UiPage:
        return UiPage(self.browser, self.base_url, workflow, self.out_dir)

    def shoot(self, ui: UiPage, name: str) -> None:
        self.shots.append(ui.shot(name))
        print(f"  {name}.png", flush=True)

    def part(self, title: str, workflow: str, steps: Callable[[UiPage], str | None]) -> None:
        """Run one part's steps in a fresh tab. A part whose runs are missing says so and is skipped;
        a page that never shows what a step waits for is reported, with a screenshot outside docs/."""
        print(f"{title}:", flush=True)
        ui = self.page(workflow)
        try:
            missing = steps(ui)
            if missing:
                self.problems.append(f"skipped {title}: {missing}")
                print(f"  SKIPPED: {missing}", flush=True)
        except Exception as error:  # Playwright's TimeoutError names what it waited for
            screenshot = Path(tempfile.mkdtemp(prefix="ui-tour-")) / "failed.png"
            ui.page.screenshot(path=screenshot)
            first_lines = " ".join(str(error).strip().splitlines()[:3])
            self.problems.append(f"FAILED {title}: {first_lines} (page {ui.page.url}, screenshot {screenshot})")
            print(f"  FAILED: {first_lines}", flush=True)
        finally:
            ui.close()

    def run(self) -> None:
        self.part("tracking_example", MODEL_TRAINING, self.tracking)
        self.part("autologging_example and the registry", MODEL_TRAINING, self.autologging)
        self.part("census_project: the notebook", MODEL_TRAINING, self.census_notebook)
        self.part("census_project", MODEL_TRAINING, self.census)
        self.part("llmops_project", GENAI, self.llmops)
        self.part("llmops_project: compare, the exam dataset, review, align, optimize", GENAI, self.llmops_selection)

    # "A taste of MLflow's Tracking API", pt. 4-8
    def tracking(self, ui: UiPage) -> str | None:
        experiment, runs = experiment_runs(self.client, "logging_example")
        runs = [r for r in runs if "seed" in r.data.params]
        finished = newest([r for r in runs if r.info.status == "FINISHED"])
        failed = newest([r for r in runs if r.info.status == "FAILED"])
        if not (finished and failed):
            return "experiment logging_example needs a finished and a failed run (make demo)"
        experiment_id, run_id = experiment.experiment_id, finished.info.run_id
        ui.open(f"/experiments/{experiment_id}/runs")
        ui.run_link(run_id).wait_for()
        ui.run_link(failed.info.run_id).wait_for()
        toggle_run_columns(ui, ["Dataset", "seed", "random_4"])  # the empty Dataset column off, seed and random_4 on
        for column in ("seed", "random_4"):
            ui.page.get_by_role("columnheader").filter(has_text=column).first.wait_for()
        self.shoot(ui, "tracking-pt4-runs")

        ui.open(f"/experiments/{experiment_id}/runs?compareRunsMode=CHART", "random_4")
        ui.page.locator(".js-plotly-plot").first.wait_for()
        self.shoot(ui, "tracking-pt5-chart-view")

        ui.open(f"/experiments/{experiment_id}/runs/{run_id}", "random_4", "seed", run_id)
        self.shoot(ui, "tracking-pt6-run")

        [artifact] = self.client.list_artifacts(run_id, "examples")[:1]
        first_line = Path(self.client.download_artifacts(run_id, artifact.path)).read_text().splitlines()[0]
        ui.open(f"/experiments/{experiment_id}/runs/{run_id}/artifacts/{artifact.path}", artifact.path, first_line)
        self.shoot(ui, "tracking-pt8-artifacts")
        return None

    # "Autologging APIs", pt. 4-6, and "Model registration via MLflow", pt. 2-3
    def autologging(self, ui: UiPage) -> str | None:
        experiment = self.client.get_experiment_by_name("autologging-example")
        models = self.client.search_logged_models([experiment.experiment_id]) if experiment else []
        model = newest(models, key=lambda m: m.creation_timestamp)
        if model is None:
            return "experiment autologging-example has no logged model (make demo)"
        experiment_id, run_id = experiment.experiment_id, model.source_run_id
        run = self.client.get_run(run_id)
        ui.open(f"/experiments/{experiment_id}/runs/{run_id}", run_id, sorted(run.data.metrics)[0])
        self.shoot(ui, "autologging-pt4-run")

        files = [a.path for a in self.client.list_artifacts(run_id) if not a.is_dir]
        image = next((f for f in files if f.endswith(".png")), None)
        ui.open(f"/experiments/{experiment_id}/runs/{run_id}/artifacts/{image or ''}", *files)
        if image:
            ui.page.wait_for_function("() => Array.from(document.images).some(i => i.complete && i.naturalWidth > 100)")
        self.shoot(ui, "autologging-pt5-artifacts")

        ui.open(f"/experiments/{experiment_id}/models/{model.model_id}", model.model_id[:12], "Register model")
        self.shoot(ui, "autologging-pt6-logged-model")

        versions = self.client.search_model_versions(f"run_id = '{run_id}'")
        if not versions:
            return "the autologged model is not registered (make demo runs -e register)"
        name = versions[0].name
        registered = self.client.get_registered_model(name)
        ui.open("/models")
        ui.page.locator(f"a[href*='/models/{quote(name)}']").first.wait_for()
        self.shoot(ui, "registry-pt2-models")

        ui.open(f"/models/{quote(name)}", *[f"Version {v.version}" for v in versions])
        for alias in registered.aliases:
            ui.text(alias).wait_for()
        self.shoot(ui, "registry-pt3-versions")
        return None

    # "A realistic MLOps scenario with MLflow", pt. 1-3, the notebook: the "UI overview (metadata)" image
    def census_notebook(self, ui: UiPage) -> str | None:
        experiment, runs = experiment_runs(self.client, "census-notebook")
        children = {}
        for run in runs:
            children.setdefault(run.data.tags.get("mlflow.parentRunId"), []).append(run)
        parent = newest([r for r in runs if r.info.run_id in children])
        if parent is None:
            return (
                "experiment census-notebook has no run with nested runs "
                "(make demo, or: cd census_project && python run_notebook.py --experiment-name census-notebook)"
            )
        ui.open(f"/experiments/{experiment.experiment_id}/runs")
        ui.run_link(parent.info.run_id).wait_for()
        expand_parent_run(ui, parent.info.run_id, children[parent.info.run_id])
        toggle_run_columns(ui, ["Dataset", "cv_roc_auc_mean"])  # the empty Dataset column off, the CV score on
        ui.page.get_by_role("columnheader").filter(has_text="cv_roc_auc_mean").first.wait_for()
        self.shoot(ui, "census-notebook-nested-runs")
        return None

    # "A realistic MLOps scenario with MLflow", pt. 2: nested runs, comparison charts
    def census(self, ui: UiPage) -> str | None:
        found = nested_training(
            self.client, exclude={"logging_example", "autologging-example", "Iris Experiment", "census-notebook"}
        )
        if found is None:
            return (
                "no run with nested runs in the store "
                "(make demo, or: mlflow run census_project -e train --experiment-name adult-classifier)"
            )
        experiment, parent, children = found
        experiment_id = experiment.experiment_id
        ui.open(f"/experiments/{experiment_id}/runs")
        ui.run_link(parent.info.run_id).wait_for()
        expand_parent_run(ui, parent.info.run_id, children)
        self.shoot(ui, "census-pt2-nested-runs")

        ids = [c.info.run_id for c in children]
        query = urlencode({"runs": json.dumps(ids), "experiments": json.dumps([experiment_id])})
        ui.open(f"/compare-runs?{query}", f"Comparing {len(ids)} Runs")
        ui.page.locator(".js-plotly-plot").first.wait_for()
        self.shoot(ui, "census-pt2-compare-chart")
        return None

    # "Exemplifying MLflow for LLM Applications", pt. 5-11
    def llmops(self, ui: UiPage) -> str | None:
        prompts = self.client.search_prompts()
        if not prompts:
            return "no registered prompt (make demo)"
        ui.open("/prompts", *[p.name for p in prompts])
        self.shoot(ui, "llmops-pt5-prompts")

        prompt = next((p for p in prompts if p.name == "basic"), prompts[0])
        # The version generation loads (@production, the talk's pt. 6), not a newer one optimize registered
        version = self.client.get_prompt_version_by_alias(prompt.name, "production")
        route = f"/prompts/{quote(prompt.name)}?promptVersion={version.version}"
        ui.open(route, f"Version {version.version}", *version.aliases, *filter(None, [version.commit_message]))
        self.shoot(ui, "llmops-pt6-prompt-versions")

        traces = traces_of_store(self.client)
        assessed = next((t for t in self.evaluated_traces() if feedback_names(t)), None)
        assessed = assessed or next((t for t in traces if feedback_names(t)), None)
        if assessed is None:
            return "no trace with assessments (make demo runs generate_answers, then evaluate_responses)"
        open_trace(ui, assessed)
        self.shoot(ui, "llmops-pt8-trace")
        show_assessments(ui, assessed)
        self.shoot(ui, "llmops-pt9-assessments")

        agent = next((t for t in traces if has_tool_span(t)), None)
        if agent is not None:
            open_trace(ui, agent)
            tool = next(s.name for s in agent.data.spans if str(s.span_type) == "TOOL")
            ui.page.get_by_role("dialog").get_by_text(tool, exact=True).first.wait_for()
            self.shoot(ui, "llmops-pt10-tool-calls")
        else:
            print("  (no agent trace with a tool span: llmops-pt10-tool-calls not taken)")
        # The talk's "Details & Timeline" tab is, in MLflow 3.17, the span tree's timeline toggle.
        open_trace(ui, agent or assessed)
        ui.page.locator("[aria-label='Show execution timeline']").first.click()
        ui.page.locator("[aria-label='Hide execution timeline']").first.wait_for()
        self.shoot(ui, "llmops-pt11-trace-timeline")
        return None

    def evaluated_traces(self) -> list:
        """The traces of the generation run that the newest evaluate_responses run judged (the talk's
        pt. 8-9), newest first: not those of a compare candidate or of a reviewed run."""
        evaluation = newest(runs_tagged(self.client, "quiz.step", "evaluation"))
        if evaluation is None or "quiz.evaluated_run_id" not in evaluation.data.tags:
            return []
        traces = self.client.search_traces(
            locations=[evaluation.info.experiment_id], run_id=evaluation.data.tags["quiz.evaluated_run_id"]
        )
        return sorted(traces, key=lambda t: t.info.request_time, reverse=True)

    # "LLMOps with MLflow": select the best prompt by evaluation, on the exam dataset, with human feedback
    def llmops_selection(self, ui: UiPage) -> str | None:
        compare = newest(runs_tagged(self.client, "quiz.step", "comparison"))
        if compare is None:
            compare_command = "mlflow run -e compare --env-manager=local --experiment-name se-answers llmops_project"
            return f"no compare run (make demo, or: {compare_command} -P templates=basic,practical -P max_questions=4)"
        experiment_id, run_id = compare.info.experiment_id, compare.info.run_id
        ui.open(f"/experiments/{experiment_id}/runs/{run_id}/artifacts/comparison.png", "comparison.png")
        ui.page.wait_for_function("() => Array.from(document.images).some(i => i.complete && i.naturalWidth > 100)")
        self.shoot(ui, "llmops-compare-run")

        # The exam as an evaluation dataset: MLflow 3.17 lists them on the experiment's Datasets page
        ui.open(f"/experiments/{experiment_id}/datasets", "se-exam")
        self.shoot(ui, "llmops-datasets")

        review = newest(runs_tagged(self.client, "quiz.step", "review"))
        if review is None:
            return "no review run (make demo runs -e review with review_labels.example.csv)"
        # MLflow's Review page: the queue review made, a Yes/No question per judge, the first answer open
        from mlflow.genai import review_queues

        experiment_id = review.info.experiment_id
        queue = review_queues.get_review_queue(name=review.data.tags["quiz.review_queue"], experiment_id=experiment_id)
        ui.open(f"/experiments/{experiment_id}/review-queue?selectedQueueId={queue.queue_id}", queue.name)
        self.shoot(ui, "llmops-review-queue")
        ui.page.get_by_role("row").nth(1).click()  # the first answer (review marked them reviewed: no Start review)
        ui.text("correctness").wait_for()
        ui.page.locator("[role=radiogroup]").first.wait_for()
        self.shoot(ui, "llmops-review-page")

        reviewed = review.data.tags["quiz.reviewed_run_id"]
        traces = self.client.search_traces(locations=[review.info.experiment_id], run_id=reviewed, max_results=500)
        both = [t for t in traces if {"HUMAN", "LLM_JUDGE"} <= feedback_sources(t)]
        if not both:
            return f"no trace of the reviewed run {reviewed} has both HUMAN and judge feedback (make demo)"
        trace = min(both, key=lambda t: t.info.request_time)  # the first question: the one the review shows first
        open_trace(ui, trace)
        show_assessments(ui, trace)
        ui.page.get_by_role("button", name="Add feedback").first.wait_for()
        self.shoot(ui, "llmops-review-feedback")
        return self.llmops_improvement(ui)

    # The loop continued: a judge aligned to the reviewer (align), a prompt version MLflow wrote (optimize)
    def llmops_improvement(self, ui: UiPage) -> str | None:
        align = newest(runs_tagged(self.client, "quiz.step", "alignment"))
        if align is None:
            return "no align run (make demo runs -e align after compare)"
        measured = self.client.download_artifacts(align.info.run_id, "judge_agreement.csv")
        aligned = Path(measured).read_text().splitlines()[1].split(",")[0]  # the first aligned judge's name
        ui.open(f"/experiments/{align.info.experiment_id}/judges", aligned)
        self.shoot(ui, "llmops-aligned-judge")

        optimize = newest(runs_tagged(self.client, "quiz.step", "optimization"))
        if optimize is None:
            return "no optimize run (make demo runs -e optimize after align)"
        name, version = optimize.data.tags["quiz.optimized_prompt"].split(" v")
        ui.open(f"/prompts/{quote(name)}?promptVersion={version}", f"Version {version}", "quiz.optimized_from")
        self.shoot(ui, "llmops-optimized-prompt")
        return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ui_tour.py", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--store", help="folder holding mlflow.db (+ mlartifacts/), or a store URI (default: the repo's)"
    )
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"where the PNGs go (default: {OUT_DIR})")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    from mlflow.tracking import MlflowClient

    backend_uri = use_store(args.store)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"ui_tour: MLflow UI on {backend_uri}", flush=True)
    try:
        with mlflow_ui() as url, launch_browser() as browser:
            tour = Tour(browser, url, MlflowClient(tracking_uri=url), args.out)
            tour.run()
    except BrowserUnavailable as error:
        print(f"ui_tour: {error}", file=sys.stderr)
        return 2
    print(f"ui_tour: {len(tour.shots)} screenshots in {args.out} ({time.monotonic() - started:.0f} s)")
    for problem in tour.problems:
        print(f"ui_tour: {problem}", file=sys.stderr)
    return 1 if tour.problems else 0


if __name__ == "__main__":
    sys.exit(main())

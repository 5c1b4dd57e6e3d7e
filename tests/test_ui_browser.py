"""The MLflow UI shows what the examples logged: a real headless Chromium on a store made here.

The module's fixture runs the examples' scripts as the talk runs them (`python logging_example.py 42`,
..., harness.run_script; each entry point's `mlflow run` has its own smoke test) into the module's
store: the tracking example with seeds 42 and 43, autologging and its registration, a census
training of two candidates, and the LLM flow (the prompts registered, answers generated, then
evaluated) against the deterministic OpenAI-compatible test server. It then starts `mlflow ui` on
that store (docs/ui_tour.py, as `make tour` does). The first test reads, in the browser, the pages
the talk tells students to look at; every expected value comes from the store through
MlflowClient. The second answers a question in the Review page, on the same store and server.

Each UI check runs to the end even when an earlier one fails; a failed check saves a screenshot, and
the failure message lists every failed check with its screenshot's path.

Without a system browser (Debian's chromium; Google Chrome on macOS) the test is skipped with the
reason, except under `make test-all` (CI's command), which sets UI_TEST_REQUIRE_BROWSER=1: there a
missing browser fails.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from playwright.sync_api import expect

from docs import ui_tour
from tests.fixtures_llm import FakeOpenAIServer, point_at
from tests.harness import REPO_ROOT, run_script
from tests.llmops import labels, register_prompts_in_process
from tests.test_census_project import train_directly

pytestmark = pytest.mark.browser

REQUIRE_BROWSER = "UI_TEST_REQUIRE_BROWSER"
PRINTED_UI = "http://127.0.0.1:5000"  # the UI the examples' links name for a local store (cli.LOCAL_UI)
CHECK_TIMEOUT_MS = 45_000  # per wait: generous, for a loaded 2-core machine
LLM_EXPERIMENT = "quiz-ui-test"
IN_LLM_EXPERIMENT = {"MLFLOW_EXPERIMENT_NAME": LLM_EXPERIMENT}
# A parent run with two nested candidates (a logistic regression, a forest): all the UI check needs.
TWO_CANDIDATES = {"cv_splits": 2, "lr_C_values": "[1.0]", "rf_n_estimators": "[10]", "rf_max_depths": "[12]"}
PROMPT_FILES = sorted(p.stem for p in (REPO_ROOT / "llmops_project" / "prompts").glob("*.txt"))


@pytest.fixture(scope="module")
def browser():
    """The system's headless Chromium, or a skip (a failure when UI_TEST_REQUIRE_BROWSER=1)."""
    try:
        with ui_tour.launch_browser() as launched:
            yield launched
    except ui_tour.BrowserUnavailable as error:
        if os.environ.get(REQUIRE_BROWSER) == "1":
            pytest.fail(f"{error} ({REQUIRE_BROWSER}=1: `make test-all` needs the browser, `make browser` installs it)")
        pytest.skip(f"no browser for the UI test: {error}")


class UiChecks:
    """Runs named checks, each in a fresh tab; keeps going after a failure, with a screenshot of it."""

    def __init__(self, browser, base_url: str, screenshots: Path):
        self.browser, self.base_url, self.screenshots = browser, base_url, screenshots
        self.failures: list[str] = []
        screenshots.mkdir(parents=True, exist_ok=True)
        expect.set_options(timeout=CHECK_TIMEOUT_MS)  # Playwright's expect() waits 5 s by default

    def check(self, name: str, workflow: str | None, check, *args) -> None:
        """``workflow`` None: a fresh browser (see ui_tour.UiPage)."""
        ui = ui_tour.UiPage(self.browser, self.base_url, workflow, self.screenshots)
        ui.page.set_default_timeout(CHECK_TIMEOUT_MS)
        try:
            check(ui, *args)
        except Exception as error:  # an AssertionError, or Playwright's TimeoutError: what was missing
            path = self.screenshots / f"{name}.png"
            ui.page.screenshot(path=path)
            message = "\n      ".join(str(error).strip().splitlines()[:6])
            self.failures.append(f"- {name}: {message}\n    page {ui.page.url}\n    screenshot: {path}")
        finally:
            ui.close()


# --- the checks: what a student is told to look at ---------------------------------------------


def runs_table_and_run_pages_show_status_and_random_4(ui, client, runs) -> None:
    """Both logging_example runs are in the runs table; each run's page shows its status and random_4."""
    experiment_id = runs[0].info.experiment_id
    ui.open(f"/experiments/{experiment_id}/runs")
    for run in runs:
        ui.run_link(run.info.run_id).wait_for()
    for run in runs:
        ui.open(f"/experiments/{experiment_id}/runs/{run.info.run_id}", run.info.run_id)
        status = ui.page.get_by_test_id("key-value-Status")
        expect(status).to_contain_text(run.info.status, ignore_case=True)
        row = ui.page.get_by_role("row").filter(has=ui.page.get_by_text("random_4", exact=True)).first
        row.wait_for()
        shown = float(row.inner_text().split()[-1])
        assert shown == run.data.metrics["random_4"], f"run {run.info.run_id}: random_4 shows {shown}"


def logging_example_is_on_the_experiments_page(ui, runs, newer: list[str]) -> None:
    """tracking_example README, pt. 4, after `make demo`: the home page's Recent Experiments shows
    five, the walk's later ones, not logging_example; the side bar's Experiments lists every one, its
    search box finds logging_example, and its link opens the two runs."""
    ui.open("/", "Recent Experiments")
    ui.page.get_by_role("link", name=newer[-1], exact=True).first.wait_for()
    expect(ui.page.get_by_role("link", name="logging_example", exact=True)).to_have_count(0)
    ui.page.get_by_role("link", name="Experiments", exact=True).first.click()  # the side bar's
    ui.page.get_by_role("link", name=newer[0], exact=True).first.wait_for()
    ui.page.get_by_placeholder("Search experiments").fill("logging_example")
    ui.page.keyboard.press("Enter")
    ui.page.get_by_role("link", name="logging_example", exact=True).first.click()
    for run in runs:
        ui.run_link(run.info.run_id).wait_for()


def a_fresh_browser_follows_the_printed_links(ui, printed: str, runs) -> None:
    """A student's first visit (nothing in the browser's localStorage, so the UI would start in
    GenAI): the two pages logging_example prints open in Model training, the experiment's runs
    list with both runs, and the run's own page with its status (not under "Evaluations")."""
    links = [word.replace(PRINTED_UI, ui.base_url) for word in printed.split() if "/#/experiments/" in word]
    run_page, runs_page = links
    assert runs_page.endswith(f"/experiments/{runs[0].info.experiment_id}/runs?workflowType=machine_learning")
    ui.page.goto(runs_page)
    for run in runs:
        ui.run_link(run.info.run_id).wait_for()
    ui.page.goto(run_page)
    run_id = run_page.split("/runs/")[1].split("?")[0]
    expect(ui.page.get_by_test_id("key-value-Status")).to_contain_text("finished", ignore_case=True)
    expect(ui.page.get_by_role("link", name="Evaluations")).to_have_count(0)
    assert run_id in {run.info.run_id for run in runs}


def registered_model_has_alias_champion(ui, name: str, champion_version: str) -> None:
    ui.open("/models")
    listed = ui.page.get_by_role("row").filter(has=ui.page.get_by_role("link", name=name, exact=True)).first
    expect(listed).to_contain_text("champion")
    ui.open(f"/models/{name}")
    row = ui.page.get_by_role("row").filter(has=ui.page.get_by_text(f"Version {champion_version}", exact=True))
    expect(row.first).to_contain_text("champion")


def parent_run_nests_its_candidates(ui, parent, children) -> None:
    """Collapsed, the children are hidden; the parent's [+] shows one nested row per candidate."""
    ui.open(f"/experiments/{parent.info.experiment_id}/runs")
    ui.run_link(parent.info.run_id).wait_for()
    for child in children:
        assert not ui.run_link(child.info.run_id).is_visible(), "a candidate run shows before expanding its parent"
    ui_tour.expand_parent_run(ui, parent.info.run_id, children)
    links = ui.page.locator(", ".join(f"a[href*='/runs/{c.info.run_id}']" for c in children))
    expect(links).to_have_count(len(children))


def prompts_are_listed_with_alias_production(ui, production: dict[str, str]) -> None:
    ui.open("/prompts")
    for name in production:
        ui.page.get_by_role("link", name=name, exact=True).first.wait_for()
    for name, version in production.items():
        ui.open(f"/prompts/{name}", "Viewing version")
        item = ui.page.get_by_text(f"Version {version}", exact=True).first.locator("xpath=..")
        expect(item).to_contain_text("production")


def one_trace_per_question(ui, generation, traces, questions: dict[str, str]) -> None:
    """The generation run's Traces tab: one row per trace, each with its question in the request."""
    ui.open(f"/experiments/{generation.info.experiment_id}/runs/{generation.info.run_id}/traces")
    expect(ui.page.get_by_role("row").filter(has_text="tr-")).to_have_count(len(traces))
    for trace in traces:
        row = ui.page.get_by_role("row").filter(has_text=trace.info.trace_id)
        expect(row).to_contain_text(questions[trace.info.trace_id])


def trace_shows_its_assessments(ui, trace) -> None:
    """The trace's panel, Assessments pane: each feedback of the evaluation with its value."""
    ui_tour.open_trace(ui, trace)
    ui_tour.show_assessments(ui, trace)
    pane = ui.page.get_by_role("dialog")
    for assessment in trace.info.assessments:
        if assessment.feedback is None:
            continue
        value_tag = "[data-component-id$='assesment-value-tag']"
        card = pane.locator("div").filter(has=ui.page.get_by_text(assessment.name, exact=True))
        card = card.filter(has=ui.page.locator(value_tag)).last
        shown = card.locator(value_tag).first.inner_text().strip()
        assert shown.lower() == str(assessment.feedback.value).lower(), f"{assessment.name} shows {shown!r}"


# --- the tests -------------------------------------------------------------------------------------


@dataclass
class Logged:
    """What the examples logged into the module's store, and the `mlflow ui` serving it."""

    store: object
    url: str
    printed: dict[int, str]  # logging_example's output, by seed
    autologged: object  # the autologging run
    training: object  # the census training (a ProjectResult)
    generation: object  # the LLM flow's generation run (evaluated)


@pytest.fixture(scope="module")
def logged(module_store, browser):
    """The examples' scripts, as the talk runs them, into the module's store, then `mlflow ui` on it
    (docs/ui_tour.py, as `make tour` does). Both tests read this store: one `mlflow ui`, one browser,
    one LLM flow (each costs seconds of CPU)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        llm = FakeOpenAIServer().start()
        point_at(llm, monkeypatch)
        try:
            store = module_store
            printed = {}
            for seed in (42, 43):  # 43 fails on purpose: its run ends FAILED
                printed[seed] = run_script(
                    store, "tracking_example/logging_example.py", str(seed), expect_success=None
                ).stdout  # in the script's own experiment, logging_example
            autologged = run_script(store, "autologging_example/autologging_example.py").run  # autologging-example
            run_script(store, "autologging_example/register_model.py")  # the newest model: the run above's
            training = train_directly(store, TWO_CANDIDATES, "census-ui-test")
            register_prompts_in_process()  # as register_all_prompts does (that entry point has its own smoke test)
            generation = run_script(
                store, "llmops_project/generate_answers.py", "--max-questions", "3", env=IN_LLM_EXPERIMENT
            ).run
            run_script(
                store,
                "llmops_project/evaluate_responses.py",
                "--generation-run-id",
                generation.info.run_id,
                env=IN_LLM_EXPERIMENT,
            )
            with ui_tour.mlflow_ui() as url:  # on the store in use: module_store
                yield Logged(store, url, printed, autologged, training, generation)
        finally:
            llm.stop()


def test_the_ui_shows_what_the_examples_logged(logged, browser, tmp_path):
    client = logged.store.client
    printed, autologged, training, generation = logged.printed, logged.autologged, logged.training, logged.generation

    # What the UI must show, read from the store.
    tracking_runs = client.search_runs([client.get_experiment_by_name("logging_example").experiment_id])
    assert sorted(r.info.status for r in tracking_runs) == ["FAILED", "FINISHED"]
    [version] = client.search_model_versions(f"run_id = '{autologged.info.run_id}'")
    champion = client.get_model_version_by_alias(version.name, "champion")
    parent, children = training.run, training.children_of(training.run)
    assert len(children) > 1
    production = {
        p.name: client.get_prompt_version_by_alias(p.name, "production").version for p in client.search_prompts()
    }
    assert sorted(production) == PROMPT_FILES
    traces = client.search_traces(locations=[generation.info.experiment_id], run_id=generation.info.run_id)
    answers = pd.read_csv(
        io.StringIO(mlflow.artifacts.load_text(f"runs:/{generation.info.run_id}/answers.csv")), keep_default_na=False
    )
    questions = dict(zip(answers["trace_id"], answers["question"], strict=True))
    assert sorted(questions) == sorted(t.info.trace_id for t in traces)  # one trace per question
    assessed = [t for t in traces if ui_tour.feedback_names(t)]
    assert assessed, "evaluate_responses logged no assessment"
    # The experiments `make demo` makes after logging_example (the test's own are fewer than five).
    walk_later = [
        "logging_example_queries",
        "Iris Experiment",
        "census-notebook",
        "adult-classifier-ui",
        "se-answers-ui",
    ]
    for name in walk_later:
        client.create_experiment(name)

    checks = UiChecks(browser, logged.url, tmp_path / "screenshots")
    ml, genai = ui_tour.MODEL_TRAINING, ui_tour.GENAI
    checks.check("tracking-runs", ml, runs_table_and_run_pages_show_status_and_random_4, client, tracking_runs)
    checks.check("fresh-browser", None, a_fresh_browser_follows_the_printed_links, printed[42], tracking_runs)
    checks.check("experiments-page", ml, logging_example_is_on_the_experiments_page, tracking_runs, walk_later)
    checks.check("registry-champion", ml, registered_model_has_alias_champion, champion.name, champion.version)
    checks.check("census-nested-runs", ml, parent_run_nests_its_candidates, parent, children)
    checks.check("llmops-prompts", genai, prompts_are_listed_with_alias_production, production)
    checks.check("llmops-traces", genai, one_trace_per_question, generation, traces, questions)
    checks.check("llmops-assessments", genai, trace_shows_its_assessments, assessed[0])
    assert not checks.failures, "The MLflow UI does not show what the store holds:\n" + "\n".join(checks.failures)


def answer_in_the_review_page(ui, page: str, question: str, answer: str) -> None:
    """Open the review queue (the link review printed), start the review, answer ``question`` of the
    first answer with ``answer`` (Yes/No) and submit, as a reviewer does. The question says where the
    page keeps what it needs (correctness: its guidelines, one click away)."""
    ui.page.goto(page)
    ui.page.get_by_role("button", name="Start review").first.click()
    block = ui.page.locator(f"div:has(> span:text-is('{question}'))").first
    expect(block).to_contain_text(labels.IN_THE_REVIEW_PAGE.get(question, ""))
    block.locator(f"[role=radiogroup] label[title='{answer}']").click()
    ui.page.locator("[data-component-id='mlflow.experiment-review-queue.focused-review.complete']").click()
    expect(ui.page.get_by_text("1 of ", exact=False).first).to_be_visible()  # "1 of N reviewed"


def test_a_verdict_given_in_the_review_page_counts_in_reviews_agreement(logged, browser, tmp_path):
    """review sets up the Review page (a Yes/No question per judge, a queue of the run's answers); a
    reviewer answers one question there, in a fresh browser; the next review counts that answer."""
    store, generation = logged.store, logged.generation
    run_id = generation.info.run_id
    params = {"generation_run_id": run_id, "labels": "ui"}
    before = run_script(store, "llmops_project/review.py", params=params, env=IN_LLM_EXPERIMENT)
    assert before.run.data.metrics["human_verdicts_logged"] == 0
    assert "verdict(s) logged" not in before.stdout  # labels=ui asks nothing here
    assert "Next, label these answers in the Review page (the link above), then run review again" in before.stdout
    assert f"-P generation_run_id={run_id} -P labels=ui" in before.stdout  # review again, not evaluate
    printed = next(line.strip() for line in before.stdout.splitlines() if "/review-queue?" in line)
    assert printed.startswith(f"{PRINTED_UI}/#/experiments/{generation.info.experiment_id}/review-queue?")

    checks = UiChecks(browser, logged.url, tmp_path / "screenshots")
    page = printed.replace(PRINTED_UI, logged.url)
    # A fresh browser (workflow None: nothing in its localStorage), as a student's first visit: the
    # assistant panel opens beside the queue, and the questions stay in reach
    checks.check("review-page", None, answer_in_the_review_page, page, "correctness", "No")
    assert not checks.failures, "The Review page did not take the answer:\n" + "\n".join(checks.failures)

    given = [
        a
        for t in ui_tour.traces_of_store(store.client)
        for a in t.info.assessments
        if a.source.source_type == "HUMAN" and a.name == "correctness"
    ]
    assert [(a.feedback.value, a.source.source_id) for a in given] == [(False, "default")]  # the UI's user, no login
    after = run_script(store, "llmops_project/review.py", params=params, env=IN_LLM_EXPERIMENT).run
    assert after.data.metrics["correctness/labelled"] == 1  # the Review page's answer, against the judge's yes
    assert after.data.metrics["correctness/agreement"] == 0.0
    table = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{after.info.run_id}/judge_agreement.csv")))
    assert table.set_index("judge").loc["correctness", "human_yes"] == 0

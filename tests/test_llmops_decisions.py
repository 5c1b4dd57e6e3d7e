"""llmops_project's decision path: ``review`` (human verdicts from the Review page, the terminal or a
file; the judges measured against them), the trust rule (quiz/decision.py: code scorers, and judges
measured at kappa >= MIN_KAPPA on >= MIN_LABELLED answers), and ``compare`` deciding on the trusted
scorers only, against the deterministic test server.
"""

from __future__ import annotations

from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow.entities import AssessmentSource
from mlflow.genai import label_schemas, review_queues

from tests import examples
from tests.harness import run_project, run_script
from tests.llmops import (
    PROJECT,
    PROJECT_DIR,
    UNSURE,
    answers_csv,
    artifact_table,
    assert_totals_match_traces,
    decision,
    error_lines,
    evaluate_responses,
    generate_and_judge,
    human_feedback,
    labels,
    load_expectations,
    load_questions,
    project_questions,
    refused_in_process,
    register_prompts_in_process,
    traces_of,
    write_labels,
)

BASIC_PROMPT = "Be concise but comprehensive."  # text of prompts/basic.txt only
PRACTICAL_PROMPT = "Provide an answer that:"  # text of prompts/practical.txt only
NEVER_REVIEWED = "never reviewed (advisory until a review measures it)"
SCORERS = list(evaluate_responses.guidelines_model("openai:/gpt-4.1-mini"))
CODE = ["enough_words", "not_too_many_words"]
JUDGES = ["english", "software_engineering_related", "reference_to_definition", "relevance_to_query", "correctness"]


# --- the rule, pure ---------------------------------------------------------------------------------


def one(scores: list[float], name: str = "t", failed=(), errors: int = 0) -> decision.Candidate:
    """A candidate judged by one scorer "s", with these per-question verdicts."""
    verdicts = pd.DataFrame({"s": scores}, index=range(1, len(scores) + 1), dtype=float)
    return decision.Candidate(name, name, 1, "m", verdicts, list(failed), {"s": errors})


ONLY_S = decision.Trust(kept=["s"])


def test_decision_rule_needs_a_margin_a_sign_test_and_no_failures():
    assert decision.sign_test(6, 0) == pytest.approx(1 / 64)
    assert decision.sign_test(4, 0) == pytest.approx(1 / 16)
    assert decision.sign_test(5, 1) == pytest.approx(7 / 64)
    six_better = decision.decide([one([1] * 6, "a"), one([0.5] * 6, "b")], ONLY_S)
    assert six_better.winner.name == "a"
    assert "p = 0.016" in six_better.reason
    # A tie, four questions only, a mixed record: no winner, and the reason says why.
    tie = decision.decide([one([1, 0, 1, 1, 0, 1], "a"), one([1, 0, 1, 1, 0, 1], "b")], ONLY_S)
    assert tie.winner is None
    assert "a is tied with b" in tie.reason
    few = decision.decide([one([1] * 4, "a"), one([0] * 4, "b")], ONLY_S)
    assert few.winner is None
    assert "p = 0.062" in few.reason
    assert "compare on more" in few.reason
    mixed = decision.decide([one([1, 1, 1, 1, 1, 0, 1], "a"), one([0, 0, 0, 0, 0, 1, 0], "b")], ONLY_S)
    assert mixed.winner is None  # 6 better, 1 worse: p = 0.0625
    # The best score with a failed question or a trusted judge's error cannot win.
    failed = decision.decide([one([1] * 5 + [0], "a", failed=[6]), one([0.2] * 6, "b")], ONLY_S)
    assert failed.winner is None
    assert "failed questions [6]" in failed.reason
    erred = decision.decide([one([1] * 6, "a", errors=1), one([0.2] * 6, "b")], ONLY_S)
    assert erred.winner is None
    assert "1 judge error" in erred.reason
    # ... but an error of a judge set aside is no evidence either way.
    aside = decision.Trust(kept=[], set_aside={"s": "never reviewed"})
    assert "no trusted scorer" in decision.decide([one([1] * 6, "a", errors=1), one([0] * 6, "b")], aside).reason
    # Three candidates: the leader must beat every one of them.
    close = decision.decide([one([1] * 6, "a"), one([0] * 6, "b"), one([1] * 5 + [0.9], "c")], ONLY_S)
    assert close.winner is None
    assert "only +0.02 ahead of c" in close.reason


def measured(judge: str, kappa: float | None, labelled: int, model: str = "openai:/gpt-4.1-mini"):
    return {(judge, model): decision.Measurement(judge, model, labelled, 0.5, kappa)}


def test_code_scorers_are_trusted_and_a_judge_only_when_measured_well_enough():
    never = decision.trusted(SCORERS, {})
    assert never.kept == CODE
    assert never.set_aside == dict.fromkeys(JUDGES, NEVER_REVIEWED)
    good = decision.trusted(SCORERS, measured("correctness", decision.MIN_KAPPA, decision.MIN_LABELLED))
    assert good.kept == [*CODE, "correctness"]
    assert good.why_kept["correctness"] == f"kappa 0.40 on {decision.MIN_LABELLED} answers"
    at_chance = decision.trusted(SCORERS, measured("correctness", 0.0, 12)).set_aside["correctness"]
    needs = f"(needs >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED})"
    assert at_chance == f"kappa 0.00 on 12 answers {needs}; not asked"
    too_few = decision.trusted(SCORERS, measured("correctness", 1.0, decision.MIN_LABELLED - 1)).set_aside
    assert too_few["correctness"] == f"kappa 1.00 on {decision.MIN_LABELLED - 1} answers {needs}"  # still asked
    undefined = decision.trusted(SCORERS, measured("english", None, 20)).set_aside
    assert undefined["english"] == f"kappa n/a on 20 answers {needs}; not asked"
    # Measured with another judge model: not evidence for this one.
    other_model = decision.trusted(SCORERS, measured("correctness", 0.9, 20, model="openai:/gpt-5-mini"))
    assert other_model.set_aside["correctness"] == NEVER_REVIEWED


def test_a_judge_found_wanting_is_not_asked_and_one_not_yet_measured_is_asked_but_not_counted():
    """compare runs ``trust.asked``: the code scorers and trusted judges (they decide), the advisory
    judges (never measured, or on too few answers: shown), never a judge that enough labels showed
    to agree no better than chance, whose verdicts could only cost calls."""
    measurements = {
        **measured("correctness", 0.9, decision.MIN_LABELLED),  # trusted
        **measured("english", 0.0, decision.MIN_LABELLED),  # found wanting
        **measured("relevance_to_query", None, 20),  # kappa undefined on enough answers: found wanting too
        **measured("reference_to_definition", 0.0, decision.MIN_LABELLED - 1),  # too few to tell
    }
    trust = decision.trusted(SCORERS, measurements)
    asked = [s.name for s in trust.asked(SCORERS)]
    assert asked == [s.name for s in SCORERS if s.name not in ("english", "relevance_to_query")]
    assert set(trust.advisory) == {"reference_to_definition", "software_engineering_related"}  # never reviewed
    assert list(trust.not_asked()) == ["english", "relevance_to_query"]  # what the chart shows with no bar
    assert trust.kept == [*CODE, "correctness"]
    assert [s.name for s in trust.counted(SCORERS)] == trust.kept  # what optimize learns from and decides on


def test_a_kappa_of_exactly_the_threshold_is_trusted():
    """9 answers: the human says yes once, the judge three times, agreeing on that one. Observed 7/9,
    chance 51/81: kappa exactly 2/5, which floating-point division made 0.3999999999999998."""
    human = [True] + [False] * 8
    judge = [True, True, True] + [False] * 6
    assert labels.kappa(human, judge) == decision.MIN_KAPPA == 0.4
    at_threshold = labels.agreement_table({("correctness", "m"): list(zip(human, judge, strict=True))})
    assert decision.trustworthy(labels.measurement(next(at_threshold.itertuples())))


def test_one_reading_of_a_verdict_for_judges_and_humans():
    for yes in (True, "yes", "Yes ", "pass", "true", "y", "1", 1, 1.0):
        assert decision.passed(yes) is True
    for no in (False, "no", "unknown", None, "", float("nan"), 0.0, "fail", "n", "0", ["yes"]):
        assert decision.passed(no) is False


def test_a_human_verdict_means_the_same_in_a_labels_file_and_on_a_trace():
    """The words a labels file or the terminal accepts (labels.verdict) are decision.passed's: a HUMAN
    verdict stored as "y", "1", "yes", "pass" or True is read as passed by agreement, kappa and compare."""
    assert (labels.YES, labels.NO) == (decision.PASS_WORDS, decision.FAIL_WORDS)
    for word in sorted(labels.YES | labels.NO):
        assert decision.passed(word) is labels.verdict(word) is (word in labels.YES)
        assert decision.passed(word.upper()) is labels.verdict(f" {word.upper()} ")

    def trace(*values):  # a trace holding one HUMAN correctness verdict per value, oldest first
        feedback = [
            SimpleNamespace(
                name="correctness",
                feedback=SimpleNamespace(value=value, error=None),
                source=SimpleNamespace(source_type="HUMAN", source_id="ada"),
                valid=None,
                create_time_ms=when,
            )
            for when, value in enumerate(values)
        ]
        return SimpleNamespace(info=SimpleNamespace(assessments=feedback))

    for stored in ("y", "1", "yes", "Pass", True, 1.0):
        assert labels.human_verdicts(trace(False, stored), ["correctness"]) == {"correctness": True}
    for stored in ("n", "0", "no", "fail", False, "unknown"):
        assert labels.human_verdicts(trace(True, stored), ["correctness"]) == {"correctness": False}


def test_the_comparison_table_counts_unknown_and_unanswered_as_not_passed():
    """The table's pass rates count as the rule does; MLflow's own mean would leave "unknown" out
    (NaN for a judge that never said yes or no, as the offline model's can)."""
    results = pd.DataFrame(
        {"number": [1, 2, 3], "english/value": ["yes", "unknown", "no"], "correctness/value": ["unknown"] * 3}
    )
    judges = [s for s in SCORERS if s.name in ("english", "correctness")]
    found = decision.candidate("c", "basic", 1, "m", 500, results, judges, [1, 2, 3, 4], [4])
    assert decision.pass_rates(found) == {"english/mean": 0.25, "correctness/mean": 0.0}
    assert found.judge_errors == {"english": 0, "correctness": 0}  # "unknown" is a verdict, not an error


def test_the_printed_evidence_lines_up_with_an_aligned_judges_long_name():
    trust = decision.Trust(
        kept=["enough_words"],
        set_aside={"english": "never reviewed", "correctness_aligned_to_instructor": "kappa 0.00 on 4 answers"},
        why_kept={"enough_words": "code scorer: exact"},
    )
    lines = trust.lines()
    starts = {line.index(why) for line, why in zip(lines, ["code scorer", "never", "kappa"], strict=True)}
    assert len(starts) == 1, lines
    assert lines[2].startswith("  set aside   correctness_aligned_to_instructor kappa")


def test_the_chart_shows_the_decision_and_why_each_judge_was_set_aside():
    """comparison.png tells what comparison.csv and the run's tags tell: the decision, and each judge
    set aside with its reason (the threshold once, in the legend's title): an advisory one's bars
    hatched, one not asked named with no bar."""
    (comparison,) = examples.load(PROJECT, "quiz.comparison")
    results = pd.DataFrame({"number": [1, 2], "english/value": ["yes", "no"], "enough_words/value": ["yes", "yes"]})
    scorers = [s for s in SCORERS if s.name in ("english", "enough_words")]
    found = decision.candidate("basic @ m", "basic", 1, "m", 500, results, scorers, [1, 2], [])
    aside = {"english": "kappa 0.00 on 4 answers (needs >= 0.4 on >= 8)"}
    aside["correctness"] = "kappa 0.00 on 8 answers (needs >= 0.4 on >= 8); not asked"
    trust = decision.Trust(kept=["enough_words"], set_aside=aside, advisory=["english"])
    table = decision.comparison_table([found], {"basic @ m": {}}, trust)

    axes = comparison.chart(table, trust, "no clear winner").axes[0]
    legend = axes.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "overall_score",
        "english: set aside, kappa 0.00 on 4 answers",
        "enough_words",
        "correctness: set aside, kappa 0.00 on 8 answers, not asked",
    ]
    assert [bar.get_hatch() for bar in axes.containers[1]] == ["//"]  # english's: shown, not counted
    assert "correctness/mean" not in table
    assert legend.get_title().get_text() == (
        f"judges are trusted at kappa >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED} answers"
    )
    assert axes.get_title().endswith("\nDecision: no clear winner")


# --- review: the Review page's questions and queue, verdicts from anywhere, judges measured -------------


@pytest.mark.entry_point("llmops_project", "review")
@pytest.mark.parametrize(
    ("measured", "labelled", "what", "command"),
    [
        (False, False, "label these answers in the Review page", "-e review"),
        (False, True, "let the judges judge these answers too", "-e evaluate_responses"),
        (True, True, "compare prompt templates on the evidence you can now trust", "-e compare"),
    ],
)
def test_review_names_the_next_step_from_what_it_found(capsys, measured, labelled, what, command):
    """Nothing labelled: label in the Review page; labelled but never judged: judge first; measured:
    compare. Each command names the experiment and, but for compare, the reviewed run."""
    [review] = examples.load(PROJECT, "review")
    table = pd.DataFrame({"judge": ["correctness"] if measured else []})
    review.print_next_step("se-answers", "run-1", table, labelled)
    out = capsys.readouterr().out
    assert out.startswith(f"\nNext, {what}")
    [inside, root] = out.splitlines()[2:]
    assert f"mlflow run {command} --env-manager=local --experiment-name se-answers " in inside
    assert inside.split("  ")[-1].replace(" . ", f" {PROJECT} ") == root.split("  ")[-1]
    assert ("-P generation_run_id=run-1" in inside) is not measured
    assert ("-P labels=ui" in inside) is (not labelled)


def test_review_sets_up_the_review_page_once_logs_human_feedback_once_and_measures_the_judges(
    mlflow_store, llm_server, tmp_path, capsys
):
    run_id = generate_and_judge(mlflow_store, llm_server, "review-test", 4, unsure=[4])
    questions = [r["Question"] for r in project_questions()[:4]]
    # Hand-computed: the judges say yes, yes, yes, no. The human says correctness yes, no, yes, no
    # (agreement 3/4; chance 1/2 * 3/4 + 1/2 * 1/4 = 1/2, kappa (3/4 - 1/2) / (1 - 1/2) = 1/2) and
    # english yes x4 (agreement 3/4; chance 3/4, kappa 0). Other criteria left empty: not measured.
    human = [("yes", "yes"), ("no", "yes"), ("yes", "yes"), ("no", "yes")]
    rows = [
        {"question": q, "correctness": c, "english": e, "comment": "checked by hand" if i == 0 else ""}
        for i, (q, (c, e)) in enumerate(zip(questions, human, strict=True))
    ]
    path = write_labels(tmp_path / "labels.csv", rows)
    params = {"generation_run_id": run_id, "labels": str(path), "reviewer": "ada"}
    first = run_project(mlflow_store, PROJECT, "review", params, experiment_name="review-test")
    review = first.run
    assert review.info.status == "FINISHED"
    metrics = review.data.metrics
    assert metrics["human_verdicts_logged"] == 8
    assert metrics["correctness/agreement"] == pytest.approx(0.75)
    assert metrics["correctness/kappa"] == pytest.approx(0.5)
    assert metrics["english/agreement"] == pytest.approx(0.75)
    assert metrics["english/kappa"] == pytest.approx(0.0)
    assert metrics["correctness/labelled"] == 4
    assert not any(name.startswith("relevance_to_query/") for name in metrics)
    assert review.data.params["judge_models"] == "openai:/gpt-4.1-mini"
    assert review.data.params["verdicts_counted"] == "ada"
    table = artifact_table(review, labels.AGREEMENT_ARTIFACT).set_index("judge")
    assert table.loc["correctness", "human_yes"] == 2
    assert table.loc["correctness", "judge_model"] == "openai:/gpt-4.1-mini"

    # The Review page: a Yes/No question per judge, with the reviewer's question, and a queue of the traces
    experiment_id = review.info.experiment_id
    schemas = {s.name: s for s in label_schemas.list_label_schemas(experiment_id)}
    assert set(JUDGES) <= set(schemas)
    assert schemas["english"].instruction == "Is it in English?"
    assert type(schemas["correctness"].input).__name__ == "InputPassFail"
    queue = review_queues.get_review_queue(name=review.data.tags["quiz.review_queue"], experiment_id=experiment_id)
    answers = answers_csv(mlflow_store, mlflow_store.client.get_run(run_id))
    items = review_queues.list_review_queue_items(queue.queue_id)
    assert sorted(i.item_id for i in items) == sorted(answers["trace_id"])
    assert sorted(queue.schema_ids) == sorted(schemas[name].schema_id for name in JUDGES)
    assert f"review-queue?workflowType=genai&selectedQueueId={queue.queue_id}" in first.stdout
    # ... each answer labelled from the file marked reviewed by ada, as the Review page counts them
    complete = review_queues.list_review_queue_items(queue.queue_id, status="complete")
    assert sorted((i.item_id, i.completed_by) for i in complete) == sorted((t, "ada") for t in answers["trace_id"])

    first_feedback = human_feedback(answers["trace_id"][0])
    assert {(a.name, a.feedback.value, a.source.source_id) for a in first_feedback} == {
        ("correctness", True, "ada"),
        ("english", True, "ada"),
    }
    assert {a.rationale for a in first_feedback} == {"checked by hand"}

    # Again (a resumed review, by the script itself): nothing logged twice, no second question or queue.
    again = run_script(
        mlflow_store, f"{PROJECT}/review.py", params=params, env={"MLFLOW_EXPERIMENT_NAME": "review-test"}
    )
    assert again.run.data.metrics["human_verdicts_logged"] == 0
    assert again.run.data.metrics["correctness/kappa"] == pytest.approx(0.5)
    assert sum(len(human_feedback(t)) for t in answers["trace_id"]) == 8
    assert len(label_schemas.list_label_schemas(experiment_id)) == len(schemas)
    assert [q.queue_id for q in review_queues.list_review_queues(experiment_id=experiment_id)] == [queue.queue_id]
    assert len(review_queues.list_review_queue_items(queue.queue_id)) == 4

    # The Review page shows the request and the answer: the correctness question says where its guidelines are
    assert schemas["correctness"].instruction == " ".join(
        [labels.QUESTIONS["correctness"], labels.IN_THE_REVIEW_PAGE["correctness"]]
    )
    guidelines = [a for a in mlflow.get_trace(answers["trace_id"][0]).info.assessments if a.name == "guidelines"]
    assert [a.expectation.value for a in guidelines] == [load_expectations()[questions[0]]]
    # A question deleted in the UI and set up again: the same queue asks the new one, about the same answers
    label_schemas.delete_label_schema(schema_id=schemas["english"].schema_id)
    asked = {name: labels.QUESTIONS[name] for name in JUDGES}
    ids = labels.ensure_label_schemas(experiment_id, asked)
    assert schemas["english"].schema_id not in ids
    updated = labels.ensure_review_queue(experiment_id, queue.name, ids, answers["trace_id"])
    assert updated.queue_id == queue.queue_id
    assert sorted(review_queues.get_review_queue(queue.queue_id).schema_ids) == sorted(ids)
    items = review_queues.list_review_queue_items(queue.queue_id)
    assert sorted(i.item_id for i in items) == sorted(answers["trace_id"])
    assert "asked other questions (one deleted or added since): it now asks these 5" in capsys.readouterr().out
    assert sum(len(human_feedback(t)) for t in answers["trace_id"]) == 8  # the verdicts given stay


def test_review_counts_the_latest_human_verdict_whatever_its_source(mlflow_store, llm_server):
    """A verdict given in the Review page (the UI's user, "default" without login) counts like one from
    the terminal; without -P reviewer, the latest by anyone counts, one per trace and judge."""
    run_id = generate_and_judge(mlflow_store, llm_server, "review-ui", 2, unsure=[2])
    trace_ids = answers_csv(mlflow_store, mlflow_store.client.get_run(run_id))["trace_id"].tolist()
    ui = AssessmentSource(source_type="HUMAN", source_id="default")
    # Question 1: ada said no, then the UI said yes (latest). Question 2: the UI said no (a string, as a
    # categorical question stores it: read through decision.passed, never bool("no")).
    mlflow.log_feedback(trace_id=trace_ids[0], name="correctness", value=False, source=AssessmentSource("HUMAN", "ada"))
    mlflow.log_feedback(trace_id=trace_ids[0], name="correctness", value=True, source=ui)
    mlflow.log_feedback(trace_id=trace_ids[1], name="correctness", value="no", source=ui)
    where = {"MLFLOW_EXPERIMENT_NAME": "review-ui"}
    anyone = run_script(
        mlflow_store, f"{PROJECT}/review.py", params={"generation_run_id": run_id, "labels": "ui"}, env=where
    )
    table = artifact_table(anyone.run, labels.AGREEMENT_ARTIFACT).set_index("judge")
    # judges: yes, no; humans (latest): yes, no -> agreement 1, kappa 1
    assert (table.loc["correctness", "labelled"], table.loc["correctness", "human_yes"]) == (2, 1)
    assert anyone.run.data.metrics["correctness/kappa"] == pytest.approx(1.0)
    assert anyone.run.data.metrics["human_verdicts_logged"] == 0  # labels=ui: nothing asked here
    assert anyone.run.data.params["verdicts_counted"] == "anyone's latest"
    # Only ada's: one verdict (no), against the judge's yes.
    ada = run_script(
        mlflow_store,
        f"{PROJECT}/review.py",
        params={"generation_run_id": run_id, "labels": "ui", "reviewer": "ada"},
        env=where,
    )
    assert ada.run.data.metrics["correctness/labelled"] == 1
    assert ada.run.data.metrics["correctness/agreement"] == 0.0


def test_review_bad_input_is_one_line_and_no_run_left_running(mlflow_store, llm_server, tmp_path):
    exam = [r["Question"] for r in project_questions()]
    review = f"{PROJECT}/review.py"
    unknown = write_labels(tmp_path / "unknown.csv", [{"question": "What is love?", "correctness": "yes"}])
    result = refused_in_process(mlflow_store, review, "--labels", str(unknown))
    [line] = error_lines(result)
    assert "unknown.csv line 2: 'What is love?' is not a question of questions.csv" in line
    assert result.runs == []
    invalid = write_labels(tmp_path / "invalid.csv", [{"question": exam[0], "english": "maybe"}])
    result = refused_in_process(mlflow_store, review, "--labels", str(invalid))
    [line] = error_lines(result)
    assert "invalid.csv line 2: english = 'maybe' is not yes or no" in line
    assert result.runs == []

    # A run whose answers have no traces: nothing to review or queue, and no review run (the run named
    # by its id is read before one starts).
    # (with the client: a fluent start_run here would leave MLFLOW_EXPERIMENT_ID set for the subprocesses)
    experiment_id = mlflow_store.client.create_experiment("no-traces")
    untraced = mlflow_store.client.create_run(experiment_id, tags={"quiz.step": "generation"})
    mlflow_store.client.log_text(
        untraced.info.run_id, "number,question,status,answer,trace_id\n1,What is X?,ok,An answer,\n", "answers.csv"
    )
    mlflow_store.client.set_terminated(untraced.info.run_id)
    result = refused_in_process(mlflow_store, review, "--generation-run-id", untraced.info.run_id)
    [line] = error_lines(result)
    assert f"run {untraced.info.run_id} has no traced answer to review" in line
    assert "--experiment-name no-traces ." in line  # generate again, in that run's experiment
    assert result.runs == []
    assert review_queues.list_review_queues(experiment_id=experiment_id) == []

    # A reviewer with no verdict at all on those answers: one line naming who did give verdicts.
    run_id = generate_and_judge(mlflow_store, llm_server, "nobody", 2)
    where = {"MLFLOW_EXPERIMENT_NAME": "nobody"}
    params = {"generation_run_id": run_id, "labels": "ui", "reviewer": "bob"}
    for _ in range(2):  # twice: still one question per judge and one queue
        result = run_script(mlflow_store, review, params=params, env=where, expect_success=False)
        [line] = error_lines(result)
        assert line.startswith(f"error: reviewer 'bob' has no verdict on the answers of run {run_id}")
        assert "(verdicts there are by: nobody yet)" in line
        assert result.run.info.status == "FAILED"
    experiment_id = mlflow_store.client.get_experiment_by_name("nobody").experiment_id
    assert len(review_queues.list_review_queues(experiment_id=experiment_id)) == 1
    names = [s.name for s in label_schemas.list_label_schemas(experiment_id)]
    assert sorted(n for n in names if n in JUDGES) == sorted(JUDGES)
    assert len(names) == len(set(names))


def test_example_labels_file_names_questions_of_the_exam():
    exam = [q.text for q in load_questions()]
    example = labels.read_labels(PROJECT_DIR / "review_labels.example.csv", exam, list(labels.QUESTIONS))
    assert list(example) == exam[: len(example)]  # the first questions, as the offline demo answers them
    assert all(set(label.verdicts) == set(labels.QUESTIONS) for label in example.values())
    assert set(labels.criteria(SCORERS)) == set(labels.QUESTIONS)  # one question per judge of the talk


# --- compare: a winner only on trusted evidence, and only when clearly better ------------------------


@pytest.mark.entry_point("llmops_project", "compare")
def test_compare_decides_on_the_code_scorers_when_no_judge_was_reviewed(mlflow_store, llm_server):
    """Two token budgets: the 8-token answers are cut short, which the exact code scorer
    enough_words catches; the judges, never reviewed, are shown and set aside."""
    register_prompts_in_process()
    result = run_project(
        mlflow_store,
        PROJECT,
        "compare",
        {"templates": "basic", "max_tokens": "8,500", "max_questions": 6, "concurrency": 3},
        experiment_name="compare-test",
    )
    parent = result.run
    assert parent.info.status == "FINISHED"
    long, short = "basic @ gpt-4.1-mini (500 tokens)", "basic @ gpt-4.1-mini (8 tokens)"
    assert parent.data.tags["decision"] == f"winner: {long}"
    assert "sign test p = 0.016" in parent.data.tags["decision_reason"]
    assert "on enough_words, not_too_many_words" in parent.data.tags["decision_reason"]
    assert parent.data.tags["decision_rule"] == decision.RULE
    assert parent.data.params["trusted_scorers"] == "enough_words not_too_many_words"
    assert parent.data.params["set_aside_judges"] == " ".join(JUDGES)
    assert {parent.data.tags[f"set_aside.{judge}"] for judge in JUDGES} == {NEVER_REVIEWED}
    assert "  set aside   correctness                    never reviewed" in result.stdout
    children = {r.info.run_name: r for r in result.children_of(parent)}
    assert set(children) == {"basic-gpt-4.1-mini-500-tokens", "basic-gpt-4.1-mini-8-tokens"}
    for child in children.values():
        assert child.info.status == "FINISHED"
        assert (child.data.metrics["successful"], child.data.metrics["judge_calls"]) == (6, 30)
        assert_totals_match_traces(child, traces_of(child))
    short_answers = answers_csv(mlflow_store, children["basic-gpt-4.1-mini-8-tokens"])
    assert {len(a.split()) for a in short_answers["answer"]} == {8}  # what a student sees when opening them

    table = artifact_table(parent, "comparison.csv")
    assert table["candidate"].tolist() == [long, short]
    assert table["max_tokens"].tolist() == [500, 8]
    assert table["overall_score"].tolist() == [1.0, 0.5]
    assert table["enough_words/mean"].tolist() == [1.0, 0.0]
    assert table["correctness/mean"].tolist() == [1.0, 1.0]  # shown, not counted
    assert set(table["set_aside"]) == {"; ".join(f"{judge}: {NEVER_REVIEWED}" for judge in JUDGES)}
    artifacts = {f.path for f in mlflow_store.client.list_artifacts(parent.info.run_id)}
    assert {"comparison.csv", "comparison.png"} <= artifacts

    # Each candidate is an app version (LoggedModel) that its traces link to; the winner is tagged.
    models = {
        m.name: m for m in mlflow.search_logged_models(experiment_ids=[parent.info.experiment_id], output_format="list")
    }
    assert set(models) == {"quiz-basic-v1-gpt-4_1-mini-500-tokens", "quiz-basic-v1-gpt-4_1-mini-8-tokens"}
    winner = models["quiz-basic-v1-gpt-4_1-mini-500-tokens"]
    assert winner.tags["quiz.decision"] == "winner"
    assert models["quiz-basic-v1-gpt-4_1-mini-8-tokens"].tags["quiz.decision"] == "compared"
    linked = mlflow.search_traces(locations=[parent.info.experiment_id], model_id=winner.model_id, return_type="list")
    answers = answers_csv(mlflow_store, children["basic-gpt-4.1-mini-500-tokens"])
    assert set(answers["trace_id"]) <= {t.info.trace_id for t in linked}
    # The winning prompt version gets @champion, explicitly; the next command reviews its answers.
    assert mlflow_store.client.get_prompt_version_by_alias("basic", "champion").version == 1
    assert "@champion is now basic v1 (was none), which won with gpt-4.1-mini, max_tokens 500" in result.stdout
    # ... and what it won with, which the alias alone does not say: here the budget decided, not the prompt
    assert mlflow_store.client.get_prompt_version("basic", 1).tags["quiz.won_with"] == "gpt-4.1-mini, max_tokens 500"
    assert f"generation_run_id={children['basic-gpt-4.1-mini-500-tokens'].info.run_id}" in result.stdout
    assert "-e review" in result.stdout


def review_correctness(store, run_id: str, experiment: str, tmp_path, reviewer: str, agree: bool) -> None:
    """A review of correctness of the 8 answers of ``run_id`` (the judge said no to questions 3 and 6)
    by ``reviewer``, agreeing with the judge on every answer (kappa 1), or saying yes to every one, as
    a judge that always says yes would: then agreement 6/8, chance 1 * 6/8 + 0 * 2/8 = 0.75, kappa
    (0.75 - 0.75) / (1 - 0.75) = 0: no better than chance."""
    questions = [r["Question"] for r in project_questions()[:8]]
    judge_says = {n: n not in (3, 6) for n in range(1, 9)}
    verdict = {n: ("yes" if judge_says[n] or not agree else "no") for n in judge_says}
    rows = [{"question": q, "correctness": verdict[n]} for n, q in enumerate(questions, start=1)]
    path = write_labels(tmp_path / f"{reviewer}.csv", rows, names=["correctness"])
    params = {"generation_run_id": run_id, "labels": str(path), "reviewer": reviewer}
    run_script(store, f"{PROJECT}/review.py", params=params, env={"MLFLOW_EXPERIMENT_NAME": experiment})


def test_a_judge_review_trusts_decides_and_the_same_judge_at_kappa_0_is_set_aside(mlflow_store, llm_server, tmp_path):
    """basic's answers are long enough but marked UNSURE, so only the correctness judge tells the two
    templates apart: trusted (kappa 1 on 8 answers) it makes practical win; measured again at
    kappa 0 it is set aside, and the decision changes to no clear winner."""
    compare = f"{PROJECT}/compare.py"
    options = ("--templates", "basic,practical", "--max-questions", "6", "--concurrency", "3")
    where = {"MLFLOW_EXPERIMENT_NAME": "trust"}

    run_id = generate_and_judge(mlflow_store, llm_server, "trust", 8, unsure=[3, 6])
    review_correctness(mlflow_store, run_id, "trust", tmp_path, "ada", agree=True)
    llm_server.answers = {}
    llm_server.prompt_answers = {BASIC_PROMPT: "{answer} " + UNSURE}
    trusted = run_script(mlflow_store, compare, *options, env=where).run
    assert trusted.data.params["trusted_scorers"] == "enough_words not_too_many_words correctness"
    assert trusted.data.tags["decision"] == "winner: practical @ gpt-4.1-mini"
    assert "set_aside.correctness" not in trusted.data.tags
    assert trusted.data.tags["set_aside.english"] == NEVER_REVIEWED

    review_correctness(mlflow_store, run_id, "trust", tmp_path, "bob", agree=False)  # the same answers, again
    llm_server.answers = {}
    llm_server.prompt_answers = {BASIC_PROMPT: "{answer} " + UNSURE}
    aside = run_script(mlflow_store, compare, *options, env=where).run
    assert aside.data.params["trusted_scorers"] == "enough_words not_too_many_words"
    assert aside.data.tags["set_aside.correctness"] == (
        f"kappa 0.00 on 8 answers (needs >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED}); not asked"
    )
    # Not asked: no correctness verdict on any answer of either candidate; the unreviewed judges still are
    table = artifact_table(aside, "comparison.csv")
    assert "correctness/mean" not in table
    assert "english/mean" in table
    for child in mlflow_store.client.search_runs(
        [aside.info.experiment_id], f"tags.mlflow.parentRunId = '{aside.info.run_id}'"
    ):
        assert child.data.metrics["judge_calls"] == 6 * (len(JUDGES) - 1)
        judged = {a.name for t in traces_of(child) for a in t.info.assessments}
        assert "correctness" not in judged
        assert "english" in judged
    assert aside.data.tags["decision"] == "no clear winner"
    assert "is tied with" in aside.data.tags["decision_reason"]
    assert mlflow.genai.load_prompt("prompts:/practical@champion", cache_ttl_seconds=0).version == 1  # unchanged


def test_compare_never_picks_a_candidate_with_a_failed_question(mlflow_store, llm_server):
    register_prompts_in_process()
    question = project_questions()[1]["Question"]
    llm_server.prompt_answers = {BASIC_PROMPT: "Too short."}  # enough_words catches it: basic scores 0.5
    llm_server.fail_prompts = [f"{question}\n\nDifficulty: 1/4\n\n{PRACTICAL_PROMPT}"]  # practical, question 2
    result = run_script(
        mlflow_store,
        f"{PROJECT}/compare.py",
        *("--templates", "basic,practical", "--max-questions", "6"),
    )
    parent = result.run
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["decision"] == "no clear winner"
    assert "practical @ gpt-4.1-mini, has failed questions [2]: it cannot win" in parent.data.tags["decision_reason"]
    assert "winner" not in parent.data.tags
    assert mlflow.genai.load_prompt("prompts:/practical@champion", allow_missing=True, cache_ttl_seconds=0) is None
    assert "@champion unchanged (no clear winner)" in result.stdout


def test_compare_bad_input_is_one_line_and_no_run_left_running(mlflow_store, llm_server):
    register_prompts_in_process()
    unknown = refused_in_process(mlflow_store, f"{PROJECT}/compare.py", "--templates", "basic,poetic")
    [line] = error_lines(unknown)
    assert line.startswith("error: argument --templates: unknown name 'poetic' in 'basic,poetic' (choose from ")
    assert unknown.runs == []
    budgets = refused_in_process(mlflow_store, f"{PROJECT}/compare.py", "--max-tokens", "8,lots")
    [line] = error_lines(budgets)
    assert "'8,lots' is not a comma-separated list of whole numbers >= 1, e.g. 8,500" in line
    assert budgets.runs == []
    # No answer at all (provider unreachable): the candidate's run and the comparison end FAILED.
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    down = run_script(
        mlflow_store,
        f"{PROJECT}/compare.py",
        *("--templates", "basic", "--max-questions", "1"),
        env=env,
        expect_success=False,
    )
    [line] = error_lines(down)
    assert "no question was answered" in line
    assert {r.info.status for r in down.runs} == {"FAILED"}
    assert len(down.runs) == 2

"""llmops_project's improvement loop: ``align`` (a judge taught by a reviewer's labels, registered,
measured before and after on held-out answers), ``compare -P judges=aligned`` (the trust rule
applied to it), and ``optimize`` (optimize_prompts on the champion, a tagged new prompt version, the
comparison on held-out questions), against the deterministic test server. Mechanism only: the
stand-in's verdicts and rewrites are scripted, so no figure here says anything about quality.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
from mlflow.entities import AssessmentError, AssessmentSource, Feedback
from mlflow.genai.judges import make_judge
from mlflow.genai.scorers import list_scorers

from devtools.openai_server import REWRITE
from tests import examples
from tests.harness import run_project, run_script
from tests.llmops import (
    PROJECT,
    PROJECT_DIR,
    artifact_table,
    decision,
    error_lines,
    generate_and_judge,
    labels,
    project_questions,
    refused_in_process,
    register_prompts_in_process,
    write_labels,
)

BASIC_PROMPT = "Be concise but comprehensive."  # text of prompts/basic.txt only
ALIGNED = "correctness_aligned_to_ada"
MODEL = "openai:/gpt-4.1-mini"


def review(
    store, experiment: str, run_id: str, tmp_path, verdicts: dict[int, str], reviewer: str = "ada", english=None
) -> None:
    """ada's correctness verdicts on the answers to the questions numbered in ``verdicts`` (and her
    english verdicts on those numbered in ``english``)."""
    questions = [r["Question"] for r in project_questions()]
    english = english or {}
    rows = [
        {"question": questions[n - 1], "correctness": verdicts.get(n, ""), "english": english.get(n, "")}
        for n in sorted({*verdicts, *english})
    ]
    path = write_labels(tmp_path / f"{reviewer}.csv", rows, names=["correctness", "english"])
    params = {"generation_run_id": run_id, "labels": str(path), "reviewer": reviewer}
    run_script(store, f"{PROJECT}/review.py", params=params, env={"MLFLOW_EXPERIMENT_NAME": experiment})


# align's optimizers need the optional extra requirements-align.txt. Marked `align`: make test-all (CI) runs
# them, make test leaves them out even where make demo installed the extra (its time target: README, "Tests").
_skip_without_extra = pytest.mark.skipif(
    importlib.util.find_spec("dspy") is None, reason="the align extra is not installed: make align-install"
)


def needs_align_extra(test):
    return pytest.mark.align(_skip_without_extra(test))


@needs_align_extra
@pytest.mark.entry_point("llmops_project", "align")
def test_align_registers_an_aligned_judge_measured_before_and_after_and_compare_applies_the_trust_rule(
    mlflow_store, llm_server, tmp_path
):
    """8 answers judged (the judges say no to questions 3 and 6), labelled by ada; align splits them
    by question, aligns correctness with MemAlign on one half and measures on the other. First, with
    english too, which ada labelled on two held-out questions only: one line, before any judge is
    aligned, so nothing is registered."""
    run_id = generate_and_judge(mlflow_store, llm_server, "align-test", 8, unsure=[3, 6])
    correctness = {n: "no" if n in (2, 3, 6) else "yes" for n in range(1, 9)}
    review(mlflow_store, "align-test", run_id, tmp_path, correctness, english={4: "yes", 5: "yes"})

    where = {"MLFLOW_EXPERIMENT_NAME": "align-test"}
    both = run_script(
        mlflow_store, f"{PROJECT}/align.py", "--judges", "correctness,english", env=where, expect_success=False
    )
    [line] = error_lines(both)  # memalign is in use: no other optimizer to suggest
    assert line == (
        "error: english has 0 labelled answer(s) to align on and memalign needs 1. "
        "Review about 2 more answer(s) of other questions with review"
    )
    assert {r.info.status for r in both.runs} == {"FAILED"}
    assert list_scorers(experiment_id=both.run.info.experiment_id) == []  # correctness, fine, not aligned either

    result = run_project(
        mlflow_store, PROJECT, "align", {"judges": "correctness", "reviewer": "ada"}, experiment_name="align-test"
    )
    run = result.run
    assert run.info.status == "FINISHED"
    assert run.data.tags["quiz.step"] == "alignment"
    metrics = run.data.metrics
    assert metrics["correctness/aligned_on"] + metrics["correctness/held_out"] == 8
    assert metrics["correctness/held_out"] == 4  # the split holds out half the questions, seeded
    assert run.data.params["optimizer"] == "memalign"

    # before and after, per judge (judge_alignment.csv); the aligned judge's measurement as review records one
    table = artifact_table(run, "judge_alignment.csv")
    assert table["when"].tolist() == ["before", "after"]
    assert table["judge"].tolist() == ["correctness", ALIGNED]
    assert set(table["labelled"]) == {4}
    assert table["judge_errors"].tolist() == [0, 0]
    for row in table.itertuples():  # the metrics read back from the run are the table's figures
        assert metrics[f"correctness/{row.when}_agreement"] == pytest.approx(row.agreement)
        assert metrics[f"correctness/{row.when}_kappa"] == pytest.approx(row.kappa)
    measured = artifact_table(run, labels.AGREEMENT_ARTIFACT)
    assert measured["judge"].tolist() == [ALIGNED]
    assert labels.measurements(run.info.experiment_id)[(ALIGNED, "openai:/gpt-4.1-mini")].run_id == run.info.run_id
    # The printed split and tables, in review's words
    assert "Labelled answers split by question (seed 42, 50% held out):" in result.stdout
    assert "Before: the judges, not aligned, on the held-out answers" in result.stdout
    assert "trusted by compare?" in result.stdout
    assert "-e optimize --env-manager=local --experiment-name align-test . -P max_questions=8" in result.stdout
    assert "-P held_out=0.75 -P judges=aligned" in result.stdout

    # Registered in the experiment (UI: Judges), under a name saying it is aligned and to whom
    assert [s.name for s in list_scorers(experiment_id=run.info.experiment_id)] == [ALIGNED]
    assert llm_server.embedding_requests  # MemAlign remembered the labelled examples by their embeddings

    # compare with the aligned judge in place of the talk's correctness: trusted only if measured well
    # enough, and 4 held-out answers are fewer than the rule's minimum. (One candidate, 2 questions: the
    # mechanism, cheaply.)
    llm_server.requests.clear()
    compare = run_script(
        mlflow_store,
        f"{PROJECT}/compare.py",
        *("--templates", "basic", "--max-questions", "2", "--judges", "aligned"),
        env={"MLFLOW_EXPERIMENT_NAME": "align-test"},
    ).run
    assert compare.info.status == "FINISHED"
    assert compare.data.params["judges"] == "aligned"
    assert compare.data.tags[f"set_aside.{ALIGNED}"].endswith(
        f"on 4 answers (needs >= {decision.MIN_KAPPA} on >= {decision.MIN_LABELLED})"
    )
    assert "set_aside.correctness" not in compare.data.tags  # replaced by the aligned one
    table = artifact_table(compare, "comparison.csv")
    assert f"{ALIGNED}/mean" in table
    assert table["judge_errors"].tolist() == [0]
    # loaded back from the registry with its memory: its prompts hold the labelled examples it recalls
    assert any("Example Judgements" in str(r["messages"]) for r in llm_server.chat_requests("judge"))


def test_align_measures_a_judge_as_review_does_leaving_errored_verdicts_out():
    """A verdict that came back with an error is left out of the agreement (labels.pairs, as review
    counts), not counted as "no"; nor does the verdict evaluate_responses left on the trace stand in
    for it. Only the count of errors is kept."""
    [alignment] = examples.load(PROJECT, "quiz.alignment")
    judge_model = "openai:/gpt-4.1-mini"

    def verdict(name, source, value=None, error=None):
        return Feedback(name=name, value=value, error=error, source=AssessmentSource(*source))

    evaluated = ("LLM_JUDGE", judge_model)
    traces = [  # ada's verdict, and the one evaluate_responses logged (yes)
        SimpleNamespace(
            info=SimpleNamespace(
                assessments=[verdict("correctness", ("HUMAN", "ada"), h), verdict("correctness", evaluated, True)]
            )
        )
        for h in (True, False, True)
    ]
    said = iter(
        [
            verdict(ALIGNED, evaluated, True),
            verdict(ALIGNED, evaluated, error=AssessmentError(error_code="TIMEOUT", error_message="timed out")),
            verdict(ALIGNED, evaluated, False),
        ]
    )

    class Judge:
        name, model = ALIGNED, judge_model

        def __call__(self, trace):
            return next(said)

    found = alignment.measured(Judge(), pd.DataFrame({"trace": traces}), "ada")
    assert found.errors == 1
    assert found.table.to_dict("records") == [
        {
            "judge": ALIGNED,
            "judge_model": judge_model,
            "labelled": 2,
            "agreement": 0.5,
            "kappa": 0.0,
            "human_yes": 2,
            "judge_yes": 1,
        }
    ]
    assert [len(t.info.assessments) for t in traces] == [2, 2, 2]  # the traces themselves unchanged
    rows = alignment.alignment_rows("correctness", "memalign", 4, {"after": found})
    assert rows[0]["judge_errors"] == 1
    assert "timed out" not in str(rows)


def test_the_printed_agreement_table_fits_the_longest_judge_name_and_names_its_file(capsys):
    """An aligned judge's name (here 33 characters) widens the judge column; align's "Before" table
    names the artifact that holds it, and has no "trusted by compare?" column: compare never uses
    the judges it measures."""
    name = "correctness_aligned_to_instructor"
    table = labels.agreement_table({(name, "openai:/gpt-4.1-mini"): [(True, True), (False, True)]})
    labels.print_agreement(table, "instructor", "Before", artifact="judge_alignment.csv", trusted_column=False)
    _, title, header, row, *_ = capsys.readouterr().out.splitlines()
    assert title == "Before (instructor's latest verdict per answer; judge_alignment.csv on the run):"
    assert header.index("model") == row.index("openai:/") == len(f"  {name} ")
    assert header.endswith("kappa")
    assert row.endswith("0.00")
    labels.print_agreement(table, "instructor")
    assert capsys.readouterr().out.splitlines()[2].endswith("kappa  trusted by compare?")


def test_an_aligned_judge_is_trusted_on_the_measurement_of_its_latest_alignment_only(mlflow_store):
    """Measured well by one align run: trusted. Aligned again by a run that stopped before measuring
    it, or that measured nothing (every held-out verdict an error): its newest version is unmeasured,
    so it is set aside, whatever the older run measured."""
    judge = make_judge(name=ALIGNED, instructions="Is {{ outputs }} correct?", model=MODEL, feedback_value_type=bool)
    client = mlflow_store.client
    experiment_id = client.create_experiment("trust-aligned")
    well = {"judge": ALIGNED, "judge_model": MODEL, "labelled": 10, "agreement": 0.9, "kappa": 0.8}

    def align_run(started: int, status: str, rows: list[dict]) -> str:
        tags = {"quiz.step": labels.ALIGNMENT_STEP, labels.REGISTERED_TAG + ALIGNED: MODEL}
        run_id = client.create_run(experiment_id, start_time=started, tags=tags).info.run_id
        table = pd.DataFrame(rows, columns=labels.COLUMNS)
        client.log_text(run_id, table.to_csv(index=False), labels.AGREEMENT_ARTIFACT)
        client.set_terminated(run_id, status)
        return run_id

    align_run(1_000, "FINISHED", [well | {"human_yes": 5, "judge_yes": 5}])
    trust = decision.trusted([judge], labels.measurements(experiment_id))
    assert (trust.kept, trust.why_kept[ALIGNED]) == ([ALIGNED], "kappa 0.80 on 10 answers")

    for started, status in [(2_000, "FAILED"), (3_000, "FINISHED")]:  # stopped after registering; measured nothing
        run_id = align_run(started, status, [])
        trust = decision.trusted([judge], labels.measurements(experiment_id))
        assert trust.kept == []
        assert trust.set_aside[ALIGNED] == f"not measured since its latest alignment (run {run_id[:8]})"


def test_offline_metaprompt_is_asked_for_a_template_keeping_the_variables_in_their_order():
    """The reflection answer's shape, sent to the offline server only: {"basic": "<template>"}, the
    template holding basic's variables in their order (MLflow refuses one that lost a variable)."""
    [optimization] = examples.load(PROJECT, "quiz.optimization")
    prompt = SimpleNamespace(name="basic", template=(PROJECT_DIR / "prompts" / "basic.txt").read_text())
    shape = optimization.reflection_format(prompt)
    schema = shape["json_schema"]["schema"]
    assert (schema["required"], schema["additionalProperties"]) == (["basic"], False)
    template = re.compile(schema["properties"]["basic"]["pattern"])
    assert template.fullmatch("Category {{category}}: answer {{question}} at level {{weight}} of 4.")
    assert not template.fullmatch("Answer {{question}} for {{category}} at {{weight}}.")  # another order
    assert not template.fullmatch("Answer {{question}} at level {{weight}}.")  # a variable lost
    assert not template.fullmatch('Say "{{category}}" then {{question}} at {{weight}}')  # a quote
    offline = optimization.optimizer("metaprompt", "openai:/gpt-4.1-mini", 2, prompt, offline=True)
    assert offline.lm_kwargs["response_format"] == shape
    online = optimization.optimizer("metaprompt", "openai:/gpt-4.1-mini", 2, prompt)
    assert "response_format" not in online.lm_kwargs


@pytest.mark.entry_point("llmops_project", "optimize")
def test_optimize_registers_a_tagged_version_and_lets_the_comparison_move_the_champion(mlflow_store, llm_server):
    """The stand-in rewrites the prompt (its template + REWRITE) and answers the rewritten one in full,
    the original too briefly: on the 6 held-out questions the optimized version wins, and becomes
    @champion."""
    register_prompts_in_process()
    llm_server.prompt_answers = {REWRITE: "{answer}", BASIC_PROMPT: "Too short."}
    result = run_project(
        mlflow_store,
        PROJECT,
        "optimize",
        {"template": "basic", "max_questions": 8, "held_out": 0.75, "concurrency": 3},
        experiment_name="optimize-test",
    )
    run = result.run
    assert run.info.status == "FINISHED"
    new = mlflow_store.client.get_prompt_version("basic", 2)
    assert new.template.endswith(REWRITE)
    origin = {k: v for k, v in new.tags.items() if k.startswith("quiz.") and k != "quiz.won_with"}  # that one below
    assert origin == {
        "quiz.optimized_from": "basic v1",
        "quiz.optimizer": "MetaPromptOptimizer",
        "quiz.optimize_run": run.info.run_id,
        "quiz.template_changed": "true",
    }
    assert run.data.params["trusted_scorers"] == "enough_words not_too_many_words"
    children = {r.info.run_name: r for r in result.children_of(run)}
    assert set(children) == {"metaprompt-basic-v1", "basic-v1-gpt-4.1-mini", "basic-v2-gpt-4.1-mini"}
    assert children["metaprompt-basic-v1"].data.params["num_training_samples"] == "2"
    assert children["basic-v2-gpt-4.1-mini"].data.metrics["total_questions"] == 6  # the held-out questions
    assert run.data.tags["decision"] == "winner: basic v2 @ gpt-4.1-mini"
    assert mlflow_store.client.get_prompt_version_by_alias("basic", "champion").version == 2
    assert "@champion is now basic v2 (was none), which won with gpt-4.1-mini, max_tokens 500" in result.stdout
    assert mlflow_store.client.get_prompt_version("basic", 2).tags["quiz.won_with"] == "gpt-4.1-mini, max_tokens 500"
    optimized_answers = children["basic-v2-gpt-4.1-mini"].info.run_id  # next: review them
    assert (
        f"-e review --env-manager=local --experiment-name optimize-test . -P generation_run_id={optimized_answers}"
        in (result.stdout)
    )


def test_optimize_says_when_the_optimizer_changed_nothing(mlflow_store, llm_server):
    """MetaPrompt's answer unusable (the judges' JSON): MLflow registers the same template as a new
    version all the same; optimize tags it so, says so, and compares nothing."""
    register_prompts_in_process()
    llm_server.rewrite_prompts = False
    result = run_script(
        mlflow_store, f"{PROJECT}/optimize.py", "--template", "basic", "--max-questions", "4", "--held-out", "0.5"
    )
    run = result.run
    assert run.info.status == "FINISHED"
    assert mlflow_store.client.get_prompt_version("basic", 2).tags["quiz.template_changed"] == "false"
    assert run.data.tags["decision"] == "no comparison: the template did not change"
    assert "changed nothing (MLflow registers a version all the same). Nothing to compare." in result.stdout
    assert "Next, try gepa, or more questions to optimize on:" in result.stdout
    assert "-e optimize --env-manager=local --experiment-name Default . -P template=basic -P optimizer=gepa" in (
        result.stdout
    )
    assert mlflow.genai.load_prompt("prompts:/basic@champion", allow_missing=True, cache_ttl_seconds=0) is None


@needs_align_extra  # gepa is in the align extra
def test_optimize_with_gepa_registers_a_version_tagged_with_it(mlflow_store, llm_server):
    """GEPA, named: every train answer already passes the trusted code scorers, so it has nothing to
    reflect on and keeps the template; the version is registered and tagged all the same."""
    register_prompts_in_process()
    result = run_script(
        mlflow_store, f"{PROJECT}/optimize.py", *("--template", "basic", "--optimizer", "gepa", "--max-questions", "4")
    )
    assert result.run.info.status == "FINISHED"
    tags = mlflow_store.client.get_prompt_version("basic", 2).tags
    assert (tags["quiz.optimizer"], tags["quiz.template_changed"]) == ("GepaPromptOptimizer", "false")
    assert "-P optimizer=metaprompt -P max_questions=8" in result.stdout  # what to try next


@needs_align_extra
def test_align_with_gepa_registers_and_measures_the_judge_it_rewrote(mlflow_store, llm_server, tmp_path):
    """GEPA, named: it needs 10 labelled answers to learn from (here 10 of 13, -P held_out=0.2). The
    judge it rewrites is registered, loaded back and measured on the 3 held out, as MemAlign's is."""
    run_id = generate_and_judge(mlflow_store, llm_server, "align-gepa", 13, unsure=[3, 6])
    review(mlflow_store, "align-gepa", run_id, tmp_path, {n: "no" if n in (2, 3, 6) else "yes" for n in range(1, 14)})
    options = ("--judges", "correctness", "--reviewer", "ada", "--optimizer", "gepa", "--held-out", "0.2")
    run = run_script(mlflow_store, f"{PROJECT}/align.py", *options, env={"MLFLOW_EXPERIMENT_NAME": "align-gepa"}).run
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert (metrics["correctness/aligned_on"], metrics["correctness/held_out"]) == (10, 3)
    assert [s.name for s in list_scorers(experiment_id=run.info.experiment_id)] == [ALIGNED]
    table = artifact_table(run, "judge_alignment.csv")
    assert table["judge"].tolist() == ["correctness", ALIGNED]
    assert set(table["labelled"]) == {3}
    assert set(table["optimizer"]) == {"gepa"}
    assert labels.measurements(run.info.experiment_id)[(ALIGNED, MODEL)].run_id == run.info.run_id


@needs_align_extra
def test_align_bad_input_is_one_line_no_run_left_running_and_nothing_registered(mlflow_store, llm_server, tmp_path):
    align = f"{PROJECT}/align.py"
    where = {"MLFLOW_EXPERIMENT_NAME": "bad"}
    # An unknown judge: argparse, before any run
    unknown = run_script(mlflow_store, align, "--judges", "correctnes", env=where, expect_success=False)
    [line] = error_lines(unknown)
    assert line.startswith("error: argument --judges: unknown name 'correctnes' in 'correctnes' (choose from ")
    assert unknown.runs == []

    # No reviewed answer in the experiment
    register_prompts_in_process()
    none = run_script(mlflow_store, align, env=where, expect_success=False)
    [line] = error_lines(none)
    assert line.startswith("error: no answer of this experiment was reviewed yet")
    assert line.endswith(
        'first: mlflow run -e review --env-manager=local --experiment-name bad . -P generation_run_id="<ID>"'
    )
    assert {r.info.status for r in none.runs} == {"FAILED"}

    # Two labelled answers: the held-out part (1 question) is too small; SIMBA needs 10 to align on
    generated = run_script(mlflow_store, f"{PROJECT}/generate_answers.py", "--max-questions", "2", env=where)
    review(mlflow_store, "bad", generated.run.info.run_id, tmp_path, {1: "yes", 2: "no"})
    llm_server.serve_embeddings = False  # a provider without /v1/embeddings: MemAlign cannot run there
    no_embeddings = run_script(mlflow_store, align, env=where, expect_success=False)
    [line] = error_lines(no_embeddings)
    assert line.startswith(f"error: MemAlign needs embeddings, and {llm_server.base_url}/embeddings did not give them")
    assert no_embeddings.runs == []
    llm_server.serve_embeddings = True
    small = run_script(mlflow_store, align, env=where, expect_success=False)
    [line] = error_lines(small)
    assert line.startswith("error: the held-out part has 1 labelled answer(s) on correctness; measuring a judge needs")
    assert {r.info.status for r in small.runs} == {"FAILED"}
    simba = run_script(mlflow_store, align, "--optimizer", "simba", env=where, expect_success=False)
    [line] = error_lines(simba)
    assert "correctness has 1 labelled answer(s) to align on and simba needs 10. Review about 18 more" in line
    assert line.endswith("or use -P optimizer=memalign, which learns from 1")
    assert list_scorers(experiment_id=small.run.info.experiment_id) == []  # nothing registered


def test_optimize_and_compare_bad_input_is_one_line_no_run_left_running_and_nothing_registered(
    mlflow_store, llm_server
):
    optimize = f"{PROJECT}/optimize.py"
    where = {"MLFLOW_EXPERIMENT_NAME": "bad"}
    register_prompts_in_process()
    # A held-out part too small: before any run
    few = refused_in_process(mlflow_store, optimize, "--max-questions", "3", "--held-out", "0.3", env=where)
    [line] = error_lines(few)
    assert line.startswith("error: 3 question(s) split into 2 to optimize on and 1 held out")
    assert few.runs == []
    # No champion to start from
    no_champion = run_script(mlflow_store, optimize, env=where, expect_success=False)
    [line] = error_lines(no_champion)
    assert line.startswith("error: no prompt template has the alias @champion yet")
    assert "(mlflow run -e compare --env-manager=local --experiment-name bad . -P templates=basic,practical)" in line
    assert {r.info.status for r in no_champion.runs} == {"FAILED"}
    assert len(mlflow_store.client.search_prompt_versions("basic")) == 1  # nothing registered

    # compare -P judges=aligned: no aligned judge registered (or, without the extra, the extra missing)
    aligned = run_script(mlflow_store, f"{PROJECT}/compare.py", "--judges", "aligned", env=where, expect_success=False)
    [line] = error_lines(aligned)
    if importlib.util.find_spec("dspy") is None:
        assert line.startswith("error: judging with an aligned judge needs dspy, of the optional extra")
        assert aligned.runs == []
    else:
        assert line.startswith("error: no aligned judge is registered in this experiment")
        assert "mlflow run -e align --env-manager=local --experiment-name bad . -P judges=correctness," in line
        assert {r.info.status for r in aligned.runs} == {"FAILED"}


LITELLM_SET_ASIDE = """
from quiz import provider
from mlflow.genai.judges.adapters.litellm_adapter import _is_litellm_available
provider.require_api_key()  # every LLM entry point's first call
print(_is_litellm_available())  # MLflow's judges, and its pricing of traced calls, do without it
provider.before_litellm_calls()  # align, optimize, compare -P judges=aligned
print(_is_litellm_available())
"""


@needs_align_extra
def test_litellm_is_set_aside_until_a_step_that_needs_it_asks():
    """Installed for align, litellm would change every other LLM step (MLflow's judges go through it, and
    it is imported, 2.8 s of CPU, to price each traced call): set aside until asked for."""
    env = {**os.environ, "OPENAI_API_KEY": "test-key"}
    env.pop("OPENAI_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", LITELLM_SET_ASIDE], cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.stdout.split() == ["False", "True"], done.stderr[-3000:]

"""present.py's LLM steps (register the prompts, generate, evaluate, review, compare, align, optimize,
the agent), straight through on a temporary store, against the repository's OpenAI-compatible test server.
test_present.py and test_present_census.py walk the other parts, on other pytest workers."""

from __future__ import annotations

import importlib.util
import re

import pytest
from mlflow.entities import ViewType
from mlflow.genai.scorers import list_scorers

import present as present_py
from tests import presenting
from tests.fixtures_llm import FakeOpenAIServer

PART = "llm"


@pytest.fixture(scope="module")
def walk(module_store, tmp_path_factory):
    """The part's steps once for the module, with the test server as the provider the environment gives."""
    llm = FakeOpenAIServer().start()
    try:
        done, links = presenting.walk(
            PART,
            tmp_path_factory.mktemp("walk") / "links.txt",
            env={"OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": "test-key"},
        )
    finally:
        llm.stop()
    return done, links, llm


def test_the_llm_half_runs_every_step_against_the_provider_the_environment_gives(module_store, walk):
    done, links, llm = walk
    presenting.assert_the_part_walked(PART, done, links)
    assert presenting.steps_of(PART)[-1] == len(present_py.STEPS)
    runs = module_store.all_runs()
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert {"compare", "evaluate", "review-instructor", "optimize-champion"} <= {r.info.run_name for r in runs}
    assert module_store.client.get_prompt_version_by_alias("basic", "production")
    # review measured the judges first (8 labelled answers; the test server's judges, saying yes to all, no
    # better than chance); compare set them aside, did not ask them, and decided on the code scorers: the
    # 8-token budget cuts every answer short of enough_words' 10 words.
    [compare] = [r for r in runs if r.info.run_name == "compare"]
    assert compare.data.params["judges"] == "talk"
    assert compare.data.tags["set_aside.correctness"].startswith("kappa ")  # measured by the walk's review
    assert compare.data.tags["set_aside.correctness"].endswith("; not asked")
    candidates = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == compare.info.run_id]
    assert [r.data.metrics["judge_calls"] for r in candidates] == [0, 0]
    assert compare.data.tags["decision"] == "winner: basic @ gpt-4.1-mini (500 tokens)"
    assert compare.data.params["trusted_scorers"] == "enough_words not_too_many_words"
    # align taught correctness the instructor's labels (MemAlign, through the provider's embeddings) and
    # registered it, when its optional extra is installed (make demo and make test-all install it); then
    # optimize, with that aligned judge in place of correctness, set it aside too (measured on 4
    # held-out answers).
    [optimize] = [r for r in runs if r.info.run_name == "optimize-champion"]
    if importlib.util.find_spec("dspy") is not None:
        [align] = [r for r in runs if r.info.run_name == "align-instructor"]
        assert {"correctness/before_agreement", "correctness/after_agreement"} <= set(align.data.metrics)
        aligned = list_scorers(experiment_id=align.info.experiment_id)
        assert [s.name for s in aligned] == ["correctness_aligned_to_instructor"]
        assert llm.embedding_requests
        assert optimize.data.params["judges"] == "aligned"
        assert optimize.data.tags["set_aside.correctness_aligned_to_instructor"].startswith("kappa ")
        assert optimize.data.tags["set_aside.correctness_aligned_to_instructor"].endswith(
            " on 4 answers (needs >= 0.4 on >= 8)"
        )
    else:
        assert "it needs dspy, of an optional extra not installed here: make align-install" in done.stdout
        assert optimize.data.params["judges"] == "talk"
    # optimize rewrote basic v1 (the champion) into v2, tagged, and compared the two on held-out
    # questions: the test server answers both alike, so no clear winner, and @champion stays.
    assert module_store.client.get_prompt_version("basic", 2).tags["quiz.optimized_from"] == "basic v1"
    assert optimize.data.tags["decision"] == "no clear winner"
    assert module_store.client.get_prompt_version_by_alias("basic", "champion").version == 1
    assert len(llm.chat_requests("judge")) > 0  # the LLM steps went to the provider the environment gave
    # The provider was given, not started: no export line for an offline model is shown.
    assert not re.search(r"^\$ export OPENAI_BASE_URL=", done.stdout, flags=re.MULTILINE)


def test_no_run_lands_in_the_default_experiment(module_store, walk):
    assert module_store.client.search_runs(["0"], run_view_type=ViewType.ALL) == []


def test_every_link_is_a_ui_page_naming_what_exists(module_store, walk):
    presenting.assert_every_link_names_what_exists(module_store, walk[1])

"""The pytest fixture ``llm_server``: the deterministic OpenAI-compatible test server
(``devtools/openai_server.py``), one per test, with the environment pointing at it.

The server's names are re-exported here for the test files (``from tests.fixtures_llm import answer_for``).
"""

from __future__ import annotations

import pytest

from devtools.openai_server import (  # noqa: F401  (re-exported for the test files)
    ANSWER_PREFIX,
    ANSWER_SUFFIX,
    MODEL_ID,
    FakeOpenAIServer,
    answer_for,
    question_of,
)


@pytest.fixture
def llm_server(monkeypatch, tmp_path):
    """A running FakeOpenAIServer; OPENAI_BASE_URL/OPENAI_API_KEY point at it for subprocesses, and
    DSPy (align's optimizers) caches its answers in the test's own folder: a cache shared by tests
    would answer one test's request with another test's server's answer."""
    server = FakeOpenAIServer().start()
    monkeypatch.setenv("DSPY_CACHEDIR", str(tmp_path / "dspy-cache"))
    point_at(server, monkeypatch)
    yield server
    server.stop()


def point_at(server: FakeOpenAIServer, monkeypatch) -> None:
    """OPENAI_BASE_URL and OPENAI_API_KEY name ``server`` for this process and its subprocesses."""
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)

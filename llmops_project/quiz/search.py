"""``search_web`` and ``format_search_results``: what the agent's ``web_search_tool`` (the talk's
listing, in generate_answers_with_agent.py) combines. The search itself has three backends:

* ``ddgs``    - DuckDuckGo through the ``ddgs`` package (needs the internet);
* ``offline`` - ranks a small bundled corpus of reference notes (``corpus/reference_notes.json``,
  each with its real source URL), so the agent flow also runs with no network;
* ``auto``    - ``ddgs`` when DuckDuckGo is reachable, ``offline`` otherwise (also per call, if
  a DuckDuckGo search fails).

``Searcher.choose`` picks one for the run, with the most results a search may return (the
``search_results_count`` parameter); the agent's tool is bound to that searcher, no global state.
"""

from __future__ import annotations

import json
import math
import re
import socket
from collections import Counter
from dataclasses import dataclass

from cli import UserError
from quiz import CORPUS_JSON

BACKENDS = ("auto", "ddgs", "offline")
_WORD = re.compile(r"[a-z0-9_#+.]+")
_STOPWORDS = {
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "by",
    "does",
    "do",
    "for",
    "from",
    "how",
    "in",
    "is",
    "it",
    "of",
    "on",
    "or",
    "the",
    "to",
    "what",
    "which",
    "why",
    "with",
    "you",
    "your",
    "this",
    "that",
    "these",
    "those",
    "their",
    "its",
    "can",
    "may",
    "should",
}


@dataclass(frozen=True)
class SearchResult:
    title: str
    url: str
    snippet: str


def _stem(word: str) -> str:
    """Crude plural folding, enough for 'algorithms' to match 'algorithm'."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _terms(text: str) -> list[str]:
    words = (w.strip(".") for w in _WORD.findall(text.lower()))
    return [_stem(w) for w in words if w and w not in _STOPWORDS]


class OfflineSearch:
    """TF-IDF ranking over the bundled notes (title words count twice)."""

    name = "offline"

    def __init__(self, corpus_path=CORPUS_JSON):
        entries = json.loads(corpus_path.read_text(encoding="utf-8"))
        self.documents = [SearchResult(e["title"], e["url"], e["snippet"]) for e in entries]
        self._terms = [Counter(_terms(d.title) * 2 + _terms(d.snippet)) for d in self.documents]
        frequency = Counter(term for terms in self._terms for term in terms)
        self._idf = {t: math.log(len(self.documents) / n) + 1 for t, n in frequency.items()}

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        query_terms = set(_terms(query))
        scores = [sum(terms[t] * self._idf.get(t, 0) for t in query_terms) for terms in self._terms]
        ranked = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [self.documents[i] for i in ranked if scores[i] > 0][:max_results]


class DuckDuckGoSearch:
    name = "ddgs"

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        from ddgs import DDGS

        hits = DDGS(timeout=10).text(query, max_results=max_results)
        return [SearchResult(h.get("title", ""), h.get("href", ""), h.get("body", "")) for h in hits][:max_results]


class AutoSearch:
    """DuckDuckGo, falling back to the offline corpus for any search that fails."""

    name = "ddgs+offline-fallback"

    def __init__(self):
        self.online, self.offline = DuckDuckGoSearch(), OfflineSearch()

    def search(self, query: str, max_results: int) -> list[SearchResult]:
        try:
            return self.online.search(query, max_results)
        except Exception:
            return self.offline.search(query, max_results)


def internet_reachable(host: str = "duckduckgo.com", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def choose_backend(name: str):
    if name not in BACKENDS:
        raise UserError(f"unknown search backend {name!r}. Use one of {', '.join(BACKENDS)} (-P search_backend=...)")
    if name == "offline" or (name == "auto" and not internet_reachable()):
        return OfflineSearch()
    return DuckDuckGoSearch() if name == "ddgs" else AutoSearch()


@dataclass(frozen=True)
class Searcher:
    """The search of one run: its backend and the most results one search returns (the
    ``search_results_count`` parameter). The agent's ``web_search_tool`` is bound to one."""

    backend: OfflineSearch | DuckDuckGoSearch | AutoSearch
    max_results: int = 3

    @classmethod
    def choose(cls, name: str, max_results: int) -> Searcher:
        """The searcher of backend ``name`` (auto, ddgs, offline)."""
        return cls(choose_backend(name), max_results)

    def search_web(self, query: str, max_results: int = 3) -> list[SearchResult]:
        """The backend's results for ``query``: at least one, at most ``self.max_results``."""
        return self.backend.search(query, max_results=max(1, min(max_results, self.max_results)))


def format_search_results(results: list[SearchResult]) -> str:
    """Markdown: per result, a line '- [title](url)' and a line with the snippet."""
    if not results:
        return "No relevant Web search results."
    lines = [f"- [{r.title}]({r.url}) \n{r.snippet}" for r in results]
    return "Relevant Web search results:\n\n" + "\n".join(lines)

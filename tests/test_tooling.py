"""The maintainer scripts cannot silently rot: every script in benchmarks/ and docs/ (and the stack
checks of tracking_server/check_stack.py) starts, imports what it needs and shows its options.

Each runs ``python <script> --help`` in a fresh interpreter, as a maintainer would; the usage text must
name the script and every ``--option`` its source declares with ``add_argument``. A broken import
(a renamed module, a helper moved out of tests/) fails here instead of in front of the next maintainer.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.harness import REPO_ROOT, venv_env

pytestmark = pytest.mark.e2e  # one fresh interpreter per script (MLflow imports): seconds each

SCRIPTS = sorted(
    [*REPO_ROOT.glob("benchmarks/*.py"), *REPO_ROOT.glob("docs/*.py"), REPO_ROOT / "tracking_server/check_stack.py"]
)


def declared_options(source: str) -> set[str]:
    """The ``--long`` options of every ``add_argument(...)`` call in ``source``."""
    options = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            options |= {
                arg.value
                for arg in node.args
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--")
            }
    return options


def test_every_benchmark_and_docs_script_is_covered():
    names = {p.relative_to(REPO_ROOT).as_posix() for p in SCRIPTS}
    assert {"benchmarks/census_search.py", "benchmarks/llm_generation_loop.py", "docs/ui_tour.py"} <= names
    assert len([n for n in names if n.startswith("benchmarks/")]) >= 6


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_the_script_starts_and_its_help_names_its_options(script):
    options = declared_options(script.read_text(encoding="utf-8"))
    assert options, f"{script.name} declares no --option: is it still an argparse script?"
    completed = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=REPO_ROOT,
        env=venv_env({"PYTHONPATH": ""}),  # as a maintainer runs it: no pytest pythonpath
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    usage = completed.stdout
    assert usage.startswith(f"usage: {script.name}"), usage[:500]
    missing = sorted(option for option in options if option not in usage)
    assert missing == [], f"{script.name} --help does not show {missing}:\n{usage}"

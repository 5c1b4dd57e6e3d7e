"""The GitHub Actions workflow (.github/workflows/ci.yml), checked statically: no runner here.

check-jsonschema validates it and docker-compose.yml against their published schemas (bundled in
the package: offline); zizmor audits the workflow for security problems (offline audits only).
Then the workflow's own contract: least privilege, pinned actions, time limits, and both jobs
running the commands the README names, with the compose job sharing the native stack's checks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness import REPO_ROOT
from tracking_server import check_stack

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
SPEC = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
BIN = Path(sys.executable).parent
SHA_PIN = re.compile(r"^\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")


NATIVE_TESTS = ("test_stack.py", "test_classroom.py")


def steps(job: str) -> list[dict]:
    return SPEC["jobs"][job]["steps"]


def commands(job: str) -> str:
    return "\n".join(step.get("run", "") for step in steps(job))


@pytest.mark.e2e  # check-jsonschema in a subprocess: ~10 s
def test_workflow_and_compose_file_match_their_schemas():
    for path, schema in (
        (WORKFLOW, "vendor.github-workflows"),
        (REPO_ROOT / "docker-compose.yml", "vendor.compose-spec"),
    ):
        completed = subprocess.run(
            [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)], capture_output=True, text=True
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        assert "ok -- validation done" in completed.stdout


def test_zizmor_finds_nothing_of_medium_severity_or_above():
    completed = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--format", "json", "--min-severity", "medium", str(WORKFLOW)],
        capture_output=True,
        text=True,
    )
    findings = json.loads(completed.stdout)
    assert findings == [], json.dumps(findings, indent=2)[:4000]


def test_least_privilege_time_limits_and_superseded_runs_cancelled():
    assert SPEC["permissions"] == {"contents": "read"}
    assert set(SPEC[True]) == {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    assert SPEC["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in SPEC["concurrency"]["group"]
    assert set(SPEC["jobs"]) == {"tests", "compose"}
    for name, job in SPEC["jobs"].items():
        assert "permissions" not in job or job["permissions"] == {"contents": "read"}, name
        assert 0 < job["timeout-minutes"] <= 60, name
        assert job["runs-on"] == "ubuntu-latest"


def test_every_action_is_pinned_to_a_full_commit_with_its_version_in_a_comment():
    lines = [line for line in WORKFLOW.read_text(encoding="utf-8").splitlines() if "uses:" in line]
    assert lines
    for line in lines:
        assert SHA_PIN.match(line), f"pin to a full commit SHA with '# vX.Y.Z': {line.strip()}"
    for job in SPEC["jobs"]:
        checkout = next(step for step in steps(job) if step.get("uses", "").startswith("actions/checkout@"))
        assert checkout["with"]["persist-credentials"] is False  # no token left in .git for later steps
        python = next(step for step in steps(job) if step.get("uses", "").startswith("actions/setup-python@"))
        assert str(python["with"]["python-version"]) == "3.11"
        assert python["with"]["cache"] == "pip"
        assert python["with"]["cache-dependency-path"] == "requirements*.txt"


def test_tests_job_runs_the_readmes_ci_command_with_install_pys_wheel_cached():
    """CI builds the offline LLM only through install.py (portable; never `pip wheel`, which builds
    for the runner's own CPU) and caches the folder install.py keeps its wheels in, keyed on the build."""
    assert "bash .ci/run" in commands("tests")
    assert "make test-all" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    cache = next(step for step in steps("tests") if step.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "~/.cache/mlops-course-local-llm/wheels"
    assert "hashFiles('requirements-local-llm.txt', 'llmops_project/local_llm/install.py')" in cache["with"]["key"]
    assert "runner.arch" in cache["with"]["key"]
    assert not any("pip wheel" in step.get("run", "") for step in steps("tests"))
    install = (REPO_ROOT / "llmops_project" / "local_llm" / "install.py").read_text(encoding="utf-8")
    assert (
        '"mlops-course-local-llm"'
        in (REPO_ROOT / "llmops_project" / "local_llm" / "llm_server" / "running.py").read_text()
    )
    assert 'cache_dir() / "wheels"' in install


def test_compose_job_is_make_compose_check_which_shares_the_native_stack_checks():
    run = commands("compose")
    assert run.index("cp .env.example .env") < run.index("make compose-check")
    # Then classroom mode on the same image: the switch and two generated secrets, the classroom check.
    classroom = run[run.index("MLFLOW_APP_NAME=basic-auth") :]
    assert "secrets.token_urlsafe" in classroom
    assert "secrets.token_hex" in classroom
    assert 'make compose-check CHECKS="classroom host-header restart"' in classroom
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile[makefile.index("\ncompose-check: dev-install") :].split("\n\n")[0]
    assert "docker compose up -d --wait" in recipe
    assert "STACK_CHECK,compose" in recipe
    assert recipe.index("STACK_CHECK,compose") < recipe.index("docker compose down -v")
    assert "compose-check: export COMPOSE_PROJECT_NAME = mlops-tracking-check" in makefile  # never your volumes
    assert "$(PY) $(call STACK_CHECK,native)" in makefile  # make stack-check
    # Every check the compose job runs is one the native stack tests run too.
    native_tests = "".join((REPO_ROOT / "tests" / name).read_text(encoding="utf-8") for name in NATIVE_TESTS)
    for name in check_stack.CHECKS:
        assert f"check_stack.check_{name.replace('-', '_')}(" in native_tests, name


def test_readme_documents_the_jobs_a_badge_and_make_compose_check():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## CI\n") :].split("\n## ")[1]
    assert re.search(r"\[!\[CI\]\(https://github\.com/[^/]+/[^/]+/actions/workflows/ci\.yml/badge\.svg\)\]", section)
    for words in ("`tests`", "`compose`", "make compose-check", "make test-all", "statically"):
        assert words in section, words


def test_the_longest_first_order_names_test_files_that_exist_and_make_test_keeps_it():
    """tests/conftest.py's HEAVIEST_FIRST only orders the files (a stale name would cost wall time
    silently), and `make test` must not let xdist re-order them by their number of tests."""
    from tests import conftest

    files = {path.name for path in (REPO_ROOT / "tests").glob("test_*.py")}
    assert set(conftest.HEAVIEST_FIRST) <= files
    assert len(set(conftest.HEAVIEST_FIRST)) == len(conftest.HEAVIEST_FIRST)
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^PYTEST_XDIST \?= .*--dist loadfile --no-loadscope-reorder$", makefile, flags=re.MULTILINE)


def test_make_installs_the_pinned_requirements_with_compiled_bytecode():
    """`make install` uses uv, which, unlike pip, writes no .pyc files unless told: where
    PYTHONDONTWRITEBYTECODE is set, every process would compile MLflow's sources again."""
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    [install] = [line for line in makefile.replace("\\\n", " ").splitlines() if line.startswith("UV_INSTALL ")]
    assert "uv pip install" in install
    assert "--compile-bytecode" in install
    for requirements in ("requirements.txt", "requirements-dev.txt"):
        assert f"\t$(UV_INSTALL) -r {requirements}\n" in makefile


@pytest.mark.parametrize("version", ["Python 3.9.6", None])  # macOS's Command Line Tools; no Python at all
def test_make_makes_a_venv_only_from_python_3_11_and_says_how_to_choose_one(tmp_path, version):
    """The pins are for 3.11: another Python gets one line naming what it found and the fix, exit 2,
    and no half-made .venv (which every later make would take as made)."""
    for name in ("Makefile", "requirements.txt"):
        (tmp_path / name).write_bytes((REPO_ROOT / name).read_bytes())
    python = tmp_path / "python3"
    if version:  # answers --version, fails anything else (as a Python without the pins' wheels would)
        python.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo "{version}" && exit 0\nexit 1\n')
        python.chmod(0o755)
    outer_make = ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")  # under `make test`: a make of its own, not a sub-make
    env = {name: value for name, value in os.environ.items() if name not in outer_make}
    completed = subprocess.run(
        ["make", "install", f"PYTHON={python}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 2
    [line] = [line for line in completed.stderr.splitlines() if not re.match(r"make(\[\d+\])?: \*\*\*", line)]
    assert line.startswith("error: the pinned environment needs Python 3.11, ")
    assert f"{python} is {version or 'not found'}." in line
    assert "PYTHON=" in line
    assert not (tmp_path / ".venv").exists()

"""What must never be committed is git-ignored by pattern, wherever it sits."""

from __future__ import annotations

import subprocess

from tests.harness import REPO_ROOT

ROSTERS = [
    "roster.csv",
    "class-roster.csv",
    "2026.roster.csv",
    "tracking_server/roster.csv",
    "roster.credentials.csv",
    ".classroom/students.csv",
    ".classroom/anything.txt",
]
KEPT = ["census_project/data/adult.csv", "llmops_project/data/questions.csv", "classroom.csv"]


def ignored(path: str) -> bool:
    """`git check-ignore`: 0 = ignored, 1 = not ignored (the file need not exist)."""
    done = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO_ROOT)
    assert done.returncode in (0, 1), f"git check-ignore failed on {path}"
    return done.returncode == 0


def test_class_rosters_and_credentials_are_ignored_by_pattern():
    assert [path for path in ROSTERS if not ignored(path)] == []


def test_the_patterns_do_not_hide_the_projects_data():
    assert [path for path in KEPT if ignored(path)] == []

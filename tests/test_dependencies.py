"""Dependencies run one way, checked by reading every file's imports (ast, nothing is imported):

* nothing outside tests/ imports ``tests``: tools, benchmarks and docs share ``devtools/`` instead;
* each example folder (a folder with an MLproject) is self-contained: it imports the standard
  library, installed packages and its own modules (``cli``, ``census``, ``quiz``...), never
  ``devtools`` nor another of the repository's top-level modules or folders.
"""

from __future__ import annotations

import ast
import functools
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT

EXAMPLE_FOLDERS = sorted(p.parent for p in REPO_ROOT.glob("*/MLproject"))
SKIPPED_DIRS = {".venv", ".git", "node_modules", "__pycache__", ".stack", ".local-llm", "mlartifacts"}
# Packages of the optional extras (requirements-local-llm.txt, requirements-align.txt), imported only
# where the extra is installed: `make test` runs without them.
OPTIONAL_PACKAGES = {"llama_cpp", "litellm", "dspy", "gepa"}


@functools.cache
def installed_packages() -> frozenset[str]:
    """Top-level names of the installed distributions (reading them takes a second: once)."""
    return frozenset(packages_distributions())


def python_files(root: Path) -> list[Path]:
    return sorted(
        path for path in root.rglob("*.py") if not SKIPPED_DIRS.intersection(path.relative_to(REPO_ROOT).parts)
    )


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import in the file, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def repository_top_level_names() -> set[str]:
    """What ``import <name>`` finds at the repository root: its packages, folders and modules."""
    names = {p.stem for p in REPO_ROOT.glob("*.py")}
    names |= {p.name for p in REPO_ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return names


def local_names(folder: Path) -> set[str]:
    """Modules a script in ``folder`` can import as top-level names: those beside it and in every
    folder up to the example's root (a script puts its own folder on sys.path; helpers of a sub-folder
    may be imported by scripts above it)."""
    names: set[str] = set()
    for directory in [folder, *folder.rglob("*")]:
        if directory.is_dir() and not SKIPPED_DIRS.intersection(directory.parts):
            names |= {p.stem for p in directory.glob("*.py")}
            names |= {p.name for p in directory.iterdir() if (p / "__init__.py").exists()}
    return names


def test_nothing_outside_tests_imports_tests():
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{line}: import {name}"
        for path in python_files(REPO_ROOT)
        if path.relative_to(REPO_ROOT).parts[0] != "tests"
        for line, name in imported_modules(path)
        if name.split(".")[0] == "tests"
    ]
    assert offenders == [], "move what they use into devtools/:\n" + "\n".join(offenders)


@pytest.mark.parametrize("folder", EXAMPLE_FOLDERS, ids=lambda p: p.name)
def test_an_example_folder_imports_only_itself_the_standard_library_and_installed_packages(folder):
    installed = installed_packages()
    repository = repository_top_level_names()
    local = local_names(folder)
    offenders = []
    for path in python_files(folder):
        for line, name in imported_modules(path):
            top = name.split(".")[0]
            if top in local:
                continue
            where = f"{path.relative_to(REPO_ROOT)}:{line}: import {name}"
            if top in repository:
                offenders.append(f"{where} (outside {folder.name}/: copy what it needs into the folder)")
            elif top not in sys.stdlib_module_names and top not in installed and top not in OPTIONAL_PACKAGES:
                offenders.append(f"{where} (neither the standard library nor an installed package)")
    assert offenders == [], "\n".join(offenders)


def test_the_scan_sees_the_imports_it_must_refuse(tmp_path):
    """The checks above would catch the mistakes they are about (the scan is not blind)."""
    script = tmp_path / "script.py"
    script.write_text("import os\nfrom tests import harness\n\ndef f():\n    import devtools.processes\n")
    assert imported_modules(script) == [(1, "os"), (2, "tests"), (5, "devtools.processes")]
    assert {"tests", "devtools", "default_store", "census_project"} <= repository_top_level_names()
    census = REPO_ROOT / "census_project"
    assert {"cli", "census", "train"} <= local_names(census)
    assert "devtools" not in local_names(census)

"""Import an example folder's modules into the test process, as its scripts see them.

Every example folder has its own ``cli.py`` (the same text, tests/test_conventions.py checks it), and
its scripts import it as the top-level module ``cli``: ``python train.py`` run from the folder finds
the folder's own. In ONE process (a pytest session) the name ``cli`` can mean only one file, so a
plain ``sys.path.insert(0, folder); import train`` would give census's train whichever ``cli`` was
imported first. ``load`` keeps the folders apart: while it imports a folder's modules, ``cli`` is
that folder's ``cli.py`` (the same module object every time for that folder, so ``cli.UserError``
is one class across the folder's modules); afterwards ``cli`` leaves ``sys.modules``, and the
modules keep the ``cli`` they were imported with. The folder stays on ``sys.path`` (at the end), so
that joblib's workers and pickles can import the folder's other modules (census, quiz, ...) by name:
those names are unique across folders.

    train, data = examples.load("census_project", "train", "census.data")
    cli = examples.load("llmops_project", "cli")[0]
"""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from types import ModuleType

from tests.harness import REPO_ROOT

_CLI: dict[str, ModuleType] = {}  # folder -> its cli module, imported once
_LOCK = threading.Lock()


def load(folder: str, *names: str) -> list[ModuleType]:
    """The modules ``names`` of example ``folder`` (e.g. "train", "census.data", "cli"), imported with
    that folder's own ``cli``."""
    path = str(REPO_ROOT / folder)
    with _LOCK:
        sys.path[:] = [path] + [entry for entry in sys.path if entry != path]
        previous = sys.modules.pop("cli", None)
        if folder in _CLI:
            sys.modules["cli"] = _CLI[folder]
        try:
            modules = [importlib.import_module(name) for name in names]
            if "cli" in sys.modules:
                _CLI[folder] = sys.modules["cli"]
        finally:
            sys.modules.pop("cli", None)
            if previous is not None and previous not in _CLI.values():
                sys.modules["cli"] = previous  # someone else's (not an example folder's): leave it
            sys.path[:] = [entry for entry in sys.path if entry != path] + [path]
    for module in modules:
        where = Path(module.__file__).resolve()
        if REPO_ROOT / folder not in where.parents:
            raise ImportError(f"{module.__name__} comes from {where}, not from {folder}/: two folders share the name")
    return modules

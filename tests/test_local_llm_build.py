"""The offline model's build and its failures: llmops_project/local_llm/install.py (a portable
llama.cpp, proven by one real inference) and the note serve.py leaves so that a crash is named as
a crash (llm_server/running.py).

The build tests read the installed library (marker ``local_llm``: the optional extra); they check
what the build holds, never what this machine's CPU can run, so they mean the same on any CPU.
The crash tests use a stand-in process that registers as serve.py does and then dies by a signal,
so they run everywhere; one test also kills the real server (``local_llm``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT, as_a_terminals_job, free_port, run_script, stop_process
from tests.llmops import traces_of

LOCAL_LLM = REPO_ROOT / "llmops_project" / "local_llm"
SERVE = LOCAL_LLM / "serve.py"
# AMX's instructions (Intel SDM vol. 2, "TILE*"/"TDP*"/"LDTILECFG"): none may be in a portable build
AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilerelease|tilezero|tdp\w+|tcmmi\w+|tcmmr\w+)\b")
ZMM = re.compile(r"%zmm\d+")  # AVX-512 registers: none in an x86-64-v3 (AVX2) build
# The positive control of that scan: `ldtilecfg (%rax)` and `vmovaps %zmm1,%zmm0`, as raw machine code.
# objdump before binutils 2.36 prints AMX as "(bad)": the scan would then pass a build holding AMX.
AMX_AND_ZMM = bytes.fromhex("c4e2784900 62f17c4828c1")
# `make test-all` (CI's command) sets LOCAL_LLM_TEST_REQUIRE_OBJDUMP=1: where one of these is 1, a
# missing or too old objdump fails the AMX test instead of skipping it (UI_TEST_REQUIRE_BROWSER=1, the
# browser's own flag, also means "CI: skip nothing").
REQUIRE_OBJDUMP = ("LOCAL_LLM_TEST_REQUIRE_OBJDUMP", "UI_TEST_REQUIRE_BROWSER")
# AMX is an x86-64 question, and GNU objdump disassembles only its own architecture's code (macOS's
# objdump is LLVM's, without -b binary): the scan runs on x86-64 Linux, and is skipped elsewhere.
X86_LINUX = sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64")
# `sysctl -n machdep.cpu.features machdep.cpu.leaf7_features` on an Intel Mac (Core i5-10400, as published):
INTEL_MAC_SYSCTL = (
    "FPU VME DE PSE TSC MSR PAE MCE CX8 APIC SEP MTRR PGE MCA CMOV PAT PSE36 CLFSH DS ACPI MMX FXSR SSE SSE2 SS HTT "
    "TM PBE SSE3 PCLMULQDQ DTES64 MON DSCPL VMX EST TM2 SSSE3 FMA CX16 TPR PDCM SSE4.1 SSE4.2 x2APIC MOVBE POPCNT "
    "AES PCID XSAVE OSXSAVE SEGLIM64 TSCTMR AVX1.0 RDRAND F16C\n"
    "RDWRFSGS TSC_THREAD_OFFSET SGX BMI1 AVX2 SMEP BMI2 ERMS INVPCID FPU_CSDS MPX RDSEED ADX SMAP CLFSOPT IPT PKU "
    "SGXLC MDCLEAR IBRS STIBP L1DF ACAPMSR SSBD\n"
)
VENV_PYTHON = Path(sys.executable).relative_to(REPO_ROOT).as_posix()  # the tests run in the repository's venv

sys.path.insert(0, str(LOCAL_LLM))  # install.py and llm_server/ import each other by these names
install = importlib.import_module("install")
running = importlib.import_module("llm_server.running")


# --- install.py's choices (pure) --------------------------------------------------------------------


def test_every_build_leaves_out_native_tuning_avx512_and_amx():
    for flags in (install.BUILDS[0][1] | {"avx512f", "amx_tile", "amx_int8"}, {"sse4_2"}, set()):
        name, options = install.chosen_build(flags, "x86_64")
        arguments = install.cmake_args(options)
        for option in ("GGML_NATIVE", "GGML_AVX512", "GGML_AMX_TILE", "GGML_AMX_INT8", "GGML_AMX_BF16"):
            assert f"-D{option}=OFF" in arguments, (name, arguments)
    assert install.chosen_build(install.BUILDS[0][1] | {"amx_tile"}, "x86_64")[0] == "x86-64-v3"
    assert install.chosen_build({"sse4_2", "avx"}, "x86_64") == (
        "x86-64-v2",
        {**install.ALWAYS, **{o: ("ON" if o == "GGML_SSE42" else "OFF") for o in install.X86}},
    )
    assert install.chosen_build(set(), "x86_64")[0] == "x86-64"
    name, options = install.chosen_build(None, "arm64", "darwin")
    assert (name, options) == ("arm64", install.ALWAYS)
    # Windows on ARM with MSVC: llama.cpp's CMake refuses a non-native build there (ARM has no AMX)
    assert install.chosen_build(None, "ARM64", "win32") == ("arm64-native", {**install.ALWAYS, "GGML_NATIVE": "ON"})


def test_the_install_names_the_extensions_of_this_cpu_it_leaves_out():
    # A Sapphire Rapids Xeon's flags (abridged): the log of an AMX machine's install says AMX is left out.
    xeon = install.BUILDS[0][1] | {"avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
    assert install.left_out(xeon) == ["AVX-512", "AVX-VNNI", "AMX"]
    assert install.left_out(install.BUILDS[0][1]) == []
    assert install.left_out(None) == []


def test_an_intel_macs_sysctl_features_choose_the_v2_build_llama_cpp_python_allows_there(monkeypatch):
    flags = install.darwin_flags(INTEL_MAC_SYSCTL)
    assert {"sse4_1", "sse4_2", "avx", "fma", "f16c", "bmi1", "bmi2", "movbe", "avx2"} <= flags  # Linux's names
    assert install.chosen_build(flags, "x86_64", "linux")[0] == "x86-64-v3"  # the same CPU under Linux
    # macOS: llama-cpp-python's CMakeLists forces AVX, AVX2, FMA and F16C off on x86_64, so the wheel
    # is named for what it holds (and an older Mac without SSE4.2 still gets the baseline)
    assert install.chosen_build(flags, "x86_64", "darwin") == install.chosen_build({"sse4_2"}, "x86_64", "linux")
    assert install.chosen_build(flags, "x86_64", "darwin")[0] == "x86-64-v2"
    assert install.chosen_build(set(), "x86_64", "darwin")[0] == "x86-64"
    assert install.left_out(flags) == []
    # An AVX-512 Mac (iMac Pro, Mac Pro 2019): its leaf7 names say what the portable build leaves out
    assert install.left_out(install.darwin_flags(INTEL_MAC_SYSCTL + " AVX512F AVX512CD AVX512VNNI")) == ["AVX-512"]
    # cpu_flags on macOS: sysctl's two lines, read as above
    monkeypatch.setattr(sys, "platform", "darwin")
    asked = []
    monkeypatch.setattr(
        subprocess,
        "run",
        lambda command, **_: asked.append(command) or subprocess.CompletedProcess(command, 0, INTEL_MAC_SYSCTL),
    )
    assert install.cpu_flags() == flags
    assert asked == [["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"]]


# --- the compiler: MSVC on Windows ---------------------------------------------------------------------


@pytest.fixture
def windows(monkeypatch):
    """install.py as on Windows; ``which`` finds only the names put in the returned set."""
    on_path: set[str] = set()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"C:\\tools\\{name}.exe" if name in on_path else None)
    return on_path


@pytest.mark.parametrize(
    ("on_path", "visual_studio", "missing"),
    [
        ({"cl"}, False, []),  # a developer prompt: cl on PATH
        (set(), True, []),  # Visual Studio (Build Tools) with the C++ tools, found by vswhere.exe
        (set(), None, []),  # no vswhere.exe to ask: CMake looks for itself, and pip's log says
        ({"gcc", "g++"}, False, []),  # MinGW
        (set(), False, ["C", "C++"]),  # vswhere.exe finds no C++ tools, and nothing on PATH
    ],
)
def test_on_windows_msvc_is_a_compiler(windows, monkeypatch, on_path, visual_studio, missing):
    windows |= on_path
    monkeypatch.setattr(install, "visual_studio", lambda: visual_studio)
    assert install.missing_compilers() == missing


def test_on_windows_without_a_compiler_the_line_names_msvc_too(windows, monkeypatch):
    monkeypatch.setattr(install, "visual_studio", lambda: False)
    with pytest.raises(SystemExit) as stopped:
        install.build_wheel("0.3.36", "x86-64-v3", "", Path("unused"))
    message = str(stopped.value.code)
    assert message.startswith("error: cannot build the offline model: no C or C++ compiler found (looked for $CC/$CXX")
    assert "clang++, cl, a Visual Studio with C++ (vswhere.exe))" in message
    assert "\n" not in message


def test_the_wheel_is_compiled_here_never_taken_ready_made(monkeypatch, tmp_path):
    """pip wheel would take a ready-made wheel of the pinned version from its cache, a --find-links
    folder (PIP_FIND_LINKS) or an extra index: built natively elsewhere, perhaps for another CPU."""
    monkeypatch.setattr(install, "missing_compilers", lambda: [])
    calls = []

    def pip(arguments, building=False, environment=None):
        calls.append((arguments, environment["CMAKE_ARGS"]))
        (tmp_path / "wheels").mkdir(exist_ok=True)  # as pip wheel makes its --wheel-dir
        (tmp_path / "wheels" / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl").write_bytes(b"")

    monkeypatch.setattr(install, "run_pip", pip)
    wheel = install.build_wheel("0.3.36", "x86-64-v3", "-DGGML_NATIVE=OFF", tmp_path / "wheels")
    [(arguments, cmake_args)] = calls
    assert arguments[0] == "wheel"
    assert arguments[-1] == "llama-cpp-python==0.3.36"
    assert {"--no-deps", "--no-cache-dir"} <= set(arguments)
    assert arguments[arguments.index("--no-binary") + 1] == "llama-cpp-python"
    assert cmake_args == "-DGGML_NATIVE=OFF"
    assert wheel.parent == tmp_path / "wheels"


def test_off_windows_cl_is_not_a_compiler(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/cl" if name == "cl" else None)
    assert install.missing_compilers() == ["C", "C++"]


@pytest.mark.parametrize(("tools", "missing"), [(True, []), (False, ["C", "C++"])])
def test_on_macos_the_compilers_count_only_with_the_command_line_tools(monkeypatch, tools, missing):
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")  # xcode-select's stubs, always there
    monkeypatch.setattr(install, "xcode_tools", lambda: tools)
    assert install.missing_compilers() == missing


@pytest.mark.skipif(sys.platform == "win32", reason="the stand-in vswhere.exe is a shell script")
def test_vswhere_is_asked_for_a_visual_studio_with_the_cpp_tools(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGRAMFILES(X86)", str(tmp_path))
    assert install.visual_studio() is None  # no Visual Studio Installer
    vswhere = tmp_path.joinpath(*install.VSWHERE)
    vswhere.parent.mkdir(parents=True)
    asked = tmp_path / "asked.txt"
    for prints, found in (("C:\\BuildTools", True), ("", False)):
        vswhere.write_text(f'#!/bin/sh\necho "$@" > {asked}\necho "{prints}"\n')
        vswhere.chmod(0o755)
        assert install.visual_studio() is found
    assert asked.read_text().split() == [
        "-latest", "-products", "*", "-requires", "Microsoft.VisualStudio.Component.VC.Tools.x86.x64",
        "-property", "installationPath",
    ]  # fmt: skip


# --- pip ---------------------------------------------------------------------------------------------------

# install.run_pip as the build runs it, on a requirement pip cannot find (--no-index: offline, at once)
PIP_FAILS = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {local_llm!r})
    import install
    install.LOG = Path({log!r})
    arguments = ["wheel", "--no-index", "--no-deps", "--wheel-dir", {folder!r}, "no-such-package-of-this-course==1.0"]
    install.run_pip(arguments, building=True)
    """
)


def test_a_failing_pip_ends_with_one_line_naming_its_log_and_no_traceback(tmp_path):
    log = tmp_path / "install.log"
    code = PIP_FAILS.format(local_llm=str(LOCAL_LLM), log=str(log), folder=str(tmp_path / "wheels"))
    failed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1, failed.stderr
    assert "Traceback" not in failed.stderr
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert errors == [failed.stderr.strip().splitlines()[-1]]  # one line, the last, under pip's last lines
    in_log = f"its last lines are above, all in {log}"
    assert re.fullmatch(rf"error: pip wheel failed \(exit 1\) after 0 min \d\d s: {re.escape(in_log)}", errors[0])
    assert "no-such-package-of-this-course" in log.read_text()


def test_an_option_holding_a_space_stays_one_cmake_argument(monkeypatch, tmp_path):
    """A cache folder under C:/Users/Jane Doe: scikit-build-core splits CMAKE_ARGS with shlex.split."""
    home = tmp_path / "Jane Doe"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    options = {**install.chosen_build(install.BUILDS[0][1], "x86_64")[1], **install.without_common()}
    arguments = shlex.split(install.cmake_args(options))
    assert arguments == [f"-D{name}={value}" for name, value in options.items()]
    included = home / "mlops-course-local-llm" / "cmake" / "llama-cpp-without-common.cmake"
    assert f"-D{install.PROJECT_INCLUDE}={included.as_posix()}" in arguments


@pytest.mark.parametrize(
    ("installed", "kept", "argv", "steps"),
    [
        ("native", True, [], ["install --force-reinstall --no-deps <kept>", "install -r", "check", "mark"]),
        ("native", False, [], ["build", "install --force-reinstall --no-deps <built>", "install -r", "check", "mark"]),
        ("kept", True, [], ["install -r", "check", "mark"]),  # already the portable build: nothing rebuilt
        ("none", False, [], ["build", "install --force-reinstall --no-deps <built>", "install -r", "check", "mark"]),
        # present.py's background build (make demo's first run): the wheel, and nothing in the venv
        ("none", False, ["--wheel-only"], ["build"]),
        ("native", True, ["--wheel-only"], []),
        ("kept", True, ["--wheel-only"], []),
    ],
)
def test_install_replaces_a_native_build_once_and_ends_with_the_inference_check(
    monkeypatch, tmp_path, capsys, installed, kept, argv, steps
):
    """install.py's main, its pip, build and check stubbed: a wheel pip built (natively) is replaced by
    the kept portable one, or one is built; then the requirements; and always, last, the real inference,
    and only then make's mark. With --wheel-only: at most the build."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    monkeypatch.setattr(install, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(install, "LOG", tmp_path / "logs" / "install.log")
    monkeypatch.setattr(install, "pinned_version", lambda: "0.3.36")
    monkeypatch.setattr(install, "this_cpus_flags", lambda: install.BUILDS[0][1])
    monkeypatch.setattr(install.platform, "machine", lambda: "x86_64")
    build, options = install.chosen_build(install.BUILDS[0][1], "x86_64")
    folder = install.wheel_folder("0.3.36", build, install.cmake_args({**options, **install.without_common()}))
    wheel = folder / "llama_cpp_python-0.3.36-cp311-cp311-linux_x86_64.whl"
    built = tmp_path / "built.whl"
    if kept:
        folder.mkdir(parents=True)
        wheel.write_bytes(b"")
    source = {"native": ("0.3.36", None), "kept": ("0.3.36", wheel), "none": (None, None)}[installed]
    monkeypatch.setattr(install, "installed_from", lambda: source)
    done = []
    monkeypatch.setattr(install, "build_wheel", lambda *args: done.append("build") or built)
    names = {str(wheel): "<kept>", str(built): "<built>"}
    monkeypatch.setattr(
        install, "run_pip", lambda args: done.append(" ".join(names.get(a, a) for a in args[:4]).rstrip())
    )
    monkeypatch.setattr(install, "check", lambda command: done.append("check"))
    monkeypatch.setattr(install, "mark_installed", lambda: done.append("mark"))
    install.main(argv)
    assert [step.replace(str(install.REQUIREMENTS), "").rstrip() for step in done] == steps
    assert ("built by pip (natively" in capsys.readouterr().out) == (installed == "native")


def test_the_mark_make_waits_for_is_left_in_a_virtual_environment_only(monkeypatch, tmp_path):
    """make's local-llm-install target is $(VENV)/.local-llm-installed: install.py leaves it (make demo's
    background build runs install.py through present.py, not make); never in a Python of the system."""
    monkeypatch.setattr(install.sys, "prefix", str(tmp_path / "venv"))
    monkeypatch.setattr(install.sys, "base_prefix", str(tmp_path / "usr"))
    (tmp_path / "venv").mkdir()
    install.mark_installed()
    assert (tmp_path / "venv" / ".local-llm-installed").is_file()
    monkeypatch.setattr(install.sys, "base_prefix", str(tmp_path / "venv"))
    (tmp_path / "venv" / ".local-llm-installed").unlink()
    install.mark_installed()
    assert not (tmp_path / "venv" / ".local-llm-installed").exists()
    assert f"$(VENV)/{install.INSTALLED_MARK}:" in (REPO_ROOT / "Makefile").read_text()


def test_the_users_cmake_args_come_last_and_change_where_the_wheel_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("CMAKE_ARGS", raising=False)
    _, options = install.chosen_build(install.BUILDS[0][1], "x86_64")
    plain = install.cmake_args(options)
    monkeypatch.setenv("CMAKE_ARGS", "-DGGML_CUDA=ON")
    theirs = install.cmake_args(options)
    assert theirs == f"{plain} -DGGML_CUDA=ON"
    kept, other = (
        install.wheel_folder("0.3.36", "x86-64-v3", plain),
        install.wheel_folder("0.3.36", "x86-64-v3", theirs),
    )
    assert kept != other
    assert kept.parent == tmp_path / "mlops-course-local-llm" / "wheels"
    assert kept.name.startswith("llama-cpp-python-0.3.36-x86-64-v3-")
    assert install.wheel_folder("0.3.35", "x86-64-v3", plain) != kept  # another version: another folder


# --- the proof: one inference in its own process ------------------------------------------------------


@pytest.fixture
def check_log(tmp_path, monkeypatch) -> Path:
    log = tmp_path / "check.log"
    monkeypatch.setattr(install, "CHECK_LOG", log)
    return log


def test_a_check_that_dies_by_a_signal_is_one_line_naming_it_and_the_log(check_log):
    dies = [sys.executable, "-c", "import os, signal; print('loading'); os.kill(os.getpid(), signal.SIGSEGV)"]
    with pytest.raises(SystemExit) as stopped:
        install.check(dies)
    message = str(stopped.value.code)
    assert "\n" not in message
    assert message.startswith("error: the offline model crashed on its first inference: SIGSEGV (signal 11)")
    assert str(check_log) in message
    assert f"Fix: rebuild it ({VENV_PYTHON} llmops_project/local_llm/install.py --rebuild);" in message
    assert "OPENAI_API_KEY" in message
    assert check_log.read_text().startswith("loading")


def test_a_check_that_fails_says_its_exit_status_and_last_line(check_log):
    with pytest.raises(SystemExit) as stopped:
        install.check([sys.executable, "-c", "import sys; sys.exit('error: model file not found')"])
    assert "check failed (exit 1: error: model file not found)" in str(stopped.value.code)


@pytest.mark.parametrize(
    ("returncode", "named"),
    [
        (0xC0000005, "STATUS_ACCESS_VIOLATION (0xC0000005)"),
        (0xC000001D, "STATUS_ILLEGAL_INSTRUCTION (0xC000001D)"),  # a build for a newer CPU
        (0xC0000409, "STATUS_STACK_BUFFER_OVERRUN (0xC0000409)"),
        (0xC00000FD, "STATUS_STACK_OVERFLOW (0xC00000FD)"),
    ],
)
def test_a_check_that_crashed_on_windows_names_the_exception(check_log, monkeypatch, returncode, named):
    # On Windows a crashed process exits with its exception's NTSTATUS code, a positive exit status
    monkeypatch.setattr(subprocess, "run", lambda command, **_: subprocess.CompletedProcess(command, returncode))
    with pytest.raises(SystemExit) as stopped:
        install.check(["serve.py", "--check"])
    assert str(stopped.value.code).startswith(f"error: the offline model crashed on its first inference: {named}; log:")


def test_exit_statuses_in_words():
    assert running.exit_reason(-signal.SIGSEGV) == f"SIGSEGV (signal {int(signal.SIGSEGV)})"
    assert running.exit_reason(-99) == "signal 99"
    assert running.exit_reason(0xC000001D) == "STATUS_ILLEGAL_INSTRUCTION (0xC000001D)"
    assert running.exit_reason(1) == "exit status 1"
    assert running.crash_name(0) is running.crash_name(2) is None
    # faulthandler's words: on POSIX by signal, on Windows by exception
    assert running.fatal_signal("Fatal Python error: Segmentation fault\n\nThread") == "SIGSEGV (signal 11)"
    assert running.fatal_signal("Windows fatal exception: access violation\n\nThread 0x00001e8c") == (
        "STATUS_ACCESS_VIOLATION (0xC0000005)"
    )
    assert running.fatal_signal("Windows fatal exception: illegal instruction\n") == (
        "STATUS_ILLEGAL_INSTRUCTION (0xC000001D)"
    )
    assert running.fatal_signal("Windows fatal exception: code 0xc0000409\n") == (
        "STATUS_STACK_BUFFER_OVERRUN (0xC0000409)"
    )
    assert running.fatal_signal("Windows fatal exception: float divide by zero\n") == "float divide by zero"
    assert running.fatal_signal("") is None
    # Two threads that fault at once write into each other's line: the native build's server on a Xeon
    # with AMX, whose llama.cpp threads both died at ldtilecfg (its crash file, 2026-12-07)
    both = "Fatal Python error: Fatal Python error: Segmentation faultSegmentation fault\n\n\n\nCurrent thread"
    assert running.fatal_signal(both) == "SIGSEGV (signal 11)"
    assert running.fatal_signal("Fatal Python error: Fatal Python error: Illegal instructionIllegal instruction\n") == (
        "SIGILL (signal 4)"
    )
    assert running.fatal_signal(
        "Windows fatal exception: Windows fatal exception: access violationaccess violation\n"
    ) == ("STATUS_ACCESS_VIOLATION (0xC0000005)")
    assert running.fatal_signal("Fatal Python error: Fatal Python error: Something newSomething new\n") == (
        "Something newSomething new"
    )


def test_the_printed_commands_run_this_python_by_its_path(monkeypatch):
    rebuild = running.python_command("llmops_project/local_llm/install.py", "--rebuild")
    assert rebuild == f"{VENV_PYTHON} llmops_project/local_llm/install.py --rebuild"
    monkeypatch.setattr(sys, "executable", str(REPO_ROOT / ".venv" / "Scripts" / "python.exe"))
    assert running.python_command("present.py", "--only", "7", windows=True) == (
        ".venv\\Scripts\\python.exe present.py --only 7"
    )
    # started as ../.venv/bin/python from inside llmops_project/: the same venv, named from the root
    monkeypatch.setattr(sys, "executable", f"{REPO_ROOT}/llmops_project/../.venv/bin/python")
    assert running.python_command("present.py") == ".venv/bin/python present.py"
    monkeypatch.setattr(sys, "executable", "/opt/my python/bin/python3")  # outside the repository: its full path
    assert running.python_command("present.py") == '"/opt/my python/bin/python3" present.py'


def test_a_passing_check_prints_its_figures(check_log, capsys):
    figures = (
        "the offline model answered: read 9 prompt tokens at 446 tokens/s, wrote 31 at 82.1 tokens/s; it began 'A'"
    )
    install.check([sys.executable, "-c", f"print('Checking model.gguf ...'); print({figures!r})"])
    assert re.fullmatch(rf"local-llm-install: checked in \d+ s: {re.escape(figures)}\n", capsys.readouterr().out)


# --- a crash named as a crash ----------------------------------------------------------------------------

# A stand-in for serve.py: registers as serve.py does, says so, then dies by the signal given.
DYING_SERVER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, {local_llm!r})
    from llm_server.running import register
    register("127.0.0.1", {port}, Path({log!r}))
    print("registered", flush=True)
    {before_dying}
    time.sleep(0.2)
    os.kill(os.getpid(), signal.{signal})
    time.sleep(30)
    """
)


def dying_server(tmp_path, port: int, how: str = "SIGSEGV", before_dying: str = "", reap: bool = False) -> Path:
    """Run the stand-in until it has died; its log file. ``reap``: collect it as present.py's
    server is (running.reap), not as any parent."""
    log = tmp_path / "server.log"
    code = DYING_SERVER.format(local_llm=str(LOCAL_LLM), port=port, log=str(log), signal=how, before_dying=before_dying)
    with open(log, "w") as output:
        server = subprocess.Popen([sys.executable, "-c", code], stdout=output, stderr=subprocess.STDOUT)
        if reap:
            running.reap(server, port)
        else:
            server.wait(timeout=60)
    assert server.returncode == -getattr(signal, how), log.read_text()
    return log


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_server_that_crashed_is_reported_with_its_signal_and_log(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    log = dying_server(tmp_path, port)
    report = running.crash_report(f"http://127.0.0.1:{port}/v1")
    assert report.startswith(f"the offline model server (serve.py on port {port}, pid ")
    assert "crashed: SIGSEGV (signal 11)" in report
    assert f"its log: {log}" in report
    assert f"(from the repository root: {VENV_PYTHON} llmops_project/local_llm/install.py --rebuild)" in report
    assert running.crash_report(f"http://127.0.0.1:{free_port()}/v1") is None  # no server was ever there
    assert running.crash_report(f"https://api.openai.com:{port}/v1") is None  # not a local server
    assert running.crash_report(None) is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_server_killed_without_a_word_is_still_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    dying_server(tmp_path, port, "SIGKILL")
    assert "stopped without a word: killed by a signal it could not name" in running.crash_report(
        f"http://127.0.0.1:{port}/v1"
    )


# Several threads crashing at once can leave faulthandler no time to write (the native build's server
# on a Xeon with AMX: an empty crash file in two of five runs). The stand-in: faulthandler off, then SIGSEGV.
SILENT = "import faulthandler; faulthandler.disable()"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_crash_faulthandler_could_not_write_is_named_by_the_process_that_started_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    dying_server(tmp_path, port, before_dying=SILENT, reap=True)  # as present.py's server (start_in_background)
    report = running.crash_report(f"http://127.0.0.1:{port}/v1")
    assert "crashed: SIGSEGV (signal 11); its log: " in report
    assert running.note_path(port).with_suffix(".crash").read_text() == "Ended by: SIGSEGV (signal 11)\n"

    other = free_port()  # a server started by anyone else (make local-llm): no parent to ask
    dying_server(tmp_path, other, before_dying=SILENT)
    unnamed = (
        "stopped without a word: killed by a signal it could not name (SIGKILL, e.g. by the out-of-memory killer, "
        "or a crash in several threads at once; the terminal that ran it says which)"
    )
    assert unnamed in running.crash_report(f"http://127.0.0.1:{other}/v1")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_what_faulthandler_wrote_is_not_overwritten_and_a_normal_stop_records_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    dying_server(tmp_path, port, reap=True)  # faulthandler wrote its words: they stay the only ones
    crash = running.note_path(port).with_suffix(".crash").read_text()
    assert crash.startswith("Fatal Python error: Segmentation fault")
    assert "Ended by" not in crash
    running.record_exit(port, 12345, -signal.SIGSEGV)  # not the pid of the note: another server's end
    running.record_exit(free_port(), 12345, -signal.SIGSEGV)  # no note at all
    assert running.note_path(port).with_suffix(".crash").read_text() == crash
    killed = free_port()
    dying_server(tmp_path, killed, "SIGKILL", reap=True)
    assert "was killed: SIGKILL (signal 9) (e.g. by the out-of-memory killer)" in running.crash_report(
        f"http://127.0.0.1:{killed}/v1"
    )


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_another_server_on_a_crashed_servers_port_is_not_reported_as_crashed(tmp_path, monkeypatch):
    """The note of a server that crashed stays until serve.py starts on that port again: meanwhile any
    other server there (llama.cpp's own, a test stand-in) answers, so it is not the crashed one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    dying_server(tmp_path, port)
    assert "crashed" in running.crash_report(f"http://127.0.0.1:{port}/v1")
    with socket.create_server(("127.0.0.1", port)):
        assert running.crash_report(f"http://127.0.0.1:{port}/v1") is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_server_stopped_by_a_signal_under_uvicorn_leaves_no_note(tmp_path, how):
    """present.py stops the server with SIGTERM, a closed terminal sends SIGHUP, Ctrl+C SIGINT: all
    normal stops. uvicorn (serve.py's) raises the signal again after its shutdown: the note must go
    all the same, or the next client would call the stopped server crashed."""
    port = free_port()
    code = (
        f"import sys; sys.path.insert(0, {str(LOCAL_LLM)!r})\n"
        "import uvicorn\n"
        "from llm_server.running import register\n"
        "async def app(scope, receive, send): pass\n"
        f"register('127.0.0.1', {port}, None)\n"
        f"uvicorn.run(app, host='127.0.0.1', port={port}, log_level='warning')\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    server = subprocess.Popen([sys.executable, "-c", code], env=env, preexec_fn=as_a_terminals_job)
    note = tmp_path / "mlops-course-local-llm" / "servers" / f"{port}.json"
    try:
        deadline = time.monotonic() + 60
        while not running.listening("127.0.0.1", port):
            assert server.poll() is None, "the server stopped before it listened"
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.1)
        assert note.exists()
        server.send_signal(getattr(signal, how))
        server.wait(timeout=30)
    finally:
        stop_process(server)
    assert not note.exists()
    assert not note.with_suffix(".crash").exists()


def test_a_server_that_stops_normally_leaves_no_note(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    code = f"import sys; sys.path.insert(0, {str(LOCAL_LLM)!r}); from llm_server.running import register; "
    code += f"register('127.0.0.1', {port}, None)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert not running.note_path(port).exists()
    assert running.crash_report(f"http://127.0.0.1:{port}/v1") is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux's /proc tells an ended process")
def test_a_server_that_ended_and_waits_for_its_parent_is_not_alive():
    """A server started by present.py (or a test) stays a zombie until its parent looks: gone all the same."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 30
        while not running.zombie(process.pid):
            assert time.monotonic() < deadline, "the process never ended"
            time.sleep(0.05)
        assert not running.alive(process.pid)
    finally:
        process.wait()
    assert running.alive(os.getpid())
    assert not running.zombie(os.getpid())


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_generate_answers_against_a_crashed_server_says_it_crashed_in_one_line(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    log = dying_server(tmp_path, port)
    provider = {"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "OPENAI_API_KEY": "local"}
    run_script(mlflow_store, "llmops_project/register_all_prompts.py")
    result = run_script(
        mlflow_store,
        "llmops_project/generate_answers.py",
        params={"max_questions": 2, "concurrency": 2},
        env={**provider, "XDG_CACHE_HOME": str(tmp_path)},
        expect_success=False,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error: the offline model server (serve.py on port {port}")
    assert "crashed: SIGSEGV (signal 11)" in errors[0]
    assert str(log) in errors[0]
    assert "provider is running" not in result.stderr
    assert result.runs == []  # said before any run starts: nothing to clean up


# A stand-in for serve.py that is alive when the step starts: registers, takes the first request and
# never answers it (a model busy with a judge's prompt), then dies by SIGSEGV, mid-step.
SERVER_DYING_MID_STEP = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    from pathlib import Path
    sys.path.insert(0, {local_llm!r})
    from llm_server.running import register
    listener = socket.create_server(("127.0.0.1", {port}), backlog=64)
    register("127.0.0.1", {port}, Path({log!r}))
    print("registered", flush=True)
    connection, _ = listener.accept()
    time.sleep(1)
    os.kill(os.getpid(), signal.SIGSEGV)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_server_that_crashes_mid_evaluation_stops_the_step_at_once(mlflow_store, llm_server, tmp_path, monkeypatch):
    """Alive when evaluate_responses starts, dead while its judges wait for verdicts: MLflow would
    retry each verdict for 3 minutes; the step says the crash within seconds and ends its run FAILED.
    (A server known to have crashed before a step starts stops it before any run: the generate_answers
    test above; every LLM entry point checks first, in provider.require_api_key.)"""
    run_script(mlflow_store, "llmops_project/register_all_prompts.py")
    [generation] = run_script(mlflow_store, "llmops_project/generate_answers.py", params={"max_questions": 1}).runs
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port, log = free_port(), tmp_path / "server.log"
    code = SERVER_DYING_MID_STEP.format(local_llm=str(LOCAL_LLM), port=port, log=str(log))
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "registered"
        started = time.monotonic()
        result = run_script(
            mlflow_store,
            "llmops_project/evaluate_responses.py",
            params={"generation_run_id": generation.info.run_id},
            env={"OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1", "XDG_CACHE_HOME": str(tmp_path)},
            expect_success=False,
        )
        elapsed = time.monotonic() - started
    finally:
        stop_process(server)
    assert server.returncode == -signal.SIGSEGV
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error: the offline model server (serve.py on port {port}")
    assert "crashed: SIGSEGV (signal 11)" in errors[0]
    assert "provider is running" not in result.stderr
    [evaluation] = result.runs  # it had started: ended FAILED, never left RUNNING
    assert evaluation.info.status == "FAILED"
    assert [t.info.assessments for t in traces_of(generation)] == [[]]  # no verdict stored
    assert elapsed < 60, f"{elapsed:.0f} s"  # MLflow's retries alone: 3 minutes after the crash


# --- the installed build (the optional extra) ---------------------------------------------------------


def installed_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    folder = Path(spec.origin).parent / "lib"
    return sorted(p for p in folder.iterdir() if p.name.startswith(("libggml", "libllama")) and ".so" in p.name)


def objdump_that_sees_amx(folder: Path) -> str:
    """objdump, once it has named AMX_AND_ZMM's instructions as the scan's patterns expect: a skip
    without it, a failure where the run requires it (REQUIRE_OBJDUMP)."""
    objdump, problem = shutil.which("objdump"), "objdump (binutils) is missing"
    if objdump:
        control = folder / "amx-and-zmm.bin"
        control.write_bytes(AMX_AND_ZMM)
        text = subprocess.run(
            [objdump, "-D", "-b", "binary", "-m", "i386:x86-64", str(control)], capture_output=True, text=True
        ).stdout
        if AMX.search(text) and ZMM.search(text) and "ldtilecfg" in text:
            return objdump
        version = subprocess.run([objdump, "--version"], capture_output=True, text=True).stdout.partition("\n")[0]
        problem = f"{version} does not name AMX's ldtilecfg (binutils 2.36 or later does): it printed {text[-200:]!r}"
    required = [name for name in REQUIRE_OBJDUMP if os.environ.get(name) == "1"]
    if required:
        pytest.fail(f"{problem}; {required[0]}=1 requires the AMX test (Debian/Ubuntu: sudo apt-get install binutils)")
    pytest.skip(problem)


@pytest.mark.local_llm
@pytest.mark.skipif(not X86_LINUX, reason="AMX is x86-64's; reads ELF libraries with GNU objdump")
def test_the_installed_llama_cpp_holds_no_amx_and_nothing_beyond_its_portable_build(tmp_path):
    libraries = installed_libraries()
    objdump = objdump_that_sees_amx(tmp_path)
    version, wheel = install.installed_from()
    assert wheel is not None, "llama-cpp-python was built by pip (natively), not by install.py: make local-llm-install"
    kept = install.cache_dir() / "wheels"
    assert kept in wheel.parents, (
        f"llama-cpp-python was installed from {wheel}, not by install.py: make local-llm-install"
    )
    build = wheel.parent.name.removeprefix(f"{install.PACKAGE}-{version}-").rsplit("-", 1)[0]
    assert any("ggml-cpu" in p.name for p in libraries), libraries
    for library in libraries:
        text = subprocess.run(
            [objdump, "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
        ).stdout
        assert len(text) > 10_000, library  # really disassembled
        assert not AMX.search(text), f"{library.name} holds AMX instructions: {AMX.search(text)[0]}"
        if build == "x86-64-v3":
            assert not ZMM.search(text), f"{library.name} holds AVX-512 instructions ({build} build)"


@pytest.mark.local_llm
def test_serve_check_answers_one_request_and_prints_its_figures():
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    completed = subprocess.run([sys.executable, str(SERVE), "--check"], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    last = completed.stdout.strip().splitlines()[-1]
    figures = re.fullmatch(
        r"the offline model answered: read (\d+) prompt tokens at (\d+) tokens/s, "
        r"wrote (\d+) at ([\d.]+) tokens/s; it began '.+'",
        last,
    )
    assert figures, last
    assert int(figures[1]) > 100
    assert 0 < int(figures[3]) <= 32


@pytest.mark.local_llm
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_real_server_killed_by_sigsegv_is_reported_as_a_crash(tmp_path, monkeypatch):
    if importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    spec = importlib.util.spec_from_file_location("local_llm_serve_build", SERVE)
    serve = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(serve)
    port, log = free_port(), tmp_path / "server.log"
    server = serve.start_in_background(port, log, timeout=120)
    # As on macOS, which has no /proc to tell of a zombie: start_in_background's own thread collects it
    monkeypatch.setattr(running, "zombie", lambda pid: False)
    try:
        server.send_signal(signal.SIGSEGV)
        deadline = time.monotonic() + 60
        while (report := running.crash_report(f"http://127.0.0.1:{port}/v1")) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert report is not None
        assert "crashed: SIGSEGV (signal 11)" in report, report
        assert str(log) in report
        assert json.loads(running.note_path(port).read_text())["log"] == str(log.resolve())
    finally:
        stop_process(server)
        running.note_path(port).unlink(missing_ok=True)
        running.note_path(port).with_suffix(".crash").unlink(missing_ok=True)  # not left in the user's cache


@pytest.mark.parametrize("objdump", ["missing", "too old"])
def test_an_objdump_that_cannot_see_amx_fails_where_a_run_requires_it(tmp_path, monkeypatch, objdump):
    if objdump == "missing":
        monkeypatch.setattr(shutil, "which", lambda name: None)
    else:  # binutils before 2.36: "(bad)" where AMX is
        old = tmp_path / "objdump"
        old.write_text("#!/bin/sh\necho 'GNU objdump (GNU Binutils) 2.35'\necho '   0:\t(bad)'\n")
        old.chmod(0o755)
        monkeypatch.setattr(shutil, "which", lambda name: str(old))
    for name in REQUIRE_OBJDUMP:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(pytest.skip.Exception):
        objdump_that_sees_amx(tmp_path)
    monkeypatch.setenv("UI_TEST_REQUIRE_BROWSER", "1")  # what make test-all sets
    with pytest.raises(pytest.fail.Exception, match="UI_TEST_REQUIRE_BROWSER=1 requires the AMX test"):
        objdump_that_sees_amx(tmp_path)


@pytest.mark.skipif(not X86_LINUX, reason="AMX is x86-64's; GNU objdump reads its own architecture's code")
@pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is missing")
def test_this_objdump_names_the_amx_and_avx512_of_the_control(tmp_path):
    # The positive control, run wherever objdump is (the AMX test needs the offline LLM extra too)
    assert objdump_that_sees_amx(tmp_path)


def test_the_build_skips_llama_cpps_common_library_through_cmakes_project_include(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    [(option, path)] = install.without_common().items()
    assert option == "CMAKE_PROJECT_llama.cpp_INCLUDE"
    text = (tmp_path / "mlops-course-local-llm" / "cmake" / "llama-cpp-without-common.cmake").read_text()
    assert path.endswith("llama-cpp-without-common.cmake")
    assert 'set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)' in text
    assert install.without_common() == {option: path}  # written once, the same path

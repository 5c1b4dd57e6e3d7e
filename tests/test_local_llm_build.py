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
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import REPO_ROOT, free_port, run_script, stop_process

LOCAL_LLM = REPO_ROOT / "llmops_project" / "local_llm"
SERVE = LOCAL_LLM / "serve.py"
# AMX's instructions (Intel SDM vol. 2, "TILE*"/"TDP*"/"LDTILECFG"): none may be in a portable build
AMX = re.compile(r"\b(ldtilecfg|sttilecfg|tileloadd\w*|tilestored|tilerelease|tilezero|tdp\w+|tcmmi\w+|tcmmr\w+)\b")
ZMM = re.compile(r"%zmm\d+")  # AVX-512 registers: none in an x86-64-v3 (AVX2) build

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
    name, options = install.chosen_build(None, "arm64")
    assert (name, options) == ("arm64", install.ALWAYS)


def test_the_install_names_the_extensions_of_this_cpu_it_leaves_out():
    # A Sapphire Rapids Xeon's flags (abridged): the log of an AMX machine's install says AMX is left out.
    xeon = install.BUILDS[0][1] | {"avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
    assert install.left_out(xeon) == ["AVX-512", "AVX-VNNI", "AMX"]
    assert install.left_out(install.BUILDS[0][1]) == []
    assert install.left_out(None) == []


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
    assert "install.py --rebuild" in message
    assert "OPENAI_API_KEY" in message
    assert check_log.read_text().startswith("loading")


def test_a_check_that_fails_says_its_exit_status_and_last_line(check_log):
    with pytest.raises(SystemExit) as stopped:
        install.check([sys.executable, "-c", "import sys; sys.exit('error: model file not found')"])
    assert "check failed (exit 1: error: model file not found)" in str(stopped.value.code)


def test_a_passing_check_prints_its_figures(check_log, capsys):
    install.check([sys.executable, "-c", "print('the offline model answered: read 9 prompt tokens')"])
    assert "local-llm-install: checked in" in capsys.readouterr().out


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
    time.sleep(0.2)
    os.kill(os.getpid(), signal.{signal})
    time.sleep(30)
    """
)


def dying_server(tmp_path, port: int, how: str = "SIGSEGV") -> Path:
    """Run the stand-in until it has died; its log file."""
    log = tmp_path / "server.log"
    code = DYING_SERVER.format(local_llm=str(LOCAL_LLM), port=port, log=str(log), signal=how)
    with open(log, "w") as output:
        completed = subprocess.run([sys.executable, "-c", code], stdout=output, stderr=subprocess.STDOUT, timeout=60)
    assert completed.returncode == -getattr(signal, how), log.read_text()
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
    assert "install.py --rebuild" in report
    assert running.crash_report(f"http://127.0.0.1:{free_port()}/v1") is None  # no server was ever there
    assert running.crash_report(f"https://api.openai.com:{port}/v1") is None  # not a local server
    assert running.crash_report(None) is None


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_server_killed_without_a_word_is_still_named(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    dying_server(tmp_path, port, "SIGKILL")
    assert "stopped without a word" in running.crash_report(f"http://127.0.0.1:{port}/v1")


def test_a_server_that_stops_normally_leaves_no_note(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    port = free_port()
    code = f"import sys; sys.path.insert(0, {str(LOCAL_LLM)!r}); from llm_server.running import register; "
    code += f"register('127.0.0.1', {port}, None)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert not running.note_path(port).exists()
    assert running.crash_report(f"http://127.0.0.1:{port}/v1") is None


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
    [run] = result.runs
    assert run.info.status == "FAILED"


# --- the installed build (the optional extra) ---------------------------------------------------------


def installed_libraries() -> list[Path]:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None:
        pytest.skip("llama-cpp-python is not installed (optional extra): make local-llm-install")
    folder = Path(spec.origin).parent / "lib"
    return sorted(p for p in folder.iterdir() if p.name.startswith(("libggml", "libllama")) and ".so" in p.name)


@pytest.mark.local_llm
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ELF libraries with GNU objdump")
def test_the_installed_llama_cpp_holds_no_amx_and_nothing_beyond_its_portable_build():
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is missing")
    libraries = installed_libraries()
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
            ["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True, check=True
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
    try:
        server.send_signal(signal.SIGSEGV)
        server.wait(timeout=60)
        time.sleep(0.1)
        report = running.crash_report(f"http://127.0.0.1:{port}/v1")
        assert report is not None
        assert "crashed: SIGSEGV (signal 11)" in report, report
        assert str(log) in report
        assert json.loads(running.note_path(port).read_text())["log"] == str(log.resolve())
    finally:
        stop_process(server)
        running.note_path(port).unlink(missing_ok=True)


def test_the_build_skips_llama_cpps_common_library_through_cmakes_project_include(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    [(option, path)] = install.without_common().items()
    assert option == "CMAKE_PROJECT_llama.cpp_INCLUDE"
    text = (tmp_path / "mlops-course-local-llm" / "cmake" / "llama-cpp-without-common.cmake").read_text()
    assert path.endswith("llama-cpp-without-common.cmake")
    assert 'set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library" FORCE)' in text
    assert install.without_common() == {option: path}  # written once, the same path

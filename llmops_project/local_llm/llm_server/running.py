"""The note a running offline server leaves, so that a client can tell "the server crashed" from
"no server was started" (a connection refused looks the same to the OpenAI SDK).

serve.py calls ``register`` when it starts: a JSON file per port (pid, address, log file) in the
cache folder, and Python's faulthandler writing into a file beside it, so that a fatal signal
(SIGSEGV, SIGILL, SIGBUS, SIGFPE, SIGABRT) leaves its name. A server that stops normally (Ctrl+C,
SIGTERM, SIGHUP) removes its note. A client that cannot connect calls ``crash_report(base_url)``: a
note whose process is gone, with nothing else answering on its port, means the server died, and the
crash file says of what: faulthandler's words, or, when it could write none (several threads
crashing at once), how the process ended as the process that started it saw it (``reap``:
present.py's server in ``make demo``).

It also names how a crashed process ended (``crash_name``: a POSIX signal, or on Windows the
exception code a crashed process exits with), writes the commands a student pastes
(``python_command``: this Python by its path) and durations as they are printed (``clock``), for
install.py and present.py too.

Self-contained (the standard library only): quiz/provider.py imports it as
``local_llm.llm_server.running`` without loading llama.cpp.
"""

from __future__ import annotations

import atexit
import faulthandler
import functools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[3]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}
# What faulthandler writes for each fatal signal ("Fatal Python error: Segmentation fault")
FATAL = {
    "Segmentation fault": "SIGSEGV",
    "Illegal instruction": "SIGILL",
    "Bus error": "SIGBUS",
    "Floating-point exception": "SIGFPE",
    "Floating point exception": "SIGFPE",
    "Aborted": "SIGABRT",
}
# A process that crashes on Windows exits with its exception's NTSTATUS code (a positive exit status,
# 0xC0000005 = 3221225477), and faulthandler writes "Windows fatal exception: access violation".
WINDOWS_CRASHES = {
    0xC0000005: ("STATUS_ACCESS_VIOLATION", "access violation"),
    0xC000001D: ("STATUS_ILLEGAL_INSTRUCTION", "illegal instruction"),
    0xC0000409: ("STATUS_STACK_BUFFER_OVERRUN", "stack buffer overrun"),
    0xC00000FD: ("STATUS_STACK_OVERFLOW", "stack overflow"),
}
ENDED_BY = "Ended by"  # record_exit's line in a crash file: "Ended by: SIGSEGV (signal 11)"
REAPER_SECONDS = 1.0  # how long crash_report waits for that line when faulthandler wrote nothing
_crash_file = None  # kept open: faulthandler writes into it from the signal handler


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-course-local-llm"


def note_path(port: int) -> Path:
    return cache_dir() / "servers" / f"{port}.json"


def register(host: str, port: int, log: Path | None) -> None:
    """Leave this process's note for ``port`` and arm faulthandler; the note goes at a normal stop:
    an exit, Ctrl+C, SIGTERM (present.py stopping it, `kill`) or SIGHUP (its terminal closed)."""
    global _crash_file
    note = note_path(port)
    note.parent.mkdir(parents=True, exist_ok=True)
    crash = note.with_suffix(".crash")
    _crash_file = open(crash, "w")  # noqa: SIM115 (open for the process's lifetime)
    faulthandler.enable(file=_crash_file, all_threads=True)
    record = {"pid": os.getpid(), "host": host, "port": port, "log": str(log.resolve()) if log else None}
    note.write_text(json.dumps(record))
    atexit.register(unregister, port, os.getpid())
    # uvicorn shuts down gracefully on SIGTERM, then raises it again for the handler it found, by
    # default the OS's: the process would end without running atexit, and leave its note behind (a
    # later client would read a normal stop as a crash). This handler removes the note first.
    for name in ("SIGTERM", "SIGHUP"):  # SIGHUP does not exist on Windows
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, functools.partial(_stop_by_signal, port))


def _stop_by_signal(port: int, signum: int, frame) -> None:
    """Remove the note, then end by the signal, as the OS's default action would have."""
    unregister(port, os.getpid())
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def unregister(port: int, pid: int) -> None:
    note = note_path(port)
    try:
        if json.loads(note.read_text()).get("pid") == pid:
            note.unlink()
            note.with_suffix(".crash").unlink(missing_ok=True)
    except (OSError, ValueError):
        pass


def reap(server: subprocess.Popen, port: int) -> None:
    """Wait for a server this process started (``process.start_in_background``), then record how it
    ended where its clients look (``record_exit``): present.py's server, in ``make demo``."""
    server.wait()
    record_exit(port, server.pid, server.returncode)


def record_exit(port: int, pid: int, returncode: int) -> None:
    """Write into the crash file of the server ``pid`` on ``port`` how it ended, when it died by a
    signal (or a Windows exception) and faulthandler wrote nothing. That happens when several threads
    crash at once: the first one's handler gives the signal back its default action, and the second
    one's fault ends the process before a word is written (the native build's server on a Xeon with
    AMX, 2026-12-07: its crash file was empty in two of five runs). Only the process that started the
    server learns its exit status; this is what it knows, in the line ``fatal_signal`` reads."""
    how = crash_name(returncode)
    note = note_path(port)
    try:
        if how is None or json.loads(note.read_text()).get("pid") != pid:  # an exit, or a normal stop
            return
        if fatal_signal(crash_text(note)) is None:
            with open(note.with_suffix(".crash"), "a") as written:
                written.write(f"{ENDED_BY}: {how}\n")
    except (OSError, ValueError):
        pass


def alive(pid: int) -> bool:
    """Whether a process with this id exists (POSIX: signal 0; Windows: its exit code)."""
    if sys.platform == "win32":
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        ctypes.windll.kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        ctypes.windll.kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return not zombie(pid)


def zombie(pid: int) -> bool:
    """Whether the process has ended and only waits for its parent to collect its exit status (a
    server started by present.py or a test, until they look): gone, for a client. Linux tells it in
    /proc; elsewhere such a process counts as alive until its parent collects it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]  # the state follows the command name "(...)"


def fatal_signal(crash_text: str) -> str | None:
    """The fatal error faulthandler reported: "Fatal Python error: Segmentation fault" -> "SIGSEGV
    (signal 11)"; on Windows "Windows fatal exception: access violation" -> "STATUS_ACCESS_VIOLATION
    (0xC0000005)"."""
    match = re.search(r"(Fatal Python error|Windows fatal exception): ([^\n]+)", crash_text)
    if not match:  # faulthandler wrote nothing: what the process that started it saw (record_exit), if anything
        ended = re.search(rf"^{ENDED_BY}: ([^\n]+)", crash_text, re.MULTILINE)
        return ended[1] if ended else None
    # Threads that fault at once (llama.cpp's workers on a Xeon with AMX, seen here) write into each
    # other's line: "Fatal Python error: Fatal Python error: Segmentation faultSegmentation fault".
    # So: the first error this names, wherever it stands in that line; else the line without the marker.
    what = match.group(2).replace(f"{match.group(1)}: ", "").strip()
    if match.group(1) == "Windows fatal exception":  # "access violation", or "code 0xc0000094"
        code = re.search(r"code (0x[0-9a-fA-F]+)", what)
        number = int(code[1], 16) if code else first_named(what, {w: n for n, (_, w) in WINDOWS_CRASHES.items()})
        return crash_name(number or 0) or what
    name = first_named(what, FATAL)
    if name is None:
        return what
    return f"{name} (signal {int(getattr(signal, name, 0))})" if hasattr(signal, name) else name


def first_named(text: str, names: dict):
    """The value of the key of ``names`` that occurs first in ``text``; None if none does."""
    found = [(text.find(key), value) for key, value in names.items() if key in text]
    return min(found, key=lambda position_value: position_value[0])[1] if found else None


def crash_name(returncode: int) -> str | None:
    """How a process that crashed ended, from its exit status: "SIGSEGV (signal 11)" for a POSIX
    signal, "STATUS_ILLEGAL_INSTRUCTION (0xC000001D)" for a Windows exception; None for an exit."""
    if returncode < 0:
        try:
            return f"{signal.Signals(-returncode).name} (signal {-returncode})"
        except ValueError:
            return f"signal {-returncode}"
    if returncode in WINDOWS_CRASHES:
        return f"{WINDOWS_CRASHES[returncode][0]} (0x{returncode:08X})"
    return None


def exit_reason(returncode: int) -> str:
    """A process's exit status in words: its crash (``crash_name``), else "exit status 1"."""
    return crash_name(returncode) or f"exit status {returncode}"


def clock(seconds: float) -> str:
    """A duration as install.py and present.py print it: '4 min 07 s'."""
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def python_command(script: str, *arguments: str, windows: bool = os.name == "nt") -> str:
    """The command that runs ``script`` (its path from the repository root, with /) from a fresh
    shell at the repository root: this Python by its path, so that nothing needs activating first
    and no bare `python` is named (Debian and Ubuntu have none, and their python3 refuses to
    install packages, PEP 668). .venv/bin/python ...; on Windows .venv\\Scripts\\python.exe ..."""
    # "llmops_project/../.venv" -> ".venv"; no symlink followed (the venv's python links outside it)
    executable = Path(os.path.normpath(os.path.abspath(sys.executable)))
    try:
        python = executable.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        python = executable.as_posix()
    words = [python, script]
    if windows:
        words = [word.replace("/", "\\") for word in words]
    return " ".join([*(f'"{word}"' if " " in word else word for word in words), *arguments])


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts connections on ``host``:``port`` now."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def server_note(base_url: str | None) -> dict | None:
    """The note of the offline server registered at ``base_url`` (pid, host, port, log), running or
    not; None when ``base_url`` is not a loopback address or no server of ours registered there."""
    if not base_url:
        return None
    address = urlparse(base_url)
    if address.hostname not in LOOPBACK or not address.port:
        return None
    try:
        return json.loads(note_path(address.port).read_text())
    except (OSError, ValueError):
        return None


def crash_text(note: Path) -> str:
    """What the crash file beside a server's note says ("" if nothing)."""
    try:
        return note.with_suffix(".crash").read_text(errors="replace")
    except OSError:
        return ""


def crash_report(base_url: str | None) -> str | None:
    """One line saying that the offline server at ``base_url`` crashed, with the signal and the log
    file; None when no offline server was registered there, or it is still running, or another
    server has taken its port since (its note is then out of date: any server that answers there
    is not the one that crashed)."""
    record = server_note(base_url)
    if record is None or alive(record["pid"]):
        return None
    address = urlparse(base_url)
    if listening(address.hostname, address.port):
        return None
    note = note_path(address.port)
    how = fatal_signal(crash_text(note))
    deadline = time.monotonic() + REAPER_SECONDS
    while how is None and time.monotonic() < deadline:  # its parent may be writing how it ended (record_exit)
        time.sleep(0.1)
        how = fatal_signal(crash_text(note))
    if how is None:
        died = (
            "stopped without a word: killed by a signal it could not name (SIGKILL, e.g. by the out-of-memory "
            "killer, or a crash in several threads at once; the terminal that ran it says which)"
        )
    elif how.startswith("SIGKILL"):
        died = f"was killed: {how} (e.g. by the out-of-memory killer)"
    else:
        died = f"crashed: {how}"
    log = record.get("log") or str(note.with_suffix(".crash"))
    rebuild = python_command("llmops_project/local_llm/install.py", "--rebuild")
    return (
        f"the offline model server (serve.py on port {address.port}, pid {record['pid']}) {died}; its log: {log}. "
        f"Fix: rebuild it (from the repository root: {rebuild}), start it again (make local-llm), "
        "and re-run this command"
    )

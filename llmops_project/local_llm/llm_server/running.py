"""The note a running offline server leaves, so that a client can tell "the server crashed" from
"no server was started" (a connection refused looks the same to the OpenAI SDK).

serve.py calls ``register`` when it starts: a JSON file per port (pid, address, log file) in the
cache folder, and Python's faulthandler writing into a file beside it, so that a fatal signal
(SIGSEGV, SIGILL, SIGBUS, SIGFPE, SIGABRT) leaves its name. A server that stops normally (Ctrl+C,
SIGTERM) removes its note. A client that cannot connect calls ``crash_report(base_url)``: a note
whose process is gone means the server died, and the crash file says of what.

Self-contained (the standard library only): quiz/provider.py imports it as
``local_llm.llm_server.running`` without loading llama.cpp.
"""

from __future__ import annotations

import atexit
import faulthandler
import json
import os
import re
import signal
import sys
from pathlib import Path
from urllib.parse import urlparse

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
_crash_file = None  # kept open: faulthandler writes into it from the signal handler


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops-course-local-llm"


def note_path(port: int) -> Path:
    return cache_dir() / "servers" / f"{port}.json"


def register(host: str, port: int, log: Path | None) -> None:
    """Leave this process's note for ``port`` and arm faulthandler; the note goes at a normal exit."""
    global _crash_file
    note = note_path(port)
    note.parent.mkdir(parents=True, exist_ok=True)
    crash = note.with_suffix(".crash")
    _crash_file = open(crash, "w")  # noqa: SIM115 (open for the process's lifetime)
    faulthandler.enable(file=_crash_file, all_threads=True)
    record = {"pid": os.getpid(), "host": host, "port": port, "log": str(log.resolve()) if log else None}
    note.write_text(json.dumps(record))
    atexit.register(unregister, port, os.getpid())


def unregister(port: int, pid: int) -> None:
    note = note_path(port)
    try:
        if json.loads(note.read_text()).get("pid") == pid:
            note.unlink()
            note.with_suffix(".crash").unlink(missing_ok=True)
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
    return True


def fatal_signal(crash_text: str) -> str | None:
    """The signal faulthandler reported ("Fatal Python error: Segmentation fault" -> "SIGSEGV")."""
    match = re.search(r"Fatal Python error: ([^\n]+)", crash_text)
    if not match:
        return None
    name = FATAL.get(match.group(1).strip())
    if name is None:
        return match.group(1).strip()
    return f"{name} (signal {int(getattr(signal, name, 0))})" if hasattr(signal, name) else name


def crash_report(base_url: str | None) -> str | None:
    """One line saying that the offline server at ``base_url`` crashed, with the signal and the log
    file; None when no offline server was registered there or it is still running."""
    if not base_url:
        return None
    address = urlparse(base_url)
    if address.hostname not in LOOPBACK or not address.port:
        return None
    note = note_path(address.port)
    try:
        record = json.loads(note.read_text())
    except (OSError, ValueError):
        return None
    if alive(record["pid"]):
        return None
    try:
        crash_text = note.with_suffix(".crash").read_text(errors="replace")
    except OSError:
        crash_text = ""
    how = fatal_signal(crash_text)
    died = f"crashed: {how}" if how else "stopped without a word (killed, e.g. SIGKILL by the out-of-memory killer?)"
    log = record.get("log") or str(note.with_suffix(".crash"))
    return (
        f"the offline model server (serve.py on port {address.port}, pid {record['pid']}) {died}; its log: {log}. "
        "Fix: rebuild it (python llmops_project/local_llm/install.py --rebuild), start it again "
        "(make local-llm), and re-run this command"
    )

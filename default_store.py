"""One embedded MLflow store for the whole repository: <repo>/mlflow.db plus <repo>/mlartifacts/.

Why this file exists
--------------------
The talk shows a folder ``mlruns/`` appearing next to the script. MLflow 3 no longer works that
way: the file store is deprecated (refused by default since 3.13) and, when nothing is
configured, MLflow uses ``sqlite:///mlflow.db`` *relative to the current folder*, with artifacts
in ``./mlruns`` of whichever folder created the experiment. Running one example from the root
and another from inside its folder would then scatter runs over several databases.

``python default_store.py install`` writes a tiny start-up hook (a ``.pth`` file) into the
active virtual environment. From then on, every Python process of that environment, including
``mlflow run``, ``mlflow ui`` and ``mlflow models serve``, starts with these defaults:

* ``MLFLOW_TRACKING_URI`` = ``sqlite:///<repo>/mlflow.db`` unless you already set it
  (for example to the team server, ``http://localhost:5000``): your setting always wins.
* When the tracking URI is a SQLite file, new experiments keep their artifacts in
  ``mlartifacts/`` next to that file, instead of ``./mlruns`` of the current folder, and MLflow's
  download progress bars are off (copying within one disk is instant; the bars were only noise).

* In a bare ``mlflow ui`` (no ``--backend-store-uri``), that same store (``ui_defaults``): MLflow's
  UI reads its own variable, not ``MLFLOW_TRACKING_URI``, and would otherwise open a new, empty
  ``mlflow.db`` in the current folder.
* MLflow's server no longer prints Starlette's deprecation of ``starlette.middleware.wsgi``
  (``quiet_known_warnings``), a warning meant for MLflow's developers.
* In the ``mlflow run`` command itself, when the tracking URI is a server (``http(s)://``): one
  ``GET <server>/health`` first, as every example's ``cli.py`` does before its ``main()``. A server
  that does not answer is one line within seconds (``mlflow_run_check``), instead of MLflow's
  4 minutes of retries and a traceback before the script even starts.

``make install`` runs it for you. ``python default_store.py`` (no argument) prints where the
store is. Two more commands serve instructors and students:

* ``python default_store.py ui [--port 5000]`` (``make ui``): the MLflow UI on this store. It checks
  the port first, and says what holds it and how to choose another, instead of failing quietly;
  it prints "MLflow UI ready: <URL>" once the UI answers, not before.
* ``python default_store.py reset [--force]`` (``make reset``): empty the store (``mlflow.db``,
  ``mlartifacts/``) after a y/N question, for a class that starts afresh. It refuses while the UI
  started by ``make ui`` still uses the store.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PureWindowsPath  # PureWindowsPath: reads / and \ alike
from urllib.parse import unquote

# The start-up hook runs this file in EVERY Python process of the venv: only os, sys, pathlib and
# urllib.parse at the top; the commands below import what they need themselves.

REPO_ROOT = Path(__file__).resolve().parent
HOOK_FILE_NAME = "mlops_course_default_store.pth"
UI_STATE_FILE = ".mlflow-ui.json"  # next to the database, written by `ui` while it runs: `reset` reads it
# MLflow reads this variable to choose where a SQLite-backed store puts new experiments' artifacts
# (it is how `mlflow server --default-artifact-root` hands its choice to its workers). Setting it
# is the only way to pin that folder without a server; it has no other effect on local stores.
ARTIFACT_ROOT_VARIABLE = "_MLFLOW_SERVER_ARTIFACT_ROOT"


def sqlite_uri(database: Path) -> str:
    """``sqlite:///`` + an absolute path with forward slashes (works on Windows too)."""
    # POSIX: sqlite:////home/me/repo/mlflow.db (4 slashes); Windows: sqlite:///C:/Users/me/repo/mlflow.db
    return "sqlite:///" + database.resolve().as_posix()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or None for any other kind of store."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    return Path(unquote(tracking_uri[len(prefix) :].split("?", 1)[0]))


def apply_defaults(environ=os.environ) -> None:
    """Called at interpreter start by the hook. Pure ``os`` work, so it costs microseconds."""
    tracking_uri = environ.setdefault("MLFLOW_TRACKING_URI", sqlite_uri(REPO_ROOT / "mlflow.db"))
    database = sqlite_path(tracking_uri)
    if database is not None and database.is_absolute():
        environ.setdefault(ARTIFACT_ROOT_VARIABLE, (database.parent / "mlartifacts").as_posix())
        # Copying files within this disk takes no time: MLflow's download progress bars are only noise.
        environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # litellm (installed for dspy: llmops_project's align) fetches its price list from GitHub when
    # imported, and MLflow imports it in every process that traces or serves the UI: offline, after
    # retries and warnings. The copy bundled with litellm instead (set yours to override).
    environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def ui_defaults(environ=os.environ, orig_argv: list[str] | None = None) -> None:
    """In a bare ``mlflow ui`` (the talk's command, typed in any folder): the store in use, not a new
    ``mlflow.db`` of the current folder. ``mlflow ui`` reads its store from ``--backend-store-uri``
    or MLFLOW_BACKEND_STORE_URI, never from MLFLOW_TRACKING_URI; so, in that one process (and the
    server's workers, which inherit it), the tracking URI's SQLite store becomes the backend store,
    and its artifact folder the root of experiments the UI creates. Options you give win. Set here,
    at that process's start, from the tracking URI of the moment: never stale in other processes."""
    words = mlflow_command(orig_argv)
    database = sqlite_path(environ.get("MLFLOW_TRACKING_URI", ""))
    if words[1:2] != ["ui"] or database is None or not database.is_absolute():
        return
    if not any(word.startswith("--backend-store-uri") for word in words):
        environ.setdefault("MLFLOW_BACKEND_STORE_URI", environ["MLFLOW_TRACKING_URI"])
    artifacts = environ.get(ARTIFACT_ROOT_VARIABLE)
    if artifacts and not any(word.startswith(("--default-artifact-root", "--artifacts-destination")) for word in words):
        environ.setdefault("MLFLOW_DEFAULT_ARTIFACT_ROOT", artifacts)


def quiet_known_warnings() -> None:
    """MLflow 3.17.2's server (mlflow/server/fastapi_app.py) imports ``starlette.middleware.wsgi``,
    which Starlette 1.x deprecates: each uvicorn worker of ``mlflow ui`` / ``mlflow server`` printed
    a ``StarletteDeprecationWarning`` (four on ``make ui``) that only MLflow can act on. This filter
    matches that one message from that one module (by its base class, UserWarning: importing
    Starlette's own class here would cost every process of the venv its import)."""
    import warnings

    warnings.filterwarnings(
        "ignore",
        message=r"starlette\.middleware\.wsgi is deprecated",
        category=UserWarning,
        module=r"mlflow\.server\.fastapi_app",
    )


# --- `mlflow run` against a tracking server that does not answer -----------------------------------
# MLflow's own client retries a refused connection 7 times with backoff (about 4 min) before its
# traceback, and `mlflow run` looks up the experiment and creates the run before the script, and its
# own check (cli.py), starts. So the hook checks first, in that one process only. The same request
# and timeout as cli.py's: a server too slow to answer /health (no database work) within 4 s would
# fail the script's own check a second later anyway. MLflow's retries are left as they are, for the
# rest of the run (a busy classroom server).
SERVER_TIMEOUT = 4.0  # seconds to connect, then to get an answer (the same as the examples' cli.py)


def mlflow_command(orig_argv: list[str] | None = None) -> list[str]:
    """The words of an ``mlflow`` command (``mlflow run ...``, ``python -m mlflow ui ...``) from
    ``mlflow`` on, or [] in any other process. It reads ``sys.orig_argv``: at start-up ``sys.argv``
    is still ``["-m", ...]``, and inside the hook runpy has replaced its first word."""
    words = list(orig_argv if orig_argv is not None else sys.orig_argv)[1:]  # after the interpreter
    while words and words[0].startswith("-") and words[0] != "-m":  # its options, e.g. -X importtime
        words = words[2:] if words[0] in ("-X", "-W") else words[1:]
    if words[:1] == ["-m"]:
        words = words[1:]
    elif words:  # the script: .../bin/mlflow, or Scripts\mlflow.exe on Windows
        words[0] = PureWindowsPath(words[0]).stem.lower()
    return words if words[:1] == ["mlflow"] else []


def is_mlflow_run(orig_argv: list[str] | None = None) -> bool:
    """True in the ``mlflow run`` command, not in the script it starts; ``--help`` needs no server."""
    words = mlflow_command(orig_argv)
    return words[:2] == ["mlflow", "run"] and not {"-h", "--help"} & set(words)


def unreachable(tracking_uri: str, timeout: float = SERVER_TIMEOUT) -> str | None:
    """None when ``tracking_uri`` is a local store or a server that answers (any HTTP status, or TLS);
    else one line saying so and what to do."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    import ssl
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(tracking_uri)
    shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # never print a password
    try:
        with urllib.request.urlopen(shown.rstrip("/") + "/health", timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: MLflow reports whatever is wrong (401 in classroom mode, ...)
    except OSError as problem:
        reason = getattr(problem, "reason", problem)
        if isinstance(reason, ssl.SSLError):
            return None  # it answered TLS: a certificate problem is MLflow's to report
        what = f"no answer within {timeout:g} s" if isinstance(reason, TimeoutError) else str(reason)
    return (
        f"error: mlflow run cannot reach the tracking server MLFLOW_TRACKING_URI={shown} "
        f"({what.rpartition('] ')[2].lower()}). Start it (make stack, or docker compose up -d --wait), "
        "or unset MLFLOW_TRACKING_URI to use the local store"
    )


def mlflow_run_check() -> None:
    """In the ``mlflow run`` process, before MLflow's first request: a server that does not answer
    ends it with one line and exit status 2. (At start-up sys.exit would be a fatal error: os._exit.)"""
    if is_mlflow_run() and (problem := unreachable(os.environ.get("MLFLOW_TRACKING_URI", ""))):
        print(problem, file=sys.stderr, flush=True)
        os._exit(2)


def install() -> Path:
    """Write the start-up hook into the site-packages of the running interpreter."""
    if sys.prefix == sys.base_prefix:
        sys.exit(
            "default_store.py: activate the repository's virtual environment first "
            "(source .venv/bin/activate, or .venv\\Scripts\\activate on Windows)."
        )
    import sysconfig

    hook = Path(sysconfig.get_paths()["purelib"]) / HOOK_FILE_NAME
    this_file = str(Path(__file__).resolve())
    hook.write_text(
        "import os, runpy; "
        f"os.path.exists({this_file!r}) and "
        f"runpy.run_path({this_file!r}, run_name='default_store_hook')\n",
        encoding="utf-8",
    )
    return hook


def port_in_use(port: int, host: str = "127.0.0.1") -> str | None:
    """None when ``port`` is free; otherwise what holds it, as far as we can tell."""
    import socket
    import subprocess

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
            return None
        except OSError:
            pass
    holder = _ui_state()
    if holder and holder.get("port") == port:
        return f"the MLflow UI of `make ui` (pid {holder['pid']})"
    try:
        found = subprocess.run(["lsof", "-nP", f"-iTCP:{port}", "-sTCP:LISTEN"], capture_output=True, text=True)
        lines = found.stdout.splitlines()[1:]
        if lines:
            command, pid = lines[0].split()[:2]
            return f"{command} (pid {pid})"
    except OSError:  # no lsof here
        pass
    return "another program"


def _ui_state_file() -> Path:
    database = sqlite_path(os.environ.get("MLFLOW_TRACKING_URI", ""))
    return (database.parent if database else REPO_ROOT) / UI_STATE_FILE


def _ui_state() -> dict | None:
    """The running `make ui`'s pid and port, or None (no file, or its process has ended)."""
    import json

    try:
        state = json.loads(_ui_state_file().read_text())
        os.kill(state["pid"], 0)
        return state
    except (OSError, ValueError, KeyError):
        return None


def ui_command(port: int) -> list[str]:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    store = os.environ["MLFLOW_TRACKING_URI"]
    command = [mlflow, "ui", "--backend-store-uri", store, "--host", "127.0.0.1", "--port", str(port)]
    if sqlite_path(store) is not None:
        command += ["--artifacts-destination", os.environ[ARTIFACT_ROOT_VARIABLE]]
    return command


def start_ui(port: int, background: bool = False):
    """The MLflow UI on the store in use; exits with one clear line when the port is taken. In the
    foreground, it says "ready" only once the UI answers (the server takes 15-30 s to start on a
    small machine, and prints "Uvicorn running" well before the page loads)."""
    import json
    import subprocess

    if holder := port_in_use(port):
        sys.exit(
            f"error: port {port} is taken by {holder}, so the MLflow UI cannot start. "
            f"Stop it, or choose another port: UI_PORT={port + 50} make ui (or --port {port + 50})"
        )
    url = f"http://127.0.0.1:{port}"
    print(f"Starting the MLflow UI on {os.environ['MLFLOW_TRACKING_URI']}: {url} (wait for 'ready')", flush=True)
    process = subprocess.Popen(ui_command(port), start_new_session=background)  # background: its own group
    _ui_state_file().write_text(json.dumps({"pid": process.pid, "port": port}))
    if background:
        return process
    try:
        if _wait_until_answers(url, process):
            print(f"\nMLflow UI ready: {url}", flush=True)
            print("  The side bar's switch picks the view: Model training (tracking, autologging, census),")
            print("  GenAI (llmops). The MLflow Assistant panel opens on a first visit: close it with its X.")
            print("  Stop the UI with Ctrl+C.", flush=True)
        sys.exit(process.wait())
    except KeyboardInterrupt:
        process.terminate()
        process.wait()
    finally:
        _ui_state_file().unlink(missing_ok=True)


def _wait_until_answers(url: str, process) -> bool:
    """True once ``url`` answers 200; False if ``process`` ends first."""
    import time
    import urllib.request

    while process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:  # refused, reset or timed out: not up yet
            pass
        time.sleep(0.5)
    return False


def reset(force: bool) -> None:
    """Empty the repository's store (mlflow.db, mlartifacts/): a new class starts afresh."""
    import shutil

    if state := _ui_state():
        sys.exit(
            f"error: the MLflow UI of `make ui` (pid {state['pid']}, port {state['port']}) still uses the store. "
            "Stop it first (Ctrl+C in its terminal), then run make reset again"
        )
    database = sqlite_path(os.environ["MLFLOW_TRACKING_URI"])
    if database is None:
        sys.exit(
            f"error: MLFLOW_TRACKING_URI is {os.environ['MLFLOW_TRACKING_URI']}, not a local store. "
            "make reset only empties the repository's mlflow.db: unset MLFLOW_TRACKING_URI to use it"
        )
    artifacts = Path(os.environ.get(ARTIFACT_ROOT_VARIABLE) or database.parent / "mlartifacts")
    if not database.exists() and not artifacts.exists():
        print("The store is already empty.")
        return
    if not force:
        answer = input(f"Delete every run, model, prompt and trace in {database} and {artifacts}/? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing deleted.")
            return
    database.unlink(missing_ok=True)
    shutil.rmtree(artifacts, ignore_errors=True)
    print(f"Deleted {database} and {artifacts}/: the next command starts an empty store.")
    print("(The team server of `make stack` keeps its own data in .stack/ and was not touched.)")


if __name__ == "default_store_hook":  # (site may run a venv's .pth files twice: all of this is idempotent)
    apply_defaults()
    ui_defaults()
    quiet_known_warnings()
    mlflow_run_check()
elif __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        description="The repository's MLflow store: install its hook, open the UI, reset it."
    )
    parser.add_argument(
        "command", nargs="?", choices=["install", "ui", "reset"], help="default: say where the store is"
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT", 5000)), help="for ui")
    parser.add_argument("--force", action="store_true", help="for reset: no question asked")
    args = parser.parse_args()
    if args.command == "install":
        print(f"Installed the default-store hook: {install()}")
    apply_defaults()
    if args.command == "ui":
        start_ui(args.port)
    elif args.command == "reset":
        reset(args.force or os.environ.get("FORCE") == "1")
    else:
        print(f"MLflow tracking URI: {os.environ['MLFLOW_TRACKING_URI']}")
        print("UI: make ui   (or: python default_store.py ui --port 5000)")

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
  ``mlartifacts/`` next to that file, instead of ``./mlruns`` of the current folder.

``make install`` runs it for you. ``python default_store.py`` (no argument) prints where the
store is.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path
from urllib.parse import unquote

REPO_ROOT = Path(__file__).resolve().parent
HOOK_FILE_NAME = "mlops_course_default_store.pth"
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


def install() -> Path:
    """Write the start-up hook into the site-packages of the running interpreter."""
    if sys.prefix == sys.base_prefix:
        sys.exit(
            "default_store.py: activate the repository's virtual environment first "
            "(source .venv/bin/activate, or .venv\\Scripts\\activate on Windows)."
        )
    hook = Path(sysconfig.get_paths()["purelib"]) / HOOK_FILE_NAME
    this_file = str(Path(__file__).resolve())
    hook.write_text(
        "import os, runpy; "
        f"os.path.exists({this_file!r}) and "
        f"runpy.run_path({this_file!r}, run_name='default_store_hook')\n",
        encoding="utf-8",
    )
    return hook


if __name__ == "default_store_hook":
    apply_defaults()
elif __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        print(f"Installed the default-store hook: {install()}")
    apply_defaults()
    print(f"MLflow tracking URI: {os.environ['MLFLOW_TRACKING_URI']}")
    print(f"UI: mlflow ui --backend-store-uri {os.environ['MLFLOW_TRACKING_URI']} --port 5000")

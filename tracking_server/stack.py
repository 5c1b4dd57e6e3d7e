"""The team tracking stack without Docker: PostgreSQL + an S3 server + the real `mlflow server`.

    python tracking_server/stack.py up      # or: make stack       (prints the URI to export)
    python tracking_server/stack.py down    # or: make stack-down  (data stay in .stack/)
    python tracking_server/stack.py status

The same three services as docker-compose.yml, on 127.0.0.1 only:

* Backend Store: Debian's PostgreSQL 15 (``/usr/lib/postgresql/15/bin``), its own cluster in
  ``.stack/postgres/``. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
* Artifact Store: moto's S3 server (``moto_server``, pip-installable) stands in for MinIO, which
  no package registry ships. Objects live in memory; every S3 request is also recorded to
  ``.stack/s3/recording.jsonl`` and replayed on the next start, so artifacts survive a restart.
* MLflow Tracking Server: started by ``tracking_server/start-server.sh``, the very script the
  compose service runs, with the S3 endpoint and (dummy) S3 keys in the server's environment only.

The tests start the same stack on free ports in a temporary folder (tests/fixtures_stack.py).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
START_SCRIPT = HERE / "start-server.sh"
VENV_BIN = Path(sys.executable).parent  # mlflow, moto_server: from the interpreter running this
POSTGRES_VERSION = "15"
POSTGRES_SYSTEM_USER = "postgres"  # who runs PostgreSQL when we are root
DB_USER = DB_NAME = BUCKET = "mlflow"
# The S3 stand-in accepts any key; these only exist so boto3 signs its requests.
S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION = "stack-dev-key", "stack-dev-secret", "us-east-1"


class StackError(RuntimeError):
    """A problem with one clear fix; the CLI prints it as one line."""


@dataclass
class StackConfig:
    root: Path
    mlflow_port: int = 5000
    postgres_port: int = 15432
    s3_port: int = 9000
    workers: int | None = None  # None: mlflow server's own default
    # MLflow's job runner (five more processes beside the server: server-side scorers, prompt
    # optimisation; nothing the examples use). On by default, as `mlflow server` ships; tests turn it off.
    job_runner: bool = True
    auth: bool = False  # classroom mode: MLflow's basic-auth app (logins, per-student permissions)
    db_password: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def state_file(self) -> Path:
        return self.root / "stack.json"

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {**asdict(self), "root": str(self.root)}
        self.state_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
        self.state_file.chmod(0o600)  # it holds the database password

    @classmethod
    def load(cls, root: Path) -> StackConfig | None:
        state_file = root / "stack.json"
        if not state_file.exists():
            return None
        data = json.loads(state_file.read_text(encoding="utf-8"))
        return cls(**{**data, "root": Path(data["root"])})


# --- PostgreSQL binaries ---------------------------------------------------------------------


def postgres_bin_dir(install: bool = True) -> Path:
    """Debian's PostgreSQL 15 binaries; installed with apt-get when missing and we are root."""
    debian = Path(f"/usr/lib/postgresql/{POSTGRES_VERSION}/bin")
    if (debian / "initdb").exists():
        return debian
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("PostgreSQL server binaries missing: apt-get install -y postgresql ...", flush=True)
        apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt_env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=apt_env)
        return postgres_bin_dir(install=False)
    # Debian's `postgresql` package may bring another major version: take any.
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True):
        return candidate.parent
    raise StackError(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/15/bin/initdb, no initdb on "
        "PATH). Install them: `sudo apt-get install -y postgresql` (Debian/Ubuntu) or "
        "`brew install postgresql@15` (macOS), then re-run."
    )


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", POSTGRES_SYSTEM_USER, "--", *command]


START_MARKER = "--- started by tracking_server/stack.py ---"


def _last_error_line(log: Path) -> str:
    """The ``error: ...`` line a service wrote to its log since its last start, if any."""
    try:
        lines = log.read_text(errors="replace").split(START_MARKER)[-1].splitlines()
    except OSError:
        return ""
    return next((line.removeprefix("error: ") for line in reversed(lines) if line.startswith("error: ")), "")


def _wait_for_http(url: str, what: str, log: Path, timeout: float, process=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            reason = _last_error_line(log)
            if reason:  # already "<what>. <fix>"
                raise StackError(reason.rstrip("."))
            raise StackError(f"{what} exited at start (code {process.returncode}). See {log}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered: it is up
        except OSError:
            time.sleep(0.3)
    raise StackError(f"{what} did not answer at {url} within {timeout:.0f}s. See {log}")


def _pid_alive(pid: int, expected_in_cmdline: str) -> bool:
    """True if `pid` runs and is really the process we started (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        try:
            os.kill(pid, 0)  # no /proc (macOS): trust the pid file
            return True
        except OSError:
            return False
    return expected_in_cmdline in cmdline


def _start_process(command: list[str], env: dict, log: Path, pid_file: Path) -> subprocess.Popen:
    """Start a long-running service in its own process group, logging to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as log_handle:
        log_handle.write(f"{START_MARKER}\n".encode())
        log_handle.flush()
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid_file.write_text(str(process.pid))
    return process


def _stop_process(pid_file: Path, expected_in_cmdline: str, timeout: float = 20) -> None:
    """Stop the process group we started (its id is in `pid_file`): TERM, then KILL."""
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text())
    if _pid_alive(pid, expected_in_cmdline):
        os.killpg(pid, signal.SIGTERM)  # the group: mlflow server's uvicorn workers too
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _pid_alive(pid, expected_in_cmdline):
            try:  # reap it if it is our child
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.2)
        if _pid_alive(pid, expected_in_cmdline):
            os.killpg(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)


class NativeStack:
    """Start/stop the three services; each one separately too (the durability test restarts two)."""

    def __init__(self, config: StackConfig, auth_secrets: dict[str, str] | None = None):
        """``auth_secrets``: the admin password and Flask secret key for classroom mode
        (``MLFLOW_AUTH_ADMIN_PASSWORD``, ``MLFLOW_FLASK_SERVER_SECRET_KEY``); by default read from
        the environment, then from the repository's ``.env`` (see ``classroom_secrets``)."""
        self.config = config
        self._auth_secrets = auth_secrets
        self.pg_dir = config.root / "postgres"
        self.pg_data = self.pg_dir / "data"
        self.pg_log = self.pg_dir / "postgres.log"
        self.s3_dir = config.root / "s3"
        self.mlflow_log = config.root / "mlflow-server.log"
        self._s3 = None

    # --- addresses -----------------------------------------------------------------------------
    @property
    def tracking_uri(self) -> str:
        return f"http://localhost:{self.config.mlflow_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.config.s3_port}"

    @property
    def postgres_conninfo(self) -> dict:
        """Keyword arguments for psycopg.connect()."""
        return {
            "host": "127.0.0.1",
            "port": self.config.postgres_port,
            "user": DB_USER,
            "password": self.config.db_password,
            "dbname": DB_NAME,
        }

    def s3_client(self):
        """A boto3 S3 client for the bucket (made once: boto3 reads the whole environment each time)."""
        if self._s3 is None:
            self._s3 = self._new_s3_client()
        return self._s3

    def _new_s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_ACCESS_KEY,
            aws_secret_access_key=S3_SECRET_KEY,
        )

    # --- the whole stack -----------------------------------------------------------------------
    def start(self) -> None:
        self.config.root.mkdir(parents=True, exist_ok=True)
        self.config.root.chmod(0o711)  # the postgres user must reach postgres/, not read the rest
        self.config.save()
        self.start_postgres()
        self.start_s3()
        self.start_mlflow()

    def stop(self) -> None:
        self.stop_mlflow()
        self.stop_s3()
        self.stop_postgres()

    # --- Backend Store: PostgreSQL ---------------------------------------------------------------
    def _pg(self, tool: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        command = _as_postgres_user([str(postgres_bin_dir() / tool), *args])
        return subprocess.run(command, capture_output=True, text=True, cwd=self.pg_dir, **kwargs)

    def start_postgres(self) -> None:
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.pg_dir, POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER)
            reachable = subprocess.run(_as_postgres_user(["test", "-w", str(self.pg_dir)]))
            if reachable.returncode != 0:
                raise StackError(
                    f"the '{POSTGRES_SYSTEM_USER}' user cannot write {self.pg_dir} (a parent folder "
                    "is private). Put the stack in a reachable folder, e.g. "
                    "`python tracking_server/stack.py up --dir /tmp/mlflow-stack`."
                )
        self.pg_dir.chmod(0o700)
        if not (self.pg_data / "PG_VERSION").exists():
            password_file = self.pg_dir / "initdb-password"
            password_file.write_text(self.config.db_password)
            if os.geteuid() == 0:
                shutil.chown(password_file, POSTGRES_SYSTEM_USER, POSTGRES_SYSTEM_USER)
            try:
                done = self._pg(
                    "initdb",
                    "-D",
                    str(self.pg_data),
                    "-U",
                    DB_USER,
                    f"--pwfile={password_file}",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                )
            finally:
                password_file.unlink(missing_ok=True)
            if done.returncode != 0:
                raise StackError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.config.postgres_port} "
            f"-c unix_socket_directories={self.pg_dir}"
        )
        done = self._pg(
            "pg_ctl", "-D", str(self.pg_data), "-l", str(self.pg_log), "-o", options, "-w", "-t", "60", "start"
        )
        if done.returncode != 0 and "another server might be running" not in done.stderr:
            raise StackError(f"PostgreSQL did not start: {done.stderr.strip()}. See {self.pg_log}")
        self._create_database()

    def _create_database(self) -> None:
        import psycopg

        admin = {**self.postgres_conninfo, "dbname": "postgres"}
        with psycopg.connect(**admin, autocommit=True) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
            if not exists:
                connection.execute(f'CREATE DATABASE "{DB_NAME}"')

    def postgres_running(self) -> bool:
        return self._pg("pg_ctl", "-D", str(self.pg_data), "status").returncode == 0

    def stop_postgres(self) -> None:
        if self.pg_data.exists() and self.postgres_running():
            self._pg("pg_ctl", "-D", str(self.pg_data), "-m", "fast", "-w", "stop")

    # --- Artifact Store: moto's S3 server (the stand-in for MinIO) --------------------------------
    def start_s3(self) -> None:
        self.s3_dir.mkdir(parents=True, exist_ok=True)
        pid_file = self.s3_dir / "moto_server.pid"
        if pid_file.exists() and _pid_alive(int(pid_file.read_text()), "moto_server"):
            return
        recording = self.s3_dir / "recording.jsonl"
        had_objects = recording.exists() and recording.stat().st_size > 0
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "true", "MOTO_RECORDER_FILEPATH": str(recording)}
        process = _start_process(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.config.s3_port)],
            env,
            self.s3_dir / "moto_server.log",
            pid_file,
        )
        _wait_for_http(
            f"{self.s3_endpoint}/moto-api/", "The S3 server (moto_server)", self.s3_dir / "moto_server.log", 30, process
        )
        if had_objects:  # bring back what the bucket held before the last stop
            request = urllib.request.Request(f"{self.s3_endpoint}/moto-api/recorder/replay-recording", method="POST")
            urllib.request.urlopen(request, timeout=300).close()
        client = self.s3_client()
        if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
            client.create_bucket(Bucket=BUCKET)

    def stop_s3(self) -> None:
        _stop_process(self.s3_dir / "moto_server.pid", "moto_server")

    # --- MLflow Tracking Server --------------------------------------------------------------------
    def server_env(self) -> dict:
        """What start-server.sh needs; S3 endpoint and keys are the server's alone."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("MLFLOW_", "AWS_", "_MLFLOW_"))  # nothing from the caller's set-up
        }
        env.update(
            {
                "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                "POSTGRES_USER": DB_USER,
                "POSTGRES_PASSWORD": self.config.db_password,
                "POSTGRES_DB": DB_NAME,
                "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": str(self.config.postgres_port),
                "MLFLOW_BUCKET": BUCKET,
                "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
                "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
                "AWS_DEFAULT_REGION": S3_REGION,
                "MLFLOW_HOST": "127.0.0.1",
                "MLFLOW_PORT": str(self.config.mlflow_port),
                # The host check: the names clients use, with the port. Never "*".
                "MLFLOW_SERVER_ALLOWED_HOSTS": ",".join(
                    f"{host}:{self.config.mlflow_port}" for host in ("localhost", "127.0.0.1")
                ),
                "MLFLOW_DISABLE_TELEMETRY": "true",
            }
        )
        if self.config.workers:
            env["MLFLOW_WORKERS"] = str(self.config.workers)
        if not self.config.job_runner:
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
        if self.config.auth:  # start-server.sh checks the secrets and writes the settings file
            secrets_ = self._auth_secrets if self._auth_secrets is not None else classroom_secrets()
            env.update(secrets_)
            env["MLFLOW_APP_NAME"] = "basic-auth"
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(self.config.root / "basic_auth.ini")
        # The repository's default-store hook must not point the server's own processes elsewhere.
        env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        return env

    def start_mlflow(self) -> None:
        pid_file = self.config.root / "mlflow-server.pid"
        if pid_file.exists() and _pid_alive(int(pid_file.read_text()), "mlflow"):
            return
        process = _start_process(["sh", str(START_SCRIPT)], self.server_env(), self.mlflow_log, pid_file)
        _wait_for_http(
            f"http://127.0.0.1:{self.config.mlflow_port}/health", "mlflow server", self.mlflow_log, 300, process
        )

    def stop_mlflow(self) -> None:
        _stop_process(self.config.root / "mlflow-server.pid", "mlflow")


# --- classroom mode's secrets --------------------------------------------------------------------
CLASSROOM_SECRETS = ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")
ENV_FILE = REPO_ROOT / ".env"


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """``KEY=value`` lines of a docker-compose ``.env`` file (comments and blank lines skipped)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


CLASSROOM_OPTIONS = ("MLFLOW_AUTH_CACHE_TTL_SECONDS",)  # optional; start-server.sh has the default


def classroom_secrets(env_file: Path = ENV_FILE) -> dict[str, str]:
    """The same settings as the compose stack: from the environment, else from ``.env``."""
    from_file = read_env_file(env_file)
    settings = {name: os.environ.get(name) or from_file.get(name, "") for name in CLASSROOM_SECRETS}
    for name in CLASSROOM_OPTIONS:
        if os.environ.get(name) or from_file.get(name):
            settings[name] = os.environ.get(name) or from_file[name]
    return settings


# --- command line ------------------------------------------------------------------------------


def _config_from_args(args) -> StackConfig:
    root = Path(args.dir).resolve()
    config = StackConfig.load(root) or StackConfig(root=root)
    for name in ("mlflow_port", "postgres_port", "s3_port", "workers"):
        if getattr(args, name, None):
            setattr(config, name, getattr(args, name))
    config.auth = args.auth  # chosen at each `up`: `make stack AUTH=1` or not
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--dir",
        default=str(REPO_ROOT / ".stack"),
        help="where the services keep their data and logs (default: .stack/)",
    )
    parser.add_argument("--mlflow-port", type=int, help="default 5000")
    parser.add_argument("--postgres-port", type=int, help="default 15432")
    parser.add_argument("--s3-port", type=int, help="default 9000")
    parser.add_argument("--workers", type=int, help="mlflow server worker processes (default: mlflow's)")
    parser.add_argument(
        "--auth",
        action="store_true",
        help="classroom mode: MLflow's basic-auth app; admin password and Flask secret key from .env",
    )
    args = parser.parse_args(argv)
    config = _config_from_args(args)
    stack = NativeStack(config)
    try:
        if args.command == "up":
            stack.start()
            print(
                f"Stack up: PostgreSQL 127.0.0.1:{config.postgres_port}, S3 stand-in "
                f"{stack.s3_endpoint} (bucket '{BUCKET}'), MLflow {stack.tracking_uri}. "
                f"Logs in {config.root}/"
            )
            print("Point any example at it (Linux/macOS; Windows: see tracking_server/README.md):")
            print(f"  export MLFLOW_TRACKING_URI={stack.tracking_uri}")
            if config.auth:
                print("Classroom mode is on: log in as admin with MLFLOW_AUTH_ADMIN_PASSWORD from .env, and make")
                print("students' accounts with:  python tracking_server/classroom.py users roster.csv")
            print("Stop it with:  make stack-down")
        elif args.command == "down":
            stack.stop()
            print(f"Stack stopped. Runs and artifacts stay in {config.root}/ (delete that folder to start afresh).")
        else:
            running = stack.postgres_running() if stack.pg_data.exists() else False
            print(f"PostgreSQL running: {running}; MLflow URI: {stack.tracking_uri}")
    except StackError as error:
        if args.command == "up":
            stack.stop()  # leave nothing half-started behind
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

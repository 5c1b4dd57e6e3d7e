"""Classroom mode: logins and per-student permissions on the team server (MLflow's basic-auth app).

The start script's refusals and classroom.py's roster errors are checked without a server. The
rest runs against ONE real native stack with classroom mode on (``make stack AUTH=1``: the same
start script, PostgreSQL, S3 stand-in), shared by this module. Accounts come from a roster, made
by ``python tracking_server/classroom.py users`` exactly as an instructor runs it. Every test
asserts what the server answered (HTTP status codes) and what its stores hold (rows, objects).
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests import harness
from tests.fixtures_stack import running_stack
from tracking_server import check_stack
from tracking_server.stack import START_SCRIPT

CLASSROOM = harness.REPO_ROOT / "tracking_server" / "classroom.py"
ADMIN = "admin"
ROSTER = "username,password\nalice,\nbob,bob-chose-this-password\n"
API = "/api/2.0/mlflow"


def run_classroom(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``python tracking_server/classroom.py ...`` as the instructor types it."""
    return subprocess.run(
        [sys.executable, str(CLASSROOM), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def one_error_line(completed: subprocess.CompletedProcess) -> str:
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
    [line] = completed.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


# --- without a server ------------------------------------------------------------------------


def start_script(**overrides: str) -> subprocess.CompletedProcess:
    """start-server.sh in classroom mode; it must stop before starting mlflow when a secret is weak."""
    env = {
        "PATH": os.environ["PATH"],
        "POSTGRES_USER": "mlflow",
        "POSTGRES_PASSWORD": "pw",
        "POSTGRES_DB": "mlflow",
        "POSTGRES_HOST": "127.0.0.1",
        "MLFLOW_BUCKET": "mlflow",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
        "MLFLOW_APP_NAME": "basic-auth",
        "MLFLOW_AUTH_ADMIN_PASSWORD": "a-strong-admin-password",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-strong-flask-secret-key",
        "MLFLOW_AUTH_CONFIG_PATH": "/nonexistent/basic_auth.ini",
        **overrides,
    }
    return subprocess.run(["sh", str(START_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "", "is empty or still the .env.example placeholder"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "change-me-admin", "is empty or still the .env.example placeholder"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "password1234", "is empty or still the .env.example placeholder"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "short", "is shorter than 12 characters"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "", "is empty or still the .env.example placeholder"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "change-me-secret", "is empty or still the .env.example placeholder"),
    ],
)
def test_classroom_mode_refuses_to_start_with_an_empty_or_default_secret(variable, value, problem):
    completed = start_script(**{variable: value})
    line = one_error_line(completed)
    assert f"needs a strong {variable}, and it {problem}. Put one in .env" in line
    assert "import secrets" in line  # the command that makes a good one
    assert "Starting MLflow server" not in completed.stdout  # it never got that far


def test_classroom_mode_is_mlflow_with_its_auth_extra_everywhere():
    requirements = (harness.REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    [pin] = re.findall(r"^mlflow\[auth\]==(\S+)$", requirements, re.M)
    dockerfile = (harness.REPO_ROOT / "tracking_server" / "Dockerfile").read_text(encoding="utf-8")
    assert f"FROM ghcr.io/mlflow/mlflow:v{pin}" in dockerfile
    # The image installs requirements.txt's own lines: the grep must pick exactly these three.
    pattern = re.search(r"grep -E '([^']+)' /tmp/requirements.txt", dockerfile).group(1)  # ERE = Python's here
    picked = [line for line in requirements.splitlines() if re.match(pattern, line)]
    assert [line.split("==")[0] for line in picked] == ["mlflow[auth]", "psycopg[binary]", "boto3"]
    import flask_wtf  # noqa: F401  (what basic-auth needs beyond mlflow: installed by the extra)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "line 1: expected the header 'username,password' (password optional), got 'an empty file'"),
        ("name,pw\nalice,\n", "line 1: expected the header 'username,password' (password optional), got 'name,pw'"),
        ("username,password\n", "lists no student"),
        ("username,password\nal ice,\n", "line 2: 'al ice' is not a username"),
        ("username,password\nalice,\n\nalice,\n", "line 4: 'alice' appears twice"),
        ("username,password\nalice,short\n", "line 2: the password of 'alice' is shorter than 12 characters"),
        ("username,password\nalice,a-long-password,x\n", "line 2: 3 columns, the header has 2"),
    ],
)
def test_a_malformed_roster_is_named_precisely_before_anything_is_sent(tmp_path, content, problem):
    roster = tmp_path / "roster.csv"
    roster.write_text(content, encoding="utf-8")
    # No server runs at this address: the roster must fail first.
    line = one_error_line(run_classroom("users", str(roster), env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}))
    assert line.startswith(f"error: {roster}")
    assert problem in line
    assert not (tmp_path / "roster.credentials.csv").exists()


def test_an_unreachable_server_is_one_line_with_the_fix(tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER, encoding="utf-8")
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{harness.free_port()}", "MLFLOW_AUTH_ADMIN_PASSWORD": "x" * 12}
    line = one_error_line(run_classroom("users", str(roster), env=env))
    assert "cannot reach the MLflow server at http://127.0.0.1:" in line
    assert "make stack AUTH=1" in line


# --- against a real server in classroom mode -------------------------------------------------


@pytest.fixture(scope="module")
def classroom_stack():
    secrets_ = {
        "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
    }
    with running_stack(auth_secrets=secrets_) as stack:
        stack.admin_password = secrets_["MLFLOW_AUTH_ADMIN_PASSWORD"]
        yield stack


@pytest.fixture(scope="module")
def instructor_env(classroom_stack) -> dict[str, str]:
    """What the instructor's shell holds: the server's URI and the admin password from .env."""
    return {
        "MLFLOW_TRACKING_URI": classroom_stack.tracking_uri,
        "MLFLOW_AUTH_ADMIN_PASSWORD": classroom_stack.admin_password,
    }


@pytest.fixture(scope="module")
def roster(classroom_stack, instructor_env, tmp_path_factory):
    """alice (generated password) and bob (his own), made once for the module by classroom.py."""
    folder = tmp_path_factory.mktemp("class")
    path = folder / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    completed = run_classroom("users", str(path), env=instructor_env, cwd=folder)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    credentials_file = folder / "roster.credentials.csv"
    with open(credentials_file, newline="", encoding="utf-8") as handle:
        credentials = {row["username"]: row for row in csv.DictReader(handle)}
    return {"path": path, "credentials_file": credentials_file, "credentials": credentials, "output": completed.stdout}


def login(roster, username: str) -> tuple[str, str]:
    return username, roster["credentials"][username]["password"]


def admin(classroom_stack) -> tuple[str, str]:
    return ADMIN, classroom_stack.admin_password


class Http:
    """Requests to the stack's server as one user (or none): status code and JSON body."""

    def __init__(self, stack, auth):
        self.base, self.auth = stack.tracking_uri, auth

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.base + path, auth=self.auth, timeout=60, **kwargs)

    def post(self, path: str, body: dict) -> requests.Response:
        return self("POST", API + path, json=body)


def sql(stack, query: str, *args) -> list[tuple]:
    with psycopg.connect(**stack.postgres_conninfo) as connection:
        return connection.execute(query, args).fetchall()


def experiment_id(stack, name: str) -> str:
    [(found,)] = sql(stack, "SELECT experiment_id FROM experiments WHERE name = %s", name)
    return str(found)


@pytest.fixture(scope="module")
def alices_run(classroom_stack, roster) -> dict:
    """alice logs a run, a metric and an artifact to her own experiment, over the REST API."""
    alice = Http(classroom_stack, login(roster, "alice"))
    created = alice.post("/runs/create", {"experiment_id": experiment_id(classroom_stack, "alice"), "start_time": 1})
    assert created.status_code == 200, created.text
    run = created.json()["run"]["info"]
    metric = alice.post("/runs/log-metric", {"run_id": run["run_id"], "key": "loss", "value": 0.5, "timestamp": 1})
    artifact_path = f"{check_stack.bucket_prefix(run['artifact_uri'])}notes.txt"
    uploaded = alice("PUT", f"/api/2.0/mlflow-artifacts/artifacts/{artifact_path}", data=b"alice's notes")
    return {**run, "statuses": (metric.status_code, uploaded.status_code), "artifact_key": artifact_path}


def version_of_alices_model(alices_run) -> dict:
    """A model-version request for "alice-model" from alice's run."""
    run_id = alices_run["run_id"]
    return {"name": "alice-model", "source": f"runs:/{run_id}/notes.txt", "run_id": run_id}


@pytest.mark.stack
def test_no_credentials_or_a_wrong_password_get_401(classroom_stack, roster):
    path = f"{API}/experiments/search?max_results=5"
    assert Http(classroom_stack, None)("GET", path).status_code == 401
    assert Http(classroom_stack, ("alice", "not-her-password-at-all"))("GET", path).status_code == 401
    assert Http(classroom_stack, ("nobody", "whatever-password-1"))("GET", path).status_code == 401
    assert Http(classroom_stack, login(roster, "alice"))("GET", path).status_code == 200
    assert Http(classroom_stack, login(roster, "bob"))("GET", path).status_code == 200
    assert Http(classroom_stack, None)("GET", "/health").status_code == 200  # the healthcheck needs no login


@pytest.mark.stack
def test_the_roster_makes_accounts_own_experiments_and_a_private_credentials_file(classroom_stack, roster):
    assert stat.S_IMODE(roster["credentials_file"].stat().st_mode) == 0o600
    credentials = roster["credentials"]
    assert set(credentials) == {"alice", "bob"}
    assert credentials["bob"]["password"] == "bob-chose-this-password"
    assert len(credentials["alice"]["password"]) >= 20  # generated
    assert {row["experiment"] for row in credentials.values()} == {"alice", "bob"}
    assert {row["MLFLOW_TRACKING_URI"] for row in credentials.values()} == {classroom_stack.tracking_uri}
    assert "2 account(s) created, 0 already existed." in roster["output"]
    for row in credentials.values():  # the passwords are in the file only, never on screen
        assert row["password"] not in roster["output"]
    # Rows in PostgreSQL: the accounts (users live beside the runs), one experiment each.
    rows = sql(classroom_stack, "SELECT username, is_admin FROM users ORDER BY username")
    assert rows == [("admin", True), ("alice", False), ("bob", False)]
    assert sql(classroom_stack, "SELECT name FROM experiments WHERE name IN ('alice', 'bob') ORDER BY name") == [
        ("alice",),
        ("bob",),
    ]
    admin_http = Http(classroom_stack, admin(classroom_stack))
    for student, other in (("alice", "bob"), ("bob", "alice")):
        for experiment, expected in ((student, "MANAGE"), (other, "READ")):
            params = {"username": student, "resource_type": "experiment"}
            params["resource_id"] = experiment_id(classroom_stack, experiment)
            answer = admin_http("GET", "/api/3.0/mlflow/users/permissions/get", params=params)
            assert answer.json()["permission"] == expected, (student, experiment)


@pytest.mark.stack
def test_the_roster_twice_creates_no_duplicates(classroom_stack, roster, instructor_env):
    credentials_before = roster["credentials_file"].read_bytes()
    again = run_classroom("users", str(roster["path"]), env=instructor_env, cwd=roster["path"].parent)
    assert again.returncode == 0, again.stderr
    assert "0 account(s) created, 2 already existed." in again.stdout
    assert again.stdout.count("exists, left alone") == 2
    assert roster["credentials_file"].read_bytes() == credentials_before  # nothing rewritten
    assert sql(classroom_stack, "SELECT username, count(*) FROM users GROUP BY username HAVING count(*) > 1") == []
    assert sql(classroom_stack, "SELECT count(*) FROM users") == [(3,)]
    assert sql(classroom_stack, "SELECT count(*) FROM experiments WHERE name IN ('alice', 'bob')") == [(2,)]
    # Their original passwords still work: existing accounts were left alone.
    for student in ("alice", "bob"):
        assert Http(classroom_stack, login(roster, student))("GET", f"{API}/users/current").status_code == 200


@pytest.mark.stack
def test_a_student_logs_a_run_a_metric_and_an_artifact_to_their_own_experiment(classroom_stack, alices_run):
    assert alices_run["statuses"] == (200, 200)
    run_id = alices_run["run_id"]
    assert sql(
        classroom_stack,
        "SELECT e.name, r.lifecycle_stage FROM runs r JOIN experiments e USING (experiment_id) WHERE run_uuid = %s",
        run_id,
    ) == [("alice", "active")]
    assert sql(classroom_stack, "SELECT key, value FROM metrics WHERE run_uuid = %s", run_id) == [("loss", 0.5)]
    stored = classroom_stack.s3_client().get_object(Bucket="mlflow", Key=alices_run["artifact_key"])
    assert stored["Body"].read() == b"alice's notes"


@pytest.mark.stack
def test_a_classmate_can_read_but_not_write_delete_or_register(classroom_stack, roster, alices_run):
    alice, bob = Http(classroom_stack, login(roster, "alice")), Http(classroom_stack, login(roster, "bob"))
    run_id = alices_run["run_id"]
    # alice registers a model from her run: she owns it.
    assert alice.post("/registered-models/create", {"name": "alice-model"}).status_code == 200
    version = alice.post("/model-versions/create", version_of_alices_model(alices_run))
    assert version.status_code == 200, version.text

    # bob can look ...
    assert bob("GET", f"{API}/runs/get", params={"run_id": run_id}).status_code == 200
    assert bob("GET", f"{API}/registered-models/get", params={"name": "alice-model"}).status_code == 200
    artifact = bob("GET", f"/api/2.0/mlflow-artifacts/artifacts/{alices_run['artifact_key']}")
    assert (artifact.status_code, artifact.content) == (200, b"alice's notes")
    # ... but not touch: write, delete, register under her run's experiment or her model.
    alices_experiment = experiment_id(classroom_stack, "alice")
    refused = {
        "log a metric": bob.post("/runs/log-metric", {"run_id": run_id, "key": "loss", "value": 9.0, "timestamp": 2}),
        "create a run": bob.post("/runs/create", {"experiment_id": alices_experiment}),
        "upload an artifact": bob(
            "PUT", f"/api/2.0/mlflow-artifacts/artifacts/{alices_run['artifact_key']}", data=b"x"
        ),
        "delete the run": bob.post("/runs/delete", {"run_id": run_id}),
        "log a model in her experiment": bob(
            "POST", "/api/2.0/mlflow/logged-models", json={"experiment_id": alices_experiment, "name": "bobs"}
        ),
        "register a version of her model": bob.post("/model-versions/create", version_of_alices_model(alices_run)),
        "move her model's alias": bob.post(
            "/registered-models/alias", {"name": "alice-model", "alias": "champion", "version": "1"}
        ),
        "delete her model": bob("DELETE", f"{API}/registered-models/delete", json={"name": "alice-model"}),
    }
    assert {what: answer.status_code for what, answer in refused.items()} == dict.fromkeys(refused, 403)
    # Nothing changed behind the server.
    assert sql(classroom_stack, "SELECT lifecycle_stage FROM runs WHERE run_uuid = %s", run_id) == [("active",)]
    assert sql(classroom_stack, "SELECT key, value FROM metrics WHERE run_uuid = %s", run_id) == [("loss", 0.5)]
    assert sql(classroom_stack, "SELECT count(*) FROM runs WHERE experiment_id = %s", int(alices_experiment)) == [(1,)]
    assert sql(classroom_stack, "SELECT version FROM model_versions WHERE name = 'alice-model'") == [(1,)]
    assert sql(classroom_stack, "SELECT count(*) FROM registered_model_aliases WHERE name = 'alice-model'") == [(0,)]
    stored = classroom_stack.s3_client().get_object(Bucket="mlflow", Key=alices_run["artifact_key"])
    assert stored["Body"].read() == b"alice's notes"


@pytest.mark.stack
def test_the_admin_can_do_everything(classroom_stack, roster, alices_run):
    root = Http(classroom_stack, admin(classroom_stack))
    bobs_experiment = experiment_id(classroom_stack, "bob")
    created = root.post("/runs/create", {"experiment_id": bobs_experiment})
    assert created.status_code == 200
    run_id = created.json()["run"]["info"]["run_id"]
    assert (
        root.post("/runs/log-metric", {"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 1}).status_code == 200
    )
    assert root.post("/runs/delete", {"run_id": run_id}).status_code == 200
    version = root.post("/model-versions/create", version_of_alices_model(alices_run))
    assert version.status_code == 200
    assert root.post("/registered-models/alias", {"name": "alice-model", "alias": "champion", "version": "2"}).ok
    assert sql(classroom_stack, "SELECT lifecycle_stage FROM runs WHERE run_uuid = %s", run_id) == [("deleted",)]
    assert sql(classroom_stack, "SELECT version FROM registered_model_aliases WHERE name = 'alice-model'") == [(2,)]
    users = root("GET", f"{API}/users/list")
    assert {u["username"] for u in users.json()["users"]} >= {"admin", "alice", "bob"}


@pytest.mark.stack
def test_mlflow_run_census_with_a_students_credentials_lands_in_their_experiment(classroom_stack, roster, monkeypatch):
    # The harness lists runs in-process as the admin; the student's `mlflow run` has only her login.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", classroom_stack.admin_password)
    harness.use_tracking_uri(monkeypatch, classroom_stack.tracking_uri, None)
    store = harness.Store(classroom_stack.tracking_uri, None, MlflowClient(classroom_stack.tracking_uri))
    username, password = login(roster, "alice")
    student = {
        "MLFLOW_TRACKING_USERNAME": username,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_EXPERIMENT_NAME": username,  # her own experiment; no --experiment-name needed
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    params = {"model_type": "logistic", "lr_C_values": "[1.0]", "cv_splits": 2}
    result = harness.run_project(store, "census_project", "train", params, env=student)
    run = result.run
    assert run.info.status == "FINISHED"
    run_ids = {r.info.run_id for r in result.runs}
    rows = sql(
        classroom_stack,
        "SELECT r.run_uuid, r.status, e.name FROM runs r JOIN experiments e USING (experiment_id) "
        "WHERE r.run_uuid = ANY(%s)",
        list(run_ids),
    )
    assert {(run_id, "FINISHED", "alice") for run_id in run_ids} == set(rows)
    assert len(run_ids) >= 2  # the parent run and its candidate
    # Her charts and model are objects in the bucket, under her experiment's folder.
    objects = check_stack.NativeBackstage(classroom_stack).objects(check_stack.bucket_prefix(run.info.artifact_uri))
    assert objects
    assert check_stack.bucket_prefix(run.info.artifact_uri).startswith(f"{experiment_id(classroom_stack, 'alice')}/")
    # She registered the model, so she manages it; bob may only read it.
    versions = sql(classroom_stack, "SELECT run_id FROM model_versions WHERE name = 'adult-best-logistic'")
    assert {run_id for (run_id,) in versions} <= run_ids != set()
    root = Http(classroom_stack, admin(classroom_stack))
    for who, expected in (("alice", "MANAGE"), ("bob", "READ")):
        params = {"username": who, "resource_type": "registered_model", "resource_id": "adult-best-logistic"}
        answer = root("GET", "/api/3.0/mlflow/users/permissions/get", params=params)
        assert answer.json()["permission"] == expected, who


@pytest.mark.stack
def test_the_host_check_still_answers_before_any_login(classroom_stack, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", classroom_stack.admin_password)
    check_stack.check_host_header(check_stack.NativeBackstage(classroom_stack), None)
    port = classroom_stack.config.mlflow_port
    anonymous = requests.get(f"http://127.0.0.1:{port}{API}/experiments/search", headers={"Host": "evil.example.com"})
    assert anonymous.status_code == 403
    # Still bound to loopback only.
    assert classroom_stack.server_env()["MLFLOW_HOST"] == "127.0.0.1"


@pytest.mark.stack
def test_the_check_scripts_classroom_check_passes_here_as_in_the_compose_job(classroom_stack, monkeypatch):
    """The CI's compose job runs this same check on the Docker stack with classroom mode on."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)  # check_stack.py logs in as the admin
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", classroom_stack.admin_password)
    harness.use_tracking_uri(monkeypatch, classroom_stack.tracking_uri, None)
    store = harness.Store(classroom_stack.tracking_uri, None, MlflowClient(classroom_stack.tracking_uri))
    summary = check_stack.check_classroom(check_stack.NativeBackstage(classroom_stack), store)
    assert "read 200, write 403, delete 403" in summary
    assert sql(classroom_stack, "SELECT count(*) FROM users WHERE username LIKE %s", "check-%") == [(0,)]  # removed


@pytest.mark.stack
def test_list_and_remove(classroom_stack, instructor_env, tmp_path):
    roster = tmp_path / "late.csv"
    roster.write_text("username\ncarol\n", encoding="utf-8")
    assert run_classroom("users", str(roster), env=instructor_env).returncode == 0
    with open(tmp_path / "late.credentials.csv", newline="", encoding="utf-8") as handle:
        [carol] = list(csv.DictReader(handle))
    listed = run_classroom("list", env=instructor_env)
    assert listed.returncode == 0
    assert re.search(r"^carol\s+no\s+'carol' \(id \d+, MANAGE\)$", listed.stdout, re.M), listed.stdout
    assert re.search(r"^admin\s+yes\s+-$", listed.stdout, re.M)

    removed = run_classroom("remove", "carol", "nobody", "admin", env=instructor_env)
    assert removed.returncode == 0, removed.stderr
    assert "removed              carol" in removed.stdout
    assert "not found            nobody" in removed.stdout
    assert "kept                 admin" in removed.stdout
    assert sql(classroom_stack, "SELECT count(*) FROM users WHERE username = 'carol'") == [(0,)]
    assert sql(classroom_stack, "SELECT count(*) FROM experiments WHERE name = 'carol'") == [(1,)]  # her work stays
    gone = Http(classroom_stack, ("carol", carol["password"]))("GET", f"{API}/experiments/search")
    assert gone.status_code == 401


@pytest.mark.stack
def test_classroom_py_says_when_the_admin_password_is_wrong_or_the_server_has_no_logins(
    classroom_stack, native_stack, instructor_env
):
    wrong = {**instructor_env, "MLFLOW_AUTH_ADMIN_PASSWORD": "not-the-admin-password"}
    assert "refused the login of 'admin' (401)" in one_error_line(run_classroom("list", env=wrong))
    open_server = {**instructor_env, "MLFLOW_TRACKING_URI": native_stack.tracking_uri}
    assert "has no logins (classroom mode is off)" in one_error_line(run_classroom("list", env=open_server))

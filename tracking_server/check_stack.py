"""Does the team tracking stack work, behind the server too? One set of checks for every way to run it.

    python tracking_server/check_stack.py native [--dir .stack]   # against `make stack`  (make stack-check)
    python tracking_server/check_stack.py compose                 # against docker compose (make compose-check, CI)

Each check runs an example's main entry points as a student does (``mlflow run ...`` with only
``MLFLOW_TRACKING_URI`` set), then looks BEHIND the server: the metadata must be rows in
PostgreSQL and the artifacts objects in the bucket. Then it restarts the MLflow server and checks
that nothing is lost, and that a foreign ``Host`` header gets 403. The checks:

    tracking      tracking_example: params, metric history, artifact
    autologging   autologging_example main + register: logged model, alias champion
    census        census_project train (logistic, tiny grid): runs, charts, registered version
    llmops        llmops_project register_all_prompts, generate_answers, evaluate_responses,
                  against the repository's deterministic OpenAI-compatible test server
    classroom     (classroom mode only) classroom.py's accounts: own experiment, classmates READ, 401s
    host-header   DNS-rebinding protection: 403 for foreign Host headers
    restart       restart the mlflow server: every run, metric point, artifact and alias still there

What lies behind the server is reached in two ways, the only part that differs:

* ``native``: psycopg for SQL, boto3 for the bucket, ``tracking_server/stack.py`` to restart;
* ``compose``: ``docker compose exec postgres psql`` for SQL, the ``mc`` image (the compose
  file's ``bucket`` service) for the bucket, ``docker compose restart mlflow`` to restart.

tests/test_stack.py runs these same functions against the native stack it starts. In classroom
mode (basic-auth) the checks log in as the admin (``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, or
``admin`` with ``MLFLOW_AUTH_ADMIN_PASSWORD`` from the environment or .env).
Needs requirements.txt only: the run helpers and the test server come from devtools/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # tracking_server.*, devtools.* when run as a script

import mlflow  # noqa: E402
import mlflow.artifacts  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import requests  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from devtools import projects  # noqa: E402  (run_project, Store, ProjectResult)
from tracking_server import stack as native  # noqa: E402

ARTIFACT_PROXY_SCHEME = "mlflow-artifacts:/"  # what --serve-artifacts hands out to clients
# The experiments the checks log to: the names the examples' READMEs and `make demo` use.
EXPERIMENTS = {
    "tracking": "logging_example",
    "autologging": "autologging-example",
    "census": "adult-classifier-demo",
    "llmops": "se-answers-demo",
}
CHAMPION = "champion"


class CheckFailed(AssertionError):
    """What the stack did not do, in one line."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- behind the server: the two ways in ----------------------------------------------------


def _literal(value: object) -> str:
    """A SQL literal for the checks' own parameters (run ids, names, numbers)."""
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _as_json_query(query: str, params: tuple) -> str:
    """``query`` with its ``%s`` filled in, wrapped so PostgreSQL answers with one JSON text.

    Both ways in then read the very same answer, typed the same (numbers stay numbers)."""
    parts = query.split("%s")
    expect(len(parts) == len(params) + 1, f"{len(params)} parameters for {len(parts) - 1} placeholders: {query}")
    filled = parts[0] + "".join(_literal(value) + part for value, part in zip(params, parts[1:], strict=True))
    return f"SELECT coalesce(json_agg(q), '[]')::text FROM ({filled}) AS q"


def text_array(values) -> str:
    """A PostgreSQL array literal of ids (hex strings), for ``= ANY(%s::text[])``."""
    return "{" + ",".join(sorted(values)) + "}"


def _rows(json_text: str) -> list[tuple]:
    """json_agg's objects, one per row, as tuples in column order."""
    return json.loads(json_text, object_pairs_hook=lambda pairs: tuple(value for _key, value in pairs))


class Backstage:
    """What lies behind the MLflow server: SQL on its PostgreSQL, objects in its bucket, a restart."""

    tracking_uri: str

    def sql(self, query: str, *params) -> list[tuple]:
        """Rows of ``query`` (``%s`` placeholders), as tuples of JSON values."""
        return _rows(self._query_json(_as_json_query(query, params)))

    def _query_json(self, query: str) -> str:
        raise NotImplementedError

    def objects(self, prefix: str) -> dict[str, int]:
        """{key relative to ``prefix``: size} of every object under ``prefix`` in the bucket."""
        raise NotImplementedError

    def read_object(self, key: str) -> bytes:
        raise NotImplementedError

    def restart_mlflow(self) -> None:
        raise NotImplementedError


class NativeBackstage(Backstage):
    """``make stack`` / tests: psycopg, boto3 and tracking_server/stack.py."""

    def __init__(self, stack: native.NativeStack):
        self.stack = stack
        self.tracking_uri = stack.tracking_uri

    def _query_json(self, query: str) -> str:
        import psycopg

        with psycopg.connect(**self.stack.postgres_conninfo) as connection:
            return connection.execute(query).fetchone()[0]

    def objects(self, prefix: str) -> dict[str, int]:
        found = {}
        paginator = self.stack.s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=native.BUCKET, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"].removeprefix(prefix)] = item["Size"]
        return found

    def read_object(self, key: str) -> bytes:
        return self.stack.s3_client().get_object(Bucket=native.BUCKET, Key=key)["Body"].read()

    def restart_mlflow(self) -> None:
        self.stack.stop_mlflow()
        self.stack.start_mlflow()


class ComposeBackstage(Backstage):
    """docker-compose.yml's stack: ``docker compose exec postgres psql``, the ``mc`` image, restart."""

    def __init__(self, tracking_uri: str = "http://localhost:5000", compose: tuple[str, ...] = ("docker", "compose")):
        self.tracking_uri = tracking_uri
        self.compose = list(compose)
        self.bucket = self._run("exec", "-T", "mlflow", "printenv", "MLFLOW_BUCKET").decode().strip()

    def _run(self, *args: str, stdin: bytes | None = None) -> bytes:
        command = [*self.compose, *args]
        try:
            done = subprocess.run(command, input=stdin, capture_output=True, cwd=REPO_ROOT)
        except FileNotFoundError:
            raise CheckFailed(
                f"{command[0]} not found: the compose checks need Docker. Natively, use: make stack-check"
            ) from None
        if done.returncode != 0:
            raise CheckFailed(f"{' '.join(command)} failed: {done.stderr.decode(errors='replace').strip()[-2000:]}")
        return done.stdout

    def _query_json(self, query: str) -> str:
        # The container's own POSTGRES_USER / POSTGRES_DB, so no password leaves .env.
        script = 'exec psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -X -q -A -t -v ON_ERROR_STOP=1'
        return self._run("exec", "-T", "postgres", "sh", "-c", script, stdin=query.encode()).decode()

    def _mc(self, *args: str) -> bytes:
        # The compose file's one-shot `bucket` service: the mc image, with MC_HOST_minio from .env.
        return self._run("run", "--rm", "--no-deps", "-T", "bucket", *args)

    def objects(self, prefix: str) -> dict[str, int]:
        listing = self._mc("ls", "--recursive", "--json", f"minio/{self.bucket}/{prefix}")
        found = {}
        for line in listing.decode().splitlines():
            entry = json.loads(line)
            if entry.get("status") == "success" and entry.get("type") == "file":
                found[entry["key"].removeprefix(prefix)] = entry["size"]
        return found

    def read_object(self, key: str) -> bytes:
        return self._mc("cat", f"minio/{self.bucket}/{key}")

    def restart_mlflow(self) -> None:
        self._run("restart", "mlflow")
        wait_for_health(self.tracking_uri, timeout=300)


def wait_for_health(tracking_uri: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{tracking_uri}/health", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(1)
    raise CheckFailed(f"the mlflow server at {tracking_uri} did not answer /health within {timeout:.0f}s")


# --- what the checks share -----------------------------------------------------------------


def bucket_prefix(artifact_uri: str) -> str:
    """Where an ``mlflow-artifacts:/`` location lands in the bucket (--artifacts-destination s3://<bucket>)."""
    expect(artifact_uri.startswith(ARTIFACT_PROXY_SCHEME), f"{artifact_uri}: not proxied by the server")
    return artifact_uri.removeprefix(ARTIFACT_PROXY_SCHEME).strip("/") + "/"


def all_artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    """Every artifact file of a run, listed through the server."""
    files = set()
    for info in client.list_artifacts(run_id, path):
        files |= all_artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return files


def run_entry_point(store: projects.Store, folder: str, entry: str, params=None, **kwargs) -> projects.ProjectResult:
    """``mlflow run <folder> -e <entry>`` as a student runs it; the one top-level run must be FINISHED."""
    result = projects.run_project(store, folder, entry, params, **kwargs)
    expect(result.run.info.status == "FINISHED", f"{folder}:{entry} ended {result.run.info.status}")
    return result


def registered_versions_of(backstage: Backstage, name: str, run_ids: set[str]) -> list[int]:
    """The versions of registered model ``name`` made from any of ``run_ids``, as rows in PostgreSQL."""
    rows = backstage.sql("SELECT version, run_id FROM model_versions WHERE name = %s", name)
    return sorted(version for version, run_id in rows if run_id in run_ids)


def champion_is_a_row_with_its_files_in_the_bucket(backstage: Backstage, store: projects.Store, name: str) -> int:
    """The alias ``champion`` of ``name``: a row, pointing at a version whose model files are objects."""
    champion = store.client.get_model_version_by_alias(name, CHAMPION)
    rows = backstage.sql("SELECT version FROM registered_model_aliases WHERE name = %s AND alias = %s", name, CHAMPION)
    expect(rows == [(int(champion.version),)], f"{name}@{CHAMPION}: PostgreSQL has {rows}, the server says {champion}")
    model = store.client.get_logged_model(champion.source.removeprefix("models:/"))
    files = backstage.objects(bucket_prefix(model.artifact_location))
    expect("MLmodel" in files and len(files) > 1, f"{name}@{CHAMPION}: model files in the bucket: {sorted(files)}")
    return int(champion.version)


# --- the checks ----------------------------------------------------------------------------


def check_tracking(backstage: Backstage, store: projects.Store) -> str:
    result = run_entry_point(store, "tracking_example", "main", {"seed": 42}, experiment_name=EXPERIMENTS["tracking"])
    run = result.run
    run_id = run.info.run_id
    expect(run.data.params == {"seed": "42"}, f"params {run.data.params}")
    expect({f"random_{i}" for i in range(5)} <= set(run.data.metrics), f"metrics {sorted(run.data.metrics)}")

    # Metadata: rows in PostgreSQL, the same values the client reads through the server.
    rows = backstage.sql(
        "SELECT r.status, e.name FROM runs r JOIN experiments e USING (experiment_id) WHERE r.run_uuid = %s", run_id
    )
    expect(rows == [("FINISHED", EXPERIMENTS["tracking"])], f"run {run_id} in PostgreSQL: {rows}")
    params = dict(backstage.sql("SELECT key, value FROM params WHERE run_uuid = %s", run_id))
    expect(params == {"seed": "42"}, f"params rows {params}")
    points = 0
    for key in run.data.metrics:
        history = sorted((m.step, m.value) for m in store.client.get_metric_history(run_id, key))
        rows = sorted(backstage.sql("SELECT step, value FROM metrics WHERE run_uuid = %s AND key = %s", run_id, key))
        expect(rows == history, f"metric {key}: rows {rows}, through the server {history}")
        points += len(rows)

    # Artifacts: objects in the bucket, byte for byte what the client downloads via the server.
    expect(all_artifact_paths(store.client, run_id) == {"examples/example.txt"}, "artifacts listed by the server")
    prefix = bucket_prefix(run.info.artifact_uri)
    expect(set(backstage.objects(prefix)) == {"examples/example.txt"}, f"objects under {prefix}")
    in_bucket = backstage.read_object(prefix + "examples/example.txt").decode()
    through_server = mlflow.artifacts.load_text(f"runs:/{run_id}/examples/example.txt")
    expect(in_bucket == through_server != "", "examples/example.txt differs between bucket and server")
    return f"run {run_id}: 1 run row, {len(params)} param, {points} metric points, 1 artifact object"


def check_autologging(backstage: Backstage, store: projects.Store) -> str:
    experiment = EXPERIMENTS["autologging"]
    trained = run_entry_point(store, "autologging_example", "main", {"seed": 42}, experiment_name=experiment)
    run = trained.run
    [output] = run.outputs.model_outputs
    model = store.client.get_logged_model(output.model_id)
    rows = backstage.sql("SELECT source_run_id FROM logged_models WHERE model_id = %s", model.model_id)
    expect(rows == [(run.info.run_id,)], f"logged model {model.model_id} rows: {rows}")
    params = dict(backstage.sql("SELECT key, value FROM params WHERE run_uuid = %s", run.info.run_id))
    expect(params == run.data.params != {}, "autologged params differ between PostgreSQL and the server")
    files = backstage.objects(bucket_prefix(model.artifact_location))
    expect({"MLmodel", "model.pkl", "requirements.txt"} <= set(files), f"model files in the bucket: {sorted(files)}")

    projects.run_project(store, "autologging_example", "register", experiment_name=experiment)  # newest: the above
    name = "iris-classifier-dt"
    versions = registered_versions_of(backstage, name, {run.info.run_id})
    expect(versions, f"no version of {name} from run {run.info.run_id} in PostgreSQL")
    version = champion_is_a_row_with_its_files_in_the_bucket(backstage, store, name)
    # The model loads back through the server alone and predicts Iris classes.
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    predicted = set(loaded.predict(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])).tolist())
    expect(predicted <= {0, 1, 2}, f"{name}@{CHAMPION} predicted {predicted}")
    return f"logged model {model.model_id} ({len(files)} objects); {name} v{versions[-1]}, @{CHAMPION} = v{version}"


def check_census(backstage: Backstage, store: projects.Store) -> str:
    params = {"model_type": "logistic", "lr_C_values": "[1.0]", "cv_splits": 2}  # the small grid: seconds
    result = run_entry_point(store, "census_project", "train", params, experiment_name=EXPERIMENTS["census"])
    run = result.run
    run_ids = {r.info.run_id for r in result.runs}
    rows = backstage.sql("SELECT run_uuid, status FROM runs WHERE run_uuid = ANY(%s::text[])", text_array(run_ids))
    expect(dict(rows) == dict.fromkeys(run_ids, "FINISHED"), f"census runs in PostgreSQL: {rows}")
    run_files = backstage.objects(bucket_prefix(run.info.artifact_uri))
    listed = all_artifact_paths(store.client, run.info.run_id)
    expect(set(run_files) == listed != set(), f"parent run's objects {sorted(run_files)} vs listed {sorted(listed)}")
    name = "adult-best-logistic"
    versions = registered_versions_of(backstage, name, run_ids)
    expect(versions, f"no version of {name} from this training's runs in PostgreSQL")
    champion = champion_is_a_row_with_its_files_in_the_bucket(backstage, store, name)
    return f"{len(run_ids)} runs, {len(run_files)} objects; {name} v{versions[-1]}, @{CHAMPION} = v{champion}"


def check_llmops(backstage: Backstage, store: projects.Store, llm_base_url: str) -> str:
    env = {"OPENAI_BASE_URL": llm_base_url, "OPENAI_API_KEY": "test-key"}
    experiment = {"experiment_name": EXPERIMENTS["llmops"], "env": env}
    run_entry_point(store, "llmops_project", "register_all_prompts", **experiment)
    generated = run_entry_point(store, "llmops_project", "generate_answers", {"max_questions": 2}, **experiment).run
    expect(generated.data.metrics.get("successful") == 2, f"generate_answers metrics {generated.data.metrics}")
    # answers.csv is an object in the bucket; the traces are rows in PostgreSQL.
    expect("answers.csv" in backstage.objects(bucket_prefix(generated.info.artifact_uri)), "answers.csv not in bucket")
    traces = mlflow.search_traces(
        locations=[generated.info.experiment_id], run_id=generated.info.run_id, return_type="list"
    )
    trace_ids = {t.info.trace_id for t in traces}
    expect(len(trace_ids) == 2, f"{len(trace_ids)} traces for 2 questions")
    experiment_id = int(generated.info.experiment_id)
    rows = backstage.sql("SELECT request_id FROM trace_info WHERE experiment_id = %s", experiment_id)
    expect(trace_ids <= {request_id for (request_id,) in rows}, "the traces are not rows in trace_info")

    evaluation = {"generation_run_id": generated.info.run_id, "judge_model": "openai:/gpt-4.1-mini"}
    evaluated = run_entry_point(store, "llmops_project", "evaluate_responses", evaluation, **experiment).run
    # The judges' verdicts are assessments on those traces: rows too.
    judged = backstage.sql(
        "SELECT DISTINCT trace_id FROM assessments WHERE trace_id = ANY(%s::text[])", text_array(trace_ids)
    )
    expect({trace_id for (trace_id,) in judged} == trace_ids, f"assessment rows for {judged}, traces {trace_ids}")
    prompts = backstage.sql("SELECT count(*) FROM registered_models WHERE name IN ('basic', 'system')")
    expect(prompts == [(2,)], f"prompt rows {prompts}")
    return f"runs {generated.info.run_id[:8]}/{evaluated.info.run_id[:8]}: 2 answers, 2 trace rows, judged, prompts"


def check_host_header(backstage: Backstage, store: projects.Store) -> str:
    """The host check (DNS-rebinding protection) answers before any login: 403 whoever asks."""
    port = int(backstage.tracking_uri.rsplit(":", 1)[1].strip("/"))
    endpoint = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search"
    auth = _login_from_environment()

    def status(host: str) -> int:
        answer = requests.get(endpoint, params={"max_results": 1}, headers={"Host": host}, auth=auth, timeout=30)
        return answer.status_code

    allowed = status(f"localhost:{port}")
    expect(allowed == 200, f"Host localhost:{port} got {allowed}")
    for foreign in ("evil.example.com", f"evil.example.com:{port}", f"localhost:{port + 1}"):
        refused = status(foreign)
        expect(refused == 403, f"Host {foreign} got {refused}, expected 403")
    return f"Host localhost:{port} -> 200; evil.example.com, evil.example.com:{port}, localhost:{port + 1} -> 403"


def server_wants_a_login(tracking_uri: str) -> bool:
    probe = requests.get(f"{tracking_uri}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, timeout=30)
    return probe.status_code == 401


def check_classroom(backstage: Backstage, store: projects.Store) -> str:
    """Classroom mode: classroom.py's accounts, each student's own experiment, READ on the others'.

    Two throwaway students (random names) are made from a roster as the instructor makes them,
    one runs tracking_example with her login, the other may read but not write; both are removed."""
    import tempfile

    uri = backstage.tracking_uri
    search = f"{uri}/api/2.0/mlflow/experiments/search"
    expect(server_wants_a_login(uri), "the server has no logins: classroom mode is off (MLFLOW_APP_NAME=basic-auth)")
    tag = os.urandom(3).hex()
    a, b = f"check-{tag}-a", f"check-{tag}-b"
    classroom_py = [sys.executable, str(REPO_ROOT / "tracking_server" / "classroom.py")]
    with tempfile.TemporaryDirectory() as folder:
        roster = Path(folder) / "roster.csv"
        roster.write_text(f"username,password\n{a},\n{b},\n", encoding="utf-8")
        made = subprocess.run([*classroom_py, "users", str(roster)], capture_output=True, text=True, timeout=300)
        expect(made.returncode == 0, f"classroom.py users failed: {made.stderr.strip()}")
        credentials_file = roster.with_name("roster.credentials.csv")
        expect(credentials_file.stat().st_mode & 0o777 == 0o600, "the credentials file is not mode 600")
        lines = credentials_file.read_text(encoding="utf-8").splitlines()[1:]
        passwords = dict(line.split(",")[:2] for line in lines)
    expect(set(passwords) == {a, b}, f"credentials written for {sorted(passwords)}")
    try:
        rows = backstage.sql(
            "SELECT username, is_admin FROM users WHERE username = ANY(%s::text[])", text_array({a, b})
        )
        expect(sorted(rows) == [(a, False), (b, False)], f"user rows {rows}")
        expect(requests.get(search, timeout=30).status_code == 401, "no login: expected 401")
        expect(requests.get(search, auth=(a, "a-wrong-password"), timeout=30).status_code == 401, "wrong password")

        # Student a runs an example with her login alone; it lands in her own experiment.
        student_env = {"MLFLOW_TRACKING_USERNAME": a, "MLFLOW_TRACKING_PASSWORD": passwords[a]}
        student_env["MLFLOW_EXPERIMENT_NAME"] = a
        run = run_entry_point(store, "tracking_example", "main", {"seed": 42}, env=student_env).run
        rows = backstage.sql(
            "SELECT e.name FROM runs r JOIN experiments e USING (experiment_id) WHERE r.run_uuid = %s", run.info.run_id
        )
        expect(rows == [(a,)], f"{a}'s run is in experiment {rows}, expected her own")

        # Student b may read it, not write to it or delete it.
        as_b = requests.Session()
        as_b.auth = (b, passwords[b])
        api = f"{uri}/api/2.0/mlflow"
        read = as_b.get(f"{api}/runs/get", params={"run_id": run.info.run_id}, timeout=30).status_code
        metric = {"run_id": run.info.run_id, "key": "intruder", "value": 1.0, "timestamp": 1}
        write = as_b.post(f"{api}/runs/log-metric", json=metric, timeout=30).status_code
        delete = as_b.post(f"{api}/runs/delete", json={"run_id": run.info.run_id}, timeout=30).status_code
        expect((read, write, delete) == (200, 403, 403), f"classmate: read {read}, write {write}, delete {delete}")
        rows = backstage.sql("SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'intruder'", run.info.run_id)
        expect(rows == [(0,)], "the classmate's metric reached PostgreSQL")
    finally:
        removed = subprocess.run([*classroom_py, "remove", a, b], capture_output=True, text=True, timeout=300)
    expect(removed.returncode == 0, f"classroom.py remove failed: {removed.stderr.strip()}")
    rows = backstage.sql("SELECT count(*) FROM users WHERE username = ANY(%s::text[])", text_array({a, b}))
    expect(rows == [(0,)], f"removed accounts still have rows: {rows}")
    return f"{a} logged run {run.info.run_id[:8]} to her experiment; {b}: read 200, write 403, delete 403; 401s"


def snapshot(client: MlflowClient) -> dict:
    """Everything the server knows, read through its API: runs, metric histories, artifacts, models."""
    experiments = client.search_experiments(view_type=ViewType.ALL)
    runs = client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ALL, max_results=50_000)
    return {
        "experiments": sorted((e.experiment_id, e.name, e.artifact_location) for e in experiments),
        "runs": {
            run.info.run_id: {
                "status": run.info.status,
                "params": run.data.params,
                "tags": dict(run.data.tags.items()),
                "metrics": {
                    key: sorted((m.step, m.timestamp, m.value) for m in client.get_metric_history(run.info.run_id, key))
                    for key in run.data.metrics
                },
                "artifacts": all_artifact_paths(client, run.info.run_id),
            }
            for run in runs
        },
        "registered_models": {
            model.name: {
                "versions": sorted(
                    (v.version, v.run_id, v.source, v.status)
                    for v in client.search_model_versions(f"name = '{model.name}'")
                ),
                "aliases": model.aliases,
            }
            for model in client.search_registered_models()
        },
    }


def check_restart(backstage: Backstage, store: projects.Store, restart: Callable[[], None] | None = None) -> str:
    """Restart the server (by default the mlflow service alone): the server knows the same afterwards."""
    before = snapshot(store.client)
    expect(before["runs"], "nothing logged yet: run the other checks first")
    (restart or backstage.restart_mlflow)()
    after = snapshot(store.client)
    expect(after == before, "the server knows something else after the restart")
    metric_points = sum(len(points) for run in before["runs"].values() for points in run["metrics"].values())
    artifacts = sum(len(run["artifacts"]) for run in before["runs"].values())
    return (
        f"same {len(before['runs'])} runs, {metric_points} metric points, {artifacts} artifacts, "
        f"{len(before['registered_models'])} registered models and their aliases after the restart"
    )


# --- command line --------------------------------------------------------------------------


def _login_from_environment() -> tuple[str, str] | None:
    username, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    return (username, password) if username and password else None


def use_server(tracking_uri: str) -> projects.Store:
    """Point this process and the ``mlflow run`` it starts at the server, logged in if it wants a login."""
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # one line per check, not progress bars
    for variable in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_RUN_ID"):
        os.environ.pop(variable, None)
    try:
        wait_for_health(tracking_uri, timeout=10)
    except CheckFailed:
        raise CheckFailed(
            f"no MLflow server answers at {tracking_uri}. Start the stack first: make stack, "
            "or docker compose up -d --wait"
        ) from None
    if server_wants_a_login(tracking_uri) and _login_from_environment() is None:  # classroom mode: act as its admin
        from tracking_server.classroom import ClassroomError, admin_login

        try:
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin_login()
        except ClassroomError as error:
            raise CheckFailed(f"the server at {tracking_uri} wants a login, and there is {error}") from None
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    return projects.Store(tracking_uri, None, MlflowClient(tracking_uri))


CHECKS = ["tracking", "autologging", "census", "llmops", "classroom", "host-header", "restart"]


def run_checks(backstage: Backstage, only: list[str] | None, llm_base_url: str | None) -> int:
    store = use_server(backstage.tracking_uri)
    names = [name for name in CHECKS if name in (only or CHECKS)]  # restart last: it compares the others' work
    if not only and not server_wants_a_login(backstage.tracking_uri):
        names.remove("classroom")  # by default only where classroom mode is on
    llm_server = None
    if "llmops" in names and not llm_base_url:
        from devtools.openai_server import FakeOpenAIServer  # the deterministic test server, in this process

        llm_server = FakeOpenAIServer().start()
        llm_base_url = llm_server.base_url
    functions = {
        "tracking": check_tracking,
        "autologging": check_autologging,
        "census": check_census,
        "llmops": lambda b, s: check_llmops(b, s, llm_base_url),
        "classroom": check_classroom,
        "host-header": check_host_header,
        "restart": check_restart,
    }
    failed = 0
    try:
        for name in names:
            start = time.perf_counter()
            try:
                summary = functions[name](backstage, store)
            except Exception as error:  # CheckFailed, run_project's failed `mlflow run`, an error of the server
                failed += 1
                kind = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: "
                print(f"FAIL {name}: {kind}{str(error).strip()}", flush=True)
            else:
                print(f"ok   {name} ({time.perf_counter() - start:.0f} s): {summary}", flush=True)
    finally:
        if llm_server is not None:
            llm_server.stop()
    print(f"{len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("how", choices=["native", "compose"], help="how the stack runs: make stack, or docker compose")
    parser.add_argument("--dir", default=str(REPO_ROOT / ".stack"), help="native: the stack's folder (default .stack/)")
    parser.add_argument("--tracking-uri", default="http://localhost:5000", help="compose: the server's URL")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=CHECKS,
        metavar="CHECK",
        help=f"some of: {' '.join(CHECKS)} (default: all; classroom only when the server has logins)",
    )
    parser.add_argument("--llm-base-url", help="an OpenAI-compatible server (default: start the repo's test server)")
    args = parser.parse_args(argv)
    try:
        if args.how == "native":
            config = native.StackConfig.load(Path(args.dir).resolve())
            if config is None:
                raise CheckFailed(f"no native stack in {args.dir}. Start one first: make stack")
            backstage: Backstage = NativeBackstage(native.NativeStack(config))
        else:
            backstage = ComposeBackstage(args.tracking_uri)
        return run_checks(backstage, args.only, args.llm_base_url)
    except (CheckFailed, native.StackError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

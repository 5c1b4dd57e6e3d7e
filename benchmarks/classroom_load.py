"""Classroom load benchmark: N students log to the team server at once; is anything lost?

    python benchmarks/classroom_load.py                    # 30 clients x 3 runs, mlflow's default workers
    python benchmarks/classroom_load.py --workers 8        # the same with 8 server worker processes
    python benchmarks/classroom_load.py --auth             # classroom mode: each student logs in as themselves

It starts its own native stack (tracking_server/stack.py: PostgreSQL + S3 stand-in + the real
`mlflow server`) on free loopback ports in a temporary folder, then N client threads start
together. Each "student" logs M runs the way a training script does: create the run, log its
parameters, log a metric history one point per request, upload one artifact, end the run.

It prints throughput and p50/p95 latency per request, then checks behind the server that nothing
was lost: every run is a FINISHED row in PostgreSQL, every metric point a row, every parameter a
row, every artifact an object in the bucket with the bytes that were sent. Client retries are
switched off, so a refused or failed request is counted as an error, not hidden.

With ``--auth`` the stack runs in classroom mode (``make stack AUTH=1``): tracking_server/classroom.py
makes one account per student, each with their own experiment, and every student thread sends its
own login with each request (basic-auth checks the password and the permission every time).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

# Failures must show, not be retried away; one pooled connection per client thread.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # no "View run ..." line per run

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root
from mlflow.entities import Param  # noqa: E402
from mlflow.utils import credentials  # noqa: E402

from devtools.processes import free_port, load_average  # noqa: E402
from tracking_server import classroom  # noqa: E402
from tracking_server import stack as native  # noqa: E402

EXPERIMENT_NAME = "classroom_load"
PARAMS_PER_RUN = 5


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def artifact_text(student: int, run_number: int, run_id: str, size: int) -> str:
    header = f"student {student}, run {run_number}, run id {run_id}\n"
    return header + "x" * max(0, size - len(header))


# Each student thread's own login. MLflow reads credentials from the environment, one set per
# process; in classroom mode 30 students share this process, so each thread answers for itself.
_login = threading.local()
_read_mlflow_creds = credentials.read_mlflow_creds


def _this_threads_creds() -> credentials.MlflowCreds:
    login = getattr(_login, "value", None)
    return credentials.MlflowCreds(*login) if login else _read_mlflow_creds()


credentials.read_mlflow_creds = _this_threads_creds


def make_accounts(stack, clients: int, admin_password: str) -> list[tuple[str, str, str]]:
    """classroom.py's accounts for N students: [(username, password, own experiment id)]."""
    server = classroom.Server(stack.tracking_uri, (classroom.ADMIN_USERNAME, admin_password))
    accounts = []
    for number in range(clients):
        username, password = f"student{number:02d}", secrets.token_urlsafe(15)
        server.create_user(username, password)
        experiment_id = server.ensure_experiment(classroom.experiment_name(username))
        server.grant(username, experiment_id, classroom.STUDENT_PERMISSION)
        accounts.append((username, password, experiment_id))
    return accounts


def student(client, experiment_id, student_id, args, barrier, latencies, errors, sent, login=None):
    """One student's script: M runs, each one request per MLflow call."""
    _login.value = login

    def timed(kind, call, *call_args, **call_kwargs):
        start = time.perf_counter()
        try:
            return call(*call_args, **call_kwargs)
        finally:
            latencies[kind].append(time.perf_counter() - start)

    barrier.wait()
    for run_number in range(args.runs):
        try:
            run = timed(
                "create_run",
                client.create_run,
                experiment_id,
                tags={"student": str(student_id)},
                run_name=f"student-{student_id}-{run_number}",
            )
            run_id = run.info.run_id
            params = {f"param_{i}": f"{student_id}.{run_number}.{i}" for i in range(PARAMS_PER_RUN)}
            timed("log_batch(params)", client.log_batch, run_id, params=[Param(k, v) for k, v in params.items()])
            for step in range(args.steps):
                timed("log_metric", client.log_metric, run_id, "loss", 1.0 / (step + 1), step=step)
            text = artifact_text(student_id, run_number, run_id, args.artifact_bytes)
            timed("log_artifact", client.log_text, run_id, text, "notes/run.txt")
            timed("set_terminated", client.set_terminated, run_id, "FINISHED")
            sent[run_id] = {"params": params, "steps": args.steps, "artifact": text}
        except Exception as error:  # counted and reported; the verification then finds the gap
            errors.append(f"student {student_id} run {run_number}: {type(error).__name__}: {error}")


def verify(stack, experiment_ids: list[str], sent: dict) -> list[str]:
    """What the server acknowledged must be in PostgreSQL and in the bucket."""
    import psycopg

    problems = []
    ids = sorted({int(experiment_id) for experiment_id in experiment_ids})
    with psycopg.connect(**stack.postgres_conninfo) as db:
        runs = dict(db.execute("SELECT run_uuid, status FROM runs WHERE experiment_id = ANY(%s)", (ids,)).fetchall())
        metric_points = dict(
            db.execute(
                "SELECT m.run_uuid, count(*) FROM metrics m JOIN runs r USING (run_uuid) "
                "WHERE r.experiment_id = ANY(%s) AND m.key = 'loss' GROUP BY m.run_uuid",
                (ids,),
            ).fetchall()
        )
        params = defaultdict(dict)
        for run_uuid, key, value in db.execute(
            "SELECT p.run_uuid, p.key, p.value FROM params p JOIN runs r USING (run_uuid) "
            "WHERE r.experiment_id = ANY(%s)",
            (ids,),
        ):
            params[run_uuid][key] = value
        artifact_uris = dict(
            db.execute("SELECT run_uuid, artifact_uri FROM runs WHERE experiment_id = ANY(%s)", (ids,)).fetchall()
        )
    s3 = stack.s3_client()
    for run_id, expected in sent.items():
        if runs.get(run_id) != "FINISHED":
            problems.append(f"run {run_id}: status {runs.get(run_id)} in PostgreSQL, expected FINISHED")
        if metric_points.get(run_id, 0) != expected["steps"]:
            problems.append(f"run {run_id}: {metric_points.get(run_id, 0)} metric points, expected {expected['steps']}")
        if params.get(run_id) != expected["params"]:
            problems.append(f"run {run_id}: params {params.get(run_id)} differ from what was sent")
        key = artifact_uris[run_id].removeprefix("mlflow-artifacts:/").strip("/") + "/notes/run.txt"
        try:
            body = s3.get_object(Bucket=native.BUCKET, Key=key)["Body"].read().decode()
        except Exception as error:
            body = f"<{type(error).__name__}>"
        if body != expected["artifact"]:
            problems.append(f"run {run_id}: bucket object {key} missing or different")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=30, help="concurrent students (default 30)")
    parser.add_argument("--runs", type=int, default=3, help="runs per student (default 3)")
    parser.add_argument("--steps", type=int, default=10, help="metric history points per run (default 10)")
    parser.add_argument("--artifact-bytes", type=int, default=10_000, help="artifact size (default 10 kB)")
    parser.add_argument(
        "--workers", type=int, default=None, help="mlflow server worker processes (default: mlflow's own default, 4)"
    )
    parser.add_argument(
        "--auth", action="store_true", help="classroom mode (basic-auth): one account and experiment per student"
    )
    parser.add_argument(
        "--auth-cache-ttl",
        type=int,
        default=None,
        help="with --auth: MLFLOW_AUTH_CACHE_TTL_SECONDS, how long a worker remembers a good login (default 60)",
    )
    args = parser.parse_args()
    os.environ["MLFLOW_HTTP_POOL_MAXSIZE"] = str(max(10, args.clients))

    from mlflow.tracking import MlflowClient

    root = Path(tempfile.mkdtemp(prefix="mlflow-load-benchmark-"))
    secrets_ = None
    if args.auth:
        secrets_ = {
            "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_urlsafe(18),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32),
        }
        if args.auth_cache_ttl is not None:
            secrets_["MLFLOW_AUTH_CACHE_TTL_SECONDS"] = str(args.auth_cache_ttl)
    failed = True

    stack = native.NativeStack(
        native.StackConfig(
            root=root,
            mlflow_port=free_port(),
            postgres_port=free_port(),
            s3_port=free_port(),
            workers=args.workers,
            auth=args.auth,
        ),
        auth_secrets=secrets_,
    )
    workers_label = args.workers or "default (4)"
    mode = "classroom mode (basic-auth), one account per student" if args.auth else "no logins"
    if args.auth:
        mode += f", login cache {60 if args.auth_cache_ttl is None else args.auth_cache_ttl} s"
    print(f"Starting the native stack in {root} (mlflow server workers: {workers_label}; {mode}) ...", flush=True)
    try:
        stack.start()
        client = MlflowClient(stack.tracking_uri)
        if args.auth:  # each student their own account and experiment, as classroom.py makes them
            accounts = make_accounts(stack, args.clients, secrets_["MLFLOW_AUTH_ADMIN_PASSWORD"])
            logins = [(username, password) for username, password, _ in accounts]
            experiment_ids = [experiment_id for _, _, experiment_id in accounts]
        else:  # everyone in one experiment, no logins
            logins = [None] * args.clients
            experiment_ids = [client.create_experiment(EXPERIMENT_NAME)] * args.clients
        latencies: dict[str, list[float]] = defaultdict(list)
        errors: list[str] = []
        sent: dict[str, dict] = {}
        barrier = threading.Barrier(args.clients)
        threads = [
            threading.Thread(
                target=student,
                args=(client, experiment_ids[i], i, args, barrier, latencies, errors, sent, logins[i]),
            )
            for i in range(args.clients)
        ]
        print(
            f"{args.clients} students x {args.runs} runs x ({args.steps} metric points + "
            f"{PARAMS_PER_RUN} params + 1 artifact of {args.artifact_bytes} B) ...",
            flush=True,
        )
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start

        every = [value for values in latencies.values() for value in values]
        print(f"\nmlflow server workers: {workers_label}; {mode}; clients: {args.clients}; wall time {elapsed:.1f} s")
        print(f"load average {load_average()} (1/5/15 min; cores: {os.cpu_count()})")
        print(f"throughput: {len(every) / elapsed:.1f} requests/s, {len(sent) / elapsed:.2f} runs/s")
        print(
            f"latency, all requests: p50 {percentile(every, 0.5) * 1000:.0f} ms, "
            f"p95 {percentile(every, 0.95) * 1000:.0f} ms ({len(every)} requests)"
        )
        for kind, values in latencies.items():
            print(
                f"  {kind:<18} p50 {percentile(values, 0.5) * 1000:6.0f} ms   p95 "
                f"{percentile(values, 0.95) * 1000:6.0f} ms   n={len(values)}"
            )
        print(f"errors (failed requests, no retries): {len(errors)}")
        for line in errors[:10]:
            print("  " + line)

        problems = verify(stack, experiment_ids, sent)
        expected_runs = args.clients * args.runs
        lost = expected_runs - len(sent) + len(problems)
        print(
            f"verified in PostgreSQL and the bucket: {len(sent)}/{expected_runs} runs acknowledged, "
            f"{len(sent) * args.steps} metric points, {len(sent) * PARAMS_PER_RUN} params, "
            f"{len(sent)} artifacts; lost or different: {len(problems)}"
        )
        for line in problems[:10]:
            print("  " + line)
        failed = lost > 0 or bool(errors)
        return 1 if failed else 0
    finally:
        stack.stop()
        if failed:
            print(f"Kept the stack's folder for its logs: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

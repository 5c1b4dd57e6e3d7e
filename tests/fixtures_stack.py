"""Fixtures for the native tracking stack (PostgreSQL + S3 stand-in + mlflow server).

``native_stack`` (session-scoped) starts the very stack ``make stack`` starts
(``tracking_server/stack.py``), on free loopback ports in a fresh folder under /tmp, and stops
it at the end. ``stack_store`` points one test, and the ``mlflow run`` processes it starts, at
that server's URI and nothing else: clients know only ``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from tests import harness
from tracking_server.stack import NativeStack, StackConfig, StackError, postgres_bin_dir

# One worker (mlflow defaults to 4) starts fastest on a small CI machine; the tests send one request at a time.
TEST_SERVER_WORKERS = 1
# No job runner (five Python processes, ~20 s of CPU per start, for features no example uses), as for
# the tests' `mlflow ui` servers (conftest.py).
TEST_SERVER_JOB_RUNNER = False


@contextlib.contextmanager
def _one_installer_at_a_time():
    """Under pytest-xdist two workers may start a stack at once (test_stack.py, test_classroom.py):
    only one may run apt-get (dpkg holds a lock), the other waits and then finds PostgreSQL installed."""
    if os.name != "posix":  # no apt-get to serialise elsewhere
        yield
        return
    import fcntl

    with open(Path(tempfile.gettempdir()) / "mlflow-stack-test-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def running_stack(auth_secrets: dict[str, str] | None = None):
    """The stack ``make stack`` starts (``make stack AUTH=1`` with ``auth_secrets``), on free ports in /tmp."""
    try:
        with _one_installer_at_a_time():
            postgres_bin_dir()  # as root on Debian this installs PostgreSQL when it is missing
    except StackError as error:
        if os.geteuid() == 0:
            raise
        pytest.skip(str(error))
    # Not pytest's tmp_path: that folder is private to root, and PostgreSQL runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="mlflow-stack-test-"))
    stack = NativeStack(
        StackConfig(
            root=root,
            mlflow_port=harness.free_port(),
            postgres_port=harness.free_port(),
            s3_port=harness.free_port(),
            workers=TEST_SERVER_WORKERS,
            job_runner=TEST_SERVER_JOB_RUNNER,
            auth=auth_secrets is not None,
        ),
        auth_secrets=auth_secrets,
    )
    try:
        stack.start()
        stack.s3_client()  # made now, before any MLflow background thread touches os.environ
        yield stack
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def native_stack():
    """The running stack: ``.tracking_uri``, ``.postgres_conninfo``, ``.s3_client()``, restarts."""
    with running_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def backstage(native_stack):
    """What lies behind the stack's server (SQL, bucket, restart), as tracking_server/check_stack.py reaches it."""
    from tracking_server.check_stack import NativeBackstage

    return NativeBackstage(native_stack)


@pytest.fixture
def stack_store(native_stack, monkeypatch) -> harness.Store:
    """This test's tracking store is the stack's server (shared by every stack test)."""
    harness.use_tracking_uri(monkeypatch, native_stack.tracking_uri, None)
    # The S3 endpoint and keys belong to the server alone: a client needs none of them.
    for variable in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")  # no internet; and no background thread
    yield harness.Store(native_stack.tracking_uri, None, MlflowClient(native_stack.tracking_uri))
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)

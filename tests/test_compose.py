"""docker-compose.yml's structure: what `docker compose config` needs, and what keeps the stack safe.

No Docker engine here, so this reads the files. Where a `docker` client exists, the last test
also runs `docker compose config` itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tracking_server import stack

REPO = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "tracking_server" / "Dockerfile").read_text(encoding="utf-8")
START_SCRIPT = stack.START_SCRIPT.read_text(encoding="utf-8")
ENV_EXAMPLE = (REPO / ".env.example").read_text(encoding="utf-8")
REFERENCE = re.compile(r"\$\{(\w+)(:-[^}]*)?\}")  # ${VAR} or ${VAR:-default}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|_USER$")


def requirement_pin(package: str) -> str:
    """The version requirements.txt pins for ``package`` (with or without extras: mlflow[auth])."""
    for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.split("==")[0].split("[")[0] == package:
            return line.split("==")[1]
    raise AssertionError(f"{package} not pinned in requirements.txt")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {key: str(value) for key, value in env.items()}


def test_the_four_services_and_only_known_top_level_keys():
    assert set(COMPOSE) <= {"name", "services", "volumes", "networks", "configs", "secrets"}
    assert set(SERVICES) == {"postgres", "minio", "bucket", "mlflow"}
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name


def test_images_are_pinned_to_releases_that_still_resolve():
    images = {name: service["image"] for name, service in SERVICES.items() if "image" in service}
    for name, image in images.items():
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: pin a tag ({image})"
        assert tag not in ("", "latest"), f"{name}: pin a tag ({image})"
        assert "/" not in tag, f"{name}: pin a tag ({image})"
    # Debian's PostgreSQL major version, the same as the native stack's.
    assert re.fullmatch(rf"postgres:{stack.POSTGRES_VERSION}\.\d+-\w+", images["postgres"])
    # Docker Hub's minio/* repositories are gone: quay.io's frozen snapshot.
    assert images["minio"] == "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    assert images["bucket"] == "quay.io/minio/mc:RELEASE.2025-08-13T08-35-41Z"


def test_mlflow_image_is_built_on_the_pinned_mlflow_with_everything_installed_at_build_time():
    build = SERVICES["mlflow"]["build"]
    assert (REPO / build["context"] / build["dockerfile"]).resolve() == REPO / "tracking_server" / "Dockerfile"
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert base == f"ghcr.io/mlflow/mlflow:v{requirement_pin('mlflow')}"
    # Driver and S3 client come from requirements.txt's pins, in a RUN step (build time).
    install = next(line for line in DOCKERFILE.split("RUN ") if "pip install" in line)
    for package in ("psycopg\\[binary\\]", "boto3"):
        assert package in install
    assert "pip" not in START_SCRIPT  # nothing installed at start
    # The build context is the repository root: only the two needed files are sent.
    ignored = (REPO / "tracking_server" / "Dockerfile.dockerignore").read_text(encoding="utf-8")
    assert [line for line in ignored.splitlines() if line and not line.startswith("#")] == [
        "*",
        "!requirements.txt",
        "!tracking_server/start-server.sh",
    ]


def test_one_start_script_for_compose_and_the_native_stack():
    assert SERVICES["mlflow"]["command"] == ["/opt/tracking_server/start-server.sh"]
    assert "COPY tracking_server/start-server.sh /opt/tracking_server/start-server.sh" in DOCKERFILE
    assert stack.START_SCRIPT == REPO / "tracking_server" / "start-server.sh"
    server_command = START_SCRIPT[START_SCRIPT.index("exec mlflow server") :]
    for flag in ("--backend-store-uri", "--artifacts-destination", "--serve-artifacts"):
        assert flag in server_command
    # Every variable the script requires is provided by both callers.
    required = set(re.findall(r': "\$\{(\w+):\?', START_SCRIPT))
    assert required >= {"POSTGRES_PASSWORD", "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"}
    assert required <= set(environment("mlflow"))
    # (MLFLOW_AUTH_CONFIG_PATH is required in classroom mode only: the native stack with --auth.)
    native = stack.NativeStack(stack.StackConfig(root=REPO / ".stack-not-created", auth=True), auth_secrets={})
    assert required <= set(native.server_env())


def test_healthchecks_and_dependencies_gate_on_health_and_completion():
    def check(service):
        test = SERVICES[service]["healthcheck"]["test"]
        return " ".join(test) if isinstance(test, list) else test

    assert "pg_isready" in check("postgres")
    assert "mc ready local" in check("minio")
    assert "/health" in check("mlflow")
    assert SERVICES["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "minio": {"condition": "service_healthy"},
        "bucket": {"condition": "service_completed_successfully"},
    }
    assert SERVICES["bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    for name, service in SERVICES.items():
        for dependency, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in SERVICES[dependency], f"{name} waits on {dependency}'s health"


def test_bucket_job_is_one_shot_and_idempotent():
    bucket = SERVICES["bucket"]
    assert bucket["restart"] == "no"
    assert bucket["command"][:2] == ["mb", "--ignore-existing"]
    assert bucket["command"][2] == "minio/${MLFLOW_BUCKET}"
    assert environment("mlflow")["MLFLOW_BUCKET"] == "${MLFLOW_BUCKET}"


def test_data_lives_in_named_volumes():
    declared = set(COMPOSE["volumes"])
    for service, path in (("postgres", "/var/lib/postgresql/data"), ("minio", "/data")):
        mounts = dict(volume.split(":", 1) for volume in SERVICES[service]["volumes"])
        source = next(source for source, target in mounts.items() if target == path)
        assert source in declared, f"{service}: {path} must be a named volume, not a bind mount"


def test_ports_are_published_on_loopback_only():
    published = [(name, str(port)) for name, s in SERVICES.items() for port in s.get("ports", [])]
    assert ("mlflow", "127.0.0.1:5000:5000") in published
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond this machine"
    assert "ports" not in SERVICES["postgres"]  # reachable only through the MLflow server


def with_example_env(value: str) -> str:
    """``value`` as compose resolves it with .env.example's values (or the ``:-`` default)."""
    example = dict(re.findall(r"^(\w+)=(.*)$", ENV_EXAMPLE, re.M))
    return REFERENCE.sub(lambda m: example.get(m.group(1)) or (m.group(2) or ":-")[2:], value)


def test_allowed_hosts_are_real_names_with_ports_never_a_wildcard():
    hosts = with_example_env(environment("mlflow")["MLFLOW_SERVER_ALLOWED_HOSTS"]).split(",")
    assert "localhost:5000" in hosts
    assert "127.0.0.1:5000" in hosts
    for host in hosts:
        assert "*" not in host, host
        assert re.fullmatch(r"[^:]+:5000", host), host
    assert "*" not in ENV_EXAMPLE.split("MLFLOW_PUBLIC_HOST=")[1].splitlines()[0]


def test_no_literal_secrets_only_variable_references():
    for name in SERVICES:
        for key, value in environment(name).items():
            if key.startswith("MC_HOST_"):  # mc's alias: http://<access key>:<secret key>@host:port
                assert re.fullmatch(r"https?://\$\{\w+\}:\$\{\w+\}@[\w.-]+:\d+", value), key
            elif SECRET_NAME.search(key):
                match = REFERENCE.fullmatch(value)
                assert match, f"{name}.{key}: use a ${{VAR}} from .env"
                assert match.group(2) in (None, ":-"), f"{name}.{key}: use a ${{VAR}} from .env"
    # Every variable the compose file needs without a default is documented in .env.example ...
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    needed = {m.group(1) for m in REFERENCE.finditer(text) if m.group(2) is None}
    documented = set(re.findall(r"^#?\s*(\w+)=", ENV_EXAMPLE, re.M))
    assert needed <= documented, needed - documented
    # ... with placeholders, never a real secret; the real .env is ignored by git.
    for line in ENV_EXAMPLE.splitlines():
        key, _, value = line.lstrip("# ").partition("=")
        if "PASSWORD" in key or "SECRET" in key:
            assert value.startswith("change-me"), line
    assert ".env" in (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()


def _has_docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _has_docker_compose(), reason="no `docker compose` on this machine")
def test_docker_compose_config_accepts_it():
    completed = subprocess.run(
        [
            "docker",
            "compose",
            "--env-file",
            str(REPO / ".env.example"),
            "-f",
            str(REPO / "docker-compose.yml"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr

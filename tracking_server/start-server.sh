#!/bin/sh
# The ONE command that starts the team's MLflow Tracking Server (the talk's set-up 3).
# Used by both ways of running the stack:
#   * docker-compose.yml  (the `mlflow` service runs this script inside tracking_server/Dockerfile's image)
#   * tracking_server/stack.py  (`make stack`: the same three services natively, without Docker)
#
# The server mediates between clients and the two stores, so a client needs only
# MLFLOW_TRACKING_URI=http://<host>:<port>:
#   metadata  -> the Backend Store, PostgreSQL        (--backend-store-uri)
#   artifacts -> the Artifact Store, an S3 bucket     (--artifacts-destination + --serve-artifacts:
#                the server uploads/downloads for the clients, so they need no S3 credentials)
#
# Configuration comes from the environment (docker compose fills it from .env; stack.py from
# .stack/). MLflow and boto3 read MLFLOW_S3_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
# and MLFLOW_SERVER_ALLOWED_HOSTS themselves.
set -eu

: "${POSTGRES_USER:?set POSTGRES_USER (see .env.example)}"
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD (see .env.example)}"
: "${POSTGRES_DB:?set POSTGRES_DB (see .env.example)}"
: "${POSTGRES_HOST:?set POSTGRES_HOST, the PostgreSQL server name}"
: "${MLFLOW_BUCKET:?set MLFLOW_BUCKET, the S3 bucket for artifacts (see .env.example)}"
: "${MLFLOW_S3_ENDPOINT_URL:?set MLFLOW_S3_ENDPOINT_URL, the S3 server (MinIO) URL}"
: "${AWS_ACCESS_KEY_ID:?set AWS_ACCESS_KEY_ID, the S3 access key}"
: "${AWS_SECRET_ACCESS_KEY:?set AWS_SECRET_ACCESS_KEY, the S3 secret key}"

# `postgresql+psycopg` names the driver (psycopg 3, pinned in requirements.txt) explicitly: a bare
# `postgresql://` makes SQLAlchemy pick a driver by its own version (psycopg2 up to 2.0, psycopg 3
# from 2.1), and the server would fail to start wherever that one is missing.
BACKEND_STORE_URI="postgresql+psycopg://${POSTGRES_USER}:${POSTGRES_PASSWORD}@${POSTGRES_HOST}:${POSTGRES_PORT:-5432}/${POSTGRES_DB}"

# uvicorn's supervisor kills any worker that does not answer its ping within 5 s (its default) and
# drops every request that worker was serving. A worker busy under a classroom's load can miss
# that ping: benchmarks/classroom_load.py lost 26 of 1,088 requests that way. 60 s keeps busy
# workers; a truly hung one is still replaced.
export MLFLOW_UVICORN_OPTS="${MLFLOW_UVICORN_OPTS:---timeout-worker-healthcheck 60}"

# Classroom mode: MLFLOW_APP_NAME=basic-auth turns on MLflow's login + permissions app
# (tracking_server/README.md, "Classroom mode"). Both secrets come from .env: a missing, short or
# placeholder one stops the start here, with the fix, instead of somewhere inside mlflow.
refuse_weak_secret() {  # <variable name> <its value> <a command that prints a good one>
    case "$2" in
        "" | change-me* | password1234) problem="is empty or still the .env.example placeholder" ;;
        *) if [ "${#2}" -lt 12 ]; then problem="is shorter than 12 characters"; else return 0; fi ;;
    esac
    echo "error: classroom mode (MLFLOW_APP_NAME=basic-auth) needs a strong $1, and it $problem." \
         "Put one in .env, e.g. the output of: $3" >&2
    exit 2
}
if [ "${MLFLOW_APP_NAME:-}" = "basic-auth" ]; then
    refuse_weak_secret MLFLOW_AUTH_ADMIN_PASSWORD "${MLFLOW_AUTH_ADMIN_PASSWORD:-}" \
        "python -c \"import secrets; print(secrets.token_urlsafe(18))\""
    refuse_weak_secret MLFLOW_FLASK_SERVER_SECRET_KEY "${MLFLOW_FLASK_SERVER_SECRET_KEY:-}" \
        "python -c \"import secrets; print(secrets.token_hex(32))\""
    : "${MLFLOW_AUTH_CONFIG_PATH:?set MLFLOW_AUTH_CONFIG_PATH, the file where basic-auth settings go}"
    # Users and permissions are rows in the same PostgreSQL database (tables users, roles, ...,
    # with their own alembic_version_auth), so they share its volume and its backups. Everyone
    # gets READ on every experiment unless granted more: tracking_server/classroom.py grants each
    # student MANAGE on their own. The file holds the database URL: readable by this user only.
    # Each request's password check costs a deliberately slow hash (scrypt): 30 students were over
    # 20x slower without a cache. Each worker remembers a good login for MLFLOW_AUTH_CACHE_TTL_SECONDS
    # (60; 0 = off), so a removed account or changed password may work that long on other workers
    # (README, "Classroom load benchmark").
    umask 077
    printf '%s\n' "[mlflow]" \
        "default_permission = READ" \
        "database_uri = ${BACKEND_STORE_URI}" \
        "admin_username = ${MLFLOW_AUTH_ADMIN_USERNAME:-admin}" \
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" \
        "auth_cache_ttl_seconds = ${MLFLOW_AUTH_CACHE_TTL_SECONDS:-60}" \
        > "$MLFLOW_AUTH_CONFIG_PATH"
    export MLFLOW_AUTH_CONFIG_PATH
fi

set -- --host "${MLFLOW_HOST:-0.0.0.0}" --port "${MLFLOW_PORT:-5000}"
if [ -n "${MLFLOW_WORKERS:-}" ]; then set -- "$@" --workers "$MLFLOW_WORKERS"; fi
if [ -n "${MLFLOW_APP_NAME:-}" ]; then set -- "$@" --app-name "$MLFLOW_APP_NAME"; fi

echo "Starting MLflow server: metadata in PostgreSQL at ${POSTGRES_HOST}:${POSTGRES_PORT:-5432}/${POSTGRES_DB}," \
     "artifacts in s3://${MLFLOW_BUCKET} at ${MLFLOW_S3_ENDPOINT_URL}; logins: ${MLFLOW_APP_NAME:-off}"
exec mlflow server \
    --backend-store-uri "$BACKEND_STORE_URI" \
    --artifacts-destination "s3://${MLFLOW_BUCKET}" \
    --serve-artifacts \
    "$@"

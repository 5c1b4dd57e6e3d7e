"""Classroom mode's accounts: one MLflow login per student, made from a class roster.

    python tracking_server/classroom.py users roster.csv     # accounts + each student's own experiment
    python tracking_server/classroom.py list                 # who has an account, and their experiment
    python tracking_server/classroom.py remove roster.csv    # or: remove alice bob

The roster is a CSV file with a header line ``username,password``; the password column is
optional, and an empty cell gets a strong generated password::

    username,password
    alice,
    bob,a-password-bob-chose

``users`` creates each missing account, gives each student an experiment named after them with
MANAGE permission (classmates keep the server's default, READ: they can look, not touch), and
writes the new credentials ONCE to ``<roster>.credentials.csv`` (mode 600, readable by you only;
git ignores it). Accounts that exist are left alone and reported, so it is safe to run again
after adding rows. ``remove`` deletes accounts; their experiments and runs stay.

The server is ``MLFLOW_TRACKING_URI`` when it is an http(s) URL, else http://localhost:5000, running in classroom mode
(``MLFLOW_APP_NAME=basic-auth`` in .env, or ``make stack AUTH=1``). You act as its admin:
``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` when set, otherwise ``admin`` with the
``MLFLOW_AUTH_ADMIN_PASSWORD`` of the environment or of .env.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tracking_server.*
from tracking_server.stack import read_env_file  # noqa: E402

DEFAULT_URI = "http://localhost:5000"
ADMIN_USERNAME = "admin"  # start-server.sh's admin_username unless MLFLOW_AUTH_ADMIN_USERNAME says otherwise
STUDENT_PERMISSION = "MANAGE"  # on their own experiment: log, edit, delete, and share it
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
MIN_PASSWORD = 12  # MLflow's own rule
ROSTER_EXAMPLE = "printf 'username,password\\nalice,\\nbob,\\n' > roster.csv"
USERS = "/api/2.0/mlflow/users"
PERMISSIONS = "/api/3.0/mlflow/users/permissions"
EXPERIMENTS = "/api/2.0/mlflow/experiments"


class ClassroomError(RuntimeError):
    """One problem, one line: ``<what>. <how to fix, with an example>``."""


@dataclass
class Student:
    username: str
    password: str  # "" = generate one


# --- the roster ------------------------------------------------------------------------------


def read_roster(path: Path) -> list[Student]:
    if not path.is_file():
        raise ClassroomError(f"roster file {path} not found. Make one with a header line, e.g.: {ROSTER_EXAMPLE}")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    header = [cell.strip().lower() for cell in rows[0][1]] if rows else []
    if header not in (["username"], ["username", "password"]):
        raise ClassroomError(
            f"{path} line 1: expected the header 'username,password' (password optional), got "
            f"{','.join(header) or 'an empty file'!r}. Example roster: {ROSTER_EXAMPLE}"
        )
    students, seen = [], set()
    for number, row in rows[1:]:
        where = f"{path} line {number}"
        if len(row) > len(header):
            raise ClassroomError(f"{where}: {len(row)} columns, the header has {len(header)}. Write it as: alice,")
        username = row[0].strip()
        password = row[1].strip() if len(row) > 1 else ""
        if not USERNAME.fullmatch(username):
            raise ClassroomError(
                f"{where}: {username!r} is not a username (letters, digits and . _ @ + - only, at most 64). "
                "Example: alice.rossi"
            )
        if username in seen:
            raise ClassroomError(f"{where}: {username!r} appears twice. Keep one line per student")
        if password and len(password) < MIN_PASSWORD:
            raise ClassroomError(
                f"{where}: the password of {username!r} is shorter than {MIN_PASSWORD} characters. "
                f"Leave the cell empty to get a generated one: {username},"
            )
        seen.add(username)
        students.append(Student(username, password))
    if not students:
        raise ClassroomError(f"{path} lists no student. Add one line per student under the header, e.g. alice,")
    return students


def read_usernames(arguments: list[str]) -> list[str]:
    """``remove``'s arguments: roster files (``*.csv``) and plain usernames."""
    names = []
    for argument in arguments:
        if argument.lower().endswith(".csv"):
            names += [student.username for student in read_roster(Path(argument))]
        else:
            names.append(argument)
    return list(dict.fromkeys(names))


def credentials_path(roster: Path) -> Path:
    return roster.with_name(roster.stem + ".credentials.csv")


def append_credentials(path: Path, rows: list[tuple[str, str, str]], tracking_uri: str) -> None:
    """Append new credentials to ``path``, created (or kept) readable by its owner only."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
    with os.fdopen(descriptor, "a", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        if handle.tell() == 0:
            writer.writerow(["username", "password", "experiment", "MLFLOW_TRACKING_URI"])
        for username, password, experiment in rows:
            writer.writerow([username, password, experiment, tracking_uri])


# --- the server ------------------------------------------------------------------------------


def admin_login() -> tuple[str, str]:
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if username and password:
        return username, password
    env_file = read_env_file()
    username = os.environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or env_file.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
    password = os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD") or env_file.get("MLFLOW_AUTH_ADMIN_PASSWORD")
    if not password:
        raise ClassroomError(
            "no admin password: neither MLFLOW_TRACKING_PASSWORD nor MLFLOW_AUTH_ADMIN_PASSWORD is set, "
            "and .env has none. Set it as the server has it, e.g. export MLFLOW_AUTH_ADMIN_PASSWORD=<from .env>"
        )
    return username, password


class Server:
    """The few REST calls this needs, as the admin; every unexpected answer becomes one line."""

    def __init__(self, tracking_uri: str, login: tuple[str, str]):
        self.uri = tracking_uri.rstrip("/")
        self.session = requests.Session()
        self.session.auth = login
        self._check_admin(login[0])

    def call(self, method: str, path: str, *, ok=(200,), **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, self.uri + path, timeout=30, **kwargs)
        except requests.ConnectionError:
            raise ClassroomError(
                f"cannot reach the MLflow server at {self.uri}. Start it (make stack AUTH=1, or docker compose "
                f"up -d --wait) or point at it, e.g. export MLFLOW_TRACKING_URI={DEFAULT_URI}"
            ) from None
        if response.status_code not in ok:
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = response.text.strip()[:200]
            raise ClassroomError(f"the server answered {response.status_code} to {method} {path}: {message}")
        return response

    def _check_admin(self, username: str) -> None:
        response = self.call("GET", f"{USERS}/current", ok=(200, 401, 404))
        if response.status_code == 404:
            raise ClassroomError(
                f"the server at {self.uri} has no logins (classroom mode is off). Turn it on with "
                "MLFLOW_APP_NAME=basic-auth in .env (docker compose up -d --wait), or: make stack AUTH=1"
            )
        if response.status_code == 401:
            raise ClassroomError(
                f"the server at {self.uri} refused the login of {username!r} (401). Use the admin password "
                "the server started with, e.g. export MLFLOW_AUTH_ADMIN_PASSWORD=<the value in .env>"
            )
        if not response.json()["user"]["is_admin"]:
            raise ClassroomError(
                f"{username!r} is not an admin of {self.uri}. Run this as the admin, e.g. unset "
                "MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD (then .env's admin password is used)"
            )

    def users(self) -> dict[str, bool]:
        """{username: is_admin}"""
        return {u["username"]: u["is_admin"] for u in self.call("GET", f"{USERS}/list").json()["users"]}

    def create_user(self, username: str, password: str) -> None:
        self.call("POST", f"{USERS}/create", json={"username": username, "password": password})

    def delete_user(self, username: str) -> None:
        self.call("DELETE", f"{USERS}/delete", json={"username": username})

    def experiment_id(self, name: str) -> str | None:
        response = self.call("GET", f"{EXPERIMENTS}/get-by-name", params={"experiment_name": name}, ok=(200, 404))
        return response.json()["experiment"]["experiment_id"] if response.status_code == 200 else None

    def ensure_experiment(self, name: str) -> str:
        existing = self.experiment_id(name)
        if existing is not None:
            return existing
        return self.call("POST", f"{EXPERIMENTS}/create", json={"name": name}).json()["experiment_id"]

    def permission(self, username: str, experiment_id: str) -> str:
        params = {"username": username, "resource_type": "experiment", "resource_id": experiment_id}
        return self.call("GET", f"{PERMISSIONS}/get", params=params).json()["permission"]

    def grant(self, username: str, experiment_id: str, permission: str) -> None:
        body = {"username": username, "resource_type": "experiment", "resource_id": experiment_id}
        self.call("POST", f"{PERMISSIONS}/grant", json={**body, "permission": permission})


def experiment_name(username: str) -> str:
    """Each student's own experiment is named after them: MLFLOW_EXPERIMENT_NAME=<username>."""
    return username


# --- the verbs -------------------------------------------------------------------------------


def create_users(server: Server, roster: Path, credentials: Path) -> int:
    students = read_roster(roster)
    existing = server.users()
    created = 0
    for student in students:
        experiment = experiment_name(student.username)
        if student.username in existing:
            state = "exists, left alone"
        else:
            password = student.password or secrets.token_urlsafe(15)  # 20 characters, 120 random bits
            server.create_user(student.username, password)
            append_credentials(credentials, [(student.username, password, experiment)], server.uri)
            created += 1
            state = "created"
        # Also for existing accounts: a run interrupted between the two steps gets repaired.
        experiment_id = server.ensure_experiment(experiment)
        if server.permission(student.username, experiment_id) != STUDENT_PERMISSION:
            server.grant(student.username, experiment_id, STUDENT_PERMISSION)
        print(
            f"{state:<20} {student.username:<24} experiment {experiment!r} (id {experiment_id}), {STUDENT_PERMISSION}"
        )
    print(f"{created} account(s) created, {len(students) - created} already existed.")
    if created:
        print(f"New passwords are in {credentials} (mode 600, written once: hand each student their line).")
    return 0


def list_users(server: Server) -> int:
    users = server.users()
    print(f"{'username':<24} {'admin':<6} own experiment (permission)")
    for username, is_admin in sorted(users.items()):
        experiment_id = None if is_admin else server.experiment_id(experiment_name(username))
        if experiment_id is None:
            own = "-"
        else:
            own = f"{experiment_name(username)!r} (id {experiment_id}, {server.permission(username, experiment_id)})"
        print(f"{username:<24} {'yes' if is_admin else 'no':<6} {own}")
    print(f"{len(users)} account(s).")
    return 0


def remove_users(server: Server, usernames: list[str]) -> int:
    users = server.users()
    for username in usernames:
        if username not in users:
            print(f"not found            {username} (nothing to do)")
        elif users[username]:
            print(f"kept                 {username}: an admin account; remove admins in the UI")
        else:
            server.delete_user(username)
            print(f"removed              {username}: their experiment and runs stay (readable by everyone)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    users = verbs.add_parser("users", help="create the roster's accounts and their experiments")
    users.add_argument("roster", type=Path, help="CSV file: header username,password; password optional")
    users.add_argument("--credentials", type=Path, help="where new passwords go (default <roster>.credentials.csv)")
    verbs.add_parser("list", help="list the accounts and their experiments")
    remove = verbs.add_parser("remove", help="delete accounts (their runs stay)")
    remove.add_argument("who", nargs="+", help="usernames and/or roster CSV files")
    args = parser.parse_args(argv)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri.startswith(("http://", "https://")):  # unset, or .venv's embedded sqlite store
        tracking_uri = DEFAULT_URI
    try:
        if args.verb == "users":
            read_roster(args.roster)  # a malformed roster fails before anything is sent
            server = Server(tracking_uri, admin_login())
            return create_users(server, args.roster, args.credentials or credentials_path(args.roster))
        if args.verb == "remove":
            usernames = read_usernames(args.who)
            return remove_users(Server(tracking_uri, admin_login()), usernames)
        return list_users(Server(tracking_uri, admin_login()))
    except ClassroomError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

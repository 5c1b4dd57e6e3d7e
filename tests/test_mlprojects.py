"""Repository-wide contracts: every MLproject entry point has a smoke test (a test marked
``@pytest.mark.entry_point(folder, entry)``: this file reads the MLprojects and the tests and fails
for an entry point that has none), every command runs the same in bash, cmd and PowerShell, and every
example's python_env.yaml agrees with the one pinned environment in requirements.txt."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from tests.harness import REPO_ROOT

MLPROJECT_FILES = sorted(REPO_ROOT.glob("*/MLproject"))
EXAMPLE_FOLDERS = [p.parent.name for p in MLPROJECT_FILES]


def _requirement_name(line: str) -> str:
    """'psycopg[binary]==3.3.9' -> 'psycopg' (normalised as pip does)."""
    name = re.split(r"[\[=<>!~;\s]", line.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def _without_extras(line: str) -> str:
    """'mlflow[auth] == 3.17.2' -> 'mlflow==3.17.2'"""
    return re.sub(r"\[[^\]]*\]", "", line.replace(" ", ""))


REQUIREMENT_FILES = sorted(REPO_ROOT.glob("requirements*.txt"))


def _pinned_requirements(path: Path = REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """{name: line} of a requirements file, without comments and ``-r`` includes."""
    lines = path.read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return {_requirement_name(p): p for p in pins if p and not p.startswith("-r ")}


def _marked_entry_points() -> set[tuple[str, str]]:
    """(folder, entry) of every ``@pytest.mark.entry_point(folder, entry)`` under tests/."""
    marked = set()
    for test_file in (REPO_ROOT / "tests").glob("test_*.py"):
        module = ast.parse(test_file.read_text())
        # Module-level string constants, e.g. PROJECT = "census_project", may name the folder.
        constants = {
            target.id: node.value.value
            for node in module.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }

        def value(argument: ast.expr, constants=constants):
            if isinstance(argument, ast.Constant):
                return argument.value
            return constants.get(argument.id) if isinstance(argument, ast.Name) else None

        for node in ast.walk(module):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "entry_point"
                and len(node.args) == 2
            ):
                marked.add((value(node.args[0]), value(node.args[1])))
    return marked


def test_the_repository_has_its_example_projects():
    assert {"tracking_example", "autologging_example"} <= set(EXAMPLE_FOLDERS)


@pytest.mark.parametrize("mlproject", MLPROJECT_FILES, ids=EXAMPLE_FOLDERS)
def test_every_entry_point_has_a_smoke_test(mlproject: Path):
    spec = yaml.safe_load(mlproject.read_text())
    folder = mlproject.parent.name
    missing = sorted(entry for entry in spec["entry_points"] if (folder, entry) not in _marked_entry_points())
    assert not missing, (
        f"{folder}/MLproject entry points without a smoke test "
        f"(@pytest.mark.entry_point({folder!r}, <entry>)): {missing}"
    )


@pytest.mark.parametrize("mlproject", MLPROJECT_FILES, ids=EXAMPLE_FOLDERS)
def test_every_parameter_reaches_its_command(mlproject: Path):
    spec = yaml.safe_load(mlproject.read_text())
    for entry, definition in spec["entry_points"].items():
        for parameter in definition.get("parameters") or {}:
            assert "{" + parameter + "}" in definition["command"], (
                f"{mlproject.parent.name}:{entry} declares {parameter!r} but never passes it"
            )


PARAMETER_TYPES = {"string", "int", "float", "boolean"}  # the talk's; README "MLproject conventions"


@pytest.mark.parametrize("mlproject", MLPROJECT_FILES, ids=EXAMPLE_FOLDERS)
def test_commands_are_one_line_and_parameters_use_the_talks_types(mlproject: Path):
    """`mlflow run` hands the command to bash, or to cmd on Windows: no line breaks, no `\\`."""
    spec = yaml.safe_load(mlproject.read_text())
    for entry, definition in spec["entry_points"].items():
        assert "\n" not in definition["command"].strip(), f"{mlproject.parent.name}:{entry}: one line (or >-)"
        assert "\\" not in definition["command"], f"{mlproject.parent.name}:{entry}: no \\ continuations"
        for name, parameter in (definition.get("parameters") or {}).items():
            assert parameter["type"] in PARAMETER_TYPES, f"{mlproject.parent.name}:{entry}:{name}"


@pytest.mark.parametrize("mlproject", MLPROJECT_FILES, ids=EXAMPLE_FOLDERS)
def test_python_env_agrees_with_requirements(mlproject: Path):
    spec = yaml.safe_load(mlproject.read_text())
    assert spec.get("python_env") == "python_env.yaml"
    python_env = yaml.safe_load((mlproject.parent / "python_env.yaml").read_text())
    assert str(python_env["python"]) == "3.11"
    # pip, which MLflow's virtualenv manager installs first: the version the Makefile bootstraps .venv with.
    pip_version = re.search(r"^PIP_VERSION := (\S+)", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert python_env["build_dependencies"] == [f"pip=={pip_version}"], f"{mlproject.parent.name}/python_env.yaml"
    pins = _pinned_requirements()
    for dependency in python_env["dependencies"]:
        name = _requirement_name(dependency)
        assert name in pins, f"{mlproject.parent.name}/python_env.yaml: {dependency} is not in requirements.txt"
        # Same version; requirements.txt may add extras an example does not need (mlflow[auth]: the server's).
        assert _without_extras(dependency) == _without_extras(pins[name]), (
            f"{mlproject.parent.name}/python_env.yaml pins {dependency}, requirements.txt pins {pins[name]}"
        )


@pytest.mark.parametrize("requirements", REQUIREMENT_FILES, ids=[p.name for p in REQUIREMENT_FILES])
def test_requirements_are_all_pinned_exactly(requirements: Path):
    for line in _pinned_requirements(requirements).values():
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[a-z,]+\])?==[0-9][0-9A-Za-z.\-]*", line), line


def _entry_points() -> list[tuple[str, str, dict]]:
    """(folder, entry, definition) of every entry point of every MLproject."""
    return [
        (mlproject.parent.name, entry, definition)
        for mlproject in MLPROJECT_FILES
        for entry, definition in yaml.safe_load(mlproject.read_text())["entry_points"].items()
    ]


def _argv(command: str, values: dict) -> list[str]:
    """The script's arguments in an MLproject command, each {parameter} replaced by values[parameter],
    and an option whose parameter is missing from ``values`` left out with its placeholder."""
    words = shlex.split(command)[2:]  # after `python script.py`
    argv = []
    for index, word in enumerate(words):
        names = re.findall(r"\{(\w+)\}", word)
        if names:
            if names[0] in values:
                argv += ([words[index - 1]] if words[index - 1].startswith("--") else []) + [str(values[names[0]])]
        elif not (word.startswith("--") and index + 1 < len(words) and "{" in words[index + 1]):
            argv.append(word)
    return argv


@pytest.mark.parametrize(
    ("folder", "entry", "definition"), _entry_points(), ids=[f"{f}:{e}" for f, e, _ in _entry_points()]
)
def test_argparse_defaults_agree_with_the_mlproject(folder, entry, definition):
    """The repository's rule (README, "MLproject conventions"): a script's argparse holds its
    defaults (python x.py --help shows them); the MLproject repeats them for `mlflow run`. Parsing
    the MLproject's defaults, as `mlflow run` passes them, gives what argparse gives by default."""
    from tests import examples

    script = shlex.split(definition["command"])[1]
    (module,) = examples.load(folder, script.removesuffix(".py"))
    parse = getattr(module, "parse_args", None) or module.read_seed  # read_seed: the talk's positional seed
    parameters = definition.get("parameters") or {}
    required = {name: f"<{name}>" for name, parameter in parameters.items() if "default" not in parameter}
    declared = {name: parameter["default"] for name, parameter in parameters.items() if "default" in parameter}
    # MLflow passes YAML's true as "True", a list default as its text: str() of what YAML read.
    from_mlproject = parse(_argv(definition["command"], required | {k: str(v) for k, v in declared.items()}))
    from_argparse = parse(_argv(definition["command"], required))
    assert from_mlproject == from_argparse, f"{folder}/MLproject {entry}: defaults differ from {script}'s argparse"


def test_the_defaults_check_sees_a_difference():
    command = "python train.py --size {size} --name {name} --run-id {run_id}"
    assert _argv(command, {"size": 3, "run_id": "r"}) == ["--size", "3", "--run-id", "r"]
    assert _argv("python logging_example.py {seed}", {}) == []
    assert _argv("python logging_example.py {seed}", {"seed": 42}) == ["42"]

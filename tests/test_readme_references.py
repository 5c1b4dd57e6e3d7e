"""Every README section an error message or a printed hint names exists: a student told to read
"README, 'X'" finds a heading X there."""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness import REPO_ROOT

# The three forms the code uses: "<folder>/README.md, '<heading>'", "README, '<heading>'" (the README
# of the file's own folder, or the nearest one above it) and "<folder> README, <heading>)", where the
# folder may be short ("census README" is census_project's).
REFERENCE = re.compile(
    r"(?:(?P<path>[\w./-]+/README\.md)|(?P<folder>\w+) README|README(?:\.md)?), "
    r"(?:'(?P<quoted>[^']+)'|(?P<bare>[A-Z][\w :-]*)\))"
)


def code_files() -> list[Path]:
    skipped = {".venv", "tests", ".git", "node_modules"}
    return [p for p in REPO_ROOT.rglob("*.py") if not skipped & set(p.relative_to(REPO_ROOT).parts)]


def nearest_readme(file: Path) -> Path:
    for folder in file.parents:
        if (folder / "README.md").is_file():
            return folder / "README.md"
    raise AssertionError(f"no README.md above {file}")


def headings(readme: Path) -> set[str]:
    return {line.lstrip("#").strip() for line in readme.read_text().splitlines() if line.startswith("#")}


def readme_named(file: Path, match: re.Match) -> Path:
    if match["path"]:
        return REPO_ROOT / match["path"]
    folders = [d for d in REPO_ROOT.iterdir() if match["folder"] and d.name.split("_")[0] == match["folder"]]
    return folders[0] / "README.md" if folders else nearest_readme(file)  # "census README"; "see README"


def references() -> list[tuple[Path, Path, str]]:
    """(file, README it names, heading) for every reference in the code."""
    return [
        (file, readme_named(file, match), (match["quoted"] or match["bare"]).strip())
        for file in code_files()
        for match in REFERENCE.finditer(file.read_text())
    ]


def test_every_readme_section_the_code_names_exists():
    found = references()
    named = {(file.name, heading) for file, _, heading in found}
    # The scan sees the references it is meant to see (so an empty scan cannot pass).
    assert ("provider.py", "Before you start: pick a provider") in named, named
    for file, readme, heading in found:
        where = file.relative_to(REPO_ROOT)
        assert readme.is_file(), f"{where} names {readme.relative_to(REPO_ROOT)}, which does not exist"
        assert heading in headings(readme), f"{where} names section {heading!r} of {readme.relative_to(REPO_ROOT)}"


def test_the_scan_knows_each_form():
    here = REPO_ROOT / "llmops_project" / "quiz" / "provider.py"
    text = "x (see README, 'Offline') y (see census_project/README.md, 'Champion') z (census README, Champion)"
    found = [(readme_named(here, m).relative_to(REPO_ROOT), m["quoted"] or m["bare"]) for m in REFERENCE.finditer(text)]
    assert found == [
        (Path("llmops_project/README.md"), "Offline"),
        (Path("census_project/README.md"), "Champion"),
        (Path("census_project/README.md"), "Champion"),
    ]
    assert "Offline" not in headings(REPO_ROOT / "llmops_project" / "README.md")  # the section that never was


def test_each_example_readme_explains_mlflows_own_common_errors():
    """MLflow's messages a student meets most (reproduced with MLflow 3.17.2: `mlflow run` on a folder
    that is not there, a typo'd alias or model name, classroom mode without a login or in another's
    experiment), quoted in every example folder's README with their fix."""
    messages = [
        "does not appear to be a git repository",
        "Registered model alias champoin not found.",
        "Registered Model with name=",
        "failed with error code 401 != 200. Response body: 'You are not authenticated.",
        "failed with error code 403 != 200. Response body: 'Permission denied'",
        # and the repository's own line for `mlflow run` against a server that does not answer (default_store.py)
        "error: mlflow run cannot reach the tracking server MLFLOW_TRACKING_URI=",
    ]
    for folder in ("tracking_example", "autologging_example", "census_project", "llmops_project"):
        text = (REPO_ROOT / folder / "README.md").read_text()
        assert "## Common errors" in text, folder
        section = " ".join(text.split("## Common errors", 1)[1].split("\n## ", 1)[0].split())  # one line
        assert [m for m in messages if m not in section] == [], folder


# --- `make help` lists every target, and every `make <target>` a README names is one ---------------

MAKE_WORD = re.compile(r"`make ([\w-]+)|^\s*(?:[A-Z_]+=\S* )*make ([\w-]+)", re.MULTILINE)  # `make x`, a line "make x"


def makefile_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):(?!=)", text, re.MULTILINE))


def test_make_help_lists_every_target_and_every_target_a_readme_names_exists():
    """The root README says `make help` lists every target, and the folder READMEs send students to
    `make install`: each target a README names must exist and be in `make help`."""
    import subprocess

    shown = subprocess.run(["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    listed = set(re.findall(r"^make ([\w-]+)", shown, re.MULTILINE))
    targets = makefile_targets()
    assert {"install", "dev-install", "demo", "ui"} <= targets  # the parse sees the rules
    assert targets - {"help"} - listed == set(), f"make help does not list them:\n{shown}"
    readmes = [REPO_ROOT / "README.md", REPO_ROOT / "CONTRIBUTING.md", *REPO_ROOT.glob("*/README.md")]
    readmes += [*REPO_ROOT.glob("*/*/README.md")]
    named = {
        (readme.relative_to(REPO_ROOT).as_posix(), word)
        for readme in readmes
        for match in MAKE_WORD.finditer(readme.read_text())
        for word in match.groups()
        if word
    }
    assert ("tracking_example/README.md", "install") in named  # the scan sees what it is meant to see
    assert [f"{readme}: make {word}" for readme, word in sorted(named) if word not in targets] == []


def test_the_llmops_readme_states_the_decision_rules_thresholds():
    """The README restates quiz/decision.py's rule in prose; its numbers are the module's constants."""
    from tests.llmops import decision

    readme = " ".join((REPO_ROOT / "llmops_project" / "README.md").read_text(encoding="utf-8").split())
    for stated in (
        f"kappa **≥ {decision.MIN_KAPPA} on ≥ {decision.MIN_LABELLED} labelled answers**",
        f"ahead by at least {decision.MIN_MARGIN}",
        f"p ≤ {decision.ALPHA}",
    ):
        assert stated in readme, stated

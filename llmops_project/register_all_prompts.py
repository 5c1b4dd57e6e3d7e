"""Register every prompt template of prompts/ in MLflow's prompt registry (talk pt. 5-6).

    mlflow run -e register_all_prompts --env-manager=local --experiment-name $EXPERIMENT_ID .

prompts/<name>.txt becomes the prompt <name> (MLflow's {{variable}} syntax), and its newest version
gets the alias "production", which the generation entry points load. Idempotent: a prompt whose
text is unchanged gets no new version, and an alias moved by hand to another version stays there.
"""

import mlflow
from mlflow.exceptions import MlflowException

import cli
from quiz import PROMPTS_DIR
from quiz.generation import ALIAS, experiment_name  # ALIAS, "production": what generation loads

REGISTERED_BY = "quiz.registered_by_run"  # version tag: the run that registered it (see unchanged_version)


def main() -> None:
    parse_args()
    with mlflow.start_run(run_name="register-prompts") as run:
        new_versions = 0
        for path in sorted(PROMPTS_DIR.glob("*.txt")):
            # mlflow.genai.register_prompt, then set_prompt_alias: only for a new text (see register)
            version, registered = register(path.stem, path.read_text(encoding="utf-8"))
            new_versions += registered
            mlflow.log_param(f"prompt_{path.stem}", f"v{version}")
            print(f"{path.stem:10s} version {version}  {'registered' if registered else 'unchanged'}  (alias @{ALIAS})")
        mlflow.log_metric("new_prompt_versions", new_versions)

    print("\nSee them in the MLflow UI: Prompts (talk pt. 5-6).")
    cli.print_next(
        "generate answers (talk pt. 7)",
        cli.mlflow_run_command("generate_answers", {"max_questions": 4}, experiment_name(run)),
    )


def parse_args(argv: list[str] | None = None):
    """No options: --help says what the script does; anything else is refused in one line."""
    parser = cli.ArgumentParser(
        example="mlflow run -e register_all_prompts --env-manager=local --experiment-name se-answers .",
        description=__doc__.split("\n\n")[0],
    )
    return parser.parse_args(argv)


def version_details(name: str) -> dict:
    """The commit message and tags of a new version of prompt ``name`` (and the run registering it)."""
    tags = {"source_file": f"prompts/{name}.txt", "project": "quiz-answer-generator"}
    if run := mlflow.active_run():
        tags[REGISTERED_BY] = run.info.run_id
    return {"commit_message": f"prompts/{name}.txt as of this register_all_prompts run", "tags": tags}


def unchanged_version(name: str, template: str) -> int | None:
    """The newest version of prompt ``name`` when it holds ``template`` (nothing to register), else None.

    Its alias is repaired on the way: set when the prompt has none, and moved to it when the run that
    registered it (tag ``REGISTERED_BY``) did not finish, so may have stopped before moving the alias
    (a crash; a kill waits for the move, see register). An alias moved by hand after a run that finished
    stays where it was put."""
    latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest", allow_missing=True, cache_ttl_seconds=0)
    if latest is None or latest.template != template:
        return None
    current = mlflow.genai.load_prompt(f"prompts:/{name}@{ALIAS}", allow_missing=True, cache_ttl_seconds=0)
    if current is None or (current.version != latest.version and not finished(latest.tags.get(REGISTERED_BY))):
        mlflow.genai.set_prompt_alias(name, alias=ALIAS, version=latest.version)
    return latest.version


def finished(run_id: str | None) -> bool:
    """Whether the run ``run_id`` ended FINISHED; True when there is none to ask (a version registered
    outside a run, or before versions named their run; a run deleted since): nothing says it stopped."""
    if not run_id:
        return True
    try:
        return mlflow.MlflowClient().get_run(run_id).info.status == "FINISHED"
    except MlflowException:
        return True


def register(name: str, template: str) -> tuple[int, bool]:
    """Prompt ``name``'s newest version and whether it is new: the newest one when it holds ``template``
    already (see unchanged_version), else a new version registered with the alias moved to it, both
    or neither (a kill waits until both are done). main() calls it for each file; the tests too."""
    version = unchanged_version(name, template)
    if version is not None:
        return version, False
    with cli.uninterrupted():
        prompt = mlflow.genai.register_prompt(name=name, template=template, **version_details(name))
        mlflow.genai.set_prompt_alias(name, alias=ALIAS, version=prompt.version)
    return prompt.version, True


if __name__ == "__main__":
    cli.run(main)

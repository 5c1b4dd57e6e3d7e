"""Register every prompt template of prompts/ in MLflow's prompt registry (talk pt. 5-6).

    mlflow run -e register_all_prompts --env-manager=local --experiment-name $EXPERIMENT_ID .

prompts/<name>.txt becomes the prompt <name> (MLflow's {{variable}} syntax), and its newest version
gets the alias "production", which the generation entry points load. Idempotent: a prompt whose
text is unchanged gets no new version, and an alias moved by hand to another version stays there.
"""

import mlflow

import cli
from quiz import PROMPTS_DIR
from quiz.generation import ALIAS  # "production": what the generation entry points load


def main() -> None:
    parse_args()
    with mlflow.start_run(run_name="register-prompts") as run:
        new_versions = 0
        for path in sorted(PROMPTS_DIR.glob("*.txt")):
            version, registered = register(path.stem, path.read_text(encoding="utf-8"))
            new_versions += registered
            mlflow.log_param(f"prompt_{path.stem}", f"v{version}")
            print(f"{path.stem:10s} version {version}  {'registered' if registered else 'unchanged'}  (alias @{ALIAS})")
        mlflow.log_metric("new_prompt_versions", new_versions)

    print("\nSee them in the MLflow UI: Prompts (talk pt. 5-6).")
    experiment = mlflow.get_experiment(run.info.experiment_id).name
    cli.print_next(
        "generate answers (talk pt. 7)", cli.mlflow_run_command("generate_answers", {"max_questions": 4}, experiment)
    )


def parse_args(argv: list[str] | None = None):
    """No options: --help says what the script does; anything else is refused in one line."""
    parser = cli.ArgumentParser(example="python register_all_prompts.py", description=__doc__.split("\n\n")[0])
    return parser.parse_args(argv)


def register(name: str, template: str) -> tuple[int, bool]:
    """Register ``template`` as a new version of prompt ``name`` and point the alias at it, unless the
    newest version already has this text. Returns (version, whether it is new)."""
    latest = mlflow.genai.load_prompt(f"prompts:/{name}@latest", allow_missing=True, cache_ttl_seconds=0)
    if latest is not None and latest.template == template:
        if mlflow.genai.load_prompt(f"prompts:/{name}@{ALIAS}", allow_missing=True, cache_ttl_seconds=0) is None:
            mlflow.genai.set_prompt_alias(name, alias=ALIAS, version=latest.version)
        return latest.version, False
    prompt = mlflow.genai.register_prompt(
        name=name,
        template=template,
        commit_message=f"prompts/{name}.txt as of this register_all_prompts run",
        tags={"source_file": f"prompts/{name}.txt", "project": "quiz-answer-generator"},
    )
    mlflow.genai.set_prompt_alias(name, alias=ALIAS, version=prompt.version)
    return prompt.version, True


if __name__ == "__main__":
    cli.run(main)

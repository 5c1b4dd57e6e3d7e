"""Talk pt. 5: register every prompts/*.txt in MLflow's prompt registry.

Idempotent: a prompt whose text is unchanged gets no new version. Each new version gets a commit
message and the alias 'production', which the generation entry points load.

    mlflow run -e register_all_prompts --env-manager=local --experiment-name $EXPERIMENT_ID .
"""

import mlflow

from quiz import cli, prompts


def main() -> None:
    cli.ArgumentParser(prog="register_all_prompts.py", description=__doc__).parse_args()
    with mlflow.start_run():
        mlflow.set_tag("quiz.step", "register_prompts")
        created = 0
        for name, template in prompts.prompt_files().items():
            version, is_new = prompts.register(name, template)
            created += is_new
            mlflow.log_param(f"prompt_{name}", f"v{version}")
            print(f"{name:10s} version {version}  {'registered' if is_new else 'unchanged'}  (alias @{prompts.ALIAS})")
        mlflow.log_metric("new_prompt_versions", created)
    print("\nSee them in the MLflow UI, 'Prompts'. Next, generate answers:")
    print("  mlflow run -e generate_answers --env-manager=local --experiment-name $EXPERIMENT_ID . -P max_questions=4")


if __name__ == "__main__":
    cli.run(main)

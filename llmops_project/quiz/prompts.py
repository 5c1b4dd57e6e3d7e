"""Prompt templates in MLflow's prompt registry.

``prompts/<name>.txt`` becomes the registered prompt ``<name>`` (MLflow's ``{{variable}}``
syntax). ``system`` and ``tools`` are system prompts; the others are user prompt templates.
Generation loads every prompt through the alias ``production``, so moving the alias in the UI
(or with ``mlflow.genai.set_prompt_alias``) changes what the next generation run uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import mlflow

from quiz import PROMPTS_DIR, QuizError
from quiz.questions import Question

ALIAS = "production"
SYSTEM, TOOLS = "system", "tools"


def prompt_files() -> dict[str, str]:
    """{prompt name: template text} of prompts/*.txt."""
    return {path.stem: path.read_text(encoding="utf-8") for path in sorted(PROMPTS_DIR.glob("*.txt"))}


def user_templates() -> list[str]:
    return [name for name in prompt_files() if name not in (SYSTEM, TOOLS)]


def register(name: str, template: str) -> tuple[int, bool]:
    """Register ``template`` as a new version of ``name`` unless the newest version has the same
    text. Returns (version, created). The alias moves only to a newly created version (or is set
    when missing), so an alias moved back by hand is left alone when nothing changed."""
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


def _load(name: str):
    return mlflow.genai.load_prompt(f"prompts:/{name}@{ALIAS}", allow_missing=True)


@dataclass(frozen=True)
class PromptSet:
    """The prompts of one generation run, loaded once: system (+ tools addendum) and user."""

    template_name: str
    system: object  # mlflow PromptVersion
    user: object
    tools: object | None = None

    @property
    def system_text(self) -> str:
        if self.tools is None:
            return self.system.template.strip()
        return f"{self.system.template.strip()}\n\n{self.tools.template.strip()}"

    def user_text(self, question: Question) -> str:
        return self.user.format(category=question.category, question=question.text, weight=question.weight)

    def messages(self, question: Question) -> list[dict]:
        return [
            {"role": "system", "content": self.system_text},
            {"role": "user", "content": self.user_text(question)},
        ]

    @property
    def versions(self) -> dict[str, int]:
        """{prompt name: version} of every prompt this run uses."""
        used = [self.system, self.user] + ([self.tools] if self.tools is not None else [])
        return {p.name: int(p.version) for p in used}

    def log_to_run(self) -> None:
        mlflow.log_params({"prompt_" + name: f"{name}@{ALIAS}=v{v}" for name, v in self.versions.items()})


def load_prompt_set(template_name: str, with_tools: bool = False) -> PromptSet:
    """Load the system prompt, the user template ``template_name`` and, for agents, the tools
    addendum, through the alias. Unknown or unregistered names end in one clear error."""
    templates = user_templates()
    if template_name not in templates:
        raise QuizError(
            f"unknown prompt template {template_name!r}. Use one of {', '.join(templates)} "
            f"(-P prompt_template=...), or add prompts/{template_name}.txt and run register_all_prompts"
        )
    loaded = {name: _load(name) for name in (SYSTEM, template_name) + ((TOOLS,) if with_tools else ())}
    missing = [name for name, prompt in loaded.items() if prompt is None]
    if missing:
        raise QuizError(
            f"prompt(s) {', '.join(missing)} have no version with alias @{ALIAS} in this tracking store. "
            "Register them first: mlflow run -e register_all_prompts --env-manager=local ."
        )
    return PromptSet(template_name, loaded[SYSTEM], loaded[template_name], loaded.get(TOOLS))

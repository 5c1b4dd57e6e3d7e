"""Decoding rules: how the server decodes what a request asks for. Pure functions.

None of them touches a message: the model reads exactly the prompt the client sent (a judge's
trace shows what the model really got). They only narrow how the model's next tokens are chosen,
to what the request itself asks for:

- ``verdict_values``: a judge's prompt shows the JSON it wants, e.g. ``"result": "yes|no"``; when
  the request's schema leaves that field free text, the grammar allows just those values (an enum).
- ``greedy``: structured output (a JSON schema) that sets no temperature is decoded greedily: the
  model's most likely verdict, the same every time.
- ``text_arguments``: a tool's free-text argument (a search query) is text: it starts with a letter
  or a digit and holds no braces, brackets, angle brackets, quotes or backslashes.
- ``seeded_runs_alone`` (in chat_handler.py): a request with a seed never reuses the cached prompt
  of an earlier request, so the same seed gives the same text.

LOCAL_LLM_DECODING (a comma-separated list of rule names, or "none") selects them, to measure each
one with benchmarks/offline_judges.py; unset, every rule in DEFAULT_RULES applies.
"""

from __future__ import annotations

import os
import re

RULES = ("verdict_values", "greedy", "seeded_runs_alone", "template_order", "text_arguments")
DEFAULT_RULES = frozenset({"verdict_values", "greedy", "seeded_runs_alone", "text_arguments"})

# A field of the JSON a prompt shows, with its values separated by "|": "result": "yes|no".
TEMPLATE_FIELD = re.compile(r'"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"\s*:\s*"(?P<values>[A-Za-z]+(?:\|[A-Za-z]+)+)"')
# A field's name where a prompt's JSON template lists it: "rationale": ...
TEMPLATE_NAME = re.compile(r'"(?P<name>[A-Za-z_][A-Za-z0-9_]*)"\s*:')
_CONSTRAINED_STRING_KEYS = {"enum", "const", "pattern", "format", "maxLength"}


def active_rules(setting: str | None = None) -> frozenset[str]:
    """The rules in force: LOCAL_LLM_DECODING (or ``setting``), else DEFAULT_RULES."""
    setting = os.environ.get("LOCAL_LLM_DECODING") if setting is None else setting
    if setting is None or not setting.strip():
        return DEFAULT_RULES
    names = {name.strip() for name in setting.split(",") if name.strip() and name.strip() != "none"}
    unknown = names - set(RULES)
    if unknown:
        raise ValueError(f"LOCAL_LLM_DECODING names unknown rules {sorted(unknown)}; known: {', '.join(RULES)}")
    return frozenset(names)


def prompt_text(messages: list[dict]) -> str:
    """What the client wrote in its system and user messages (text parts only)."""
    texts = []
    for message in messages or []:
        if message.get("role") not in ("system", "developer", "user"):
            continue
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        texts.append(content or "")
    return "\n".join(texts)


def _is_free_text(schema) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "string" and not _CONSTRAINED_STRING_KEYS & schema.keys()


def verdict_values(schema: dict, messages: list[dict]) -> dict:
    """The schema, with each free-text field whose values the prompt lists ("result": "yes|no")
    constrained to those values (an enum). The first listing of a field counts; fields the prompt
    does not list, and fields the schema already constrains, are left as they are."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return schema
    asked = {}
    for match in TEMPLATE_FIELD.finditer(prompt_text(messages)):
        asked.setdefault(match["name"], match["values"].split("|"))
    narrowed = {
        name: ({**field, "enum": asked[name]} if name in asked and _is_free_text(field) else field)
        for name, field in properties.items()
    }
    return {**schema, "properties": narrowed} if narrowed != properties else schema


def template_order(schema: dict, messages: list[dict]) -> dict:
    """The schema's properties in the order the prompt's JSON template lists them (e.g. the
    rationale before the result); JSON objects are unordered, so the schema allows either order.
    Properties the prompt does not list keep their order, after the listed ones."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return schema
    listed = []
    for match in TEMPLATE_NAME.finditer(prompt_text(messages)):
        if match["name"] in properties and match["name"] not in listed:
            listed.append(match["name"])
    order = listed + [name for name in properties if name not in listed]
    reordered = {name: properties[name] for name in order}
    result = {**schema, "properties": reordered}
    if isinstance(schema.get("required"), list):
        result["required"] = sorted(schema["required"], key=lambda name: order.index(name) if name in order else 0)
    return result


def judge_schema(schema: dict, messages: list[dict], rules: frozenset[str]) -> dict:
    """A structured-output request's schema after the rules in force (verdict_values, template_order)."""
    if "verdict_values" in rules:
        schema = verdict_values(schema, messages)
    if "template_order" in rules:
        schema = template_order(schema, messages)
    return schema


def greedy(payload: dict, rules: frozenset[str]) -> dict:
    """Structured output that sets no temperature: temperature 0 (the request's own value wins)."""
    response_format = payload.get("response_format")
    structured = isinstance(response_format, dict) and response_format.get("type") in ("json_schema", "json_object")
    if "greedy" in rules and structured and payload.get("temperature") is None:
        return {**payload, "temperature": 0}
    return payload


# A free-text argument as text: a letter or digit first, then no JSON or template punctuation.
TEXT_ARGUMENT_PATTERN = r'^[A-Za-z0-9][^{}<>\[\]"\\\x00-\x1f]{0,%d}$'


def text_arguments(tools: list[dict], max_chars: int) -> list[dict]:
    """The tools, each free-text string argument (top level) constrained to TEXT_ARGUMENT_PATTERN
    of at most ``max_chars`` characters."""
    pattern = TEXT_ARGUMENT_PATTERN % (max_chars - 1)
    constrained = []
    for tool in tools:
        function = tool.get("function") or {}
        parameters = function.get("parameters") or {}
        properties = parameters.get("properties")
        if isinstance(properties, dict):
            properties = {
                name: ({**field, "pattern": pattern} if _is_free_text(field) else field)
                for name, field in properties.items()
            }
            tool = {**tool, "function": {**function, "parameters": {**parameters, "properties": properties}}}
        constrained.append(tool)
    return constrained

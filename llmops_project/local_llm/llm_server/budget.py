"""2. Structured output that always completes: JSON-schema budget maths (pure functions).

llama.cpp turns a JSON schema into a grammar (llama_cpp.llama_grammar.SchemaConverter), so the
output follows the schema token by token, but nothing stops a free-text string from running on
until max_tokens cuts the JSON off. Bounding each free-text string bounds the whole JSON:
longest_json_bytes computes the longest text the grammar allows. Every token the grammar lets
through is at least one byte, so that many bytes is also an upper bound in tokens.
"""

from __future__ import annotations

import json
import re

from llm_server.settings import TEXT_MAX_CHARS

JSON_CHAR_MAX_BYTES = 6  # one character of a JSON string takes at most 6 bytes: \u00e9
_FIXED_BYTES = {"boolean": 6, "null": 5, "integer": 18, "number": 53}  # "false" / 16 digits, sign, ..., + a space
_FORMAT_BYTES = {"date": 13, "time": 21, "date-time": 32}  # quoted, + a space
_BOUNDED_STRING_KEYS = {"enum", "const", "pattern", "format", "maxLength"}  # not free text
# One character of a JSON string: anything but a quote, a backslash or a control character; or an escape.
JSON_STRING_CHAR_RULE = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})'


class OutputBudgetError(ValueError):
    """Even with empty free-text strings, the schema's longest JSON does not fit the budget."""


def with_bounded_strings(schema, max_chars: int):
    """A copy of a JSON schema in which every free-text string has ``maxLength: max_chars``."""
    if isinstance(schema, list):
        return [with_bounded_strings(item, max_chars) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {}
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            bounded[key] = {name: with_bounded_strings(sub, max_chars) for name, sub in value.items()}
        elif key in ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties"):
            bounded[key] = with_bounded_strings(value, max_chars)
        else:
            bounded[key] = value
    if bounded.get("type") == "string" and not _BOUNDED_STRING_KEYS & bounded.keys():
        bounded["maxLength"] = max_chars
    return bounded


def longest_json_bytes(schema, root=None) -> int | None:
    """The most bytes llama.cpp's grammar for this JSON schema lets the model write, or None when
    that is unbounded (a string with no maxLength, an array with no maxItems, a free-form object).

    Follows the cases of llama_cpp.llama_grammar.SchemaConverter.visit, in its order.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return None
    kind, string_format = schema.get("type"), schema.get("format") or ""

    def longest_of(schemas):
        sizes = [longest_json_bytes(s, root) for s in schemas]
        return None if None in sizes else sizes

    if "$ref" in schema:
        ref = schema["$ref"]
        for prefix in ("#/$defs/", "#/definitions/"):
            if ref.startswith(prefix):
                return longest_json_bytes((root.get(prefix[2:-1]) or {}).get(ref[len(prefix) :]), root)
        return None
    if "oneOf" in schema or "anyOf" in schema:
        sizes = longest_of(schema.get("oneOf") or schema["anyOf"])
        return None if sizes is None else max(sizes, default=0)
    if isinstance(kind, list):  # the converter keeps only the types here, not maxLength and the like
        sizes = longest_of({"type": t} for t in kind)
        return None if sizes is None else max(sizes, default=0)
    if "const" in schema:
        return len(json.dumps(schema["const"]))
    if "enum" in schema:
        return max((len(json.dumps(value)) for value in schema["enum"]), default=0)
    if kind in (None, "object") and (
        "properties" in schema or ("additionalProperties" in schema and schema["additionalProperties"] is not True)
    ):
        if isinstance(schema.get("additionalProperties"), dict):
            return None
        # '{' space, then every property (the longest form has them all): "key" space ':' space value,
        # separated by ',' space; then '}' space.
        properties = schema.get("properties") or {}
        sizes = longest_of(properties.values())
        if sizes is None:
            return None
        pairs = sum(len(json.dumps(name)) + 3 + size for name, size in zip(properties, sizes, strict=True))
        return 4 + pairs + 2 * max(0, len(sizes) - 1)
    if kind in (None, "object") and "allOf" in schema:
        return None
    if kind in (None, "array") and ("items" in schema or "prefixItems" in schema):
        items = schema.get("items") or schema["prefixItems"]
        if isinstance(items, list):
            sizes = longest_of(items)
            count = len(items)
        else:
            count = schema.get("maxItems")
            item = longest_json_bytes(items, root)
            sizes = None if count is None or item is None else [item] * count
        return None if sizes is None else 4 + sum(sizes) + 2 * max(0, count - 1)
    if kind in (None, "string") and "pattern" in schema:
        return None
    if kind in (None, "string") and re.match(r"^uuid[1-5]?$", string_format):
        return 39
    if kind in (None, "string") and string_format in _FORMAT_BYTES:
        return _FORMAT_BYTES[string_format]
    if kind == "string" and "maxLength" in schema:
        return 3 + JSON_CHAR_MAX_BYTES * schema["maxLength"]  # quotes, characters, a space
    return _FIXED_BYTES.get(kind)


def fit_structured_output(schema: dict, budget: int) -> tuple[dict, int | None]:
    """The schema with its free-text strings bounded, and the longest output it allows, in tokens.

    Each free-text string gets at most TEXT_MAX_CHARS characters, fewer when the longest output
    would not fit ``budget`` tokens. The longest output is None when some part of the schema is
    unbounded anyway (then no length is guaranteed). Raises OutputBudgetError when even empty
    strings do not fit.
    """

    def bounded(max_chars):
        fitted = with_bounded_strings(schema, max_chars)
        return fitted, longest_json_bytes(fitted)

    fitted, longest = bounded(TEXT_MAX_CHARS)
    if longest is None or longest <= budget:
        return fitted, longest
    shortest = bounded(0)[1]
    if shortest > budget:
        raise OutputBudgetError(f"the shortest complete JSON of this schema may need {shortest} tokens")
    fits, too_long = 0, TEXT_MAX_CHARS  # the largest max_chars that fits lies in between
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if bounded(middle)[1] <= budget:
            fits = middle
        else:
            too_long = middle
    return bounded(fits)


def tool_schema(tool: dict) -> dict:
    return tool["function"].get("parameters") or {}


def with_tool_schema(tool: dict, schema: dict) -> dict:
    return {**tool, "function": {**tool["function"], "parameters": schema}}


def with_bounded_arguments(tools: list[dict]) -> list[dict]:
    """The tools with every free-text argument at most TEXT_MAX_CHARS characters (the policy above)."""
    return [with_tool_schema(tool, with_bounded_strings(tool_schema(tool), TEXT_MAX_CHARS)) for tool in tools]

"""3. The chat handler llama.cpp calls for every chat completion: tools, structured output, plain text.

OpenAI's ``tool_choice`` semantics: ``auto`` lets the model choose between text and a call
(llama.cpp's ``chatml-function-calling``), and after a tool result it answers in text, so an
agent's loop ends; ``required`` forces a call of one of the offered tools (the model picks which);
``{"type": "function", ...}`` forces that one; ``none`` answers in text. The call's arguments are
constrained to the tool's JSON schema, and every JSON output is fitted to the budget (budget.py).

Imports llama_cpp: process.build_app loads this module only once the server starts.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from llama_cpp import llama_chat_format, llama_grammar

from llm_server import decoding
from llm_server.budget import (
    JSON_STRING_CHAR_RULE,
    OutputBudgetError,
    fit_structured_output,
    tool_schema,
    with_bounded_arguments,
    with_tool_schema,
)
from llm_server.settings import CHAT_FORMAT, DEFAULT_MAX_TOKENS, TEXT_MAX_CHARS


def register_chat_handler(rules: frozenset[str] = decoding.DEFAULT_RULES) -> None:
    """Register a ChatHandler with llama.cpp under the name CHAT_FORMAT (and patch its JSON strings)."""
    use_json_string_rule_for_every_schema()
    llama_chat_format.register_chat_completion_handler(CHAT_FORMAT)(ChatHandler(rules))


def use_json_string_rule_for_every_schema() -> None:
    """The one llama.cpp global this server changes.

    llama-cpp-python 0.3.36's JSON-schema converter lets a string hold raw control characters (a
    newline, ...), which JSON forbids: strict parsers reject such output. llama.cpp's own
    converter (and llama-cpp-python's JSON_GBNF) exclude them: use that rule for every schema.
    """
    llama_grammar.PRIMITIVE_RULES["char"] = llama_grammar.BuiltinRule(JSON_STRING_CHAR_RULE, [])


class ChatHandler:
    """llama.cpp calls it as ``handler(llama=..., messages=..., tools=..., ...)``. Its state: the
    decoding rules in force (decoding.py), and a cache of each loaded model's chat template, read
    from the model's GGUF file."""

    def __init__(self, rules: frozenset[str] = decoding.DEFAULT_RULES):
        self.rules = rules
        self.templates = {}  # id(llama) → (Jinja2ChatFormatter, its chat handler)

    def __call__(self, llama, messages, tools=None, tool_choice=None, stream=False, seed=None, **kwargs):
        if seed is not None:
            # chatml_function_calling passes no seed on: its completions derive theirs from this one.
            llama.set_seed(seed)
            if "seeded_runs_alone" in self.rules:
                # llama.cpp reuses the longest cached prefix of the previous prompt and reads only the
                # rest: the same prompt, read in other pieces, gives slightly different numbers, and
                # sampling can then diverge. A seeded request reads its whole prompt afresh.
                llama.reset()
        if tools and "text_arguments" in self.rules:
            tools = decoding.text_arguments(tools, TEXT_MAX_CHARS)
        if tools and (tool_choice == "required" or isinstance(tool_choice, dict)):
            name = tool_choice["function"]["name"] if isinstance(tool_choice, dict) else None
            name = name or self.chosen_function(llama, messages, tools)
            return self.call_function(llama, messages, tools, name, stream=stream, **kwargs)
        # 'auto': the model chooses, unless the last message is a tool's result (then it answers,
        # so an agent loop makes at most one round of tool calls) or the client streams.
        if tools and tool_choice in (None, "auto") and not stream and messages[-1]["role"] != "tool":
            response = llama_chat_format.chatml_function_calling(
                llama, messages, tools=with_bounded_arguments(tools), tool_choice="auto", **kwargs
            )
            if response["choices"][0]["message"].get("tool_calls"):
                require_json_arguments(response)
                return response
            # It chose a message; llama.cpp's message branch of that format returns empty text,
            # so the answer is written with the model's own chat template below.
        return self.answer_in_text(llama, messages, stream=stream, seed=seed, **kwargs)

    def own_template(self, llama):
        """(the model's own chat template as a formatter, the chat handler built from it), cached."""
        if id(llama) not in self.templates:
            formatter = llama_chat_format.Jinja2ChatFormatter(
                template=llama.metadata["tokenizer.chat_template"],
                eos_token=llama.detokenize([llama.token_eos()], special=True).decode(),
                bos_token=llama.detokenize([llama.token_bos()], special=True).decode(),
                stop_token_ids=[llama.token_eos()],
            )
            self.templates[id(llama)] = formatter, formatter.to_chat_handler()
        return self.templates[id(llama)]

    def chosen_function(self, llama, messages, tools) -> str:
        """tool_choice 'required': the model picks which of the offered functions to call, the way
        chatml-function-calling's 'auto' does (greedily), but 'a message' is not an option."""
        names = [tool["function"]["name"] for tool in tools]
        if len(names) == 1:
            return names[0]
        prompt = function_calling_prompt(messages, tools, names[0]).removesuffix(f"functions.{names[0]}:\n")
        options = [f"functions.{name}:" for name in names]
        grammar = llama_grammar.LlamaGrammar.from_string(
            "root ::= " + " | ".join(json.dumps(option) for option in options), verbose=False
        )
        completion = llama.create_completion(
            prompt=prompt, grammar=grammar, temperature=0, max_tokens=max(map(len, options)) + 1
        )
        return completion["choices"][0]["text"].strip().removeprefix("functions.").removesuffix(":")

    def call_function(self, llama, messages, tools, name: str, stream: bool, max_tokens, **kwargs):
        """A call of ``name``, its arguments constrained to its schema and fitted to the budget."""
        offered = tools
        tools = with_bounded_arguments(offered)
        prompt = function_calling_prompt(messages, tools, name)
        index = next(i for i, tool in enumerate(offered) if tool["function"]["name"] == name)
        schema, max_tokens = fitted(llama, tool_schema(offered[index]), prompt, max_tokens)
        tools[index] = with_tool_schema(offered[index], schema)
        response = llama_chat_format.chatml_function_calling(
            llama,
            messages,
            tools=tools,
            tool_choice={"type": "function", "function": {"name": name}},
            stream=stream,
            max_tokens=max_tokens,
            **kwargs,
        )
        if not stream:
            require_json_arguments(response)
        return response

    def answer_in_text(self, llama, messages, stream: bool, max_tokens, response_format=None, **kwargs):
        """The model's own chat template; JSON constrained to the response format's schema, if any."""
        formatter, handler = self.own_template(llama)
        schema = (response_format or {}).get("schema")
        if schema is not None:  # {"type": "json_object", "schema": ...}, as openai_compatible_request made it
            prompt = formatter(messages=messages).prompt
            schema, max_tokens = fitted(llama, schema, prompt, max_tokens)
            response_format = {**response_format, "schema": schema}
        response = handler(
            llama=llama,
            messages=messages,
            stream=stream,
            max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
            response_format=response_format,
            **kwargs,
        )
        if not stream and (response_format or {}).get("type") == "json_object":
            require_json(response["choices"][0]["message"]["content"], "the structured output", response)
        return response


def fitted(llama, schema, prompt: str, max_tokens):
    """(schema fitted to what is left of the context and max_tokens, the max_tokens to use)."""
    prompt_tokens = len(llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True))
    room = llama.n_ctx() - prompt_tokens - 1  # llama.cpp needs prompt + max_tokens < context
    budget = min(room, max_tokens or room) - 1  # one token for the end of the generation
    try:
        schema, longest = fit_structured_output(schema, budget)
    except OutputBudgetError as error:
        raise HTTPException(
            400,
            f"{error}, but only {max(budget, 0)} are available (max_tokens={max_tokens}, "
            f"prompt {prompt_tokens} tokens, context {llama.n_ctx()})",
        ) from None
    return schema, (longest + 1 if longest is not None else max_tokens or DEFAULT_MAX_TOKENS)


def require_json(text: str, what: str, response: dict) -> None:
    """Output that fails to parse is an HTTP 500, never a 200 with broken JSON."""
    try:
        json.loads(text)
    except (TypeError, ValueError) as error:
        raise RuntimeError(
            f"{what} is not valid JSON ({error}; finish_reason {response['choices'][0]['finish_reason']}, "
            f"{response['usage']['completion_tokens']} tokens): {str(text)[:2000]!r}"
        ) from None


def require_json_arguments(response: dict) -> None:
    for call in response["choices"][0]["message"]["tool_calls"]:
        what = f"the arguments of the call of {call['function']['name']}"
        require_json(call["function"]["arguments"], what, response)


def function_calling_prompt(messages, tools, name: str) -> str:
    """The prompt chatml-function-calling sends to force a call of ``name`` (it ends with
    'functions.<name>:\\n'). Its template lives inside that function: it is read by letting
    the function build the prompt for a stand-in model that stops it there."""
    try:
        llama_chat_format.chatml_function_calling(
            _PromptReader(), messages, tools=tools, tool_choice={"type": "function", "function": {"name": name}}
        )
    except _PromptBuilt as built:
        return built.prompt
    raise RuntimeError("chatml_function_calling sent no prompt")


class _PromptBuilt(Exception):
    def __init__(self, prompt: str):
        super().__init__("prompt built")
        self.prompt = prompt


class _PromptReader:
    """Stands in for a llama_cpp.Llama: stops chatml_function_calling once it has built its prompt."""

    verbose = False

    def create_completion(self, prompt, **_):
        raise _PromptBuilt(prompt)

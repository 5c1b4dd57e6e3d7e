"""A deterministic OpenAI-compatible test server on 127.0.0.1, for the llmops_project tests, the
benchmarks and ``tracking_server/check_stack.py``.

``FakeOpenAIServer`` answers the three kinds of request the project sends:

* a plain chat completion   -> a deterministic answer built from the question (``answer_for``);
* tools offered, no tool result in the messages yet -> one call of the first tool;
* ``response_format`` JSON (``json_schema`` or ``json_object``, as MLflow judges ask) -> JSON shaped
  like the schema, ``"result": "yes"`` for the judges' verdict field (``anyOf``: its first
  non-null choice; a list of ``*_ids``: ``[0]``, the first example, as MemAlign's distilled
  guidelines cite their sources).

Two more requests, of what ``align`` and ``optimize`` run (the optimizers' own calls):

* ``POST /v1/embeddings`` -> one deterministic unit vector per input (character trigrams hashed into
  ``dimensions`` floats, 64 by default), as MemAlign asks for its memory of labelled examples
  (``serve_embeddings = False``: a 404, as from a server without the route);
* MetaPromptOptimizer's request ("You are an expert prompt engineer", JSON) -> each prompt it names,
  rewritten as its template plus ``REWRITE`` (its ``{{variables}}`` kept), unless
  ``rewrite_prompts`` is False (then the judges' JSON, which the optimizer cannot use).

It can be told to fail the next N requests with HTTP 500 (``fail_next``), to delay every request
(``delay``), and it records every request body (``requests``). To make prompt templates differ
(``compare``): ``prompt_answers`` answers a user prompt containing a key with its text
(``{answer}`` = the usual answer), ``judge_no`` makes a judge say ``"no"`` when its request
contains one of the strings, and ``fail_prompts`` answers HTTP 500, always, to a user prompt that
contains one of them. A plain answer longer than the request's ``max_tokens`` is cut to that many
words (one word a token), with ``finish_reason: length``, as a token budget cuts a real model's
text. ``GET /v1/models`` answers 200.
The pytest fixture ``llm_server`` (tests/fixtures_llm.py) starts one per test;
``benchmarks/llm_generation_loop.py`` starts one itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL_ID = "fake-model"
# Fixed words around the question, so a test can compute an answer's exact word count.
ANSWER_PREFIX = "In software engineering terms, a model answer to the question"
ANSWER_SUFFIX = "explains the definition, gives one example, and cites the course notes."
REWRITE = "Answer in at least two full sentences."  # what the stand-in adds to a prompt it is asked to improve
METAPROMPT = "You are an expert prompt engineer"  # how MetaPromptOptimizer's request begins


def user_text(messages: list[dict]) -> str:
    """The last user message's text."""
    user_texts = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    text = user_texts[-1] if user_texts else ""
    if isinstance(text, list):  # content parts
        text = " ".join(part.get("text", "") for part in text if isinstance(part, dict))
    return text


def question_of(messages: list[dict]) -> str:
    """The question text in the last user message ("Question: ..." line of every template)."""
    text = user_text(messages)
    match = re.search(r"^Question:\s*(.+)$", text, flags=re.MULTILINE)
    return (match.group(1) if match else text).strip()


def answer_for(question: str) -> str:
    """The deterministic answer to a plain question."""
    return f"{ANSWER_PREFIX} '{question}' {ANSWER_SUFFIX}"


def _fill_schema(schema: dict, name: str = "") -> object:
    """A value shaped like a JSON schema: judges get ``result: yes`` and a rationale."""
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return _fill_schema(next((s for s in schema["anyOf"] if s.get("type") != "null"), {}), name)
    if name.endswith("_ids"):
        return [0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        return {key: _fill_schema(sub, key) for key, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_fill_schema(schema.get("items", {}), name)]
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 1
    return "yes" if name == "result" else f"Deterministic {name or 'value'} from the test server."


def rewritten_prompts(messages: list[dict]) -> dict[str, str]:
    """MetaPromptOptimizer's answer: {prompt name: its template + REWRITE} for every prompt it lists
    ("Prompt name: <name>\nTemplate: <template>" blocks, up to the next block or section)."""
    text = "\n".join(str(m.get("content") or "") for m in messages)
    found = re.findall(
        r"Prompt name: (\S+)\nTemplate: (.*?)(?=\n\nPrompt name: |\n\n[A-Z][A-Z ]+|\Z)", text, flags=re.DOTALL
    )
    return {name: f"{template.strip()}\n\n{REWRITE}" for name, template in found}


class FakeOpenAIServer:
    """Start with ``start()``, stop with ``stop()``; ``base_url`` ends in ``/v1``."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.fail_next = 0  # answer this many next chat requests with HTTP 500
        self.answers: dict[str, str] = {}  # question substring -> answer text override
        self.prompt_answers: dict[str, str] = {}  # user prompt substring -> answer ("{answer}": the usual one)
        self.judge_no: list[str] = []  # a judge request containing one of these says "no"
        self.fail_prompts: list[str] = []  # a user prompt containing one of these always gets HTTP 500
        self.rewrite_prompts = True  # answer MetaPromptOptimizer with each prompt + REWRITE
        self.serve_embeddings = True  # False: POST /v1/embeddings is a 404, as on servers without the route
        self.requests: list[dict] = []
        self.embedding_requests: list[dict] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def chat_requests(self, kind: str | None = None) -> list[dict]:
        """Recorded chat requests; kind = 'judge' (JSON response format), 'tools' or 'plain'."""
        with self._lock:
            recorded = list(self.requests)
        return [r for r in recorded if kind is None or self._kind(r) == kind]

    @staticmethod
    def _kind(body: dict) -> str:
        if (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"):
            return "judge"
        return "tools" if body.get("tools") else "plain"

    def reply(self, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one chat completion request."""
        with self._lock:
            self.requests.append(body)
            messages = body.get("messages") or []
            failing = self._kind(body) != "judge" and any(s in user_text(messages) for s in self.fail_prompts)
            if self.fail_next > 0 or failing:
                self.fail_next -= 0 if failing else 1
                return 500, {"error": {"message": "test server: deliberate failure", "type": "server_error"}}
        message: dict = {"role": "assistant", "content": None}
        finish = "stop"
        response_format = body.get("response_format") or {}
        if self._kind(body) == "judge" and self.rewrite_prompts and METAPROMPT in json.dumps(messages):
            message["content"] = json.dumps(rewritten_prompts(messages))
        elif self._kind(body) == "judge":
            schema = (
                (response_format.get("json_schema") or {}).get("schema")
                or response_format.get("schema")
                or {"properties": {"result": {"type": "string"}, "rationale": {"type": "string"}}}
            )
            verdict = _fill_schema(schema)
            if (
                isinstance(verdict, dict)
                and "result" in verdict
                and any(s in json.dumps(messages) for s in self.judge_no)
            ):
                verdict["result"] = "no"
            message["content"] = json.dumps(verdict)
        elif body.get("tools") and not any(m.get("role") == "tool" for m in messages):
            tool = body["tools"][0]["function"]["name"]
            arguments = json.dumps({"query": question_of(messages)})
            message["tool_calls"] = [
                {
                    "id": f"call_{len(self.requests)}",
                    "type": "function",
                    "function": {"name": tool, "arguments": arguments},
                }
            ]
            finish = "tool_calls"
        else:
            question = question_of(messages)
            text = next((a for key, a in self.answers.items() if key in question), answer_for(question))
            prompt = user_text(messages)
            text = next((a.format(answer=text) for key, a in self.prompt_answers.items() if key in prompt), text)
            tool_results = [m.get("content") or "" for m in messages if m.get("role") == "tool"]
            urls = re.findall(r"\((https?://[^)\s]+)\)", " ".join(map(str, tool_results)))
            message["content"] = text + ("\n\nReferences: " + " ".join(urls) if urls else "")
            limit = body.get("max_tokens") or body.get("max_completion_tokens")
            if limit and len(message["content"].split()) > limit:  # one word a token, as a budget cuts text
                message["content"], finish = " ".join(message["content"].split()[:limit]), "length"
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        completion_tokens = len((message["content"] or "").split()) or 1
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", MODEL_ID),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def embeddings(self, body: dict) -> dict:
        """The answer to POST /v1/embeddings: one unit vector per input, the same for the same text."""
        with self._lock:
            self.embedding_requests.append(body)
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts or [])
        size = int(body.get("dimensions") or 64)
        data = []
        for index, text in enumerate(texts):
            vector = [0.0] * size
            text = str(text).lower()
            for start in range(max(len(text) - 2, 1)):
                digest = hashlib.md5(text[start : start + 3].encode()).digest()
                vector[int.from_bytes(digest[:4], "little") % size] += 1.0
            norm = math.sqrt(sum(v * v for v in vector)) or 1.0
            data.append({"object": "embedding", "index": index, "embedding": [v / norm for v in vector]})
        tokens = sum(len(str(t).split()) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": body.get("model", MODEL_ID),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else each reply waits ~40 ms for a delayed ACK

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path.rstrip("/").endswith("/v1/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "tests"}],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/").endswith("/embeddings") and server.serve_embeddings:
                    self._send(200, server.embeddings(body))
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if server.delay:
                    time.sleep(server.delay)
                self._send(*server.reply(body))

        return Handler

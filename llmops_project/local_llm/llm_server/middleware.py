"""The ASGI middleware that applies normalise.py to every POST .../chat/completions, and answers
POST .../embeddings itself (embeddings.py)."""

from __future__ import annotations

import json

from llm_server import decoding
from llm_server.normalise import openai_compatible_request, request_error


class OpenAICompatibility:
    """ASGI middleware: feeds POST .../chat/completions bodies through openai_compatible_request,
    and answers HTTP 400 for the requests request_error rejects."""

    def __init__(
        self, app, defaults: dict | None = None, rules: frozenset[str] = decoding.DEFAULT_RULES, embedder=None
    ):
        self.app = app
        self.defaults = defaults or {}
        self.rules = rules
        self.embedder = embedder  # embeddings.Embedder, or None: llama.cpp's own route (which fails)

    async def __call__(self, scope, receive, send):
        if (
            self.embedder
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].endswith("/embeddings")
        ):
            await self._embeddings(receive, send)
            return
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/chat/completions")):
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        try:
            request = json.loads(body)
            if error := request_error(request):
                await _send_json(send, 400, {"error": {"message": error, "type": "invalid_request_error"}})
                return
            body = json.dumps(openai_compatible_request(request, self.defaults, self.rules)).encode()
        except (ValueError, TypeError, AttributeError):
            pass  # not a JSON object: llama.cpp's validation answers with a proper 4xx

        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        replayed = False

        async def receive_rewritten():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # later calls wait for the client's disconnect, as usual

        await self.app({**scope, "headers": headers}, receive_rewritten, send)

    async def _embeddings(self, receive, send) -> None:
        import anyio

        body = await _read_body(receive)
        try:
            request = json.loads(body)
            if not isinstance(request, dict) or not request.get("input"):
                raise ValueError("'input' is required")
        except ValueError as problem:
            await _send_json(send, 400, {"error": {"message": str(problem), "type": "invalid_request_error"}})
            return
        answer = await anyio.to_thread.run_sync(self.embedder.answer, request)
        await _send_json(send, 200, answer)


async def _read_body(receive) -> bytes:
    body, more_body = b"", True
    while more_body:
        message = await receive()
        body += message.get("body", b"")
        more_body = message.get("more_body", False)
    return body


async def _send_json(send, status: int, document: dict) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

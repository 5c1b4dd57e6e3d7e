"""7. ``POST /v1/embeddings``, which MemAlign (``align``'s default optimizer) calls: the same model,
loaded a second time with llama.cpp's embedding mode (mean pooling over the tokens' last hidden
states), lazily, on the first such request. The chat model cannot serve both: llama.cpp's server
keeps one model loaded and would swap them on every switch.

SmolLM2-135M is a chat model, not an embedding model: its vectors place texts that share words
near each other, which is what MemAlign's retrieval of similar labelled examples needs to run;
they are no match for OpenAI's text-embedding-3-small. Any model name is accepted; ``dimensions``
(OpenAI's way to ask for shorter vectors) keeps the first N values, normalised again."""

from __future__ import annotations

import math
import threading
from pathlib import Path

from llm_server.settings import EMBEDDING_CONTEXT_TOKENS, MODEL_ALIAS, THREADS


class Embedder:
    """One llama.cpp model in embedding mode, used by one request at a time (llama.cpp's contexts are
    not thread-safe)."""

    def __init__(self, model_path: Path):
        self.model_path = model_path
        self._model = None
        self._lock = threading.Lock()

    def answer(self, body: dict) -> dict:
        """The OpenAI answer to an embeddings request ``body`` (``input``: a text or a list of texts)."""
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts or []]
        size = body.get("dimensions")
        with self._lock:
            model = self._load()
            vectors = [model.embed(text or " ", normalize=True, truncate=True) for text in texts]
            tokens = sum(len(model.tokenize((text or " ").encode(), add_bos=False)) for text in texts)
        data = [
            {"object": "embedding", "index": index, "embedding": shortened(vector, size)}
            for index, vector in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": body.get("model") or MODEL_ALIAS,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _load(self):
        if self._model is None:
            import llama_cpp

            self._model = llama_cpp.Llama(
                model_path=str(self.model_path),
                embedding=True,
                pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                n_ctx=EMBEDDING_CONTEXT_TOKENS,
                n_batch=EMBEDDING_CONTEXT_TOKENS,
                n_ubatch=EMBEDDING_CONTEXT_TOKENS,
                n_threads=THREADS,
                n_threads_batch=THREADS,
                verbose=False,
            )
        return self._model


def shortened(vector: list[float], size) -> list[float]:
    """The first ``size`` values of a unit vector, as a unit vector again (all of it when ``size`` is
    missing or not smaller)."""
    if not size or int(size) >= len(vector):
        return list(vector)
    part = list(vector[: int(size)])
    norm = math.sqrt(sum(v * v for v in part)) or 1.0
    return [v / norm for v in part]

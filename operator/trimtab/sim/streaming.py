"""The simulator's streamed replies: a success as server-sent events, paced like a model.

The first text goes out after the reply's time to first token and the rest spread
over its decode time, in chunks at most every CHUNK_SECONDS (a chunk per token would
spend the simulator's CPU on writes, not on the model it stands for). The framing is
OpenAI's: a role chunk, content chunks, a chunk with the finish reason, a usage chunk
with empty choices when `stream_options.include_usage` asks for one, then [DONE].
Faults are never streamed: a 429 or 500 arrives before any event, as from real servers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol

from aiohttp import web

from trimtab.sim.behaviour import Reply

CHUNK_SECONDS = 0.01
CHARS_PER_TOKEN = 4


class InFlight(Protocol):
    in_flight: int


def pieces(text: str, *, decode_seconds: float) -> list[str]:
    """`text` cut into the chunks it streams in: a token's worth each, fewer when
    the decode time would put chunks closer than CHUNK_SECONDS."""
    if not text:
        return []
    tokens = -(-len(text) // CHARS_PER_TOKEN)
    count = max(1, min(tokens, int(decode_seconds / CHUNK_SECONDS)))
    size = -(-len(text) // count)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _chunk(body: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": body["id"],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def send(
    request: web.Request, reply: Reply, counters: InFlight, *, usage: bool
) -> web.StreamResponse:
    """Stream a successful `reply` (a chat.completion body) as its chunks."""
    body = reply.body
    choice = body["choices"][0]
    text = choice["message"]["content"] or ""
    decode = max(0.0, reply.delay - reply.first_token_delay)
    parts = pieces(text, decode_seconds=decode)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **reply.headers}
    )
    counters.in_flight += 1
    try:
        await asyncio.sleep(reply.first_token_delay)
        await response.prepare(request)
        await _event(response, _chunk(body, {"role": "assistant", "content": ""}, None))
        for fragment in _call_fragments(choice["message"].get("tool_calls") or []):
            await _event(response, _chunk(body, {"tool_calls": [fragment]}, None))
        for i, part in enumerate(parts):
            if i:
                await asyncio.sleep(decode / len(parts))
            await _event(response, _chunk(body, {"content": part}, None))
        await _event(response, _chunk(body, {}, choice["finish_reason"]))
        if usage:
            tail = {**_chunk(body, {}, None), "choices": [], "usage": body["usage"]}
            await _event(response, tail)
        await response.write(b"data: [DONE]\n\n")
    finally:
        counters.in_flight -= 1
    await response.write_eof()
    return response


def _call_fragments(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each tool call as OpenAI streams it: its id and name first, then its arguments
    in two parts."""
    out = []
    for index, call in enumerate(calls):
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        function = {"name": call["function"]["name"], "arguments": arguments[:half]}
        out.append({"index": index, "id": call["id"], "type": "function", "function": function})
        out.append({"index": index, "function": {"arguments": arguments[half:]}})
    return out


async def _event(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(data).encode() + b"\n\n")

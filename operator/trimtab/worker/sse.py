"""Reading a streamed chat completion: server-sent events in, the reply out.

A streamed reply is a `text/event-stream` of `data:` events, each a
`chat.completion.chunk`, ended by `data: [DONE]`; an error after the headers went out
arrives as an event holding `{"error": ...}` (llama.cpp, vLLM). `Decoder` splits bytes
into event payloads, whatever the network's chunking; `Accumulator` folds the chunks
into what the whole reply would have said. Both are pure, so the framing's corner
cases are unit-tested without a server.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

DONE = "[DONE]"


class StreamError(ValueError):
    """The stream said something a chat-completion stream cannot: an error event, or a
    payload that is not a chunk."""


class Decoder:
    """Server-sent events from bytes: `feed` returns the data of each event completed
    by the bytes so far (several `data:` lines of one event joined by newlines);
    comments and other fields are skipped."""

    def __init__(self) -> None:
        self._pending = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._pending += chunk
        events: list[str] = []
        while True:
            cut = self._pending.find(b"\n")
            if cut < 0:
                return events
            line = self._pending[:cut].rstrip(b"\r").decode("utf-8", errors="replace")
            self._pending = self._pending[cut + 1 :]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))

    def close(self) -> list[str]:
        """The last event, when the stream ended without its blank line."""
        return self.feed(b"\n\n") if self._pending or self._data else []


@dataclasses.dataclass
class ToolCallDelta:
    """One tool call as its fragments arrive: the id and name once, arguments in parts."""

    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclasses.dataclass
class Accumulator:
    """What the chunks of one streamed reply add up to."""

    content: str = ""
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tool_calls: dict[int, ToolCallDelta] = dataclasses.field(default_factory=dict)
    done: bool = False

    def add(self, payload: str) -> str:
        """Fold in one event's data; returns the text it adds (may be empty)."""
        if payload.strip() == DONE:
            self.done = True
            return ""
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise StreamError(f"a stream event is not JSON: {payload[:200]}") from exc
        if not isinstance(chunk, dict):
            raise StreamError(f"a stream event is not a chunk: {payload[:200]}")
        if "error" in chunk:
            raise StreamError(f"the server failed mid-stream: {_error_text(chunk['error'])}")
        self._add_usage(chunk.get("usage"))
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta") or {}
        for fragment in delta.get("tool_calls") or ():
            self._add_tool_call(fragment)
        text = delta.get("content")
        if isinstance(text, str) and text:
            self.content += text
            return text
        return ""

    def _add_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)

    def _add_tool_call(self, fragment: Any) -> None:
        if not isinstance(fragment, dict):
            return
        call = self.tool_calls.setdefault(int(fragment.get("index", 0)), ToolCallDelta())
        call.id = fragment.get("id") or call.id
        function = fragment.get("function") or {}
        call.name = function.get("name") or call.name
        call.arguments += function.get("arguments") or ""


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300]

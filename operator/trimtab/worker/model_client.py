"""Calls to a pool's OpenAI-compatible chat-completions endpoint, whole or streamed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind

from trimtab.api.v1alpha1 import agentpool
from trimtab.metrics import ErrorType
from trimtab.reconcile.agentworkflow import templates
from trimtab.telemetry import tracing as traces
from trimtab.worker import call_spans, chat_request, errors, http, sse

# Called with each piece of text a streamed reply adds, as it arrives.
OnText = Callable[[str], Awaitable[None]]


@dataclasses.dataclass(frozen=True)
class ToolCallRequest:
    """A tool call the model asked for; `arguments` is its JSON text, unchecked."""

    id: str
    name: str
    arguments: str

    def message(self) -> dict[str, Any]:
        """The call as the assistant message that asked for it carries it."""
        function = {"name": self.name, "arguments": self.arguments}
        return {"id": self.id, "type": "function", "function": function}


@dataclasses.dataclass(frozen=True)
class ModelReply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    # Streamed replies only: seconds from sending the request to the first text.
    first_token_seconds: float | None = None
    tool_calls: tuple[ToolCallRequest, ...] = ()
    model: str | None = None  # the model that answered, as the server names it

    def message(self) -> dict[str, Any]:
        """The reply as the assistant message of a conversation that goes on."""
        out: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            out["tool_calls"] = [call.message() for call in self.tool_calls]
        return out

    def cost(self, pricing: agentpool.Pricing) -> float:
        return (
            self.prompt_tokens * pricing.input_per_1k
            + self.completion_tokens * pricing.output_per_1k
        ) / 1000


# Told each model call's seconds and, when it is recorded, the trace it belongs to.
CallObserver = Callable[[float, str | None], None]


class ModelClient:
    """The pool's model endpoint, over one pooled HTTP client. `count_tokens` counts a
    streamed reply whose server reports no usage."""

    def __init__(
        self,
        spec: agentpool.ModelEndpoint,
        *,
        api_key: str | None,
        max_connections: int,
        count_tokens: Callable[[str], int] = templates.estimate_tokens,
        tracing: traces.Tracing | None = None,
        observe: CallObserver | None = None,
    ) -> None:
        self.spec = spec
        self._tracing = tracing or traces.Tracing()
        self._observe = observe
        self._url = spec.endpoint.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._count = count_tokens
        self._clients = http.ClientSet(
            max_connections=max_connections, timeout_seconds=spec.timeout_seconds
        )

    def request_body(
        self,
        *,
        system: str | None,
        prompt: str,
        max_tokens: int | None,
        json_schema: Mapping[str, Any] | None,
        stream: bool = False,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        structured = self.spec.structured_output
        messages = chat_request.messages_for(system, prompt, json_schema, structured, history)
        return chat_request.body(
            self.spec, messages, max_tokens=max_tokens, json_schema=json_schema, stream=stream
        )

    async def chat(
        self,
        *,
        system: str | None,
        prompt: str,
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        on_text: OnText | None = None,
        history: Sequence[Mapping[str, Any]] = (),
    ) -> ModelReply:
        """One completion, after the `history` messages; with `on_text` it is
        streamed, and `on_text` gets its text as it arrives."""
        body = self.request_body(
            system=system,
            prompt=prompt,
            max_tokens=max_tokens,
            json_schema=json_schema,
            stream=on_text is not None,
            history=history,
        )
        return await self._send(body, headers, on_text)

    async def converse(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]] = (),
        max_tokens: int | None = None,
        json_schema: Mapping[str, Any] | None = None,
        on_text: OnText | None = None,
    ) -> ModelReply:
        """One turn of a conversation, offering `tools` (OpenAI function tools): the
        reply answers, or asks for tool calls."""
        body = chat_request.body(
            self.spec,
            messages,
            max_tokens=max_tokens,
            json_schema=json_schema,
            stream=on_text is not None,
        )
        if tools:
            body["tools"] = list(tools)
        return await self._send(body, None, on_text)

    async def _send(
        self, body: dict[str, Any], headers: dict[str, str] | None, on_text: OnText | None
    ) -> ModelReply:
        if not self._tracing.recording_here():  # off, or an unsampled run's call
            sent = self._tracing.headers({**self._headers, **(headers or {})})
            return await self._timed(body, sent, on_text)
        name = call_spans.model_call_name(self.spec)
        attributes = call_spans.model_call_attributes(self.spec, body)
        with self._tracing.span(name, kind=SpanKind.CLIENT, attributes=attributes) as span:
            sent = self._tracing.headers({**self._headers, **(headers or {})})
            reply = await self._timed(body, sent, on_text)
            if span is not None:
                span.set_attributes(call_spans.model_reply_attributes(reply))
            return reply

    async def _timed(
        self, body: dict[str, Any], sent: dict[str, str], on_text: OnText | None
    ) -> ModelReply:
        """The exchange, its duration observed whether it succeeded or not."""
        if self._observe is None:
            return await self._exchange(body, sent, on_text)
        started = time.monotonic()
        try:
            return await self._exchange(body, sent, on_text)
        finally:
            self._observe(time.monotonic() - started, self._tracing.current_trace_id())

    async def _exchange(
        self, body: dict[str, Any], sent: dict[str, str], on_text: OnText | None
    ) -> ModelReply:
        if on_text is not None:
            return await self._streamed(body, sent, on_text)
        response = await http.post(
            self._clients.pick(), self._url, json_body=body, headers=sent, error=errors.ModelError
        )
        return _reply(response)

    async def _streamed(
        self, body: dict[str, Any], headers: dict[str, str], on_text: OnText
    ) -> ModelReply:
        started = time.monotonic()
        first: float | None = None
        decoder, reply = sse.Decoder(), sse.Accumulator()
        async with http.streaming(
            self._clients.pick(), self._url, json_body=body, headers=headers,
            error=errors.ModelError,
        ) as chunks:  # fmt: skip
            async for chunk in chunks:
                for payload in decoder.feed(chunk):
                    text = _folded(reply, payload)
                    if text:
                        first = time.monotonic() - started if first is None else first
                        await on_text(text)
                if reply.done:
                    break
        for payload in decoder.close():
            _folded(reply, payload)
        if not reply.done and reply.finish_reason is None:
            raise errors.ModelError(
                "the stream ended before the reply did", error_type=ErrorType.CONNECT
            )
        return ModelReply(
            content=reply.content,
            prompt_tokens=_or_counted(reply.prompt_tokens, body, self._count),
            completion_tokens=reply.completion_tokens
            if reply.completion_tokens is not None
            else self._count(reply.content),
            finish_reason=reply.finish_reason or "stop",
            first_token_seconds=first,
            tool_calls=tuple(
                ToolCallRequest(c.id or f"call_{i}", c.name, c.arguments)
                for i, c in sorted(reply.tool_calls.items())
            ),
        )

    async def aclose(self) -> None:
        await self._clients.aclose()


def _folded(reply: sse.Accumulator, payload: str) -> str:
    try:
        return reply.add(payload)
    except sse.StreamError as exc:
        raise errors.ModelError(str(exc), error_type=ErrorType.HTTP_5XX) from exc


def _or_counted(reported: int | None, body: Mapping[str, Any], count: Callable[[str], int]) -> int:
    if reported is not None:
        return reported
    return sum(count(str(m.get("content") or "")) for m in body["messages"])


def _reply(response: http.Reply) -> ModelReply:
    try:
        data = response.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        message = choice["message"]
        return ModelReply(
            content=message.get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason", "stop")),
            tool_calls=tuple(
                ToolCallRequest(
                    str(c.get("id") or f"call_{i}"),
                    str(c["function"]["name"]),
                    str(c["function"].get("arguments") or ""),
                )
                for i, c in enumerate(message.get("tool_calls") or ())
            ),
            model=str(data["model"]) if data.get("model") else None,
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise errors.ModelError(
            f"not a chat completion: {response.text[:300]}", error_type=ErrorType.HTTP_5XX
        ) from exc

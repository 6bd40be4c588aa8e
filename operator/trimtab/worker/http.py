"""Pooled HTTP clients per endpoint, with connection limits and timeouts.

Steps of a pool all call the same endpoint; reusing connections (keep-alive, no TLS
handshake per call) is most of the latency win over a client per request, and the
connection limit keeps a burst from opening more sockets than the server can take.

httpcore checks every idle connection of a pool (a poll syscall each) whenever it
assigns a request, so one pool of 128 connections spends more CPU choosing a socket
than sending on it. `ClientSet` keeps each pool at SHARD_CONNECTIONS and spreads
requests round-robin: same total limit, bounded work per request (hack/bench/throughput.py
measured the difference).
"""

from __future__ import annotations

import contextlib
import functools
import json
import ssl
from collections.abc import AsyncIterator

import httpx

from trimtab.metrics import ErrorType
from trimtab.worker import errors

SHARD_CONNECTIONS = 16


class ClientSet:
    """A few small pooled clients used in turn, together holding `max_connections`."""

    def __init__(self, *, max_connections: int, timeout_seconds: float) -> None:
        shards = max(1, -(-max_connections // SHARD_CONNECTIONS))
        per_shard = max(1, -(-max_connections // shards))
        self._clients = [
            make_client(max_connections=per_shard, timeout_seconds=timeout_seconds)
            for _ in range(shards)
        ]
        self._next = 0

    def pick(self) -> httpx.AsyncClient:
        self._next = (self._next + 1) % len(self._clients)
        return self._clients[self._next]

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One CA bundle load per process, shared by every client."""
    return ssl.create_default_context()


def make_client(*, max_connections: int, timeout_seconds: float) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=60,
    )
    timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
    return httpx.AsyncClient(limits=limits, timeout=timeout, verify=_tls_context())


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


# A reply larger than this is refused: a model or tool answering megabytes is broken or
# hostile, and its text would go on into prompts, Redis and every later step.
MAX_REPLY_BYTES = 4 * 1024 * 1024


_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


async def _bounded(streamed: httpx.Response) -> httpx.Response:
    """The streamed reply read whole, unless it is over MAX_REPLY_BYTES."""
    declared = streamed.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REPLY_BYTES:
        raise errors.ReplyTooLargeError(int(declared), MAX_REPLY_BYTES)
    body = bytearray()
    async for chunk in streamed.aiter_bytes():
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise errors.ReplyTooLargeError(len(body), MAX_REPLY_BYTES)
    # The bytes are decoded already: the new reply must not claim an encoding or length.
    headers = [(k, v) for k, v in streamed.headers.multi_items() if k.lower() not in _FRAMING]
    return httpx.Response(
        streamed.status_code, headers=headers, content=bytes(body), request=streamed.request
    )


def raise_for(
    response: httpx.Response, *, error: type[errors.ModelError | errors.ToolError]
) -> None:
    """Map an HTTP failure to the step error the retry policy understands."""
    if response.status_code < 400:
        return
    kind = (
        ErrorType.HTTP_429
        if response.status_code == 429
        else ErrorType.HTTP_5XX
        if response.status_code >= 500
        else ErrorType.HTTP_4XX
    )
    raise error(
        f"HTTP {response.status_code}: {_server_message(response)}",
        error_type=kind,
        retry_after=_retry_after(response),
    )


def _server_message(response: httpx.Response) -> str:
    """The server's own words: an OpenAI-style error's message, else the body's start."""
    try:
        data = json.loads(response.text)
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else response.text[:300]


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    json_body: object | None = None,
    content: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    error: type[errors.ModelError | errors.ToolError],
) -> httpx.Response:
    """Send one request; transport failures become `error` with a bounded error type,
    and a reply over MAX_REPLY_BYTES a ReplyTooLargeError (read no further)."""
    try:
        async with client.stream(
            method, url, json=json_body, content=content, headers=headers
        ) as streamed:
            response = await _bounded(streamed)
    except httpx.TimeoutException as exc:
        raise error(f"timed out: {exc!r}", error_type=ErrorType.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise error(f"connection failed: {exc!r}", error_type=ErrorType.CONNECT) from exc
    raise_for(response, error=error)
    return response


@contextlib.asynccontextmanager
async def streaming(
    client: httpx.AsyncClient,
    url: str,
    *,
    json_body: object,
    headers: dict[str, str],
    error: type[errors.ModelError],
) -> AsyncIterator[AsyncIterator[bytes]]:
    """POST and yield the reply's bytes as they arrive, once its status says success
    (a failure reads as `post`'s do); transport failures while reading become `error`
    too, and a reply over MAX_REPLY_BYTES a ReplyTooLargeError."""
    try:
        async with client.stream("POST", url, json=json_body, headers=headers) as streamed:
            if streamed.status_code >= 400:
                raise_for(await _bounded(streamed), error=error)
            yield _limited(streamed)
    except httpx.TimeoutException as exc:
        raise error(f"timed out: {exc!r}", error_type=ErrorType.TIMEOUT) from exc
    except httpx.TransportError as exc:
        raise error(f"connection failed: {exc!r}", error_type=ErrorType.CONNECT) from exc


async def _limited(streamed: httpx.Response) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in streamed.aiter_bytes():
        seen += len(chunk)
        if seen > MAX_REPLY_BYTES:
            raise errors.ReplyTooLargeError(seen, MAX_REPLY_BYTES)
        yield chunk

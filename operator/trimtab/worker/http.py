"""The worker's HTTP client for model and tool endpoints: one pooled aiohttp session per
endpoint kind, with a connection limit, timeouts and a bound on what a reply may hold.

Steps of a pool all call the same endpoint; reusing connections (keep-alive, no TLS
handshake per call) is most of the latency win over a client per request, and the
connection limit keeps a burst from opening more sockets than the server can take.

Why aiohttp and not httpx (which the SDK uses): on a worker the HTTP client is most of
the CPU a step costs. Measured against the simulator, 16 calls in flight: httpx
2.2 ms of client CPU per call, aiohttp 0.2 ms (hack/bench/throughput.py shows what that
does to steps per second). A reply is read whole into a `Reply` here, so no caller
holds a connection or depends on the library's types.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from trimtab.metrics import ErrorType
from trimtab.worker import errors

# A reply larger than this is refused: a model or tool answering megabytes is broken or
# hostile, and its text would go on into prompts, Redis and every later step.
MAX_REPLY_BYTES = 4 * 1024 * 1024
READ_CHUNK = 64 * 1024
Failure = type[errors.ModelError | errors.ToolError]


@dataclasses.dataclass(frozen=True)
class Reply:
    """A whole HTTP reply: status, headers (case-insensitive) and the decoded body."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One CA bundle load per process, shared by every session."""
    return ssl.create_default_context()


class ClientSet:
    """The pooled session of one endpoint kind, holding at most `max_connections`;
    created on first use, inside the worker's event loop, as aiohttp requires."""

    def __init__(self, *, max_connections: int, timeout_seconds: float) -> None:
        self.max_connections = max_connections
        # A call may wait `timeout_seconds` for a free connection and as long between
        # two reads of its reply; connecting gets at most 5 s of that.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout_seconds,
            sock_connect=min(5.0, timeout_seconds),
            sock_read=timeout_seconds,
        )
        self._session: aiohttp.ClientSession | None = None

    def pick(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.max_connections,
                limit_per_host=0,
                keepalive_timeout=60,
                ssl=_tls_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                # Never send or keep cookies: a tool's Set-Cookie must not reach the
                # next run's calls.
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


async def _bounded(response: aiohttp.ClientResponse) -> Reply:
    """The reply read whole, unless it is over MAX_REPLY_BYTES."""
    declared = response.content_length
    if declared is not None and declared > MAX_REPLY_BYTES:
        raise errors.ReplyTooLargeError(declared, MAX_REPLY_BYTES)
    body = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        body += chunk
        if len(body) > MAX_REPLY_BYTES:
            raise errors.ReplyTooLargeError(len(body), MAX_REPLY_BYTES)
    return Reply(response.status, response.headers, bytes(body))  # case-insensitive


def raise_for(response: Reply, *, error: Failure) -> None:
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
        retry_after=_retry_after(response.headers),
    )


def _server_message(response: Reply) -> str:
    """The server's own words: an OpenAI-style error's message, else the body's start."""
    try:
        data = response.json()
    except ValueError:
        data = None
    error = data.get("error") if isinstance(data, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:300] if message else response.text[:300]


def _body(json_body: object | None, content: str | None) -> bytes | None:
    if json_body is not None:
        return json.dumps(json_body, separators=(",", ":")).encode()
    return content.encode() if content is not None else None


def _headers(headers: Mapping[str, str] | None, *, is_json: bool) -> dict[str, str]:
    out = dict(headers or {})
    if is_json and "content-type" not in {h.lower() for h in out}:
        out["Content-Type"] = "application/json"
    return out


@contextlib.contextmanager
def _transport_errors(error: Failure) -> Any:
    """Transport failures as `error`, with a bounded error type."""
    try:
        yield
    except TimeoutError as exc:  # connecting, waiting for a connection, or reading
        detail = f" ({exc})" if str(exc) else ""
        raise error(
            f"timed out: no reply from the endpoint in time{detail}", error_type=ErrorType.TIMEOUT
        ) from exc
    except aiohttp.ClientError as exc:
        raise error(f"connection failed: {exc!r}", error_type=ErrorType.CONNECT) from exc


async def post(
    client: aiohttp.ClientSession,
    url: str,
    *,
    json_body: object | None = None,
    content: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
    error: Failure,
) -> Reply:
    """Send one request; transport failures become `error` with a bounded error type,
    and a reply over MAX_REPLY_BYTES a ReplyTooLargeError (read no further)."""
    sent = _headers(headers, is_json=json_body is not None)
    with _transport_errors(error):
        async with client.request(
            method, url, data=_body(json_body, content), headers=sent, allow_redirects=False
        ) as streamed:
            response = await _bounded(streamed)
    raise_for(response, error=error)
    return response


@contextlib.asynccontextmanager
async def streaming(
    client: aiohttp.ClientSession,
    url: str,
    *,
    json_body: object,
    headers: dict[str, str],
    error: type[errors.ModelError],
) -> AsyncIterator[AsyncIterator[bytes]]:
    """POST and yield the reply's bytes as they arrive, once its status says success
    (a failure reads as `post`'s do); transport failures while reading become `error`
    too, and a reply over MAX_REPLY_BYTES a ReplyTooLargeError."""
    sent = _headers(headers, is_json=True)
    with _transport_errors(error):
        async with client.post(
            url, data=_body(json_body, None), headers=sent, allow_redirects=False
        ) as streamed:
            if streamed.status >= 400:
                raise_for(await _bounded(streamed), error=error)
            yield _limited(streamed)


async def _limited(streamed: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    seen = 0
    async for chunk in streamed.content.iter_any():
        seen += len(chunk)
        if seen > MAX_REPLY_BYTES:
            raise errors.ReplyTooLargeError(seen, MAX_REPLY_BYTES)
        yield chunk

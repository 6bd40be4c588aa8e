"""Bounds on what one caller can make the API do: request bodies over `max_body_bytes`
are refused with 413 before they are read whole (the ASGI middleware counts the bytes
as they arrive), and each identity gets a token bucket of requests per second (429
with Retry-After when it is empty)."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from trimtab.api import rest


class TooLarge(Exception):  # noqa: N818
    pass


class BodyLimit:
    """ASGI middleware: 413 for a body (declared or streamed) over `most` bytes."""

    def __init__(self, app: Any, most: int) -> None:
        self.app, self.most = app, most

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.most:
            await _too_large(send, self.most)
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.most:
                raise TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except TooLarge:
            await _too_large(send, self.most)


async def _too_large(send: Any, most: int) -> None:
    body = rest.Problem(status=413, error=f"the request body is over {most} bytes")
    data = json.dumps(body.model_dump(by_alias=True)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length",
                        str(len(data)).encode())],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": data})


@dataclasses.dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Per-identity token buckets: `rate` requests a second, bursts of `burst`."""

    def __init__(self, rate: float, burst: int, most: int = 10_000) -> None:
        self.rate, self.burst, self.most = rate, burst, most
        self._buckets: dict[str, _Bucket] = {}

    def take(self, who: str, now: float | None = None) -> float:
        """0 when the request may go; otherwise the seconds until one token is back."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) >= self.most:
                self._buckets.clear()  # a flood of identities: start over rather than grow
            bucket = self._buckets[who] = _Bucket(tokens=float(self.burst), at=now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate

"""One shared httpx.AsyncClient per endpoint base URL, with pool limits and timeouts.

Steps of a pool all call the same endpoint; reusing connections (keep-alive, no TLS
handshake per call) is most of the latency win over a client per request, and the
connection limit keeps a burst from opening more sockets than the server can take.
"""

from __future__ import annotations

import httpx

from trimtab.worker import errors


def make_client(*, max_connections: int, timeout_seconds: float) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=60,
    )
    timeout = httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds))
    return httpx.AsyncClient(limits=limits, timeout=timeout)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def raise_for(
    response: httpx.Response, *, error: type[errors.ModelError | errors.ToolError]
) -> None:
    """Map an HTTP failure to the step error the retry policy understands."""
    if response.status_code < 400:
        return
    kind = (
        "http_429"
        if response.status_code == 429
        else "http_5xx"
        if response.status_code >= 500
        else "http_4xx"
    )
    raise error(
        f"HTTP {response.status_code}: {response.text[:300]}",
        error_type=kind,
        retry_after=_retry_after(response),
    )


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
    """Send one request; transport failures become `error` with a bounded error type."""
    try:
        response = await client.request(
            method, url, json=json_body, content=content, headers=headers
        )
    except httpx.TimeoutException as exc:
        raise error(f"timed out: {exc!r}", error_type="timeout") from exc
    except httpx.TransportError as exc:
        raise error(f"connection failed: {exc!r}", error_type="connect") from exc
    raise_for(response, error=error)
    return response

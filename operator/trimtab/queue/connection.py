"""Redis clients for the runtime: text for streams and runs, binary for state."""

from __future__ import annotations

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

Redis = aioredis.Redis  # the client type, for callers outside trimtab.queue
# Redis is down, restarting or loading its AOF: callers wait and try again.
UNAVAILABLE = (
    redis_exceptions.ConnectionError,
    redis_exceptions.TimeoutError,
    redis_exceptions.BusyLoadingError,
)


def connect(url: str, *, max_connections: int = 64) -> aioredis.Redis:
    """A pooled client that returns str: every queue key holds text (JSON, ids, numbers).

    The pool blocks when all its connections are busy, so a burst of concurrent callers
    (thousands of submits gathered at once) waits its turn instead of failing.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=30,
        socket_keepalive=True,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it


def connect_binary(url: str, *, max_connections: int = 16) -> aioredis.Redis:
    """A pooled client that returns bytes, for compressed conversation state."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        max_connections=max_connections,
        timeout=30,
        socket_keepalive=True,
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it

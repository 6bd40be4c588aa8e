"""The benchmark's job for the peer frameworks, and what their worker processes share.

Every framework runs the same job: one HTTP POST of a small JSON body to the inference
simulator's no-op tool endpoint through a pooled httpx client, returning the response
JSON. The parent (hack/bench/throughput.py) passes the URLs through the environment,
so the framework modules can build their apps at import time, as their workers expect.
"""

from __future__ import annotations

import os
import threading

import httpx

BODY = {"n": 1}
# Each worker process INCRs this when it is ready to take jobs, so the parent starts the
# clock only once every worker is serving (startup is not what is measured).
READY_KEY = "bench:ready"
LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=64)

_client: httpx.Client | None = None


def redis_url() -> str:
    """Read when a framework module builds its app, after the parent has set it."""
    return os.environ["BENCH_REDIS_URL"]


def echo_url() -> str:
    return os.environ["BENCH_ECHO_URL"]


_lock = threading.Lock()


def sync_client() -> httpx.Client:
    """One pooled client per process, created lazily: after any fork, shared by threads."""
    global _client  # noqa: PLW0603 - a per-process singleton
    with _lock:
        if _client is None:
            _client = httpx.Client(limits=LIMITS, timeout=10)
        return _client


def echo_sync() -> object:
    response = sync_client().post(echo_url(), json=BODY)
    response.raise_for_status()
    return response.json()


async def echo_async(client: httpx.AsyncClient) -> object:
    response = await client.post(echo_url(), json=BODY)
    response.raise_for_status()
    return response.json()


def is_echo(result: object) -> bool:
    """Whether a stored job result is the simulator's reply (the job really ran)."""
    return isinstance(result, dict) and result.get("tool") == "echo"

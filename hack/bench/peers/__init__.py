"""The benchmark's jobs for the peer frameworks, and what their worker processes share.

Two job shapes, the same for every framework (BENCH_SHAPE picks one):
- `echo`: one HTTP POST of a small JSON body to the inference simulator's no-op tool
  endpoint, returning the response JSON. Each framework uses the fastest pooled
  client its execution model allows: aiohttp where jobs are coroutines (arq, as
  Trimtab's workers), urllib3 (requests' engine) where they are plain functions.
- `return`: the job only returns a constant, the same JSON: what is left is each
  framework's own cost per job, its ceiling.
The parent (hack/bench/throughput.py) passes the URLs through the environment, so the
framework modules can build their apps at import time, as their workers expect.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import urllib3

BODY = {"n": 1}
RETURNED = {"tool": "echo", "received": BODY}  # what the echo endpoint answers
# Each worker process INCRs this when it is ready to take jobs, so the parent starts the
# clock only once every worker is serving (startup is not what is measured).
READY_KEY = "bench:ready"
CONNECTIONS = 64

_client: urllib3.PoolManager | None = None


def redis_url() -> str:
    """Read when a framework module builds its app, after the parent has set it."""
    return os.environ["BENCH_REDIS_URL"]


def echo_url() -> str:
    return os.environ["BENCH_ECHO_URL"]


def shape() -> str:
    return os.environ.get("BENCH_SHAPE", "echo")


_lock = threading.Lock()


def sync_client() -> urllib3.PoolManager:
    """One pooled client per process, created lazily: after any fork, shared by threads."""
    global _client  # noqa: PLW0603 - a per-process singleton
    with _lock:
        if _client is None:
            _client = urllib3.PoolManager(maxsize=CONNECTIONS, timeout=10, retries=False)
        return _client


def job_sync() -> object:
    if shape() == "return":
        return RETURNED
    response = sync_client().request(
        "POST", echo_url(), body=json.dumps(BODY), headers={"Content-Type": "application/json"}
    )
    if response.status >= 400:
        raise RuntimeError(f"HTTP {response.status}")
    return json.loads(response.data)


async def job_async(client: Any) -> object:
    """`client` is an aiohttp.ClientSession."""
    if shape() == "return":
        return RETURNED
    async with client.post(echo_url(), json=BODY) as response:
        response.raise_for_status()
        return await response.json()


def is_echo(result: object) -> bool:
    """Whether a stored job result is the echo's (the job really ran)."""
    return isinstance(result, dict) and result.get("tool") == "echo"

"""The exact-match response cache of steps that opt in (`cache.ttlSeconds`).

An entry is keyed by a digest of everything that determines a model's answer (the
pool's model, the rendered prompts and the request parameters), computed by the
worker; it holds the validated output. A hit returns the output with no model call
and no tokens charged. Hits and misses are also counted on the run, so a run's state
shows what the cache saved it.
"""

from __future__ import annotations

import json
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, scripts

MISSING = object()


async def lookup(lua: scripts.Scripts, namespace: str, run_id: str, digest: str) -> Any:
    """The cached output, or MISSING; counts the hit or miss on the run (one round trip)."""
    raw = await lua.call(
        "cache_lookup", [keys.response_cache(namespace, digest), keys.run(namespace, run_id)], []
    )
    return MISSING if raw is None else json.loads(raw)


async def store(
    client: aioredis.Redis, namespace: str, digest: str, output: Any, ttl_seconds: int
) -> None:
    await client.set(keys.response_cache(namespace, digest), json.dumps(output), ex=ttl_seconds)

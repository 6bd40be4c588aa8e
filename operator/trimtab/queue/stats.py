"""Per-pool, per-second load statistics that workers publish for the autoscaler.

Each second of each pool is one small hash with a short TTL: completions and busy time
summed across workers (HINCRBY), and one latency sketch per worker. The operator merges
the last N seconds' sketches into a p95 without Prometheus in the loop. Arrivals need no
writes here: the stream's `entries-added` counter already counts them.
"""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys

TTL_SECONDS = 600
SKETCH_PREFIX = "sketch:"


async def record_second(
    client: aioredis.Redis,
    *,
    namespace: str,
    pool: str,
    second: int,
    consumer: str,
    completed: int,
    busy_seconds: float,
    sketch: str,
) -> None:
    key = keys.pool_stats(namespace, pool, second)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hincrby(key, "completed", completed)
        pipe.hincrbyfloat(key, "busy_s", busy_seconds)
        pipe.hset(key, SKETCH_PREFIX + consumer, sketch)
        pipe.expire(key, TTL_SECONDS)
        await pipe.execute()


def parse_counters(info: Any, groups: Any) -> dict[str, int]:
    """Counters from XINFO STREAM and XINFO GROUPS replies (errors: no stream yet)."""
    if isinstance(info, Exception):
        return {"length": 0, "added": 0, "lag": 0, "pending": 0}
    group = _our_group(groups)
    length, added = int(info.get("length", 0)), int(info.get("entries-added", 0))
    return {
        "length": length,
        "added": added,
        "lag": _lag(group, length=length, added=added),
        "pending": int(group.get("pending") or 0),
    }


def _our_group(groups: Any) -> dict[str, Any]:
    """The workers' consumer group in an XINFO GROUPS reply; {} when there is none yet
    (or the reply is an error: no stream)."""
    listed: list[dict[str, Any]] = groups if isinstance(groups, list) else []
    return next((g for g in listed if g.get("name") == keys.GROUP), {})


def first_undelivered(groups: Any) -> str:
    """XRANGE start of the entries no consumer has been given: after the group's last
    delivered id, or the whole stream when there is no group yet."""
    last = _our_group(groups).get("last-delivered-id")
    return f"({last}" if last else "-"


def _lag(group: dict[str, Any], *, length: int, added: int) -> int:
    """Entries no consumer has been given yet. Without a group (no worker ever started,
    as for a pool still at zero) that is the whole stream; when Redis cannot tell (a
    deleted entry inside the range), it is what was added minus what was read."""
    if not group:
        return length
    if group.get("lag") is not None:
        return int(group["lag"])
    read = group.get("entries-read")
    return max(0, added - int(read)) if read is not None else length


async def record_run_seconds(
    client: aioredis.Redis,
    *,
    namespace: str,
    workflow: str,
    second: int,
    consumer: str,
    sketch: str,
) -> None:
    key = keys.workflow_run_seconds(namespace, workflow, second)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(key, SKETCH_PREFIX + consumer, sketch)
        pipe.expire(key, TTL_SECONDS)
        await pipe.execute()

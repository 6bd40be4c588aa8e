"""A pool's recorded arrivals: how many messages reached its stream in each second.

The operator adds each tick's arrivals here for every pool (one pipelined round trip
per pass), so what a pool saw outlives the stream's trimming and the operator's
restarts: the predictive floor learns its cycles from it, and `trimtab simulate
scaling --from-pool` replays it. One hash per pool and hour, a field per second with
arrivals, kept for KEEP_SECONDS: a week of lookback and a day of spare.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from redis import asyncio as aioredis

from trimtab.queue import keys

HOUR = 3600
KEEP_SECONDS = 8 * 24 * HOUR

Arrived = tuple[str, str, int, int]  # namespace, pool, second since the epoch, count


async def record(client: aioredis.Redis, arrived: Iterable[Arrived]) -> None:
    """Add each pool's arrivals to its second; nothing is sent when nothing arrived."""
    entries = [a for a in arrived if a[3] > 0]
    if not entries:
        return
    async with client.pipeline(transaction=False) as pipe:
        for namespace, pool, second, count in entries:
            key = keys.pool_arrivals(namespace, pool, second - second % HOUR)
            pipe.hincrby(key, str(second), count)
            pipe.expire(key, KEEP_SECONDS)
        await pipe.execute()


async def read(
    client: aioredis.Redis, *, namespace: str, pool: str, since: float, until: float
) -> dict[int, int]:
    """Arrivals per second from `since` to `until` (seconds since the epoch)."""
    first, last = math.floor(since), math.floor(until)
    hours = range(first - first % HOUR, last + 1, HOUR)
    async with client.pipeline(transaction=False) as pipe:
        for hour in hours:
            pipe.hgetall(keys.pool_arrivals(namespace, pool, hour))
        found = await pipe.execute()
    counts: dict[int, int] = {}
    for fields in found:
        for second, count in (fields or {}).items():
            at = int(second)
            if first <= at <= last:
                counts[at] = int(count)
    return counts

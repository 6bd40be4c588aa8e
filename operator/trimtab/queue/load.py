"""A pool's load as the autoscaler reads it: backlog, in flight, arrivals, completions,
service time and p95 over a recent window, from the stream and the per-second stats
workers publish. One round trip per read (stream counters and stats together), however many workers.
"""

from __future__ import annotations

import dataclasses

from redis import asyncio as aioredis

from trimtab.queue import keys, stats
from trimtab.stats import rates, sketch

BREAKER_STATES = {"closed": "Closed", "open": "Open", "half_open": "HalfOpen"}


@dataclasses.dataclass(frozen=True)
class PoolLoad:
    backlog: int  # in the stream, not yet delivered (consumer-group lag)
    in_flight: int  # delivered, not yet acknowledged (pending entries)
    added_total: int  # entries ever added to the stream, for arrival rates
    completion_rate: float  # steps per second over the window
    service_seconds: float | None  # mean step time over the window
    p95_seconds: float | None
    breaker: str  # the model endpoint's breaker: Closed, Open or HalfOpen


def _merge_window(hashes: list[dict[str, str]]) -> tuple[int, float, sketch.LatencySketch]:
    completed, busy = 0, 0.0
    merged = sketch.LatencySketch()
    for second in hashes:
        completed += int(second.get("completed", 0))
        busy += float(second.get("busy_s", 0.0))
        for field, value in second.items():
            if field.startswith(stats.SKETCH_PREFIX):
                merged.merge(sketch.LatencySketch.from_bytes(value.encode()))
    return completed, busy, merged


async def read_load(
    client: aioredis.Redis, *, namespace: str, pool: str, now: float, window_seconds: int = 10
) -> PoolLoad:
    """The pool's load over the last `window_seconds` whole seconds."""
    seconds = rates.window_keys(now, bucket_seconds=1, window_seconds=window_seconds)
    stream = keys.pool_stream(namespace, pool)
    async with client.pipeline(transaction=False) as pipe:
        pipe.xinfo_stream(stream)
        pipe.xinfo_groups(stream)
        pipe.hget(keys.pool_breaker(namespace, pool, "model"), "state")
        for second in seconds:
            pipe.hgetall(keys.pool_stats(namespace, pool, second))
        info, groups, breaker, *found = await pipe.execute(raise_on_error=False)
    counters = stats.parse_counters(info, groups)
    hashes = [dict(h) for h in found if isinstance(h, dict)]
    completed, busy, merged = _merge_window(hashes)
    return PoolLoad(
        backlog=counters["lag"],
        in_flight=counters["pending"],
        added_total=counters["added"],
        completion_rate=completed / window_seconds,
        service_seconds=busy / completed if completed else None,
        p95_seconds=merged.quantile(0.95),
        breaker=BREAKER_STATES.get(breaker if isinstance(breaker, str) else "", "Closed"),
    )

"""A pool's load as the autoscaler reads it: backlog, in flight, arrivals, completions,
service time and end-to-end p95 over a recent window, from the stream and the per-second stats
workers publish, for every pool at once (LoadReader).
"""

from __future__ import annotations

import dataclasses

from redis import asyncio as aioredis

from trimtab.api.v1alpha1 import agentpool
from trimtab.queue import keys, stats, wire
from trimtab.stats import rates, sketch

# The breaker's state as status names it (CamelCase, the API's) from its wire word.
BREAKER_STATES: dict[str, agentpool.BreakerStatus] = {
    wire.BreakerState.CLOSED: "Closed",
    wire.BreakerState.OPEN: "Open",
    wire.BreakerState.HALF_OPEN: "HalfOpen",
}


@dataclasses.dataclass(frozen=True)
class PoolLoad:
    backlog: int  # in the stream, not yet delivered (consumer-group lag)
    in_flight: int  # delivered, not yet acknowledged (pending entries)
    added_total: int  # entries ever added to the stream, for arrival rates
    completion_rate: float  # steps per second over the window
    service_seconds: float | None  # mean step execution time over the window
    p95_seconds: float | None  # end-to-end (enqueue to done) p95 over the window
    breaker: agentpool.BreakerStatus  # the model endpoint's breaker
    oldest_backlog_seconds: float | None = None  # age of the oldest undelivered entry


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


PoolKey = tuple[str, str]  # (namespace, pool)
CHUNK = 500  # pools whose counters one pipeline reads


class LoadReader:
    """The load of the pools asked for, in two pipelined round trips per pass, however
    many (the autoscaler asks only for the pools not at rest: trimtab.reconcile.agentpool.
    cadence).

    The first reads the counters of each of a pool's level streams and its breaker; the
    second reads the per-second stats only of pools with work now or within the window,
    since an idle pool's stats are empty. Across a thousand idle pools that is seven
    commands each, not seventeen.
    """

    def __init__(self, client: aioredis.Redis, *, window_seconds: int = 10) -> None:
        self.client, self.window = client, window_seconds
        self._seen: dict[PoolKey, tuple[int, float]] = {}  # entries added, last busy time

    async def read_all(self, pools: list[PoolKey], *, now: float) -> dict[PoolKey, PoolLoad]:
        """The load of each of `pools`, CHUNK pools to a round trip: a pipeline of every
        pool at once (all ten thousand of them at a start) was the operator's memory peak."""
        found: dict[PoolKey, PoolLoad] = {}
        for start in range(0, len(pools), CHUNK):
            found |= await self._read(pools[start : start + CHUNK], now=now)
        return found

    async def _read(self, pools: list[PoolKey], *, now: float) -> dict[PoolKey, PoolLoad]:
        streams = {key: keys.pool_streams(*key) for key in pools}
        per_pool = 2 * len(wire.Priority) + 1  # XINFO STREAM and GROUPS per level, breaker
        async with self.client.pipeline(transaction=False) as pipe:
            for ns, pool in pools:
                for stream in streams[(ns, pool)]:
                    pipe.xinfo_stream(stream)
                    pipe.xinfo_groups(stream)
                pipe.hget(keys.pool_breaker(ns, pool, "model"), "state")
            replies = await pipe.execute(raise_on_error=False)
        counters: dict[PoolKey, dict[str, int]] = {}
        waiting: dict[tuple[PoolKey, str], str] = {}  # backlogged level streams: first id
        for i, key in enumerate(pools):
            mine = replies[i * per_pool : (i + 1) * per_pool]
            level_counters = []
            for n, stream in enumerate(streams[key]):
                level = stats.parse_counters(mine[2 * n], mine[2 * n + 1])
                level_counters.append(level)
                if level["lag"]:
                    waiting[(key, stream)] = stats.first_undelivered(mine[2 * n + 1])
            counters[key] = _summed(level_counters)
        busy = [key for key in pools if self._busy(key, counters[key], now)]
        windows = await self._windows(busy, now)
        oldest = await self._oldest(waiting, now)
        return {
            key: _load(
                counters[key],
                windows.get(key, []),
                replies[(i + 1) * per_pool - 1],
                self.window,
                oldest_backlog_seconds=oldest.get(key),
            )
            for i, key in enumerate(pools)
        }

    async def _oldest(
        self, waiting: dict[tuple[PoolKey, str], str], now: float
    ) -> dict[PoolKey, float]:
        """Age of each backlogged pool's oldest undelivered entry over its levels, from
        the stream ids (milliseconds since the epoch when each was added): one XRANGE
        per backlogged level stream, and only for those."""
        if not waiting:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for (_, stream), start in waiting.items():
                pipe.xrange(stream, min=start, max="+", count=1)
            found = await pipe.execute(raise_on_error=False)
        ages: dict[PoolKey, float] = {}
        for (key, _), entries in zip(waiting, found, strict=True):
            if isinstance(entries, list) and entries:
                added_ms = int(str(entries[0][0]).split("-", 1)[0])
                ages[key] = max(ages.get(key, 0.0), now - added_ms / 1000)
        return ages

    def forget(self, gone: list[PoolKey]) -> None:
        """Drop what was kept for pools that no longer exist."""
        for key in gone:
            self._seen.pop(key, None)

    def _busy(self, key: PoolKey, counters: dict[str, int], now: float) -> bool:
        """Work now, new arrivals, or work within the window (its stats still count)."""
        added, last_busy = self._seen.get(key, (-1, 0.0))
        if counters["lag"] or counters["pending"] or counters["added"] != added:
            last_busy = now
        self._seen[key] = (counters["added"], last_busy)
        return now - last_busy <= self.window + 1

    async def _windows(
        self, pools: list[PoolKey], now: float
    ) -> dict[PoolKey, list[dict[str, str]]]:
        if not pools:
            return {}
        seconds = rates.window_keys(now, bucket_seconds=1, window_seconds=self.window)
        async with self.client.pipeline(transaction=False) as pipe:
            for ns, pool in pools:
                for second in seconds:
                    pipe.hgetall(keys.pool_stats(ns, pool, second))
            found = await pipe.execute(raise_on_error=False)
        n = len(seconds)
        return {
            key: [dict(h) for h in found[i * n : (i + 1) * n] if isinstance(h, dict)]
            for i, key in enumerate(pools)
        }


def _summed(levels: list[dict[str, int]]) -> dict[str, int]:
    """A pool's counters over its level streams: each counts its own entries."""
    return {name: sum(level[name] for level in levels) for name in levels[0]}


def _load(
    counters: dict[str, int],
    hashes: list[dict[str, str]],
    breaker: object,
    window: int,
    *,
    oldest_backlog_seconds: float | None,
) -> PoolLoad:
    completed, busy, merged = _merge_window(hashes)
    return PoolLoad(
        backlog=counters["lag"],
        in_flight=counters["pending"],
        added_total=counters["added"],
        completion_rate=completed / window,
        service_seconds=busy / completed if completed else None,
        p95_seconds=merged.quantile(0.95),
        breaker=BREAKER_STATES.get(breaker if isinstance(breaker, str) else "", "Closed"),
        oldest_backlog_seconds=oldest_backlog_seconds,
    )

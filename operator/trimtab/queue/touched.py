"""Which pools had work enqueued since the operator last looked: each namespace's touched
set (keys.pools_touched), which every script that enqueues writes in the same atomic step
as the entry itself (`enqueue` in lua/_common.lua), scored by the entry id's
milliseconds.

Why: reading a pool's load takes seven commands (trimtab.queue.load), and a pool at rest
(no replicas, nothing queued) has nothing to read until a task arrives. With the set,
the autoscaler reads a resting pool only once it is touched, so a thousand idle pools
cost one command per namespace a second instead of seven thousand, and a task for an
idle pool is still seen within the same second.

The scores are Redis's own clock (the stream ids it generated), so the cursor is too:
each read asks from the highest score seen so far, less SLACK_MS for scripts that ran in
the same milliseconds as the last read. A stream seen again within the slack only makes
its pool read once more.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import asyncio as aioredis

from trimtab.queue import keys

PoolKey = tuple[str, str]  # (namespace, pool)
SLACK_MS = 2000


class TouchedReader:
    """Remembers, per namespace, how far it has read; one pipelined round trip a read."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._since: dict[str, float] = {}  # namespace -> highest score read
        self._pools: dict[str, PoolKey] = {}  # stream key -> its pool
        self._known: set[PoolKey] = set()  # the pools `_pools` maps streams to

    async def read(self, pools: Iterable[PoolKey]) -> set[PoolKey]:
        """Those of `pools` whose streams were enqueued on since the last read (every
        pool ever touched, on the first read of its namespace)."""
        wanted = set(pools)
        for key in wanted - self._known:  # a new pool's stream names, built once
            for stream in keys.pool_streams(*key):
                self._pools[stream] = key
        self._known |= wanted
        namespaces = sorted({ns for ns, _ in wanted})
        async with self.client.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                since = self._since.get(ns)
                low = "-inf" if since is None else since - SLACK_MS
                pipe.zrange(keys.pools_touched(ns), low, "+inf", byscore=True, withscores=True)
            replies = await pipe.execute()
        touched: set[PoolKey] = set()
        for ns, entries in zip(namespaces, replies, strict=True):
            for stream, score in entries:
                self._since[ns] = max(self._since.get(ns, score), score)
                pool = self._pools.get(stream if isinstance(stream, str) else stream.decode())
                if pool is not None and pool in wanted:
                    touched.add(pool)
        return touched

    def forget(self, gone: Iterable[PoolKey]) -> None:
        """Drop what was kept for pools that no longer exist."""
        for key in gone:
            self._known.discard(key)
            for stream in keys.pool_streams(*key):
                self._pools.pop(stream, None)

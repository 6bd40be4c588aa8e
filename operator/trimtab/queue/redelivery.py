"""Finding and taking over a dead worker's steps, and forgetting dead consumers.

A step stays pending in the consumer group until a script acknowledges it; while its
worker lives, the worker's heartbeat keeps its idle time short. An entry idle past the
visibility timeout belongs to a worker that died or stalled. `stale` lists such entries
from the whole pending list (XPENDING with IDLE walks it all, unlike XAUTOCLAIM, whose
scan stops after ten entries per requested one and so can leave a stale entry behind
hundreds of heartbeating ones), and `claim` takes them over with XCLAIM's idle check,
so two workers racing for one entry cannot both get it. A taken-over step is started
again by start.lua under a new fence, which shuts the stalled worker out.

A consumer that has not read for `DEAD_CONSUMER_IDLE_MS` and holds nothing is removed
from the group: a live worker reads every half second, so it is long gone.
"""

from __future__ import annotations

import collections
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys

DEAD_CONSUMER_IDLE_MS = 15 * 60 * 1000


async def stale(
    client: aioredis.Redis, stream: str, *, min_idle_ms: int, count: int
) -> list[tuple[str, bool]]:
    """Pending entries idle at least `min_idle_ms`, oldest first, as (id, interrupted):
    interrupted when its consumer left others idle too, so it died holding several
    steps (start.lua counts such a delivery apart)."""
    found: Any = await client.xpending_range(stream, keys.GROUP, "-", "+", count, idle=min_idle_ms)
    held = collections.Counter(str(p["consumer"]) for p in found)
    return [(str(p["message_id"]), held[str(p["consumer"])] > 1) for p in found]


async def claim(
    client: aioredis.Redis, stream: str, consumer: str, msg_ids: list[str], *, min_idle_ms: int
) -> list[tuple[str, Any]]:
    """Take over the entries of `msg_ids` still idle at least `min_idle_ms`, as (id,
    fields); an entry deleted meanwhile is dropped from the pending list and not given."""
    if not msg_ids:
        return []
    ids: list[Any] = list(msg_ids)
    found: Any = await client.xclaim(stream, keys.GROUP, consumer, min_idle_ms, ids)
    return [(msg_id, fields) for msg_id, fields in found if fields]


async def forget_dead_consumers(
    client: aioredis.Redis, stream: str, *, keep: str, idle_ms: int = DEAD_CONSUMER_IDLE_MS
) -> list[str]:
    """Remove the group's consumers that hold nothing and have not read for `idle_ms`
    (never `keep`, the caller); the names removed."""
    consumers: Any = await client.xinfo_consumers(stream, keys.GROUP)
    gone = [
        str(c["name"])
        for c in consumers
        if c["name"] != keep and int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms
    ]
    for name in gone:
        await client.xgroup_delconsumer(stream, keys.GROUP, name)
    return gone

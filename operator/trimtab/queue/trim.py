"""Trimming a pool's stream: entries every consumer is done with are deleted, so the
stream holds only what is undelivered or in flight, however long the pool runs."""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys


async def trim_acknowledged(client: aioredis.Redis, stream: str) -> int:
    """Delete entries every consumer is done with: those before both the oldest
    pending entry and the group's last delivered id. Undelivered and in-flight
    entries are never touched; new ones only ever sort after the trim point."""
    groups: Any = await client.xinfo_groups(stream)
    group = next((g for g in groups if g.get("name") == keys.GROUP), None)
    if group is None or group.get("last-delivered-id") in (None, "0-0"):
        return 0
    boundary = _after(str(group["last-delivered-id"]))
    summary: Any = await client.xpending(stream, keys.GROUP)
    if summary.get("pending") and summary.get("min"):
        boundary = min(boundary, str(summary["min"]), key=_id_key)
    return int(await client.xtrim(stream, minid=boundary, approximate=False))


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _after(entry_id: str) -> str:
    """The smallest id greater than `entry_id`."""
    ms, seq = _id_key(entry_id)
    return f"{ms}-{seq + 1}"

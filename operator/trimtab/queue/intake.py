"""How one consumer takes work from a pool's streams and keeps hold of it: one stream per
priority level (keys.pool_stream), read by weighted shares (trimtab.queue.levels),
reclaimed, heartbeated, released, promoted and trimmed across every level.

Delivery is at least once: a step stays pending in its stream's consumer group until
one of the scripts acknowledges it, and another worker reclaims it once it has sat idle
past the visibility timeout (trimtab.queue.redelivery). A delivery remembers the stream
it came from, which is the stream every script then acknowledges it on.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

from trimtab.queue import deadletter, keys, levels, messages, redelivery, scripts, trim, wire

REGROUP_SECONDS = 5.0  # how often a level left without a group (Redis full) is tried again
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One task message as this consumer received it: the stream entry's id (what the
    scripts acknowledge), the task it carries, the stream it is on, and once started,
    its fence: the token start.lua handed this delivery, without which no script moves
    the step (None: not started; a reviewer's delivery has none and acts only for a
    step in review)."""

    msg_id: str
    task: messages.Task
    stream: str
    fence: str | None = None
    interrupted: bool = False  # reclaimed from a worker that died holding others too

    def fenced(self, fence: str | None) -> Delivery:
        return dataclasses.replace(self, fence=fence)


@dataclasses.dataclass(frozen=True)
class Stale:
    """A pending entry idle past the visibility timeout, on `stream` (redelivery.stale)."""

    stream: str
    msg_id: str
    interrupted: bool


class Intake:
    """One consumer's side of one pool's level streams."""

    def __init__(
        self,
        client: aioredis.Redis,
        lua: scripts.Scripts,
        *,
        namespace: str,
        pool: str,
        consumer: str,
    ) -> None:
        self.client, self.lua = client, lua
        self.namespace, self.pool, self.consumer = namespace, pool, consumer
        self.streams = keys.pool_streams(namespace, pool)  # highest level first
        self._level_of = dict(zip(self.streams, wire.Priority, strict=True))
        self.delayed = [keys.pool_delayed(namespace, pool, p) for p in wire.Priority]
        self._grouped: set[str] = set()  # the level streams our group is known to exist on
        self._regroup_at = 0.0

    async def ensure_groups(self) -> None:
        """Create each level stream's consumer group unless it exists. A full Redis
        refuses the create even then, so an existing group is looked up (a read)
        instead; a level it leaves without a group is read once a later try creates
        one (`read` tries again every REGROUP_SECONDS). Raises only when no level has
        a group, as nothing could be read."""
        for stream in self.streams:
            if stream not in self._grouped and await self._group(stream):
                self._grouped.add(stream)
        self._regroup_at = time.monotonic() + REGROUP_SECONDS
        if not self._grouped:
            raise redis_exceptions.OutOfMemoryError(
                f"no consumer group on any of {self.streams}: Redis is full"
            )

    async def _group(self, stream: str) -> bool:
        try:
            await self.client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        except redis_exceptions.OutOfMemoryError:
            if not await self.client.exists(stream):
                return False
            groups: Any = await self.client.xinfo_groups(stream)
            return any(g["name"] == keys.GROUP for g in groups)
        except redis_exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return True

    async def read(self, count: int, *, block_ms: int | None, turn: int = 0) -> list[Delivery]:
        """New tasks for this consumer, at most `count`, shared among the levels as
        levels.shares says for read number `turn`; with none waiting, waits up to
        block_ms (None: not at all) for the first to arrive on any level."""
        if len(self._grouped) < len(self.streams) and time.monotonic() >= self._regroup_at:
            try:
                await self.ensure_groups()
            except redis_exceptions.OutOfMemoryError:
                if not self._grouped:
                    raise
        shares = levels.shares(turn, count)
        streams = [s for s in self.streams if s in self._grouped]
        args = [keys.GROUP, self.consumer, count, *(shares[self._level_of[s]] for s in streams)]
        taken: list[Any] = await self.lua.call("take", streams, args)
        entries = [(streams[int(k) - 1], messages.text(i), _pairs(f)) for k, i, f in taken]
        if not entries and block_ms is not None:
            return await self._wait(streams, count, block_ms)
        return await self._decode(entries)

    async def _wait(self, streams: list[str], count: int, block_ms: int) -> list[Delivery]:
        """Block on every level at once. Redis answers a blocked read from the stream
        that woke it, so at most `count` come back; should a reply ever bring entries
        of several levels past `count`, the excess is handed straight back to its
        stream (never started), so a worker never holds more than its free slots."""
        found: Any = await self.client.xreadgroup(
            keys.GROUP,
            self.consumer,
            dict.fromkeys(streams, ">"),
            count=count,
            block=block_ms,
        )
        got = [(messages.text(s), messages.text(i), f) for s, es in found or [] for i, f in es]
        order = {stream: n for n, stream in enumerate(self.streams)}
        got.sort(key=lambda e: order[e[0]])  # higher levels keep their entries
        taken = await self._decode(got)
        await self.release(taken[count:])
        return taken[:count]

    async def stale(self, *, min_idle_ms: int, count: int) -> list[Stale]:
        """Entries some consumer took and left idle past min_idle_ms (a dead worker's),
        to reclaim when a slot is free, higher levels first."""
        found = []
        for stream in self.streams:
            with _unless_absent():
                idle = await redelivery.stale(
                    self.client, stream, min_idle_ms=min_idle_ms, count=count
                )
                found += [Stale(stream, msg_id, cut) for msg_id, cut in idle]
        return found

    async def reclaim(self, stale: list[Stale], *, min_idle_ms: int) -> list[Delivery]:
        """Take over the `stale` entries still idle past min_idle_ms."""
        taken: list[Delivery] = []
        for stream, entries in _by_stream(stale, lambda s: s.stream).items():
            cut = {s.msg_id for s in entries if s.interrupted}
            claimed = await redelivery.claim(
                self.client,
                stream,
                self.consumer,
                [s.msg_id for s in entries],
                min_idle_ms=min_idle_ms,
            )
            decoded = await self._decode([(stream, i, f) for i, f in claimed])
            taken += [dataclasses.replace(d, interrupted=d.msg_id in cut) for d in decoded]
        return taken

    async def heartbeat(self, deliveries: list[Delivery]) -> None:
        """Reset the idle time of tasks still running here, so nobody reclaims them;
        a delivery fenced out by another worker's start is left alone (heartbeat.lua)."""
        for stream, held in _by_stream(deliveries, lambda d: d.stream).items():
            run_keys = [keys.run(d.task.namespace, d.task.run_id) for d in held]
            args: list[Any] = [keys.GROUP, self.consumer]
            for d in held:
                args += [d.msg_id, d.task.step, d.fence or ""]
            await self.lua.call("heartbeat", [stream, *run_keys], args)

    async def release(self, deliveries: list[Delivery]) -> int:
        """Give unfinished tasks back for immediate redelivery (graceful drain)."""
        released = 0
        for stream, held in _by_stream(deliveries, lambda d: d.stream).items():
            run_keys = [keys.run(d.task.namespace, d.task.run_id) for d in held]
            args: list[Any] = [keys.GROUP]
            for d in held:
                args += [d.msg_id, d.task.step, d.fence or ""]
            released += int(await self.lua.call("release", [stream, *run_keys], args))
        return released

    async def promote_due(self, *, now_ms: float, limit: int = 100) -> int:
        pairs = [k for both in zip(self.delayed, self.streams, strict=True) for k in both]
        return int(await self.lua.call("promote", pairs, [now_ms, limit]))

    async def trim_acknowledged(self) -> int:
        """Delete the entries every consumer is done with (see trimtab.queue.trim)."""
        trimmed = 0
        for stream in self.streams:
            with _unless_absent():
                trimmed += await trim.trim_acknowledged(self.client, stream)
        return trimmed

    async def forget_dead_consumers(self) -> list[str]:
        gone: set[str] = set()
        for stream in self.streams:
            with _unless_absent():
                gone.update(
                    await redelivery.forget_dead_consumers(self.client, stream, keep=self.consumer)
                )
        return sorted(gone)

    async def _decode(self, entries: list[tuple[str, str, Any]]) -> list[Delivery]:
        out = []
        for stream, msg_id, fields in entries:
            try:
                out.append(Delivery(str(msg_id), messages.decode(fields), stream))
            except messages.MessageError as exc:
                entry = {"pool": self.pool, "reason": str(exc), "raw": json.dumps(fields)}
                await deadletter.message(self.client, self.namespace, stream, msg_id, entry)
        return out


@contextlib.contextmanager
def _unless_absent() -> Iterator[None]:
    """Housekeeping of a level stream or group that does not exist (yet, or any more,
    after Redis lost its data) has nothing to do; the next ensure_groups makes it."""
    try:
        yield
    except redis_exceptions.ResponseError as exc:
        if not any(word in str(exc) for word in ("NOGROUP", "no such key")):
            raise


def _pairs(flat: list[Any]) -> dict[str, str]:
    """A script's flat field/value list as the mapping XREADGROUP's reply gives."""
    return {messages.text(k): messages.text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


def _by_stream(items: list[T], stream_of: Callable[[T], str]) -> dict[str, list[T]]:
    grouped: dict[str, list[T]] = collections.defaultdict(list)
    for item in items:
        grouped[stream_of(item)].append(item)
    return grouped

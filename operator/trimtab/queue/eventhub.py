"""Following many runs' event streams from one process with one blocking read: the HTTP
API's Server-Sent Events (trimtab.server) subscribe here rather than each holding a
Redis connection in its own XREAD, so a thousand open streams cost one connection and
one XREAD per wake-up, not a thousand.

A subscription names a run's event stream and the last id its client saw; the hub's
reader asks for everything after the lowest id per stream, and hands each subscriber
the entries past its own. The reader blocks on a connection of its own; a new
subscription wakes it with CLIENT UNBLOCK, so its stream is read at once rather than
after the current block times out. A subscriber whose queue is full (a client reading slower
than events arrive) is dropped and told so, and reconnects with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import connection, keys

log = logging.getLogger(__name__)
BLOCK_MS = 1000
QUEUE_MOST = 1000  # entries a subscriber may lag behind before it is dropped
KEYS_PER_READ = 500  # streams one XREAD names at most

Entry = tuple[str, dict[str, str]]


class SubscriberTooSlowError(RuntimeError):
    """The subscriber fell QUEUE_MOST entries behind; reconnect from the last id seen."""


def _newer(a: str, b: str) -> bool:
    """Whether stream id `a` comes after `b`."""
    return _sort_key(a) > _sort_key(b)


@dataclasses.dataclass(eq=False)
class _Subscriber:
    last: str
    queue: asyncio.Queue[Entry | None] = dataclasses.field(
        default_factory=lambda: asyncio.Queue(QUEUE_MOST)
    )
    dropped: bool = False


class EventHub:
    """Fans run events out to subscribers; started on first subscription."""

    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis) -> None:
        """`client` is any pooled client; `reader` must hold one connection (the hub
        blocks on it and unblocks it by its id)."""
        self._client = client
        self._reader = reader
        self._reader_id: int | None = None
        self._blocked = False
        self._subs: dict[str, set[_Subscriber]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def subscribe(
        self, namespace: str, run_id: str, *, after: str = "0"
    ) -> AsyncIterator[asyncio.Queue[Entry | None]]:
        """A queue of the run's entries after `after`; None means the subscriber was
        dropped for falling behind (SubscriberTooSlowError is raised by `follow`)."""
        key = keys.run_events(namespace, run_id)
        sub = _Subscriber(last=after)
        fresh = key not in self._subs
        self._subs.setdefault(key, set()).add(sub)
        self._ensure_reader()
        self._wake.set()
        if fresh and self._blocked and self._reader_id is not None:
            self._blocked = False  # one unblock per blocked read, however many arrive
            await self._client.client_unblock(self._reader_id)
        try:
            yield sub.queue
        finally:
            subs = self._subs.get(key)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[key]

    def _ensure_reader(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read_forever(), name="event-hub")

    async def _read_forever(self) -> None:
        while True:
            if not self._subs:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if self._reader_id is None:
                    self._reader_id = int(await self._reader.client_id())
                await self._read_once()
            except connection.UNAVAILABLE as exc:
                log.warning("reading run events: %s; retrying", exc)
                self._reader_id = None  # a new connection has a new id
                await asyncio.sleep(0.5)

    async def _read_once(self) -> None:
        wanted = {key: min((s.last for s in subs), key=_sort_key) for key, subs in
                  self._subs.items() if subs}  # fmt: skip
        for chunk in _chunks(list(wanted.items()), KEYS_PER_READ):
            # One chunk blocks; when there are more, they are read without waiting.
            block = BLOCK_MS if len(wanted) <= KEYS_PER_READ else None
            self._blocked = block is not None
            try:
                found: Any = await self._reader.xread(dict(chunk), count=100, block=block)
            finally:
                self._blocked = False
            for key, entries in found or []:
                self._deliver(key, [(eid, dict(fields)) for eid, fields in entries])
        if len(wanted) > KEYS_PER_READ:
            await asyncio.sleep(0.05)  # no XREAD blocked: pace the round

    def _deliver(self, key: str, entries: list[Entry]) -> None:
        for sub in list(self._subs.get(key, ())):
            for entry in entries:
                if sub.dropped or not _newer(entry[0], sub.last):
                    continue
                try:
                    sub.queue.put_nowait(entry)
                    sub.last = entry[0]
                except asyncio.QueueFull:
                    sub.dropped = True
                    self._subs[key].discard(sub)
                    _drain_and_close(sub.queue)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._reader.aclose()


def _drain_and_close(queue: asyncio.Queue[Entry | None]) -> None:
    """Make room for the None that tells the subscriber it was dropped."""
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(None)


def _sort_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]

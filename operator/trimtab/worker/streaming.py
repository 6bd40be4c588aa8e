"""A streamed reply's text, coalesced into `tokens` events on the run's event stream.

A model writes a token every few milliseconds; an event per token would cost a Redis
write each and flood every reader. So the first text goes out at once (time to first
token is what an interactive caller waits on), later text at most every COALESCE_S,
and an attempt publishes at most MAX_EVENTS events: past that, the rest waits for the
last one, sent when the reply ends. A reader joining the texts in order has the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

COALESCE_S = 0.05
MAX_EVENTS = 256


class TextPublisher:
    """Gathers text from `add` and sends it through `publish`, coalesced; `close`
    sends what is left. Sends never overlap, so events keep the text's order."""

    def __init__(
        self,
        publish: Callable[[str], Awaitable[object]],
        *,
        coalesce_s: float = COALESCE_S,
        max_events: int = MAX_EVENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish, self._coalesce_s, self._max = publish, coalesce_s, max_events
        self._clock = clock
        self._buffer = ""
        self._sent = 0
        self._last = 0.0
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None

    @property
    def events_sent(self) -> int:
        return self._sent

    async def add(self, text: str) -> None:
        self._buffer += text
        if self._sent >= self._max - 1:  # the last event is kept for close
            return
        wait = self._last + self._coalesce_s - self._clock()
        if self._sent == 0 or wait <= 0:
            await self._send()
        elif self._timer is None:
            self._timer = asyncio.create_task(self._send_after(wait))

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self._send()

    async def _send_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._timer = None
        await self._send()

    async def _send(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            text, self._buffer = self._buffer, ""
            self._sent += 1
            self._last = self._clock()
            await self._publish(text)

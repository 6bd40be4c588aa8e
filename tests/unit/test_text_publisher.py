"""Coalescing a streamed reply's text into events (trimtab.worker.streaming)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from trimtab.worker import streaming


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_the_first_text_goes_at_once_and_later_text_waits_for_its_window() -> None:
    sent: list[str] = []
    clock = Clock()
    text = streaming.TextPublisher(_append(sent), coalesce_s=60, clock=clock)
    await text.add("He")
    await text.add("l")
    await text.add("lo")
    assert sent == ["He"]
    clock.now += 61
    await text.add("!")
    assert sent == ["He", "llo!"]
    await text.close()
    assert sent == ["He", "llo!"]  # nothing was left to send


async def test_text_held_back_is_sent_when_its_window_ends_without_more_text() -> None:
    sent: list[str] = []
    text = streaming.TextPublisher(_append(sent), coalesce_s=0.01)
    await text.add("a")
    await text.add("b")
    assert sent == ["a"]
    for _ in range(200):  # the window's timer sends "b" on its own
        if len(sent) == 2:
            break
        await asyncio.sleep(0.01)
    assert sent == ["a", "b"]
    await text.close()


async def test_an_attempt_sends_at_most_max_events_and_close_sends_the_rest() -> None:
    sent: list[str] = []
    clock = Clock()
    text = streaming.TextPublisher(_append(sent), coalesce_s=1, max_events=3, clock=clock)
    for i in range(10):
        clock.now += 2
        await text.add(str(i))
    assert sent == ["0", "1"]
    await text.close()
    assert sent == ["0", "1", "23456789"]
    assert text.events_sent == 3


def _append(sent: list[str]) -> Callable[[str], Awaitable[None]]:
    async def publish(text: str) -> None:
        sent.append(text)

    return publish

"""What the operator reads from Redis for each workflow's status, for every workflow at
once (WorkflowReader): its published generation, the Secrets its workers found missing,
and its run statistics (trimtab.queue.workflows).

Why one reader for all: read one workflow at a time, a status pass over a thousand
workflows was sixty thousand commands in a thousand round trips every ten seconds,
almost all of them the p95 window's per-second hashes of workflows that ran nothing.
Here a pass is two pipelined round trips, and the window is read only for workflows
whose counters moved within it (a workflow that ran nothing has no sketches there).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, wire, workflows
from trimtab.stats import rates

Key = tuple[str, str]  # (namespace, workflow)
WINDOW_SECONDS = 60  # the run-time p95's window, as workflows.run_stats reads it
CHUNK = 50  # workflows whose window one pipeline reads


@dataclasses.dataclass(frozen=True)
class WorkflowReading:
    """One workflow's part of the status, as Redis holds it now."""

    published: int | None  # the generation current in Redis; None: not published
    missing_secrets: tuple[tuple[str, str], ...]
    stats: workflows.RunStats


class WorkflowReader:
    """Remembers each workflow's counters and when they last moved, so that a workflow
    idle for longer than the window costs three commands a pass, not sixty-three."""

    def __init__(self, client: aioredis.Redis, *, window_seconds: int = WINDOW_SECONDS) -> None:
        self.client, self.window = client, window_seconds
        self._moved: dict[Key, tuple[dict[str, str], float]] = {}  # counters, when moved

    async def read_all(self, wanted: list[Key], *, now: float) -> dict[Key, WorkflowReading]:
        async with self.client.pipeline(transaction=False) as pipe:
            for ns, name in wanted:
                pipe.get(keys.workflow_current(ns, name))
                pipe.hgetall(keys.workflow_missing_secrets(ns, name))
                pipe.hgetall(keys.workflow_stats(ns, name))
            replies = await pipe.execute()
        counters: dict[Key, dict[str, str]] = {}
        for i, key in enumerate(wanted):
            counters[key] = dict(replies[3 * i + 2])
        windows = await self._windows([k for k in wanted if self._recent(k, counters[k], now)], now)
        readings = {}
        for i, key in enumerate(wanted):
            published: Any = replies[3 * i]
            readings[key] = WorkflowReading(
                published=None if published is None else int(published),
                missing_secrets=tuple(workflows.fresh_missing(dict(replies[3 * i + 1]), now=now)),
                stats=workflows.stats_from(counters[key], windows.get(key, [])),
            )
        return readings

    def forget(self, gone: list[Key]) -> None:
        """Drop what was kept for workflows that no longer exist."""
        for key in gone:
            self._moved.pop(key, None)

    def _recent(self, key: Key, counters: dict[str, str], now: float) -> bool:
        """Whether the counters moved within the window, or were never seen before with a
        run ended (a workflow that never ended a run has no sketches to read)."""
        held = self._moved.get(key)
        if held is None:
            ended = (
                wire.WorkflowStat.SUCCEEDED,
                wire.WorkflowStat.FAILED,
                wire.WorkflowStat.CANCELLED,
            )
            self._moved[key] = (counters, now if any(counters.get(f) for f in ended) else 0.0)
        elif held[0] != counters:
            self._moved[key] = (counters, now)
        return now - self._moved[key][1] <= self.window + 1

    async def _windows(self, wanted: list[Key], now: float) -> dict[Key, list[dict[str, str]]]:
        if not wanted:
            return {}
        seconds = rates.window_keys(now, bucket_seconds=1, window_seconds=self.window)
        n, out = len(seconds), {}
        # In chunks: a window is sixty hashes a workflow, and one pipeline of them all
        # (after a restart, every workflow that ever ran) was the operator's memory peak.
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            async with self.client.pipeline(transaction=False) as pipe:
                for ns, name in chunk:
                    for second in seconds:
                        pipe.hgetall(keys.workflow_run_seconds(ns, name, second))
                found = await pipe.execute()
            for i, key in enumerate(chunk):
                out[key] = [dict(h) for h in found[i * n : (i + 1) * n]]
        return out

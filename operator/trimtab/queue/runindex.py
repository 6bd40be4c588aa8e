"""Listing runs: the per-namespace and per-workflow run indexes submit.lua keeps (sorted
sets of run ids by creation time), read newest first in pages, and pruned of runs whose
state expired.

A run's hash expires by its TTL, but an index entry does not expire by itself: a page
drops (and removes) the entries whose run is gone, and the operator prunes the oldest
entries of each namespace's indexes every few seconds (`prune_in`), since runs expire
roughly in the order they were created. Filters on status and time are applied to the
runs read, so a page may hold fewer than its limit while more remain: follow
`next_cursor` until it is None.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, runs, wire

SCAN_BATCH = 200
SCAN_MOST = 2000  # index entries one page reads at most, however few match
PRUNE_OLDEST = 100  # entries per namespace checked by each prune pass


class BadCursorError(ValueError):
    """A cursor that no page returned."""


@dataclasses.dataclass(frozen=True)
class RunPage:
    runs: list[runs.RunSummary]
    next_cursor: str | None  # None: nothing older is left


@dataclasses.dataclass(frozen=True)
class RunFilter:
    workflow: str | None = None
    statuses: frozenset[wire.RunStatus] = frozenset()  # empty: any
    since_ms: float | None = None  # created at or after
    until_ms: float | None = None  # created before

    def admits(self, run: runs.RunSummary) -> bool:
        """By status: the time window bounds the index read itself (list_runs)."""
        return not self.statuses or run.status in self.statuses


def encode_cursor(score: float, run_id: str) -> str:
    return f"{score!r}~{run_id}"


def decode_cursor(cursor: str) -> tuple[float, str]:
    score, sep, run_id = cursor.partition("~")
    try:
        if not sep or not run_id:
            raise ValueError
        return float(score), run_id
    except ValueError:
        raise BadCursorError(f"not a cursor of this list: {cursor!r}") from None


async def _batch(
    client: aioredis.Redis, index: str, top: str, limit: int
) -> list[tuple[str, float]]:
    """Up to `limit` entries at or below score `top`, newest first."""
    found: Any = await client.zrange(
        index, top, "-inf", desc=True, byscore=True, offset=0, num=limit, withscores=True
    )
    return [(member, float(score)) for member, score in found]


async def _read(
    client: aioredis.Redis, namespace: str, ids: list[str]
) -> list[runs.RunSummary | None]:
    async with client.pipeline(transaction=False) as pipe:
        for run_id in ids:
            pipe.hmget(keys.run(namespace, run_id), list(runs.SUMMARY_FIELDS))
        found: Any = await pipe.execute()
    return [runs.parse_summary(run_id, values) for run_id, values in zip(ids, found, strict=True)]


async def _forget(client: aioredis.Redis, namespace: str, gone: list[tuple[str, str]]) -> None:
    """Remove expired runs (id, workflow or '') from the indexes."""
    if not gone:
        return
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.runs_index(namespace), *(run_id for run_id, _ in gone))
        for run_id, workflow in gone:
            if workflow:
                pipe.zrem(keys.workflow_runs_index(namespace, workflow), run_id)
        await pipe.execute()


def _after_cursor(
    entries: list[tuple[str, float]], cursor: tuple[float, str] | None
) -> list[tuple[str, float]]:
    """Entries past the cursor: ties on its score are ordered by id, descending."""
    if cursor is None:
        return entries
    score, run_id = cursor
    return [(m, s) for m, s in entries if s < score or (s == score and m < run_id)]


async def list_runs(
    client: aioredis.Redis,
    namespace: str,
    *,
    where: RunFilter | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> RunPage:
    """A page of the namespace's runs (or one workflow's), newest first."""
    where = where or RunFilter()
    index = (
        keys.workflow_runs_index(namespace, where.workflow)
        if where.workflow
        else keys.runs_index(namespace)
    )
    at = decode_cursor(cursor) if cursor else None
    top = repr(at[0]) if at else ("(" + repr(where.until_ms) if where.until_ms else "+inf")
    page: list[runs.RunSummary] = []
    scanned = 0
    last: tuple[float, str] | None = at
    while scanned < SCAN_MOST:
        entries = _after_cursor(await _batch(client, index, top, SCAN_BATCH + 1), last)
        if not entries:
            return RunPage(page, None)
        entries = entries[:SCAN_BATCH]
        scanned += len(entries)
        summaries = await _read(client, namespace, [m for m, _ in entries])
        gone = [m for (m, _), s in zip(entries, summaries, strict=True) if s is None]
        await _forget(client, namespace, [(m, where.workflow or "") for m in gone])
        for (member, score), summary in zip(entries, summaries, strict=True):
            last = (score, member)
            if where.since_ms is not None and score < where.since_ms:
                return RunPage(page, None)  # older than the window: nothing further matches
            if summary is not None and where.admits(summary):
                page.append(summary)
                if len(page) == limit:
                    return RunPage(page, encode_cursor(score, member))
        top = repr(entries[-1][1])
    assert last is not None
    return RunPage(page, encode_cursor(*last))


async def prune_in(
    client: aioredis.Redis,
    workflows: Iterable[tuple[str, str]],
    *,
    oldest: int = PRUNE_OLDEST,
) -> int:
    """Remove the expired runs among the oldest entries of the indexes of the given
    workflows (namespace, name) and of their namespaces; how many entries were removed.
    A retired workflow's index expires with its runs (trimtab.queue.workflows.retire)."""
    pairs = sorted(set(workflows))
    indexes = sorted({(ns, keys.runs_index(ns)) for ns, _ in pairs})
    indexes += [(ns, keys.workflow_runs_index(ns, name)) for ns, name in pairs]
    removed = 0
    for namespace, index in indexes:
        removed += await _prune(client, namespace, index, oldest)
    return removed


async def _prune(client: aioredis.Redis, namespace: str, index: str, oldest: int) -> int:
    entries: Any = await client.zrange(index, 0, oldest - 1)
    if not entries:
        return 0
    async with client.pipeline(transaction=False) as pipe:
        for run_id in entries:
            pipe.exists(keys.run(namespace, run_id))
        alive: Any = await pipe.execute()
    gone = [run_id for run_id, live in zip(entries, alive, strict=True) if not live]
    if gone:
        await client.zrem(index, *gone)
    return len(gone)

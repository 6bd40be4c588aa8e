"""The ended-runs outbox: each namespace's stream of runs as they end (keys.ended_runs),
written by the script that ends a run in the same atomic step (_ending.lua), and read
here by the operator, which records each run's span once the run is over.

Reading is at least once: entries are read under one consumer group and acknowledged
after they are handled; an operator that dies between the two reads its own pending
entries again first. The run's whole record is read with its entry, while the run
lives (an entry whose run expired comes back with `run` None).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

from trimtab.queue import keys, messages, runs, wire

GROUP = "operator"
CONSUMER = "operator"  # one leader reads at a time (trimtab.handlers.leadership)


@dataclasses.dataclass(frozen=True)
class EndedRun:
    entry_id: str
    namespace: str
    run_id: str
    status: wire.RunStatus
    at_ms: float
    run: runs.RunState | None  # None: the run has expired since


async def _ensure_group(client: aioredis.Redis, stream: str) -> None:
    try:
        await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except redis_exceptions.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def read(client: aioredis.Redis, namespace: str, count: int = 500) -> list[EndedRun]:
    """The next ended runs of the namespace to handle: entries read earlier and never
    acknowledged first (a restart), then new ones; at most `count`."""
    stream = keys.ended_runs(namespace)
    entries = await _read(client, stream, "0", count)
    if entries is None:
        await _ensure_group(client, stream)
        entries = []
    if not entries:
        entries = await _read(client, stream, ">", count) or []
    return await _with_records(client, namespace, entries)


async def _read(
    client: aioredis.Redis, stream: str, start: str, count: int
) -> list[tuple[str, dict[str, str]]] | None:
    """Entries from `start` ("0": own pending, ">": new); None when there is no group."""
    try:
        found: Any = await client.xreadgroup(GROUP, CONSUMER, {stream: start}, count=count)
    except redis_exceptions.ResponseError as exc:
        if "NOGROUP" in str(exc):
            return None
        raise
    out = []
    for _, items in found or []:
        for entry_id, fields in items:
            if fields:  # a pending entry trimmed away since comes back empty
                decoded = {messages.text(k): messages.text(v) for k, v in fields.items()}
                out.append((messages.text(entry_id), decoded))
            else:
                await client.xack(stream, GROUP, entry_id)
    return out


async def _with_records(
    client: aioredis.Redis, namespace: str, entries: list[tuple[str, dict[str, str]]]
) -> list[EndedRun]:
    async with client.pipeline(transaction=False) as pipe:
        for _, fields in entries:
            pipe.hgetall(fields[wire.EndedField.RUN_KEY])
        found: list[Any] = await pipe.execute() if entries else []
    out = []
    for (entry_id, fields), raw in zip(entries, found, strict=True):
        run_id = keys.run_id_of(fields[wire.EndedField.RUN_KEY])
        decoded = {messages.text(k): messages.text(v) for k, v in raw.items()}
        out.append(
            EndedRun(
                entry_id=entry_id,
                namespace=namespace,
                run_id=run_id,
                status=wire.RunStatus(fields[wire.EndedField.STATUS]),
                at_ms=float(fields[wire.EndedField.AT_MS]),
                run=runs.parse(namespace, run_id, decoded) if decoded else None,
            )
        )
    return out


async def ack(client: aioredis.Redis, namespace: str, entry_ids: list[str]) -> None:
    """Handled: the entries leave the group's pending list and the stream."""
    if entry_ids:
        stream = keys.ended_runs(namespace)
        async with client.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, *entry_ids)
            pipe.xdel(stream, *entry_ids)
            await pipe.execute()


@dataclasses.dataclass(frozen=True)
class Ages:
    """Seconds the oldest entry of each of the namespace's waiting streams has waited
    (0: none): ended runs not yet handled, and steps waiting for a reviewer."""

    ended: float
    review: float


async def ages(client: aioredis.Redis, namespace: str, now_ms: float) -> Ages:
    """One pipelined read; a stream entry's id is the time it was added, in ms."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.xrange(keys.ended_runs(namespace), count=1)
        pipe.xrange(keys.review(namespace), count=1)
        outbox, reviews = await pipe.execute()

    def age(found: Any) -> float:
        if not found:
            return 0.0
        added_ms = int(messages.text(found[0][0]).split("-", 1)[0])
        return max(0.0, (now_ms - added_ms) / 1000)

    return Ages(ended=age(outbox), review=age(reviews))

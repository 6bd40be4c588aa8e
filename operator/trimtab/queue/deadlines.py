"""Runs past their deadline, ended wherever their steps are.

A worker enforces a run's `deadlineSeconds` on the steps it handles (none starts late,
no call runs past it, no retry waits past it), but a step can wait where no worker
looks: on a pool with no workers, in review. So submit.lua files every run with a
deadline in its namespace's deadline set, and the operator sweeps it each second:
timeout.lua ends an overdue run that has not ended (failed, timed out, its unfinished
steps cancelled) and forgets one that has.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from redis import asyncio as aioredis

from trimtab.metrics import ErrorType, described
from trimtab.queue import keys, scripts, wire

REASON = described(ErrorType.DEADLINE_EXCEEDED, "the run reached its deadline before it ended")


async def end_overdue_in(
    client: aioredis.Redis,
    lua: scripts.Scripts,
    namespaces: Iterable[str],
    *,
    now_ms: float,
    limit: int = 200,
) -> dict[str, list[str]]:
    """End the overdue runs of every namespace; the ids ended, by namespace. One
    pipelined read finds the due runs of all namespaces (most have none), then each
    namespace's are ended in batches of `limit` until none is left."""
    ended: dict[str, list[str]] = {}
    pending = list(namespaces)
    while pending:
        async with client.pipeline(transaction=False) as pipe:
            for ns in pending:
                pipe.zrangebyscore(keys.deadlines(ns), "-inf", now_ms, 0, limit)
            dues: Any = await pipe.execute()
        again = []
        for ns, due in zip(pending, dues, strict=True):
            if due:
                ended.setdefault(ns, []).extend(await _end(client, lua, ns, due, now_ms))
            if len(due) >= limit:
                again.append(ns)
        pending = again
    return ended


async def end_overdue(
    client: aioredis.Redis, lua: scripts.Scripts, namespace: str, *, now_ms: float, limit: int = 200
) -> list[str]:
    """`end_overdue_in` for one namespace: the ids of the runs it ended."""
    found = await end_overdue_in(client, lua, [namespace], now_ms=now_ms, limit=limit)
    return found.get(namespace, [])


async def _end(
    client: aioredis.Redis, lua: scripts.Scripts, namespace: str, due: list[str], now_ms: float
) -> list[str]:
    """timeout.lua for each due run (its workflow, for the stats key, read in one go)."""
    async with client.pipeline(transaction=False) as pipe:
        for run_id in due:
            pipe.hget(keys.run(namespace, run_id), wire.RunField.WORKFLOW)
        workflows: Any = await pipe.execute()
    ended = []
    for run_id, workflow in zip(due, workflows, strict=True):
        reply = await lua.call(
            "timeout",
            [
                keys.run(namespace, run_id),
                keys.run_events(namespace, run_id),
                keys.deadlines(namespace),
                keys.workflow_stats(namespace, workflow or "-"),
                keys.review(namespace),
                keys.ended_runs(namespace),
            ],
            [run_id, REASON, now_ms],
        )
        if wire.Reply(reply) is wire.Reply.TIMED_OUT:
            ended.append(run_id)
    return ended

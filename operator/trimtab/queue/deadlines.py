"""Runs past their deadline, ended wherever their steps are.

A worker enforces a run's `deadlineSeconds` on the steps it handles (none starts late,
no call runs past it, no retry waits past it), but a step can wait where no worker
looks: on a pool with no workers, in review. So submit.lua files every run with a
deadline in its namespace's deadline set, and the operator sweeps it each second:
timeout.lua ends an overdue run that has not ended (failed, timed out, its unfinished
steps cancelled) and forgets one that has.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, scripts, wire


async def end_overdue(
    client: aioredis.Redis, lua: scripts.Scripts, namespace: str, *, now_ms: float, limit: int = 200
) -> list[str]:
    """End the namespace's runs whose deadline is past, in batches of `limit` until none
    is left; the ids of those it ended (a run that ended in time is only forgotten)."""
    ended: list[str] = []
    while True:
        batch = await _end_batch(client, lua, namespace, now_ms=now_ms, limit=limit)
        ended += batch.ended
        if batch.seen < limit:
            return ended


@dataclasses.dataclass(frozen=True)
class _Batch:
    seen: int
    ended: list[str]


async def _end_batch(
    client: aioredis.Redis, lua: scripts.Scripts, namespace: str, *, now_ms: float, limit: int
) -> _Batch:
    due: Any = await client.zrangebyscore(keys.deadlines(namespace), "-inf", now_ms, 0, limit)
    ended = []
    for run_id in due:
        run_key = keys.run(namespace, run_id)
        workflow: Any = await client.hget(run_key, wire.RunField.WORKFLOW)
        reply = await lua.call(
            "timeout",
            [
                run_key,
                keys.run_events(namespace, run_id),
                keys.deadlines(namespace),
                keys.workflow_stats(namespace, workflow or "-"),
                keys.review(namespace),
            ],
            [run_id, "deadline_exceeded: the run reached its deadline before it ended", now_ms],
        )
        if wire.Reply(reply) is wire.Reply.TIMED_OUT:
            ended.append(run_id)
    return _Batch(len(due), ended)

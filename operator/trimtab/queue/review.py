"""The per-namespace human review queue: steps parked for a person to approve, edit or
reject, each entry holding the run, the step, the output in question and why.

Entries live on a stream with no TTL, so nothing in review expires before its run does;
resolving one removes it. Approval goes through complete.lua like any completion (the
step's state says it came from review), so the run carries on exactly as if the worker
had completed the step. This module is the entry's codec: `entry_fields` writes it
(review.lua adds it as given), `_item` reads it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, messages, scripts, wire


class ReviewNotFoundError(LookupError):
    """No review entry with that id (never, or resolved already)."""


@dataclasses.dataclass(frozen=True)
class ReviewItem:
    id: str
    namespace: str
    run_id: str
    step: str
    attempt: int
    workflow: str
    generation: int
    pool: str
    reason: str
    output: Any  # None when no usable output was produced
    tokens: int
    cost: float
    at_ms: float
    priority: wire.Priority = wire.Priority.NORMAL

    def task(self) -> messages.Task:
        """The step attempt this entry holds, as the completion scripts identify it."""
        return messages.Task(
            namespace=self.namespace,
            run_id=self.run_id,
            step=self.step,
            attempt=self.attempt,
            workflow=self.workflow,
            generation=self.generation,
            enqueued_ms=self.at_ms,
            priority=self.priority,
        )


def entry_fields(
    task: messages.Task,
    *,
    pool: str,
    reason: str,
    output: Any,
    tokens: int,
    cost: float,
    at_ms: float,
) -> list[str]:
    """The review entry of a step attempt parked for a person, as flat field/value pairs:
    the task message as trimtab.queue.messages encodes it, the output in question, why."""
    return [
        *task.encode(),
        *("pool", pool, "reason", reason, "output", "" if output is None else json.dumps(output)),
        *("tokens", str(tokens), "cost", repr(float(cost)), "at", f"{at_ms:.3f}"),
    ]


def _item(namespace: str, entry_id: str, f: dict[str, str]) -> ReviewItem:
    raw = f.get("output") or ""
    try:
        output = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        output = raw
    task = messages.decode(f)  # the entry starts with the task message
    return ReviewItem(
        id=entry_id,
        namespace=namespace,
        run_id=task.run_id,
        step=task.step,
        attempt=task.attempt,
        workflow=task.workflow,
        generation=task.generation,
        priority=task.priority,
        pool=f["pool"],
        reason=f.get("reason", ""),
        output=output,
        tokens=int(f.get("tokens") or 0),
        cost=float(f.get("cost") or 0),
        at_ms=float(f.get("at") or 0),
    )


async def list_items(client: aioredis.Redis, namespace: str, count: int = 100) -> list[ReviewItem]:
    """The oldest `count` entries waiting for review."""
    found: Any = await client.xrange(keys.review(namespace), count=count)
    return [_item(namespace, eid, fields) for eid, fields in found]


async def get(client: aioredis.Redis, namespace: str, review_id: str) -> ReviewItem:
    found: Any = await client.xrange(keys.review(namespace), min=review_id, max=review_id)
    if not found:
        raise ReviewNotFoundError(f"no review {namespace}/{review_id} (resolved, or never)")
    return _item(namespace, *found[0])


async def remove(client: aioredis.Redis, namespace: str, review_id: str) -> None:
    await client.xdel(keys.review(namespace), review_id)


async def reject(
    lua: scripts.Scripts, item: ReviewItem, *, reason: str, now_ms: float
) -> wire.Reply:
    """Fail the step and its run: REJECTED, or STALE when it had moved on already."""
    return wire.Reply(
        await lua.call(
            "reject",
            [
                keys.run(item.namespace, item.run_id),
                keys.run_events(item.namespace, item.run_id),
                keys.review(item.namespace),
                keys.workflow_stats(item.namespace, item.workflow),
                keys.ended_runs(item.namespace),
            ],
            [item.step, item.attempt, item.id, reason[:2000], now_ms],
        )
    )

"""The per-namespace dead-letter stream: steps that exhausted their retries (and their
fallback), kept with the reason until someone retries or purges them.

Retrying resumes the run where it stopped: the step's next attempt, with a fresh retry
budget, goes onto its pool's stream, atomically with removing the entry (resume.lua).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, messages, runs, scripts


class DeadLetterNotFoundError(LookupError):
    """No dead-letter entry with that id."""


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    id: str
    namespace: str
    run_id: str | None  # None for a malformed message that never belonged to a run
    step: str | None
    attempt: int
    workflow: str | None
    pool: str
    reason: str
    at_ms: float | None
    raw: str | None  # the malformed message's fields, when that is why it is here


def _entry(namespace: str, entry_id: str, f: dict[str, str]) -> DeadLetter:
    return DeadLetter(
        id=entry_id,
        namespace=namespace,
        run_id=f.get("run"),
        step=f.get("step"),
        attempt=int(f.get("att") or 0),
        workflow=f.get("wf"),
        pool=f.get("pool", ""),
        reason=f.get("reason", ""),
        at_ms=float(f["at"]) if f.get("at") else None,
        raw=f.get("raw"),
    )


async def list_entries(
    client: aioredis.Redis, namespace: str, count: int = 100
) -> list[DeadLetter]:
    found: Any = await client.xrange(keys.dead_letter(namespace), count=count)
    return [_entry(namespace, eid, fields) for eid, fields in found]


async def get(client: aioredis.Redis, namespace: str, entry_id: str) -> DeadLetter:
    found: Any = await client.xrange(keys.dead_letter(namespace), min=entry_id, max=entry_id)
    if not found:
        raise DeadLetterNotFoundError(f"no dead-letter entry {namespace}/{entry_id}")
    return _entry(namespace, *found[0])


async def resume(
    client: aioredis.Redis, lua: scripts.Scripts, entry: DeadLetter, *, now_ms: float
) -> str:
    """Retry the entry's step: 'resumed', or why not ('gone': the run expired;
    'not-dead': the step is no longer dead; 'stale': it was retried already;
    'malformed': the entry never was a step)."""
    if entry.run_id is None or entry.step is None or entry.workflow is None:
        return "malformed"
    run = await runs.read(client, entry.namespace, entry.run_id)
    if run is None:
        return "gone"
    task = messages.Task(
        namespace=entry.namespace,
        run_id=entry.run_id,
        step=entry.step,
        attempt=entry.attempt + 1,
        workflow=entry.workflow,
        generation=run.generation,
        enqueued_ms=now_ms,
        budget_from=entry.attempt,
    )
    flat = [x for pair in task.fields().items() for x in pair]
    return str(
        await lua.call(
            "resume",
            [
                keys.run(entry.namespace, entry.run_id),
                keys.run_events(entry.namespace, entry.run_id),
                keys.pool_stream(entry.namespace, entry.pool),
                keys.dead_letter(entry.namespace),
                keys.workflow_stats(entry.namespace, entry.workflow),
            ],
            [entry.step, entry.id, now_ms, *flat],
        )
    )


async def purge(client: aioredis.Redis, namespace: str, entry_ids: list[str] | None) -> int:
    """Delete the given entries, or every entry when `entry_ids` is None."""
    stream = keys.dead_letter(namespace)
    if entry_ids is None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.xlen(stream)
            pipe.delete(stream)
            count, _ = await pipe.execute()
        return int(count)
    return int(await client.xdel(stream, *entry_ids)) if entry_ids else 0

"""The per-namespace dead-letter stream: steps that exhausted their retries (and their
fallback), kept with the reason until someone retries or purges them.

Retrying resumes the run where it stopped: each dead step's next attempt, with a fresh
retry budget, goes onto its pool's stream, atomically with removing the entries
(resume.lua); a run's dead steps are resumed together, never one of several.
This module is the entry's codec: `entry_fields` writes it (fail.lua adds it as given),
`_entry` reads it.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys, messages, runs, scripts, wire

log = logging.getLogger(__name__)


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


def entry_fields(task: messages.Task, *, pool: str, reason: str, at_ms: float) -> list[str]:
    """The dead-letter entry of a step attempt given up on, as flat field/value pairs:
    the task message as trimtab.queue.messages encodes it, and why."""
    return [*task.encode(), "pool", pool, "reason", reason, "at", f"{at_ms:.3f}"]


async def message(
    client: aioredis.Redis, namespace: str, stream: str, msg_id: str, entry: dict[Any, Any]
) -> None:
    """A message that never became a step attempt (malformed, or one no worker can
    process): its entry into the dead-letter stream and its acknowledgement, in one
    transaction."""
    log.error("dead-lettering %s on %s: %s", msg_id, stream, entry["reason"])
    async with client.pipeline(transaction=True) as pipe:
        pipe.xadd(
            keys.dead_letter(namespace), entry, maxlen=wire.DEAD_LETTERS_MAX, approximate=True
        )
        pipe.xack(stream, keys.GROUP, msg_id)
        await pipe.execute()


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


async def _run_entries(
    client: aioredis.Redis, entry: DeadLetter, run: runs.RunState
) -> list[DeadLetter]:
    """`entry` and the entries of the run's other dead steps, one per step (the newest);
    an entry for a step that is not dead (a message no worker could process, naming a
    run) is not the run's to resume."""
    found: Any = await client.xrange(keys.dead_letter(entry.namespace))
    by_step = {entry.step: entry}
    for eid, fields in found:
        other = _entry(entry.namespace, eid, fields)
        same_run = other.run_id == entry.run_id and other.step != entry.step
        step = run.steps.get(other.step or "")
        if same_run and step is not None and step.state is wire.StepState.DEAD:
            by_step[other.step] = other
    return list(by_step.values())


async def _to_resume(
    client: aioredis.Redis, entry: DeadLetter, run: runs.RunState
) -> list[tuple[str, str, int, str]]:
    """(step, dead-letter id, its last attempt, pool) of every step resuming the run
    queues: the dead ones by their entries, and the ones the failure cancelled before
    they ran (no entry: id '')."""
    found = []
    for dead in await _run_entries(client, entry, run):
        assert dead.step is not None  # kept by _run_entries
        found.append((dead.step, dead.id, dead.attempt, dead.pool))
    for name, step in sorted(run.steps.items()):
        if step.state is wire.StepState.CANCELLED and step.pool:
            found.append((name, "", step.attempt, step.pool))
    return found


@dataclasses.dataclass(frozen=True)
class Resumed:
    """What resuming a dead letter did: `outcome`, and the steps it names (the one that
    was not dead or was retried already, or the others still dead with no entry)."""

    outcome: wire.Reply
    steps: tuple[str, ...] = ()


async def resume(
    client: aioredis.Redis, lua: scripts.Scripts, entry: DeadLetter, *, now_ms: float
) -> Resumed:
    """Retry the entry's run from its dead steps, every one of them at once (a run with
    one branch still dead would never end): RESUMED, or why not (GONE: the run expired;
    NOT_DEAD: a step is no longer dead; STALE: it was retried already; OTHERS_DEAD: the
    run has dead steps without an entry, purged; TIMED_OUT: the run ended at its
    deadline; COMPENSATED: the run's compensations began; MALFORMED: the entry never
    was a step). The steps the failure cancelled
    before they ran are queued again too."""
    if entry.run_id is None or entry.step is None or entry.workflow is None:
        return Resumed(wire.Reply.MALFORMED)
    for _ in range(RESUME_TRIES):
        resumed = await _resume_once(client, lua, entry, now_ms=now_ms)
        if resumed.outcome is not wire.Reply.CONFLICT:
            return resumed
    return resumed  # the run kept changing under us: the caller sees CONFLICT


RESUME_TRIES = 5


async def _resume_once(
    client: aioredis.Redis, lua: scripts.Scripts, entry: DeadLetter, *, now_ms: float
) -> Resumed:
    assert entry.run_id is not None  # checked by resume
    assert entry.workflow is not None
    run = await runs.read(client, entry.namespace, entry.run_id)
    if run is None:
        return Resumed(wire.Reply.GONE)
    script_keys = [
        keys.run(entry.namespace, entry.run_id),
        keys.run_events(entry.namespace, entry.run_id),
        keys.dead_letter(entry.namespace),
        keys.workflow_stats(entry.namespace, entry.workflow),
        keys.deadlines(entry.namespace),
    ]
    args: list[Any] = [now_ms, entry.run_id]
    for step, entry_id, attempt, pool in await _to_resume(client, entry, run):
        task = messages.Task(
            namespace=entry.namespace,
            run_id=entry.run_id,
            step=step,
            attempt=attempt + 1,
            workflow=entry.workflow,
            generation=run.generation,
            enqueued_ms=now_ms,
            budget_from=attempt,
            priority=run.priority,
        )
        fields = task.encode()
        script_keys.append(keys.pool_stream(entry.namespace, pool, run.priority))
        args += [step, entry_id, task.attempt, len(fields), *fields]
    reply, *steps = await lua.call("resume", script_keys, args)
    return Resumed(wire.Reply(reply), tuple(steps))


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

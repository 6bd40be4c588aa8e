"""Runs in Redis: submitting one with its roots, reading its state, following its events.

A run is a hash: run-level fields (workflow, generation, status, inputs, counters) and
per-step fields `s:<step>:<attr>` (state, attempt, pool, output, timings, tokens, cost).
This module is the hash's codec on the Python side (`NewRun.fields`, `parse`); the states
and statuses it holds are trimtab.queue.wire's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

from trimtab.queue import attempts, keys, messages, scripts, wire


@dataclasses.dataclass(frozen=True)
class StepView:
    state: wire.StepState
    attempt: int
    pool: str | None
    output: Any
    error: str | None
    tokens: int
    cost: float
    queued_ms: float | None
    started_ms: float | None
    ended_ms: float | None
    compensation: wire.Compensation | None = None  # how its undoing ended, if it did
    compensation_error: str | None = None
    transcript: str | None = None  # an agent step's, as JSON (trimtab.queue.transcripts)
    review: str | None = None  # its review entry's id, while it waits for a person
    attempt_log: tuple[attempts.AttemptView, ...] = ()  # its ended attempts, oldest first
    worker: str | None = None  # the consumer of its latest delivery
    capacity: str | None = None  # the capacity type that worker ran on, when it knew


@dataclasses.dataclass(frozen=True)
class RunView:
    """What running one step needs of its run: inputs, the run's version, and the
    outputs it was given (its dependencies', or every finished step's)."""

    inputs: Any
    version: int
    step_outputs: dict[str, Any]
    created_ms: float = 0.0
    tokens: int = 0  # used by the run so far, for budgets
    cost: float = 0.0
    session: str | None = None
    traceparent: str | None = None  # its submitter's span, if it continues that trace

    def outputs(self) -> dict[str, Any]:
        return self.step_outputs


@dataclasses.dataclass(frozen=True)
class RunState:
    run_id: str
    namespace: str
    workflow: str
    generation: int
    status: wire.RunStatus
    inputs: Any
    created_ms: float
    ended_ms: float | None
    tokens: int
    cost: float
    version: int
    steps: dict[str, StepView]
    cache_hits: int = 0  # cached steps answered from the response cache
    cache_misses: int = 0
    error: str | None = None  # why the run ended when no step says (its deadline)
    priority: wire.Priority = wire.Priority.NORMAL
    session: str | None = None
    idempotency_key: str | None = None  # the key it was submitted with, if any
    traceparent: str | None = None  # its submitter's span, if it continues that trace

    def outputs(self) -> dict[str, Any]:
        return {name: s.output for name, s in self.steps.items() if s.state is wire.StepState.DONE}

    def view(self) -> RunView:
        return RunView(
            inputs=self.inputs,
            version=self.version,
            step_outputs=self.outputs(),
            created_ms=self.created_ms,
            tokens=self.tokens,
            cost=self.cost,
            session=self.session,
        )


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """One run as a list shows it (trimtab.queue.runindex); `read` has the rest."""

    run_id: str
    workflow: str
    status: wire.RunStatus
    created_ms: float
    ended_ms: float | None
    tokens: int
    cost: float
    error: str | None


# The run-hash fields a summary reads, in parse_summary's order.
SUMMARY_FIELDS = (
    wire.RunField.WORKFLOW,
    wire.RunField.STATUS,
    wire.RunField.CREATED_MS,
    wire.RunField.ENDED_MS,
    wire.RunField.TOKENS,
    wire.RunField.COST,
    wire.RunField.ERROR,
)


def parse_summary(run_id: str, values: list[Any]) -> RunSummary | None:
    """A summary from SUMMARY_FIELDS' values; None when the run is gone (expired)."""
    workflow, status, created, ended, tokens, cost, error = values
    if workflow is None or status is None:
        return None
    return RunSummary(
        run_id=run_id,
        workflow=workflow,
        status=wire.RunStatus(status),
        created_ms=float(created or 0),
        ended_ms=_float(ended),
        tokens=_int(tokens) or 0,
        cost=float(cost or 0),
        error=error,
    )


@dataclasses.dataclass(frozen=True)
class NewRun:
    """A run to create: its workflow generation, inputs, and the pools of its roots."""

    namespace: str
    workflow: str
    generation: int
    steps: list[str]
    run_id: str
    inputs: Any
    root_pools: Mapping[str, str]
    ttl_seconds: int
    now_ms: float
    idempotency_key: str | None = None
    deadline_seconds: int | None = None
    concurrency_limit: int | None = None  # runs of the workflow under way at once
    concurrency_key: tuple[str, int] | None = None  # (the run's key value, its limit)
    priority: wire.Priority = wire.Priority.NORMAL
    session: str | None = None
    traceparent: str | None = None  # the submitter's span (trimtab.telemetry.ids)

    def fields(self) -> dict[str, Any]:
        f = wire.RunField
        fields: dict[str, Any] = {
            f.WORKFLOW: self.workflow,
            f.GENERATION: self.generation,
            f.STATUS: wire.RunStatus.RUNNING.value,
            f.INPUTS: json.dumps(self.inputs),
            f.CREATED_MS: self.now_ms,
            f.VERSION: 0,
            f.REMAINING: len(self.steps),
            f.TOKENS: 0,
            f.COST: 0,
            f.PRIORITY: self.priority.value,
            **({f.SESSION: self.session} if self.session else {}),
            **({f.TRACEPARENT: self.traceparent} if self.traceparent else {}),
            **({f.IDEMPOTENCY_KEY: self.idempotency_key} if self.idempotency_key else {}),
        }
        fields.update(
            {
                wire.step_field(s, wire.StepField.STATE): wire.StepState.PENDING.value
                for s in self.steps
            }
        )
        return fields

    def first_attempt(self, step: str) -> messages.Task:
        """The task message that enqueues a root step."""
        return messages.Task(
            namespace=self.namespace,
            run_id=self.run_id,
            step=step,
            attempt=1,
            workflow=self.workflow,
            generation=self.generation,
            enqueued_ms=self.now_ms,
            priority=self.priority,
        )


class RedisFullError(RuntimeError):
    """Redis is too full to take a new run; runs under way go on."""


async def submitted_as(
    client: aioredis.Redis, namespace: str, workflow: str, idempotency_key: str
) -> str | None:
    """The id of the run an idempotency key already started, or None."""
    found: Any = await client.get(keys.idempotency(namespace, workflow, idempotency_key))
    return None if found is None else messages.text(found)


async def submit(lua: scripts.Scripts, new: NewRun) -> tuple[bool, str]:
    """Create the run and enqueue its roots on their pools; (created, run id). A repeated
    idempotency key or run id returns the existing run and writes nothing. Raises
    RedisFullError when Redis uses more than ADMIT_BELOW_PERCENT of its maxmemory."""
    ns, fields = new.namespace, new.fields()
    idem = keys.idempotency(ns, new.workflow, new.idempotency_key) if new.idempotency_key else ""
    run_key = keys.run(ns, new.run_id)
    roots = list(new.root_pools.items())
    script_keys = [
        run_key,
        keys.run_events(ns, new.run_id),
        idem or run_key,
        keys.workflow_stats(ns, new.workflow),
        keys.deadlines(ns),
        keys.workflow_admitted(ns, new.workflow),
        keys.workflow_waiting(ns, new.workflow),
    ]
    if new.concurrency_key is None:
        script_keys += [run_key, run_key]  # placeholders: no key limit
    else:
        value = new.concurrency_key[0]
        script_keys += [
            keys.workflow_key_admitted(ns, new.workflow, value),
            keys.workflow_key_waiting(ns, new.workflow, value),
        ]
    script_keys += [keys.runs_index(ns), keys.workflow_runs_index(ns, new.workflow)]
    script_keys += [keys.pool_stream(ns, pool, new.priority) for _, pool in roots]
    deadline = new.deadline_seconds
    args: list[Any] = [
        new.run_id,
        new.ttl_seconds,
        new.now_ms,
        "1" if idem else "0",
        "" if deadline is None else new.now_ms + deadline * 1000,
        "" if new.concurrency_limit is None else new.concurrency_limit,
        "" if new.concurrency_key is None else new.concurrency_key[1],
        len(fields),
        *(x for kv in fields.items() for x in kv),
    ]
    for step, pool in roots:
        message = new.first_attempt(step).encode()
        args += [step, pool, len(message), *message]
    try:
        created, rid, *limit = await lua.call("submit", script_keys, args)
    except redis_exceptions.OutOfMemoryError as exc:  # past maxmemory: refused by Redis
        raise _full(str(exc)) from exc
    if int(created) < 0:
        used, most = int(rid) / 2**20, int(limit[0]) / 2**20
        raise _full(f"{used:.1f} of {most:.1f} MiB", f" above {wire.ADMIT_BELOW_PERCENT}%")
    return bool(int(created)), str(rid)


def _full(why: str, threshold: str = "") -> RedisFullError:
    return RedisFullError(
        f"Redis is full ({why}): new runs are refused{threshold} until runs finish or "
        "expire; runs under way go on"
    )


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _int(value: str | None) -> int | None:
    return int(float(value)) if value not in (None, "") else None


def _step(raw: Mapping[str, str], name: str) -> StepView:
    field = wire.StepField

    def get(attr: wire.StepField) -> str | None:
        return raw.get(wire.step_field(name, attr))

    out = get(field.OUTPUT)
    return StepView(
        state=wire.StepState(get(field.STATE) or wire.StepState.PENDING),
        attempt=_int(get(field.ATTEMPT)) or 0,
        pool=get(field.POOL),
        output=json.loads(out) if out is not None else None,
        error=get(field.ERROR),
        tokens=_int(get(field.TOKENS)) or 0,
        cost=float(get(field.COST) or 0),
        queued_ms=_float(get(field.QUEUED_MS)),
        started_ms=_float(get(field.STARTED_MS)),
        ended_ms=_float(get(field.ENDED_MS)),
        compensation=wire.Compensation(undo) if (undo := get(field.UNDO)) else None,
        compensation_error=get(field.UNDO_ERROR),
        transcript=get(field.TRANSCRIPT),
        review=get(field.REVIEW) if get(field.STATE) == wire.StepState.REVIEW else None,
        attempt_log=attempts.parse_log(get(field.ATTEMPTS)),
        worker=get(field.WORKER),
        capacity=get(field.CAPACITY) or None,
    )


def parse(namespace: str, run_id: str, raw: Mapping[str, str]) -> RunState:
    found = (wire.step_of_field(k, wire.StepField.STATE) for k in raw)
    names = sorted(n for n in found if n is not None)
    f = wire.RunField
    return RunState(
        run_id=run_id,
        namespace=namespace,
        workflow=raw[f.WORKFLOW],
        generation=int(raw[f.GENERATION]),
        status=wire.RunStatus(raw[f.STATUS]),
        inputs=json.loads(raw[f.INPUTS]),
        created_ms=float(raw[f.CREATED_MS]),
        ended_ms=_float(raw.get(f.ENDED_MS)),
        tokens=int(raw.get(f.TOKENS, 0)),
        cost=float(raw.get(f.COST, 0)),
        version=int(raw.get(f.VERSION, 0)),
        steps={n: _step(raw, n) for n in names},
        cache_hits=int(raw.get(f.CACHE_HITS, 0)),
        cache_misses=int(raw.get(f.CACHE_MISSES, 0)),
        error=raw.get(f.ERROR),
        priority=wire.Priority(raw.get(f.PRIORITY, wire.Priority.NORMAL)),
        session=raw.get(f.SESSION),
        idempotency_key=raw.get(f.IDEMPOTENCY_KEY),
        traceparent=raw.get(f.TRACEPARENT),
    )


async def read(client: aioredis.Redis, namespace: str, run_id: str) -> RunState | None:
    """The run's current state, or None when unknown or expired."""
    raw: Any = await client.hgetall(keys.run(namespace, run_id))
    return parse(namespace, run_id, raw) if raw else None


async def events(
    client: aioredis.Redis,
    namespace: str,
    run_id: str,
    *,
    after: str = "0",
    block_ms: int | None = None,
    count: int = 100,
) -> list[tuple[str, dict[str, str]]]:
    """Events after id `after`; with block_ms, waits up to that long for the first one."""
    found: Any = await client.xread(
        {keys.run_events(namespace, run_id): after}, count=count, block=block_ms
    )
    return [(eid, dict(fields)) for _, entries in found for eid, fields in entries]


async def note_step_error(
    client: aioredis.Redis, namespace: str, run_id: str, step: str, reason: str
) -> None:
    """Say why a step that is done gave up (its output stands in: trimtab.worker.finish)."""
    field = wire.step_field(step, wire.StepField.ERROR)
    await client.hset(keys.run(namespace, run_id), field, reason[:2000])


async def given_up_among(client: aioredis.Redis, runs_: list[tuple[str, str]]) -> list[bool]:
    """For each (namespace, run id), whether the run has failed or was cancelled
    (wire.GIVEN_UP), in one round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for namespace, run_id in runs_:
            pipe.hget(keys.run(namespace, run_id), wire.RunField.STATUS)
        found: Any = await pipe.execute()
    return [status in wire.GIVEN_UP for status in found]

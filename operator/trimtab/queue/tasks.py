"""A pool's steps as its workers move them: start, complete, retry, fail, escalate,
park for review. Taking work from the pool's streams (one per priority level), and
reclaiming, heartbeating and releasing it, is trimtab.queue.intake's.

Every script first checks that the delivery is still the step's current attempt, so a
redelivered or superseded message is acknowledged and dropped instead of running twice.
Each acknowledges the delivery on the stream it came from; a step enqueued next (a
dependent, a retry, an escalation) goes onto the stream of its run's priority.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import deadletter, intake, keys, messages, review, runs, scripts, wire

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Dependent:
    """A dependent of the completing step and the other steps it waits on (the DAG's
    `Plan.waits_after`); `pool` is '' when it cannot be chosen yet."""

    name: str
    pool: str
    routed: bool
    waits_on: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Started:
    outcome: wire.Reply  # RUN | DUPLICATE (dropped) | EXHAUSTED (caller must fail it)
    view: runs.RunView | None = None
    delivery: intake.Delivery | None = None  # the delivery with its fence (RUN, EXHAUSTED)


@dataclasses.dataclass(frozen=True)
class Completion:
    outcome: wire.Reply  # OK | DUPLICATE | CONFLICT | TERMINAL (an approval in a failed run)
    remaining: int | None = None
    enqueued: tuple[str, ...] = ()


class PoolQueue:
    """One pool's stream, delayed set and consumer identity."""

    def __init__(
        self,
        client: aioredis.Redis,
        lua: scripts.Scripts,
        *,
        namespace: str,
        pool: str,
        consumer: str,
        capacity: str = "",
    ) -> None:
        self.client, self.lua = client, lua
        self.namespace, self.pool, self.consumer = namespace, pool, consumer
        self.capacity = capacity  # the capacity type its worker runs on, '' when unknown
        self.intake = intake.Intake(client, lua, namespace=namespace, pool=pool, consumer=consumer)

    def stream_for(self, task: messages.Task, pool: str | None = None) -> str:
        """The stream of `pool` (this one by default) that `task`'s run's level uses."""
        return keys.pool_stream(task.namespace, pool or self.pool, task.priority)

    async def dead_letter_unprocessable(
        self, delivery: intake.Delivery, reason: str, *, now_ms: float
    ) -> None:
        """A message no worker can process (its workflow generation is not stored, or it
        names a step its workflow lacks): into the dead-letter stream with why, and
        acknowledged, so it is never redelivered and never pins the stream."""
        flat = deadletter.entry_fields(delivery.task, pool=self.pool, reason=reason, at_ms=now_ms)
        entry = dict(zip(flat[::2], flat[1::2], strict=True))
        await deadletter.message(
            self.client, self.namespace, delivery.stream, delivery.msg_id, entry
        )

    def _run_keys(self, task: messages.Task) -> list[str]:
        return [keys.run(task.namespace, task.run_id), keys.run_events(task.namespace, task.run_id)]

    async def start(
        self,
        delivery: intake.Delivery,
        *,
        now_ms: float,
        max_deliveries: int,
        dependencies: tuple[str, ...] = (),
    ) -> Started:
        """Mark the attempt running and fetch what it needs, in one round trip."""
        task = delivery.task
        raw = await self.lua.call(
            "start",
            [keys.run(task.namespace, task.run_id), delivery.stream],
            [
                task.step,
                task.attempt,
                delivery.msg_id,
                keys.GROUP,
                now_ms,
                max_deliveries,
                self.consumer,
                "1" if delivery.interrupted else "0",
                self.capacity,
                *dependencies,
            ],
        )
        reply = json.loads(raw)
        outcome = wire.Reply(reply["reply"])
        fenced = delivery.fenced(reply["fence"]) if "fence" in reply else None
        if outcome is not wire.Reply.RUN:
            return Started(outcome=outcome, delivery=fenced)
        view = runs.RunView(
            inputs=json.loads(reply["inputs"]),
            version=int(reply["version"] or 0),
            # An empty Lua table encodes as {} and a missing field as false: both mean none.
            step_outputs={d: json.loads(v) for d, v in (reply["outputs"] or {}).items()},
            created_ms=float(reply["created_ms"] or 0),
            tokens=int(reply["tokens"] or 0),
            cost=float(reply["cost"] or 0),
            session=reply["session"] or None,
            traceparent=reply["traceparent"] or None,
        )
        return Started(outcome=outcome, view=view, delivery=fenced)

    async def complete(
        self,
        delivery: intake.Delivery,
        *,
        output: Any,
        tokens: int,
        cost: float,
        now_ms: float,
        expected_version: int | None,
        dependents: list[Dependent],
        compensable: bool = False,
    ) -> Completion:
        """Store the output and enqueue the dependents now ready; `compensable`: the
        step declares `compensate`, to run on this pool should the run fail."""
        task = delivery.task
        run_keys = [
            *self._run_keys(task),
            delivery.stream,
            keys.workflow_stats(task.namespace, task.workflow),
            keys.ended_runs(task.namespace),
        ]
        run_keys += [self.stream_for(task, d.pool) for d in dependents]
        args: list[Any] = [
            *_attempt_args(delivery),
            json.dumps(output),
            tokens,
            repr(float(cost)),
            now_ms,
            "" if expected_version is None else expected_version,
        ]
        if compensable:  # the message is built only for steps that declare compensate
            undo = dataclasses.replace(task, enqueued_ms=now_ms, compensation=True).encode()
            args += [self.stream_for(task), len(undo), *undo]
        else:
            args += ["", 0]
        for d in dependents:
            first = dataclasses.replace(
                task, step=d.name, attempt=1, budget_from=0, enqueued_ms=now_ms
            ).encode()
            args += [d.name, d.pool, "1" if d.routed else "0", len(d.waits_on), *d.waits_on]
            args += [len(first), *first]
        result = await self.lua.call("complete", run_keys, args)
        outcome = wire.Reply(result[0])
        if outcome is not wire.Reply.OK:
            return Completion(outcome=outcome)
        return Completion(outcome=outcome, remaining=int(result[1]), enqueued=tuple(result[2:]))

    async def start_compensation(self, delivery: intake.Delivery) -> int | None:
        """Count a delivery of the compensation `delivery` carries (undo.lua): how many
        there have been, or None when it is not the one out (acknowledged and dropped)."""
        reply = await self._undo(delivery, wire.UndoOp.START)
        return int(reply[1]) if wire.Reply(reply[0]) is wire.Reply.RUN else None

    async def end_compensation(
        self,
        delivery: intake.Delivery,
        outcome: wire.Compensation,
        *,
        error: str | None,
        now_ms: float,
    ) -> wire.Reply:
        """Record how the compensation `delivery` carries ended and send the run's next
        one (undo.lua): COMPENSATED, or DUPLICATE when it was not the one out."""
        reply = await self._undo(
            delivery, wire.UndoOp.FINISH, outcome, (error or "")[:2000], now_ms
        )
        return wire.Reply(reply[0])

    async def _undo(self, delivery: intake.Delivery, op: wire.UndoOp, *more: Any) -> Any:
        task = delivery.task
        return await self.lua.call(
            "undo",
            [*self._run_keys(task), delivery.stream],
            [op, task.step, delivery.msg_id, keys.GROUP, *more],
        )

    async def retry(
        self,
        delivery: intake.Delivery,
        *,
        due_ms: float,
        error: str,
        now_ms: float,
        keep_budget: bool = False,
    ) -> wire.Reply:
        """Schedule the next attempt at `due_ms`; with keep_budget (the attempt never
        reached the endpoint) it does not count against the step's retries."""
        task = delivery.task
        following = dataclasses.replace(
            task,
            attempt=task.attempt + 1,
            budget_from=task.budget_from + int(keep_budget),
            # Its queue wait starts when it is due, not when this attempt failed.
            enqueued_ms=due_ms,
        )
        member = json.dumps(following.encode())
        return wire.Reply(
            await self.lua.call(
                "retry",
                [
                    *self._run_keys(task),
                    delivery.stream,
                    keys.pool_delayed(task.namespace, self.pool, task.priority),
                ],
                [*_attempt_args(delivery), due_ms, error[:2000], now_ms, member],
            )
        )

    async def fail(
        self, delivery: intake.Delivery, *, reason: str, now_ms: float, keep: bool = True
    ) -> wire.Reply:
        """Dead-letter the step and fail its run; `keep`: an entry goes onto the
        namespace's dead-letter stream (the workflow's deadLetter.enabled)."""
        task = delivery.task
        reason = reason[:2000]
        entry = deadletter.entry_fields(task, pool=self.pool, reason=reason, at_ms=now_ms)
        if not keep:
            entry = []
        return wire.Reply(
            await self.lua.call(
                "fail",
                [
                    *self._run_keys(task),
                    delivery.stream,
                    keys.dead_letter(task.namespace),
                    keys.workflow_stats(task.namespace, task.workflow),
                    keys.ended_runs(task.namespace),
                ],
                [*_attempt_args(delivery), reason, now_ms, *entry],
            )
        )

    async def escalate(
        self, delivery: intake.Delivery, *, pool: str, reason: str, now_ms: float
    ) -> wire.Reply:
        """Send the step's next attempt, with a fresh retry budget, to `pool`."""
        task = delivery.task
        following = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.attempt, enqueued_ms=now_ms
        )
        return wire.Reply(
            await self.lua.call(
                "escalate",
                [*self._run_keys(task), delivery.stream, self.stream_for(task, pool)],
                [*_attempt_args(delivery), pool, reason[:2000], now_ms, *following.encode()],
            )
        )

    async def park_for_review(
        self,
        delivery: intake.Delivery,
        *,
        reason: str,
        output: Any,
        tokens: int,
        cost: float,
        now_ms: float,
    ) -> str | wire.Reply:
        """Put the step on the namespace's review stream; returns the review id, or why
        not: DUPLICATE (the delivery was stale: acknowledged, nothing parked) or FULL."""
        task = delivery.task
        reason = reason[:2000]
        entry = review.entry_fields(
            task,
            pool=self.pool,
            reason=reason,
            output=output,
            tokens=tokens,
            cost=cost,
            at_ms=now_ms,
        )
        reply = await self.lua.call(
            "review",
            [
                *self._run_keys(task),
                delivery.stream,
                keys.review(task.namespace),
                keys.workflow_stats(task.namespace, task.workflow),
            ],
            [*_attempt_args(delivery), reason, now_ms, tokens, repr(float(cost)), *entry],
        )
        outcome = wire.Reply(reply[0])
        return str(reply[1]) if outcome is wire.Reply.PARKED else outcome


def _attempt_args(delivery: intake.Delivery) -> list[Any]:
    """What every step script is told first: which attempt, which delivery to ack, and
    the delivery's fence ('' for a reviewer's, who holds no delivery)."""
    task = delivery.task
    return [task.step, task.attempt, delivery.msg_id, keys.GROUP, delivery.fence or ""]

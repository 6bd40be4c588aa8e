"""A pool's task stream as its workers use it: claim, start, complete, retry, fail,
reclaim a dead worker's steps, promote due retries, release on drain.

Delivery is at least once: a step stays pending in the consumer group until one of the
scripts acknowledges it, and another worker reclaims it once it has sat idle past the
visibility timeout (trimtab.queue.redelivery). Every script first checks that the delivery is still
the step's current attempt, so a redelivered or superseded message is acknowledged and
dropped instead of running twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

from trimtab.queue import deadletter, keys, messages, redelivery, review, runs, scripts, trim, wire

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One task message as this consumer received it: the stream entry's id (what the
    scripts acknowledge), the task it carries, and once started, its fence: the token
    start.lua handed this delivery, without which no script moves the step (None: not
    started; a reviewer's delivery has none and acts only for a step in review)."""

    msg_id: str
    task: messages.Task
    fence: str | None = None
    interrupted: bool = False  # reclaimed from a worker that died holding others too

    def fenced(self, fence: str | None) -> Delivery:
        return dataclasses.replace(self, fence=fence)


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
    delivery: Delivery | None = None  # the delivery with its fence (RUN, EXHAUSTED)


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
    ) -> None:
        self.client, self.lua = client, lua
        self.namespace, self.pool, self.consumer = namespace, pool, consumer
        self.stream = keys.pool_stream(namespace, pool)
        self.delayed = keys.pool_delayed(namespace, pool)

    async def ensure_group(self) -> None:
        """Create the stream's consumer group unless it exists; a full Redis refuses
        the create even then, so an existing group is looked up (a read) instead."""
        try:
            await self.client.xgroup_create(self.stream, keys.GROUP, id="0", mkstream=True)
        except redis_exceptions.OutOfMemoryError:
            groups: Any = await self.client.xinfo_groups(self.stream)
            if not any(g["name"] == keys.GROUP for g in groups):
                raise
        except redis_exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, *, block_ms: int | None) -> list[Delivery]:
        """New tasks for this consumer (at most `count`), waiting up to block_ms (None:
        not at all)."""
        found: Any = await self.client.xreadgroup(
            keys.GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return await self._decode([e for _, entries in found for e in entries])

    async def stale(self, *, min_idle_ms: int, count: int) -> list[tuple[str, bool]]:
        """Tasks some consumer took and left idle past min_idle_ms (a dead worker's),
        to reclaim when a slot is free: (id, interrupted) (redelivery.stale)."""
        return await redelivery.stale(
            self.client, self.stream, min_idle_ms=min_idle_ms, count=count
        )

    async def reclaim(self, stale: list[tuple[str, bool]], *, min_idle_ms: int) -> list[Delivery]:
        """Take over the `stale` tasks (redelivery.stale) still idle past min_idle_ms."""
        cut = {msg_id for msg_id, interrupted in stale if interrupted}
        entries = await redelivery.claim(
            self.client, self.stream, self.consumer, [m for m, _ in stale], min_idle_ms=min_idle_ms
        )
        return [
            dataclasses.replace(d, interrupted=d.msg_id in cut) for d in await self._decode(entries)
        ]

    async def forget_dead_consumers(self) -> list[str]:
        return await redelivery.forget_dead_consumers(self.client, self.stream, keep=self.consumer)

    async def heartbeat(self, deliveries: list[Delivery]) -> None:
        """Reset the idle time of tasks still running here, so nobody reclaims them;
        a delivery fenced out by another worker's start is left alone (heartbeat.lua)."""
        if not deliveries:
            return
        run_keys = [keys.run(d.task.namespace, d.task.run_id) for d in deliveries]
        args: list[Any] = [keys.GROUP, self.consumer]
        for d in deliveries:
            args += [d.msg_id, d.task.step, d.fence or ""]
        await self.lua.call("heartbeat", [self.stream, *run_keys], args)

    async def _decode(self, entries: list[Any]) -> list[Delivery]:
        out = []
        for msg_id, fields in entries:
            try:
                out.append(Delivery(msg_id, messages.decode(fields)))
            except messages.MessageError as exc:
                await self._dead_letter_malformed(msg_id, fields, str(exc))
        return out

    async def _dead_letter_malformed(
        self, msg_id: str, fields: dict[str, str], reason: str
    ) -> None:
        entry = {"pool": self.pool, "reason": reason, "raw": json.dumps(fields)}
        await deadletter.message(self.client, self.namespace, self.stream, msg_id, entry)

    async def dead_letter_unprocessable(
        self, delivery: Delivery, reason: str, *, now_ms: float
    ) -> None:
        """A message no worker can process (its workflow generation is not stored, or it
        names a step its workflow lacks): into the dead-letter stream with why, and
        acknowledged, so it is never redelivered and never pins the stream."""
        flat = deadletter.entry_fields(delivery.task, pool=self.pool, reason=reason, at_ms=now_ms)
        entry = dict(zip(flat[::2], flat[1::2], strict=True))
        await deadletter.message(self.client, self.namespace, self.stream, delivery.msg_id, entry)

    def _run_keys(self, task: messages.Task) -> list[str]:
        return [keys.run(task.namespace, task.run_id), keys.run_events(task.namespace, task.run_id)]

    async def start(
        self,
        delivery: Delivery,
        *,
        now_ms: float,
        max_deliveries: int,
        dependencies: tuple[str, ...] = (),
    ) -> Started:
        """Mark the attempt running and fetch what it needs, in one round trip."""
        task = delivery.task
        raw = await self.lua.call(
            "start",
            [keys.run(task.namespace, task.run_id), self.stream],
            [
                task.step,
                task.attempt,
                delivery.msg_id,
                keys.GROUP,
                now_ms,
                max_deliveries,
                self.consumer,
                "1" if delivery.interrupted else "0",
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
        )
        return Started(outcome=outcome, view=view, delivery=fenced)

    async def complete(
        self,
        delivery: Delivery,
        *,
        output: Any,
        tokens: int,
        cost: float,
        now_ms: float,
        expected_version: int | None,
        dependents: list[Dependent],
    ) -> Completion:
        task = delivery.task
        run_keys = [
            *self._run_keys(task),
            self.stream,
            keys.workflow_stats(task.namespace, task.workflow),
        ]
        run_keys += [keys.pool_stream(task.namespace, d.pool or self.pool) for d in dependents]
        args: list[Any] = [
            *_attempt_args(delivery),
            json.dumps(output),
            tokens,
            repr(float(cost)),
            now_ms,
            "" if expected_version is None else expected_version,
        ]
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

    async def retry(
        self,
        delivery: Delivery,
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
                [*self._run_keys(task), self.stream, self.delayed],
                [*_attempt_args(delivery), due_ms, error[:2000], now_ms, member],
            )
        )

    async def fail(
        self, delivery: Delivery, *, reason: str, now_ms: float, keep: bool = True
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
                    self.stream,
                    keys.dead_letter(task.namespace),
                    keys.workflow_stats(task.namespace, task.workflow),
                ],
                [*_attempt_args(delivery), reason, now_ms, *entry],
            )
        )

    async def escalate(
        self, delivery: Delivery, *, pool: str, reason: str, now_ms: float
    ) -> wire.Reply:
        """Send the step's next attempt, with a fresh retry budget, to `pool`."""
        task = delivery.task
        following = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.attempt, enqueued_ms=now_ms
        )
        return wire.Reply(
            await self.lua.call(
                "escalate",
                [*self._run_keys(task), self.stream, keys.pool_stream(task.namespace, pool)],
                [*_attempt_args(delivery), pool, reason[:2000], now_ms, *following.encode()],
            )
        )

    async def park_for_review(
        self,
        delivery: Delivery,
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
                self.stream,
                keys.review(task.namespace),
                keys.workflow_stats(task.namespace, task.workflow),
            ],
            [*_attempt_args(delivery), reason, now_ms, tokens, repr(float(cost)), *entry],
        )
        outcome = wire.Reply(reply[0])
        return str(reply[1]) if outcome is wire.Reply.PARKED else outcome

    async def promote_due(self, *, now_ms: float, limit: int = 100) -> int:
        return int(await self.lua.call("promote", [self.delayed, self.stream], [now_ms, limit]))

    async def trim_acknowledged(self) -> int:
        """Delete the entries every consumer is done with (see trimtab.queue.trim)."""
        return await trim.trim_acknowledged(self.client, self.stream)

    async def release(self, deliveries: list[Delivery]) -> int:
        """Give unfinished tasks back for immediate redelivery (graceful drain)."""
        if not deliveries:
            return 0
        run_keys = [keys.run(d.task.namespace, d.task.run_id) for d in deliveries]
        args: list[Any] = [keys.GROUP]
        for d in deliveries:
            args += [d.msg_id, d.task.step, d.fence or ""]
        return int(await self.lua.call("release", [self.stream, *run_keys], args))


def _attempt_args(delivery: Delivery) -> list[Any]:
    """What every step script is told first: which attempt, which delivery to ack, and
    the delivery's fence ('' for a reviewer's, who holds no delivery)."""
    task = delivery.task
    return [task.step, task.attempt, delivery.msg_id, keys.GROUP, delivery.fence or ""]

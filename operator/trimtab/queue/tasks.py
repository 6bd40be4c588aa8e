"""A pool's task stream as its workers use it: claim, start, complete, retry, fail,
reclaim a dead worker's steps, promote due retries, release on drain.

Delivery is at least once: a step stays pending in the consumer group until one of the
scripts acknowledges it, and another worker reclaims it with XAUTOCLAIM once it has sat
idle past the visibility timeout. Every script first checks that the delivery is still
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

from trimtab.queue import keys, messages, runs, scripts, trim

log = logging.getLogger(__name__)
Delivery = tuple[str, messages.Task]


@dataclasses.dataclass(frozen=True)
class Dependent:
    """A dependent of the completing step; `pool` is '' when it cannot be chosen yet."""

    name: str
    pool: str
    routed: bool
    dependencies: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Started:
    outcome: str  # run | duplicate (dropped) | exhausted (caller must fail it)
    view: runs.RunView | None = None


@dataclasses.dataclass(frozen=True)
class Completion:
    outcome: str  # ok | duplicate | conflict
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
        try:
            await self.client.xgroup_create(self.stream, keys.GROUP, id="0", mkstream=True)
        except redis_exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(self, count: int, *, block_ms: int) -> list[Delivery]:
        """New tasks for this consumer (at most `count`), waiting up to block_ms."""
        found: Any = await self.client.xreadgroup(
            keys.GROUP, self.consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return await self._decode([e for _, entries in found for e in entries])

    async def reclaim(self, *, min_idle_ms: int, count: int) -> list[Delivery]:
        """Tasks another consumer took and left idle past min_idle_ms (a dead worker's)."""
        result: Any = await self.client.xautoclaim(
            self.stream, keys.GROUP, self.consumer, min_idle_ms, "0-0", count=count
        )
        entries = result[1]
        return await self._decode([e for e in entries if e[1]])

    async def heartbeat(self, msg_ids: list[str]) -> None:
        """Reset the idle time of tasks still running here, so nobody reclaims them."""
        if msg_ids:
            ids: list[Any] = list(msg_ids)
            await self.client.xclaim(self.stream, keys.GROUP, self.consumer, 0, ids, justid=True)

    async def _decode(self, entries: list[Any]) -> list[Delivery]:
        out = []
        for msg_id, fields in entries:
            try:
                out.append((msg_id, messages.decode(fields)))
            except messages.MessageError as exc:
                await self._dead_letter_malformed(msg_id, fields, str(exc))
        return out

    async def _dead_letter_malformed(
        self, msg_id: str, fields: dict[str, str], reason: str
    ) -> None:
        log.error("dead-lettering malformed message %s on %s: %s", msg_id, self.stream, reason)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xadd(
                keys.dead_letter(self.namespace),
                {"pool": self.pool, "reason": reason, "raw": json.dumps(fields)},
            )
            pipe.xack(self.stream, keys.GROUP, msg_id)
            await pipe.execute()

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
        task = delivery[1]
        reply = await self.lua.call(
            "start",
            [keys.run(task.namespace, task.run_id), self.stream],
            [
                *_attempt_args(delivery),
                now_ms,
                max_deliveries,
                self.consumer,
                *dependencies,
            ],
        )
        if reply[0] != "run":
            return Started(outcome=str(reply[0]))
        outputs = {d: json.loads(v) for d, v in zip(dependencies, reply[6:], strict=True) if v}
        view = runs.RunView(
            inputs=json.loads(reply[1]),
            version=int(reply[2] or 0),
            step_outputs=outputs,
            created_ms=float(reply[3] or 0),
            tokens=int(reply[4] or 0),
            cost=float(reply[5] or 0),
        )
        return Started(outcome="run", view=view)

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
        task = delivery[1]
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
            task.namespace,
            task.workflow,
            task.generation,
            task.run_id,
        ]
        for d in dependents:
            args += [d.name, d.pool, "1" if d.routed else "0", len(d.dependencies), *d.dependencies]
        result = await self.lua.call("complete", run_keys, args)
        if result[0] != "ok":
            return Completion(outcome=str(result[0]))
        return Completion(outcome="ok", remaining=int(result[1]), enqueued=tuple(result[2:]))

    async def retry(
        self,
        delivery: Delivery,
        *,
        due_ms: float,
        error: str,
        now_ms: float,
        keep_budget: bool = False,
    ) -> str:
        """Schedule the next attempt at `due_ms`; with keep_budget (the attempt never
        reached the endpoint) it does not count against the step's retries."""
        task = delivery[1]
        following = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.budget_from + int(keep_budget)
        )
        member = json.dumps(following.fields(), sort_keys=True)
        return str(
            await self.lua.call(
                "retry",
                [*self._run_keys(task), self.stream, self.delayed],
                [*_attempt_args(delivery), due_ms, error[:2000], now_ms, member],
            )
        )

    async def fail(self, delivery: Delivery, *, reason: str, now_ms: float) -> str:
        task = delivery[1]
        return str(
            await self.lua.call(
                "fail",
                [
                    *self._run_keys(task),
                    self.stream,
                    keys.dead_letter(task.namespace),
                    keys.workflow_stats(task.namespace, task.workflow),
                ],
                [
                    *_attempt_args(delivery),
                    reason[:2000],
                    now_ms,
                    task.namespace,
                    task.run_id,
                    task.workflow,
                    self.pool,
                ],
            )
        )

    async def escalate(self, delivery: Delivery, *, pool: str, reason: str, now_ms: float) -> str:
        """Send the step's next attempt, with a fresh retry budget, to `pool`."""
        task = delivery[1]
        following = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.attempt, enqueued_ms=now_ms
        )
        flat = [x for pair in following.fields().items() for x in pair]
        return str(
            await self.lua.call(
                "escalate",
                [*self._run_keys(task), self.stream, keys.pool_stream(task.namespace, pool)],
                [*_attempt_args(delivery), pool, reason[:2000], now_ms, *flat],
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
    ) -> str:
        """Put the step on the namespace's review stream; returns the review id."""
        task = delivery[1]
        return str(
            await self.lua.call(
                "review",
                [
                    *self._run_keys(task),
                    self.stream,
                    keys.review(task.namespace),
                    keys.workflow_stats(task.namespace, task.workflow),
                ],
                [
                    *_attempt_args(delivery),
                    reason[:2000],
                    "" if output is None else json.dumps(output),
                    now_ms,
                    task.namespace,
                    task.run_id,
                    task.workflow,
                    task.generation,
                    self.pool,
                    tokens,
                    repr(float(cost)),
                ],
            )
        )

    async def promote_due(self, *, now_ms: float, limit: int = 100) -> int:
        return int(await self.lua.call("promote", [self.delayed, self.stream], [now_ms, limit]))

    async def trim_acknowledged(self) -> int:
        """Delete the entries every consumer is done with (see trimtab.queue.trim)."""
        return await trim.trim_acknowledged(self.client, self.stream)

    async def release(self, deliveries: list[Delivery]) -> int:
        """Give unfinished tasks back for immediate redelivery (graceful drain)."""
        if not deliveries:
            return 0
        run_keys = [keys.run(t.namespace, t.run_id) for _, t in deliveries]
        args: list[Any] = [keys.GROUP] + [x for m, t in deliveries for x in (m, t.step)]
        return int(await self.lua.call("release", [self.stream, *run_keys], args))


def _attempt_args(delivery: Delivery) -> list[Any]:
    """What every step script is told first: which attempt, and which delivery to ack."""
    msg_id, task = delivery
    return [task.step, task.attempt, msg_id, keys.GROUP]

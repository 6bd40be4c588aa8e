"""Redelivery under load, on a real redis-server, worker and simulator: a dead worker's
step is taken over within about the visibility timeout even while the backlog keeps
every slot busy, and a worker never holds more steps than its concurrency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, redelivery, scripts, tasks, wire
from trimtab.sdk import Client

pytestmark = pytest.mark.integration

NS, POOL = "redeliver", "p"
CONCURRENCY, VISIBILITY_S, STEP_S = 4, 2, 0.25


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {"seed": 9, "tool_delay_seconds": STEP_S}
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), config) as url:
        yield url


async def test_a_dead_workers_step_goes_first_and_slots_are_never_exceeded(
    sim: str, redis_url: str, sdk: Client
) -> None:
    tool = {"url": sim.removesuffix("/v1") + "/tools/echo", "body": "{}"}
    spec = {"defaultPool": POOL, "steps": [{"name": "a", "kind": "tool", "tool": tool}]}
    await sdk.publish(NS, "w", awf.AgentWorkflowSpec.model_validate(spec))
    stream = keys.pool_stream(NS, POOL)
    await sdk.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    orphan = await sdk.submit(NS, "w", {"n": -1})
    # A worker that took the step and died: the entry stays pending under its name.
    taken = await sdk.redis.xreadgroup(keys.GROUP, "dead-worker", {stream: ">"}, count=1)
    assert len(taken[0][1]) == 1
    backlog = [await sdk.submit(NS, "w", {"n": i}) for i in range(120)]  # ~7.5 s of work
    cfg = runtime.worker_settings(
        NS,
        POOL,
        runtime.pool_spec(
            sim,
            worker__concurrency=CONCURRENCY,
            queue__visibilityTimeoutSeconds=VISIBILITY_S,
        ),
        redis_url,
    )
    most = 0

    async def watch(worker: object) -> None:
        nonlocal most
        while True:
            most = max(most, worker.in_flight)  # type: ignore[attr-defined]
            await asyncio.sleep(0.005)

    async with runtime.in_process_worker(cfg) as worker:
        watcher = asyncio.create_task(watch(worker))
        t0 = time.monotonic()
        await sdk.result(orphan, timeout=30)
        orphan_s = time.monotonic() - t0
        done_then = sum([(await sdk.get(r)).status == "succeeded" for r in backlog])
        for run in backlog:
            await sdk.result(run, timeout=60)
        watcher.cancel()
    # Taken over once idle past the visibility timeout, ahead of the backlog behind it.
    assert orphan_s < VISIBILITY_S + 3
    assert done_then < len(backlog) / 2, (orphan_s, done_then)
    assert most <= CONCURRENCY
    held = await sdk.redis.xinfo_consumers(stream, keys.GROUP)
    assert {c["name"]: c["pending"] for c in held}.get("dead-worker") == 0


async def test_a_dead_consumer_holding_nothing_is_forgotten(redis_url: str, sdk: Client) -> None:
    stream = keys.pool_stream(NS, "forget")
    await sdk.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    await sdk.redis.xadd(stream, {"x": "1"})
    await sdk.redis.xreadgroup(keys.GROUP, "busy", {stream: ">"}, count=1)  # holds one
    await sdk.redis.xgroup_createconsumer(stream, keys.GROUP, "gone")  # holds none
    await asyncio.sleep(0.05)
    forgotten = await redelivery.forget_dead_consumers(sdk.redis, stream, keep="me", idle_ms=10)
    assert forgotten == ["gone"]
    names = {c["name"] for c in await sdk.redis.xinfo_consumers(stream, keys.GROUP)}
    assert names == {"busy"}  # the one holding a step stays, whatever its idle time


async def _runs(sdk: Client, pool: str, n: int) -> list[str]:
    spec = {"defaultPool": pool, "steps": [{"name": "a", "prompt": "x"}]}
    await sdk.publish(NS, f"w-{pool}", awf.AgentWorkflowSpec.model_validate(spec))
    return [await sdk.submit(NS, f"w-{pool}", {}) for _ in range(n)]


async def _cut_off(queue: tasks.PoolQueue, stream: str, held: int) -> list[wire.Reply]:
    """A worker takes `held` steps and dies; `queue` takes them over and starts them."""
    await queue.client.xreadgroup(keys.GROUP, f"dead-{time.monotonic_ns()}", {stream: ">"},
                                  count=held)  # fmt: skip
    stale = await queue.intake.stale(min_idle_ms=0, count=10)
    outcomes = []
    for delivery in await queue.intake.reclaim(stale, min_idle_ms=0):
        started = await queue.start(delivery, now_ms=time.time() * 1000, max_deliveries=1)
        outcomes.append(started.outcome)
        if started.outcome is wire.Reply.RUN:  # "die" again: the message goes back
            await queue.intake.release([started.delivery])  # type: ignore[list-item]
            # Release gives the delivery back to the counter it used; a SIGKILL would not.
            run_key = keys.run(NS, delivery.task.run_id)
            counter = await queue.client.hget(run_key, wire.step_field("a", wire.StepField.COUNTED))
            await queue.client.hincrby(run_key, f"{wire.STEP_PREFIX}a:{counter}", 1)
    return outcomes


async def test_deliveries_cut_off_with_a_dying_workers_others_count_apart(
    redis_url: str, sdk: Client
) -> None:
    """maxDeliveries 1: a step alone on a worker that dies is dead-lettered on its next
    delivery; steps cut off together with others get four times as many."""
    lua = scripts.Scripts(sdk.redis)
    for pool, held, allowed in (("alone", 1, 1), ("together", 2, 4)):
        stream = keys.pool_stream(NS, pool)
        await sdk.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
        await _runs(sdk, pool, held)
        queue = tasks.PoolQueue(sdk.redis, lua, namespace=NS, pool=pool, consumer="live")
        history = [await _cut_off(queue, stream, held) for _ in range(allowed + 1)]
        assert all(o == [wire.Reply.RUN] * held for o in history[:allowed]), (pool, history)
        assert history[allowed] == [wire.Reply.EXHAUSTED] * held, (pool, history)


async def test_a_drain_gives_back_the_counter_the_delivery_used(
    redis_url: str, sdk: Client
) -> None:
    lua = scripts.Scripts(sdk.redis)
    stream = keys.pool_stream(NS, "drain")
    await sdk.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    [run] = await _runs(sdk, "drain", 1)
    await _runs(sdk, "drain", 1)
    queue = tasks.PoolQueue(sdk.redis, lua, namespace=NS, pool="drain", consumer="live")
    await sdk.redis.xreadgroup(keys.GROUP, "dead", {stream: ">"}, count=2)
    taken = await queue.intake.reclaim(
        await queue.intake.stale(min_idle_ms=0, count=10), min_idle_ms=0
    )
    started = [await queue.start(d, now_ms=time.time() * 1000, max_deliveries=5) for d in taken]
    assert all(d.interrupted for d in taken)
    await queue.intake.release([s.delivery for s in started if s.delivery is not None])
    raw = await sdk.redis.hgetall(keys.run(NS, run.split("/")[1]))
    assert int(raw[wire.step_field("a", wire.StepField.INTERRUPTED)]) == 0
    assert int(raw.get(wire.step_field("a", wire.StepField.DELIVERIES)) or 0) == 0

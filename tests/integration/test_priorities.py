"""Run priorities on a real redis-server: a High run's steps are served before a Low
backlog, Low is never starved, and the priority holds from the submission (or the
workflow's spec.priority) through every step of the run.

The first tests read as a worker does (trimtab.queue.intake with the worker's turns);
the last runs a real worker against the simulator."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, levels, messages, scripts, tasks, wire
from trimtab.sdk import Client

NS, POOL = "priorities", "p"
EACH = 14  # runs per level: two whole cycles of turns for High
SIM: dict[str, Any] = {
    "seed": 5,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {"slow": {"name": "slow", "ttft_seconds": 0.15, "output_tokens_mean": 5}},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _publish(sdk: Client, name: str, steps: int = 1, **more: Any) -> None:
    chain = [
        {"name": f"s{i}", "prompt": "hi", **({"dependsOn": [f"s{i - 1}"]} if i else {})}
        for i in range(steps)
    ]
    spec = {"defaultPool": POOL, "steps": chain, **more}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def _consumer(sdk: Client) -> tasks.PoolQueue:
    queue = tasks.PoolQueue(
        sdk.redis, scripts.Scripts(sdk.redis), namespace=NS, pool=POOL, consumer="w"
    )
    await queue.intake.ensure_groups()
    return queue


async def _submit_each_level(sdk: Client, workflow: str) -> None:
    """EACH runs of every level, Low first, so a FIFO would serve every Low run before
    any High one."""
    for priority in ("Low", "Normal", "High"):
        for _ in range(EACH):
            await sdk.submit(NS, workflow, {}, priority=priority)


async def test_one_slot_at_a_time_high_comes_first_and_low_is_never_starved(
    sdk: Client,
) -> None:
    await _publish(sdk, "mixed")
    queue = await _consumer(sdk)
    await _submit_each_level(sdk, "mixed")
    order: list[wire.Priority] = []
    for turn in range(3 * EACH):
        [delivery] = await queue.intake.read(1, block_ms=None, turn=turn)
        assert delivery.stream == keys.pool_stream(NS, POOL, delivery.task.priority)
        order.append(delivery.task.priority)
    first_cycles = collections.Counter(order[: 2 * len(levels.CYCLE)])
    assert first_cycles == {wire.Priority.HIGH: 8, wire.Priority.NORMAL: 4, wire.Priority.LOW: 2}
    # While High still waits, every run of seven slots serves Low once.
    last_high = max(i for i, p in enumerate(order) if p is wire.Priority.HIGH)
    for start in range(last_high - len(levels.CYCLE) + 1):
        assert wire.Priority.LOW in order[start : start + len(levels.CYCLE)], start
    # Once High is served, its turns go to the others: nothing is left behind.
    assert collections.Counter(order) == dict.fromkeys(wire.Priority, EACH)
    assert await queue.intake.read(1, block_ms=None, turn=0) == []


async def test_a_read_of_many_slots_shares_them_by_weight_and_fills_from_the_rest(
    sdk: Client,
) -> None:
    await _publish(sdk, "shares")
    queue = await _consumer(sdk)
    await _submit_each_level(sdk, "shares")
    taken = await queue.intake.read(len(levels.CYCLE), block_ms=None, turn=0)
    assert collections.Counter(d.task.priority for d in taken) == levels.WEIGHTS
    # Only Low left: a read's High and Normal slots go to it.
    await queue.intake.read(3 * EACH, block_ms=None, turn=0)  # drain the rest
    for _ in range(3):
        await sdk.submit(NS, "shares", {}, priority="Low")
    again = await queue.intake.read(3, block_ms=None, turn=0)
    assert [d.task.priority for d in again] == [wire.Priority.LOW] * 3


async def test_the_workflows_priority_is_the_default_and_a_submission_overrides_it(
    sdk: Client,
) -> None:
    await _publish(sdk, "batch", priority="Low")
    queue = await _consumer(sdk)
    default = await sdk.submit(NS, "batch", {})
    urgent = await sdk.submit(NS, "batch", {}, priority="High")
    assert (await sdk.get(default)).priority is wire.Priority.LOW
    assert (await sdk.get(urgent)).priority is wire.Priority.HIGH
    assert await sdk.redis.xlen(keys.pool_stream(NS, POOL, wire.Priority.LOW)) == 1
    assert await sdk.redis.xlen(keys.pool_stream(NS, POOL, wire.Priority.HIGH)) == 1
    assert await sdk.redis.xlen(keys.pool_stream(NS, POOL)) == 0  # the Normal level
    [first] = await queue.intake.read(1, block_ms=None, turn=0)
    assert first.task.run_id == urgent.split("/", 1)[1]


async def test_a_worker_with_one_slot_finishes_high_runs_ahead_of_an_earlier_low_backlog(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "chain", steps=2)  # the second step goes back on the High level
    spec = runtime.pool_spec(sim, model="slow", worker__concurrency=1)
    lows = [await sdk.submit(NS, "chain", {}, priority="Low") for _ in range(8)]
    highs = [await sdk.submit(NS, "chain", {}, priority="High") for _ in range(2)]
    async with runtime.in_process_worker(runtime.worker_settings(NS, POOL, spec, redis_url)):
        results = {r: await sdk.result(r, timeout=60) for r in lows + highs}
    assert {r.status for r in results.values()} == {"succeeded"}
    ended = {r: (await sdk.get(r)).ended_ms or 0.0 for r in lows + highs}
    low_ends = sorted(ended[r] for r in lows)
    # In submission order both High runs would end last; served first, each ends
    # before most of the Low runs that were waiting when it came.
    for r in highs:
        assert ended[r] < low_ends[4], (ended[r] - low_ends[0], [e - low_ends[0] for e in low_ends])


async def test_a_blocked_read_woken_by_two_levels_at_once_keeps_its_slots(sdk: Client) -> None:
    """One free slot, blocked on every level; a High and a Low step arrive in the same
    instant (one transaction): the read takes one, and the other stays on its stream for
    the next read, never held beyond the slot."""
    queue = await _consumer(sdk)
    task = messages.Task(NS, "r", "s", 1, "wf", 1, 0.0)
    waiting = asyncio.create_task(queue.intake.read(1, block_ms=5000))
    await asyncio.sleep(0.2)  # the read is blocked by now
    async with sdk.redis.pipeline(transaction=True) as both:
        for level in (wire.Priority.LOW, wire.Priority.HIGH):
            both.xadd(keys.pool_stream(NS, POOL, level), {**task.fields(), "pri": level.value})
        await both.execute()
    [first] = await waiting
    held = [
        (await sdk.redis.xpending(stream, keys.GROUP))["pending"] for stream in queue.intake.streams
    ]
    assert sum(held) == 1  # only the one taken
    [second] = await queue.intake.read(1, block_ms=None)
    assert {first.task.priority, second.task.priority} == {wire.Priority.HIGH, wire.Priority.LOW}

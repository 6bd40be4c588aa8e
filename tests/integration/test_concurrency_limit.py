"""A workflow's concurrencyLimit on a real redis-server, workers and the simulator: runs
beyond the limit wait (status waiting) rather than being refused, start in the order
they were submitted as runs end, however they end, and a waiting run that reaches its
deadline ends without ever holding a place."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import deadlines, keys, scripts, tasks, wire
from trimtab.sdk import Client

NS, POOL = "limits", "p"
SIM: dict[str, Any] = {
    "seed": 4,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {
        "slow": {"name": "slow", "ttft_seconds": 0.6, "output_tokens_mean": 5},
        "broken": {"name": "broken", "ttft_seconds": 0.3, "rate_500": 1.0},
    },
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _publish(sdk: Client, name: str, limit: int, **more: Any) -> None:
    step = {"name": "a", "prompt": "hi", "retry": {"maxAttempts": 1}}
    spec = {"defaultPool": POOL, "concurrencyLimit": limit, "steps": [step], **more}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def _statuses(sdk: Client, ids: list[str]) -> list[wire.RunStatus]:
    return [(await sdk.get(r)).status for r in ids]


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of these (start, end) spans open at one instant (an end before a start
    at the same instant)."""
    edges = sorted([(end, -1) for _, end in spans] + [(start, 1) for start, _ in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


async def test_runs_beyond_the_limit_wait_and_start_in_order(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "limited", limit=2)
    cfg = runtime.worker_settings(NS, POOL, runtime.pool_spec(sim, model="slow"), redis_url)
    async with runtime.in_process_worker(cfg):
        ids = [await sdk.submit(NS, "limited", {"n": n}) for n in range(5)]
        first = await _statuses(sdk, ids)
        assert first == [wire.RunStatus.RUNNING] * 2 + [wire.RunStatus.WAITING] * 3
        results = [await sdk.result(r, timeout=30) for r in ids]
    assert [r.status for r in results] == ["succeeded"] * 5
    steps = [(await sdk.get(r)).steps["a"] for r in ids]
    spans = [(s.started_ms or 0.0, s.ended_ms or 0.0) for s in steps]
    # The worker could run 8 at once; the workflow allows 2, and it was kept to 2.
    assert _most_at_once(spans) == 2
    started = [start for start, _ in spans]
    # The first two went at once; the waiting ones in the order submitted, after them.
    assert max(started[:2]) < started[2] < started[3] < started[4]
    assert await sdk.redis.zcard(keys.workflow_admitted(NS, "limited")) == 0
    assert await sdk.redis.llen(keys.workflow_waiting(NS, "limited")) == 0


async def test_a_failed_run_frees_its_place(sim: str, redis_url: str, sdk: Client) -> None:
    await _publish(sdk, "failing", limit=1)
    cfg = runtime.worker_settings(NS, POOL, runtime.pool_spec(sim, model="broken"), redis_url)
    async with runtime.in_process_worker(cfg):
        ids = [await sdk.submit(NS, "failing", {}) for _ in range(3)]
        results = [await sdk.result(r, timeout=20) for r in ids]
    assert [r.status for r in results] == ["failed"] * 3


async def test_a_waiting_run_past_its_deadline_ends_and_holds_no_place(
    redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "stuck", limit=1, deadlineSeconds=1)
    held = await sdk.submit(NS, "stuck", {})  # admitted; no worker serves the pool
    waiting = await sdk.submit(NS, "stuck", {})
    assert await _statuses(sdk, [held, waiting]) == [wire.RunStatus.RUNNING, wire.RunStatus.WAITING]
    lua = scripts.Scripts(sdk.redis)
    ended = await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=time.time() * 1000 + 2000)
    assert sorted(f"{NS}/{r}" for r in ended) == sorted([held, waiting])
    state = await sdk.get(waiting)
    assert state.status is wire.RunStatus.FAILED
    assert state.steps["a"].started_ms is None
    assert await sdk.redis.zcard(keys.workflow_admitted(NS, "stuck")) == 0
    # The place is free: the next run is admitted at once.
    after = await sdk.submit(NS, "stuck", {})
    assert (await sdk.get(after)).status is wire.RunStatus.RUNNING


async def test_a_busy_key_waits_without_holding_back_other_keys(
    sim: str, redis_url: str, sdk: Client
) -> None:
    key = {"key": "{{ inputs.customer }}", "limit": 1}
    await _publish(sdk, "tenants", limit=3, concurrencyKey=key)
    # Nobody serves the pool yet: admission alone decides who runs.
    a1, a2, a3 = [await sdk.submit(NS, "tenants", {"customer": "a"}) for _ in range(3)]
    b1 = await sdk.submit(NS, "tenants", {"customer": "b"})
    c1 = await sdk.submit(NS, "tenants", {"customer": "c"})
    d1 = await sdk.submit(NS, "tenants", {"customer": "d"})  # the workflow's 3 are taken
    running, waiting = wire.RunStatus.RUNNING, wire.RunStatus.WAITING
    assert await _statuses(sdk, [a1, a2, a3, b1, c1, d1]) == [
        running, waiting, waiting, running, running, waiting,
    ]  # fmt: skip
    cfg = runtime.worker_settings(NS, POOL, runtime.pool_spec(sim, model="slow"), redis_url)
    async with runtime.in_process_worker(cfg):
        results = [await sdk.result(r, timeout=30) for r in (a1, a2, a3, b1, c1, d1)]
    assert [r.status for r in results] == ["succeeded"] * 6
    started = {r: (await sdk.get(r)).steps["a"].started_ms or 0 for r in (a1, a2, a3, d1)}
    assert started[a1] < started[a2] < started[a3]  # one at a time for customer a
    assert started[d1] < started[a3]  # d did not wait behind a's queue


async def test_a_key_the_inputs_lack_refuses_the_run_in_one_line(sdk: Client) -> None:
    await _publish(
        sdk, "keyed", limit=2, concurrencyKey={"key": "{{ inputs.customer }}", "limit": 1}
    )
    prefix = re.escape("concurrencyKey '{{ inputs.customer }}': ")
    with pytest.raises(ValueError, match=f"^{prefix}") as err:
        await sdk.submit(NS, "keyed", {"other": 1})
    assert "\n" not in str(err.value)
    assert await sdk.redis.llen(keys.workflow_waiting(NS, "keyed")) == 0


async def _end_next(queue: tasks.PoolQueue) -> str:
    """Start and fail the next queued step: its run ends. Returns the run's id."""
    [delivery] = await queue.intake.read(1, block_ms=100)
    started = await queue.start(delivery, now_ms=time.time() * 1000, max_deliveries=5)
    assert started.delivery is not None
    await queue.fail(started.delivery, reason="died", now_ms=time.time() * 1000)
    return delivery.task.run_id


async def test_a_run_admitted_late_gets_its_whole_time_to_live(sdk: Client) -> None:
    await _publish(sdk, "late", limit=1, state={"ttlSeconds": 60})
    await sdk.submit(NS, "late", {})
    late = await sdk.submit(NS, "late", {})
    run_key = keys.run(NS, late.split("/")[1])
    await sdk.redis.expire(run_key, 30)  # as if it had waited half its time
    # The first run's step fails, which ends the run: its place goes to the late one.
    queue = tasks.PoolQueue(
        sdk.redis, scripts.Scripts(sdk.redis), namespace=NS, pool=POOL, consumer="w"
    )
    await queue.intake.ensure_groups()
    await _end_next(queue)
    assert (await sdk.get(late)).status is wire.RunStatus.RUNNING
    assert await sdk.redis.ttl(run_key) > 50  # its time to live started again


async def test_a_run_admitted_behind_another_key_keeps_to_its_own_key(sdk: Client) -> None:
    key = {"key": "{{ inputs.customer }}", "limit": 1}
    await _publish(sdk, "two-keys", limit=1, concurrencyKey=key)
    a1 = await sdk.submit(NS, "two-keys", {"customer": "a"})
    b1 = await sdk.submit(NS, "two-keys", {"customer": "b"})  # waits for the workflow
    a2 = await sdk.submit(NS, "two-keys", {"customer": "a"})  # waits for its key
    queue = tasks.PoolQueue(
        sdk.redis, scripts.Scripts(sdk.redis), namespace=NS, pool=POOL, consumer="w"
    )
    await queue.intake.ensure_groups()
    assert await _end_next(queue) == a1.split("/")[1]  # b1 takes the workflow's place
    assert await _statuses(sdk, [b1, a2]) == [wire.RunStatus.RUNNING, wire.RunStatus.WAITING]
    assert await _end_next(queue) == b1.split("/")[1]  # and a2 then takes it
    assert (await sdk.get(a2)).status is wire.RunStatus.RUNNING

"""A run ends at its deadline wherever its steps are, on a real redis-server, workers and
the simulator: a call running past it is cut off, a retry due after it is not
scheduled, and a run waiting on a pool nobody serves is ended by the operator's sweep
(its steps cancelled, so a worker arriving later drops them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import deadlines, keys, scripts, wire, workflows
from trimtab.sdk import Client, operations

pytestmark = pytest.mark.integration

NS = "deadlines"
SIM: dict[str, Any] = {
    "seed": 5,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {
        "slow": {"name": "slow", "ttft_seconds": 8.0, "output_tokens_mean": 5},
        "broken": {"name": "broken", "ttft_seconds": 0.0, "rate_500": 1.0},
    },
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _publish(sdk: Client, name: str, step: dict[str, Any], deadline: int) -> None:
    spec = {"defaultPool": "p", "deadlineSeconds": deadline, "steps": [step]}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


def _worker(sim: str, redis_url: str, model: str) -> Any:
    spec = runtime.pool_spec(sim, model=model)
    return runtime.in_process_worker(runtime.worker_settings(NS, "p", spec, redis_url))


async def test_a_call_running_past_the_deadline_is_cut_off(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "slow", {"name": "a", "prompt": "hi", "timeoutSeconds": 60}, deadline=2)
    async with _worker(sim, redis_url, "slow"):
        t0 = time.monotonic()
        result = await sdk.result(await sdk.submit(NS, "slow", {}), timeout=20)
        took = time.monotonic() - t0
    assert result.status == "failed"
    assert "deadline_exceeded" in result.errors["a"]
    assert "while this step ran" in result.errors["a"]
    assert took < 8  # the model answers after 8 s; the run ended at its 2 s deadline


async def test_a_retry_due_after_the_deadline_is_not_scheduled(
    sim: str, redis_url: str, sdk: Client
) -> None:
    step = {
        "name": "a",
        "prompt": "hi",
        "retry": {"maxAttempts": 5, "backoff": {"initialSeconds": 30, "maxSeconds": 30}},
    }
    await _publish(sdk, "retrying", step, deadline=10)
    async with _worker(sim, redis_url, "broken"):
        result = await sdk.result(await sdk.submit(NS, "retrying", {}), timeout=20)
    assert result.status == "failed"
    assert result.errors["a"].startswith("deadline_exceeded: http_5xx")
    assert "would be due after the run's 10 s deadline" in result.errors["a"]
    assert await sdk.redis.zcard(keys.pool_delayed(NS, "p")) == 0


async def test_a_run_waiting_on_a_pool_nobody_serves_is_ended_by_the_sweep(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "stranded", {"name": "a", "prompt": "hi"}, deadline=1)
    run = await sdk.submit(NS, "stranded", {})
    lua = scripts.Scripts(sdk.redis)
    assert await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=time.time() * 1000) == []
    await asyncio.sleep(1.2)
    ended = await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=time.time() * 1000)
    assert [f"{NS}/{r}" for r in ended] == [run]
    state = await sdk.get(run)
    assert state.status is wire.RunStatus.FAILED
    assert state.error is not None
    assert state.error.startswith("deadline_exceeded")
    assert state.steps["a"].state is wire.StepState.CANCELLED
    # A worker that comes later drops the stranded step instead of calling the model.
    async with _worker(sim, redis_url, "sim-small"):
        await asyncio.sleep(1.0)
    after = await sdk.get(run)
    assert after.status is wire.RunStatus.FAILED
    assert after.steps["a"].started_ms is None  # never started
    pending = await sdk.redis.xpending(keys.pool_stream(NS, "p"), keys.GROUP)
    assert pending["pending"] == 0
    stats = await workflows.run_stats(sdk.redis, NS, "stranded", now=time.time())
    assert stats.failed == 1
    assert await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=time.time() * 1000) == []


async def test_a_resumed_run_still_ends_at_its_deadline(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "resumed", {"name": "a", "prompt": "hi"}, deadline=2)
    async with _worker(sim, redis_url, "broken"):
        run = await sdk.submit(NS, "resumed", {})
        failed = await sdk.result(run, timeout=20)
    assert failed.status == "failed"
    lua = scripts.Scripts(sdk.redis)
    later_ms = time.time() * 1000 + 5000  # past the deadline
    # The sweep forgets a run that has ended (here: failed before its deadline) ...
    assert await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=later_ms) == []
    assert await sdk.redis.zcard(keys.deadlines(NS)) == 0
    # ... and resuming it files it again: with no worker to take the step, the sweep
    # still ends it.
    [entry] = await operations.dead_letters(sdk, NS)
    resumed = await operations.retry_dead_letter(sdk, f"{NS}/{entry.id}")
    assert resumed.outcome is wire.Reply.RESUMED
    assert (await sdk.get(run)).status is wire.RunStatus.RUNNING
    ended = await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=later_ms)
    assert [f"{NS}/{r}" for r in ended] == [run]
    state = await sdk.get(run)
    assert state.status is wire.RunStatus.FAILED
    assert state.steps["a"].state is wire.StepState.CANCELLED

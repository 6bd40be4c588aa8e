"""A failed run stops spending, on a real redis-server, workers and the simulator: once
one branch dies, no further step of the run starts, a sibling's retry is dropped, and a
sibling's call under way is stopped. Resuming the dead branch queues everything the
failure cancelled, and the run then succeeds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import runs, wire, workflows
from trimtab.sdk import Client, operations

NS = "failed-runs"
SIM: dict[str, Any] = {
    "seed": 11,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {
        "slow": {"name": "slow", "ttft_seconds": 1.5, "output_tokens_mean": 5},
        "broken": {"name": "broken", "ttft_seconds": 0.0, "rate_500": 1.0},
        "broken-slowly": {"name": "broken-slowly", "ttft_seconds": 0.3, "rate_500": 1.0},
        "glacial": {"name": "glacial", "ttft_seconds": 8.0, "output_tokens_mean": 5},
    },
}
RETRY = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.5, "maxSeconds": 0.5}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


@contextlib.asynccontextmanager
async def _workers(sim: str, redis_url: str, **pools: str) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for pool, model in pools.items():
            cfg = runtime.worker_settings(NS, pool, runtime.pool_spec(sim, model=model), redis_url)
            await stack.enter_async_context(runtime.in_process_worker(cfg))
        yield


async def _until(sdk: Client, run: str, done: Any, within: float = 20) -> runs.RunState:
    deadline = time.monotonic() + within
    while True:
        state = await sdk.get(run)
        if done(state):
            return state
        assert time.monotonic() < deadline, (state.status, state.steps)
        await asyncio.sleep(0.05)


def _spec(sim: str) -> dict[str, Any]:
    """a -> b (dies at once), c (slow) -> d, e (fails slowly, would retry)."""
    echo_url = sim.removesuffix("/v1") + "/tools/echo"
    echo = {"name": "a", "kind": "tool", "tool": {"url": echo_url, "body": "{}"}}
    return {
        "defaultPool": "p",
        "steps": [
            echo,
            {
                "name": "b",
                "prompt": "b",
                "pool": "q",
                "dependsOn": ["a"],
                "retry": {"maxAttempts": 1},
            },
            {"name": "c", "prompt": "c", "dependsOn": ["a"]},
            {"name": "d", "prompt": "d", "dependsOn": ["c"]},
            {"name": "e", "prompt": "e", "pool": "r", "dependsOn": ["a"], "retry": RETRY},
        ],
    }


async def test_a_failed_run_starts_nothing_more_and_resumes_whole(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "branches", awf.AgentWorkflowSpec.model_validate(_spec(sim)))
    before = runtime.sim_requests(sim, "broken-slowly")
    async with _workers(sim, redis_url, p="slow", q="broken", r="broken-slowly"):
        run = await sdk.submit(NS, "branches", {})

        def settled(s: runs.RunState) -> bool:
            return (
                s.steps["c"].state is wire.StepState.CANCELLED
                and s.steps["e"].state is wire.StepState.CANCELLED
            )

        state = await _until(sdk, run, settled)
        await asyncio.sleep(1.0)  # e's retry would be due by now
    assert state.status is wire.RunStatus.FAILED
    assert state.steps["b"].state is wire.StepState.DEAD
    # c was calling the slow model: stopped, its call cut off, and d never started.
    assert state.steps["c"].tokens == 0
    assert state.steps["d"].started_ms is None
    # e failed once; its retry was dropped rather than calling the model again.
    assert runtime.sim_requests(sim, "broken-slowly") - before == 1
    after = await sdk.get(run)
    assert after.steps["e"].state is wire.StepState.CANCELLED

    # Resuming the dead branch queues what the failure cancelled, and the run succeeds.
    [entry] = [e for e in await operations.dead_letters(sdk, NS) if e.step == "b"]
    async with _workers(sim, redis_url, p="sim-small", q="sim-small", r="sim-small"):
        resumed = await operations.retry_dead_letter(sdk, f"{NS}/{entry.id}")
        assert resumed.outcome is wire.Reply.RESUMED
        assert set(resumed.steps) == {"b", "c", "e"}
        done = await _until(sdk, run, lambda s: s.status is wire.RunStatus.SUCCEEDED)
    assert {name: s.state for name, s in done.steps.items()} == dict.fromkeys(
        "abcde", wire.StepState.DONE
    )


async def test_a_workflow_that_keeps_no_dead_letters_still_fails_its_runs(
    sim: str, redis_url: str, sdk: Client
) -> None:
    spec = {
        "defaultPool": "q",
        "deadLetter": {"enabled": False},
        "steps": [{"name": "a", "prompt": "a", "retry": {"maxAttempts": 1}}],
    }
    await sdk.publish(NS, "unkept", awf.AgentWorkflowSpec.model_validate(spec))
    cfg = runtime.worker_settings(NS, "q", runtime.pool_spec(sim, model="broken"), redis_url)
    async with runtime.in_process_worker(cfg) as worker:
        result = await sdk.result(await sdk.submit(NS, "unkept", {}), timeout=20)
    assert result.status == "failed"
    assert "http_5xx" in result.errors["a"]
    assert await operations.dead_letters(sdk, NS) == []
    stats = await workflows.run_stats(sdk.redis, NS, "unkept", now=time.time())
    assert (stats.failed, stats.dead_lettered) == (1, 0)
    # The metrics say failed, not dead-lettered, for the step and for the run.
    outcomes = {
        (s.name, s.labels.get("outcome"))
        for family in (worker.metrics.steps_total, worker.metrics.runs_total)
        for metric in family.collect()
        for s in metric.samples
        if s.value and s.name.endswith("_total")
    }
    assert ("trimtab_steps_total", "failed") in outcomes
    assert ("trimtab_runs_total", "failed") in outcomes
    assert not {o for _, o in outcomes} & {"dead_lettered"}


async def test_an_optional_dependency_or_a_default_output_lets_the_run_go_on(
    sim: str, redis_url: str, sdk: Client
) -> None:
    echo = sim.removesuffix("/v1") + "/tools/echo"
    once = {"maxAttempts": 1}
    spec = {
        "defaultPool": "p",
        "steps": [
            {"name": "history", "prompt": "h", "pool": "q", "retry": once},
            {
                "name": "docs",
                "prompt": "d",
                "pool": "q",
                "retry": once,
                "onFailure": {"output": {"found": []}},
            },
            {
                "name": "answer",
                "kind": "tool",
                "tool": {"url": echo, "body": '{"h": {{ history }}, "d": {{ docs }}}'},
                "dependsOn": ["history", "docs"],
                "optionalDependencies": ["history"],
            },
        ],
    }
    await sdk.publish(NS, "goes-on", awf.AgentWorkflowSpec.model_validate(spec))
    async with _workers(sim, redis_url, p="sim-small", q="broken"):
        result = await sdk.result(await sdk.submit(NS, "goes-on", {}), timeout=20)
    assert result.status == "succeeded", result.errors
    assert result.outputs["answer"]["received"] == {"h": None, "d": {"found": []}}
    state = await sdk.get(result.run)
    for name in ("history", "docs"):
        assert state.steps[name].state is wire.StepState.DONE
        assert "gave up, run goes on" in (state.steps[name].error or "")
        assert "http_5xx" in (state.steps[name].error or "")
    assert await operations.dead_letters(sdk, NS) == []


async def test_a_call_under_way_in_a_run_that_failed_is_stopped(
    sim: str, redis_url: str, sdk: Client
) -> None:
    once = {"maxAttempts": 1}
    spec = {
        "defaultPool": "p",
        "steps": [
            {"name": "dies", "prompt": "x", "pool": "q", "retry": once},
            {"name": "slow", "prompt": "y", "retry": once},  # answers after 8 s
        ],
    }
    await sdk.publish(NS, "stopped", awf.AgentWorkflowSpec.model_validate(spec))
    async with _workers(sim, redis_url, p="glacial", q="broken"):
        t0 = time.monotonic()
        run = await sdk.submit(NS, "stopped", {})
        state = await _until(sdk, run, lambda s: s.steps["slow"].state is wire.StepState.CANCELLED)
        took = time.monotonic() - t0
    assert state.status is wire.RunStatus.FAILED
    assert took < 8.0  # stopped before the model answered, not after
    assert state.steps["slow"].tokens == 0

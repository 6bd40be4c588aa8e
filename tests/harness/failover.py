"""The load a Redis failover test runs through: a two-step workflow on two in-process
workers, runs submitted before, during and after `fail_over` (which kills a primary and
waits for the new one, on a thread so the workers keep going), then the checks that no
acknowledged run or step was lost."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, keys, runs
from trimtab.sdk import Client

BEFORE, AFTER = 120, 40
# Tool steps slow enough that the failover lands while runs are under way.
SIM_CONFIG = {"seed": 4, "tool_delay_seconds": 0.1}


async def _submit(client: Client, namespace: str, i: int) -> str:
    """Submit run i, again with the same key while Redis fails over, as an app would."""
    for _ in range(300):
        try:
            return await client.submit(namespace, "two", {"i": i}, idempotency_key=f"run-{i}")
        except connection.UNAVAILABLE:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"run {i} was never accepted")


async def _succeeded(client: Client, namespace: str, refs: list[str]) -> int:
    try:
        states = [await runs.read(client.redis, namespace, r.split("/")[1]) for r in refs]
    except connection.UNAVAILABLE:
        return 0
    return sum(1 for s in states if s is not None and s.status == "succeeded")


async def _wait_for(client: Client, namespace: str, refs: list[str], count: int) -> None:
    for _ in range(450):
        if await _succeeded(client, namespace, refs) >= count:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{await _succeeded(client, namespace, refs)} of {count} runs succeeded")


async def run_through(
    url: str,
    sim: str,
    namespace: str,
    workflow: awf.AgentWorkflowSpec,
    fail_over: Callable[[], None],
) -> None:
    """Submit, fail over with about a quarter done, submit more; then every run whose
    submit returned has succeeded with each step done once, and none is dead-lettered."""
    client = Client(url)
    spec = runtime.pool_spec(sim, queue__visibilityTimeoutSeconds=2, worker__concurrency=4)
    cfg = runtime.worker_settings(namespace, "p", spec, url)
    try:
        await client.publish(namespace, "two", workflow)
        async with runtime.in_process_worker(cfg), runtime.in_process_worker(cfg):
            refs = [await _submit(client, namespace, i) for i in range(BEFORE)]
            await _wait_for(client, namespace, refs, BEFORE // 4)
            assert await _succeeded(client, namespace, refs) < BEFORE, "the failover came late"
            during = asyncio.create_task(asyncio.to_thread(fail_over))
            refs += [await _submit(client, namespace, i) for i in range(BEFORE, BEFORE + AFTER)]
            await during
            await _wait_for(client, namespace, refs, BEFORE + AFTER)
        for ref in refs:
            events = [e async for e in client.events(ref)]
            done = [e["step"] for e in events if e["type"] == "step_done"]
            assert sorted(done) == ["a", "b"], (ref, events)
        assert await client.redis.xlen(keys.dead_letter(namespace)) == 0
    finally:
        await client.aclose()

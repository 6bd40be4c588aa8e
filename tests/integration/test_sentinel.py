"""Redis behind Sentinel: the primary is SIGKILLed mid-load and a replica promoted, and
the runtime goes on. Real processes: a primary, two replicas, three sentinels
(tests.harness.redis_ha); workers, the SDK and the submitter all reach Redis through
a `redis+sentinel://` URL with `wait_replicas=1`.

What it shows: every run whose submit returned completes, each of its steps done
exactly once (a completion a replica has is never lost, one that it lacks was never
acknowledged); submits that failed during the failover succeed when retried with
their idempotency key; nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Iterator

import pytest

from tests.harness import redis_ha, runtime
from tests.integration.test_runtime_durability import _workflow
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, keys, runs, scripts
from trimtab.sdk import Client

NS, BEFORE, AFTER = "ha", 120, 40


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {"seed": 4, "tool_delay_seconds": 0.1}
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), config) as url:
        yield url


async def _submit(client: Client, i: int) -> str:
    """Submit run i, again with the same key while Redis fails over, as an app would."""
    for _ in range(300):
        try:
            return await client.submit(NS, "two", {"i": i}, idempotency_key=f"run-{i}")
        except connection.UNAVAILABLE:
            await asyncio.sleep(0.1)
    raise TimeoutError(f"run {i} was never accepted")


async def _succeeded(client: Client, refs: list[str]) -> int:
    try:
        states = [await runs.read(client.redis, NS, ref.split("/")[1]) for ref in refs]
    except connection.UNAVAILABLE:
        return 0
    return sum(1 for s in states if s is not None and s.status == "succeeded")


async def _wait_for(client: Client, refs: list[str], count: int, within: float) -> None:
    for _ in range(int(within / 0.2)):
        if await _succeeded(client, refs) >= count:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{await _succeeded(client, refs)} of {count} runs succeeded")


async def test_a_primary_failover_mid_load_loses_no_acknowledged_run_or_step(
    sim: str, tmp_path: pathlib.Path
) -> None:
    with redis_ha.running_sentinels(tmp_path) as ha:
        url = f"{ha.url}?wait_replicas=1&wait_timeout_ms=2000"
        client = Client(url)
        spec = runtime.pool_spec(sim, queue__visibilityTimeoutSeconds=2, worker__concurrency=4)
        cfg = runtime.worker_settings(NS, "p", spec, url)
        try:
            await client.publish(NS, "two", _workflow(sim))
            async with runtime.in_process_worker(cfg), runtime.in_process_worker(cfg):
                refs = [await _submit(client, i) for i in range(BEFORE)]
                await _wait_for(client, refs, BEFORE // 4, within=30)
                assert await _succeeded(client, refs) < BEFORE, "the failover came too late"
                old = ha.kill_primary().port
                refs += [await _submit(client, i) for i in range(BEFORE, BEFORE + AFTER)]
                assert ha.wait_for_new_primary(old) != old
                await _wait_for(client, refs, BEFORE + AFTER, within=90)
            for ref in refs:
                events = [e async for e in client.events(ref)]
                done = [e["step"] for e in events if e["type"] == "step_done"]
                assert sorted(done) == ["a", "b"], (ref, events)
            assert await client.redis.xlen(keys.dead_letter(NS)) == 0
        finally:
            await client.aclose()


async def test_a_write_fewer_replicas_have_than_required_is_reported_and_safe_to_retry(
    tmp_path: pathlib.Path,
) -> None:
    with redis_ha.running_sentinels(tmp_path, replicas=1) as ha:
        strict = Client(f"{ha.url}?wait_replicas=2&wait_timeout_ms=200")
        enough = Client(f"{ha.url}?wait_replicas=1")
        try:
            spec = {"steps": [{"name": "a", "prompt": "hi", "pool": "p"}]}
            await enough.publish(NS, "one", awf.AgentWorkflowSpec.model_validate(spec))
            with pytest.raises(scripts.NotReplicatedError, match="1 of 2 replica"):
                await strict.submit(NS, "one", {}, idempotency_key="k")
            # The write did happen on the primary: the retry finds the same run.
            again = await enough.submit(NS, "one", {}, idempotency_key="k")
            found = await runs.read(enough.redis, NS, again.split("/")[1])
            assert found is not None
            assert await enough.redis.zcard(keys.runs_index(NS)) == 1
        finally:
            await strict.aclose()
            await enough.aclose()

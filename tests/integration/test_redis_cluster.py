"""The runtime on a real Redis Cluster (tests.harness.redis_cluster) through its primary's
loss: the primary serving the namespace's slot is SIGKILLed mid-load, its replica takes
over, the killed node comes back as its replica, and workers, the SDK and the submitter
carry on through `redis+cluster://` with `wait_replicas=1`.

What it shows: every run whose submit returned completes, each step done exactly once
(every script's writes had reached the replica before it returned); submits that failed
during the failover succeed when retried with their idempotency key; nothing is
dead-lettered. (The runtime's other tests run on a cluster in tests/integration/cluster.)
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.harness import redis_cluster, runtime
from tests.integration.test_runtime_durability import _workflow
from tests.integration.test_sentinel import _submit, _succeeded, _wait_for
from trimtab.queue import keys
from trimtab.sdk import Client

NS, BEFORE, AFTER = "ha", 120, 40


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = {"seed": 4, "tool_delay_seconds": 0.1}
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), config) as url:
        yield url


async def test_a_cluster_primary_killed_mid_load_loses_no_acknowledged_run_or_step(
    sim: str, tmp_path: pathlib.Path
) -> None:
    with redis_cluster.running_cluster(tmp_path) as cluster:
        url = f"{cluster.url}?wait_replicas=1&wait_timeout_ms=2000"
        client = Client(url)
        spec = runtime.pool_spec(sim, queue__visibilityTimeoutSeconds=2, worker__concurrency=4)
        cfg = runtime.worker_settings(NS, "p", spec, url)
        try:
            await client.publish(NS, "two", _workflow(sim))
            async with runtime.in_process_worker(cfg), runtime.in_process_worker(cfg):
                refs = [await _submit(client, i) for i in range(BEFORE)]
                await _wait_for(client, refs, BEFORE // 4, within=30)
                assert await _succeeded(client, refs) < BEFORE, "the kill came too late"
                old = cluster.primary_port_of(NS)
                cluster.kill(old)
                new = cluster.wait_for_failover(NS, old)
                # Back as the new primary's replica: until then no write can reach a
                # replica, and every script reports so (the runs wait, none is lost).
                cluster.restart(old)
                cluster.wait_for_replica_of(new)
                refs += [await _submit(client, i) for i in range(BEFORE, BEFORE + AFTER)]
                await _wait_for(client, refs, BEFORE + AFTER, within=90)
            for ref in refs:
                events = [e async for e in client.events(ref)]
                done = [e["step"] for e in events if e["type"] == "step_done"]
                assert sorted(done) == ["a", "b"], (ref, events)
            assert await client.redis.xlen(keys.dead_letter(NS)) == 0
        finally:
            await client.aclose()

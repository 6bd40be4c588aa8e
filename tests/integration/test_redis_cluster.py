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

from tests.harness import failover, redis_cluster, runtime
from tests.integration.test_runtime_durability import _workflow

NS = "ha"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), failover.SIM_CONFIG) as url:
        yield url


async def test_a_cluster_primary_killed_mid_load_loses_no_acknowledged_run_or_step(
    sim: str, tmp_path: pathlib.Path
) -> None:
    with redis_cluster.running_cluster(tmp_path) as cluster:

        def fail_over() -> None:
            old = cluster.primary_port_of(NS)
            cluster.kill(old)
            new = cluster.wait_for_failover(NS, old)
            # Back as the new primary's replica: until then no write can reach a
            # replica, and every script reports so (the runs wait, none is lost).
            cluster.restart(old)
            cluster.wait_for_replica_of(new)

        url = f"{cluster.url}?wait_replicas=1&wait_timeout_ms=2000"
        await failover.run_through(url, sim, NS, _workflow(sim), fail_over)

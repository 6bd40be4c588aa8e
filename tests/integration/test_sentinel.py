"""Redis behind Sentinel: the primary is SIGKILLed mid-load and a replica promoted, and
the runtime goes on. Real processes: a primary, two replicas, three sentinels
(tests.harness.redis_ha); workers, the SDK and the submitter all reach Redis through
a `redis+sentinel://` URL with `wait_replicas=1`.

What it shows: every run whose submit returned completes, each of its steps done
exactly once (a completion a replica has is never lost, one that it lacks was never
acknowledged); submits that failed during the failover succeed when retried with
their idempotency key; nothing is dead-lettered."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest

from tests.harness import failover, redis_ha, runtime
from tests.integration.test_runtime_durability import _workflow
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, runs, scripts
from trimtab.sdk import Client

NS = "ha"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), failover.SIM_CONFIG) as url:
        yield url


async def test_a_primary_failover_mid_load_loses_no_acknowledged_run_or_step(
    sim: str, tmp_path: pathlib.Path
) -> None:
    with redis_ha.running_sentinels(tmp_path) as ha:

        def fail_over() -> None:
            old = ha.kill_primary().port
            assert ha.wait_for_new_primary(old) != old

        url = f"{ha.url}?wait_replicas=1&wait_timeout_ms=2000"
        await failover.run_through(url, sim, NS, _workflow(sim), fail_over)


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

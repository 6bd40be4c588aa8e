"""A full Redis refuses new runs, not running work, on a real redis-server with
`maxmemory` and `noeviction`: past 90 % a submission is refused with one clear error,
and past the limit itself (where Redis refuses writes) a step already queued still
starts and completes, since every script but submit runs `allow-oom`."""

from __future__ import annotations

import pathlib
from collections.abc import AsyncIterator, Iterator

import pytest
import redis

from tests.harness import redis_server, runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, runs
from trimtab.sdk import Client

pytestmark = pytest.mark.integration

NS = "full"


@pytest.fixture
def small_redis(tmp_path: pathlib.Path) -> Iterator[str]:
    args = ("--maxmemory", "4mb", "--maxmemory-policy", "noeviction")
    with redis_server.running_redis(tmp_path, args=args) as url:
        yield url


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), {"seed": 1}) as url:
        yield url


def _fill(url: str, *, until_percent: float) -> None:
    """Write filler until memory passes `until_percent` of maxmemory."""
    plain = redis.Redis.from_url(url)
    limit = int(plain.config_get("maxmemory")["maxmemory"])
    for i in range(10_000):
        used = int(plain.info("memory")["used_memory"])
        if used > limit * until_percent / 100:
            return
        plain.set(f"filler:{i}", "x" * 50_000)
    raise AssertionError("never filled")


async def _publish(sdk: Client, sim: str) -> None:
    tool = {"url": sim.removesuffix("/v1") + "/tools/echo", "body": "{}"}
    spec = {"defaultPool": "p", "steps": [{"name": "a", "kind": "tool", "tool": tool}]}
    await sdk.publish(NS, "w", awf.AgentWorkflowSpec.model_validate(spec))


@pytest.fixture
async def sdk(small_redis: str, sim: str) -> AsyncIterator[Client]:
    """The SDK on the small Redis, the one-step workflow published."""
    client = Client(small_redis)
    try:
        await _publish(client, sim)
        yield client
    finally:
        await client.aclose()


async def test_past_the_admission_share_new_runs_are_refused_clearly(
    small_redis: str, sdk: Client
) -> None:
    assert (await sdk.submit(NS, "w", {})).startswith(f"{NS}/")
    _fill(small_redis, until_percent=93)
    with pytest.raises(runs.RedisFullError, match=r"new runs are refused above 90%"):
        await sdk.submit(NS, "w", {})


async def test_at_the_limit_a_queued_step_still_runs_to_completion(
    small_redis: str, sim: str, sdk: Client
) -> None:
    # The pool's consumer group, as its workers created it before Redis filled up.
    stream = keys.pool_stream(NS, "p")
    await sdk.redis.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    run = await sdk.submit(NS, "w", {})
    # Over the limit for good: maxmemory set below what is used, and nothing evicts.
    plain = redis.Redis.from_url(small_redis)
    plain.config_set("maxmemory", int(plain.info("memory")["used_memory"]) - 200_000)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        plain.set("one-more", "x")
    with pytest.raises(runs.RedisFullError):
        await sdk.submit(NS, "w", {})
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), small_redis)
    async with runtime.in_process_worker(cfg):
        result = await sdk.result(run, timeout=20)
    assert result.status == "succeeded"

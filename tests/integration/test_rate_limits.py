"""A pool's model rate limit on a real redis-server, worker and simulator: calls are
spread at the limit instead of fired at once, a long wait gives the slot back (the
step waits its turn with its retries untouched), and a 429 halves the pool's rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, ratelimit, scripts
from trimtab.sdk import Client

NS, POOL = "rates", "p"
SIM: dict[str, Any] = {
    "seed": 6,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {"limited": {"name": "limited", "ttft_seconds": 0.0, "rate_429": 1.0}},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _publish(sdk: Client, name: str, **step: Any) -> None:
    spec = {"defaultPool": POOL, "steps": [{"name": "a", "prompt": "hi", **step}]}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


def _worker(sim: str, redis_url: str, model: str, rate: dict[str, int]) -> Any:
    spec = runtime.pool_spec(sim, model=model, model__rateLimit=rate)
    return runtime.in_process_worker(runtime.worker_settings(NS, POOL, spec, redis_url))


async def test_calls_are_spread_at_the_pools_rate(sim: str, redis_url: str, sdk: Client) -> None:
    await _publish(sdk, "spread")
    before = runtime.sim_requests(sim)
    async with _worker(sim, redis_url, "sim-small", {"requestsPerMinute": 120}):
        t0 = time.monotonic()
        runs = [await sdk.submit(NS, "spread", {"n": n}) for n in range(6)]
        results = await asyncio.gather(*(sdk.result(r, timeout=20) for r in runs))
        took = time.monotonic() - t0
    assert [r.status for r in results] == ["succeeded"] * 6
    assert runtime.sim_requests(sim) - before == 6  # no call refused, none repeated
    # 2 a second, at most 2 at once: the last of six went 2 s after the first (unlimited,
    # all six go at once: the worker runs 8).
    assert took >= 1.8


async def test_a_long_wait_gives_the_slot_back_without_spending_a_retry(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "slow-rate", retry={"maxAttempts": 1})
    async with _worker(sim, redis_url, "sim-small", {"requestsPerMinute": 6}):
        first = await sdk.submit(NS, "slow-rate", {})
        assert (await sdk.result(first, timeout=20)).status == "succeeded"
        second = await sdk.submit(NS, "slow-rate", {})  # 10 s until the next call may go
        deadline = time.monotonic() + 10
        while True:
            events = [e async for e in _events_so_far(sdk, second)]
            retries = [e for e in events if e.get("type") == "step_retry"]
            if retries:
                break
            assert time.monotonic() < deadline, events
            await asyncio.sleep(0.1)
    assert retries[0]["error"].startswith("rate_limited:")
    state = await sdk.get(second)
    assert state.status.value == "running"  # waiting its turn; maxAttempts 1 not spent


async def _events_so_far(sdk: Client, run: str) -> Any:
    namespace, run_id = run.split("/")
    for _, event in await sdk.redis.xrange(keys.run_events(namespace, run_id)):
        yield event


async def test_a_429_halves_the_pools_rate(sim: str, redis_url: str, sdk: Client) -> None:
    await _publish(sdk, "throttled", retry={"maxAttempts": 1})
    async with _worker(sim, redis_url, "limited", {"requestsPerMinute": 600}):
        result = await sdk.result(await sdk.submit(NS, "throttled", {}), timeout=20)
    assert "http_429" in result.errors["a"]
    factor = await sdk.redis.hget(keys.pool_rate(NS, POOL), "factor")
    assert float(factor) == 0.5


async def test_only_calls_after_a_429_win_the_rate_back_and_a_debt_stays_owed(
    sdk: Client,
) -> None:
    lua = scripts.Scripts(sdk.redis)
    key = keys.pool_rate(NS, "bucket")

    async def take(at: float, tokens: int) -> float:
        return await ratelimit.take(lua, NS, "bucket", now_ms=at, requests_per_minute=None,
                                    tokens_per_minute=6000, tokens=tokens)  # fmt: skip

    assert await take(1000, 500) == 0  # bigger than the 100-token bucket: goes, in debt
    assert float(await sdk.redis.hget(key, "tok")) < 0
    await ratelimit.report(lua, NS, "bucket", throttled=True, now_ms=2000)
    assert float(await sdk.redis.hget(key, "factor")) == 0.5
    assert float(await sdk.redis.hget(key, "tok")) < 0  # the debt is still owed
    await ratelimit.report(lua, NS, "bucket", throttled=False, now_ms=1500)  # taken before
    assert float(await sdk.redis.hget(key, "factor")) == 0.5
    await ratelimit.report(lua, NS, "bucket", throttled=False, now_ms=2500)  # taken after
    assert float(await sdk.redis.hget(key, "factor")) == pytest.approx(0.55)

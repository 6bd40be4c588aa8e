"""Every failure mode of a step ends in a defined, visible state: retries, the fallback
pool, human review, the dead-letter queue. Real Redis, the real simulator (its scripted
faults and counters), in-process workers; each test checks the final state, the number
of attempts, and that nothing was lost or completed twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import breaker, keys, runs, wire, workflows
from trimtab.sdk import Client, operations
from trimtab.sdk import client as sdk_client

NS = "guard"
ANSWER = {
    "type": "object",
    "required": ["response", "confidence"],
    "properties": {
        "response": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 0.5},
    },
}
SIM_CONFIG: dict[str, Any] = {
    "seed": 11,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 10},
    "models": {
        "flaky": {"ttft_seconds": 0.0, "script": ["malformed", "malformed"]},
        "sloppy": {"ttft_seconds": 0.0, "rate_schema_violation": 1.0},
        "careful": {"ttft_seconds": 0.0},
        "unsure": {"ttft_seconds": 0.0, "confidence_mean": 0.5},
        "wobbly": {"ttft_seconds": 0.0, "script": ["500", "500"]},
        "down": {"ttft_seconds": 0.0, "rate_500": 1.0},
        "slow": {"ttft_seconds": 1.2},
        "limited": {"ttft_seconds": 0.0, "script": ["429"], "retry_after_seconds": 0.8},
    },
}
FAST_RETRY = {"maxAttempts": 3, "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


@contextlib.asynccontextmanager
async def _workers(
    sim: str, redis_url: str, spec_overrides: dict[str, Any] | None = None, **pools: str
) -> AsyncIterator[None]:
    """One in-process worker per pool name, serving the model given for it."""
    async with contextlib.AsyncExitStack() as stack:
        for pool, model in pools.items():
            spec = runtime.pool_spec(sim, model=model, **(spec_overrides or {}))
            cfg = runtime.worker_settings(NS, pool, spec, redis_url)
            await stack.enter_async_context(runtime.in_process_worker(cfg))
        yield


async def _publish(sdk: Client, name: str, step: dict[str, Any]) -> None:
    spec = {"steps": [{"name": "answer", "prompt": "Answer {{ inputs.q }}", **step}]}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def _settled(sdk: Client, run: str, status: str, within: float = 20) -> runs.RunState:
    deadline = time.monotonic() + within
    while True:
        state = await sdk.get(run)
        if state.status == status:
            return state
        assert time.monotonic() < deadline, (state.status, state.steps)
        await asyncio.sleep(0.05)


async def _model_breaker(sdk: Client, pool: str) -> breaker.State:
    """The pool's model-endpoint breaker as recorded in Redis (closed when never tripped)."""
    raw = await sdk.redis.hget(keys.pool_breaker(NS, pool, breaker.MODEL_ENDPOINT), "state")
    return breaker.State(str(raw)) if raw else breaker.State.CLOSED


async def _step_events(sdk: Client, run: str) -> list[str]:
    return [f["type"] for _, f in await runs.events(sdk.redis, *run.split("/", 1))]


async def test_malformed_output_twice_then_valid_succeeds_on_the_third_attempt(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "retry", {"pool": "a", "output": {"schema": ANSWER}, "retry": FAST_RETRY})
    before = runtime.sim_requests(sim, "flaky")
    async with _workers(sim, redis_url, a="flaky"):
        run = await sdk.submit(NS, "retry", {"q": "x"})
        state = await _settled(sdk, run, "succeeded")
    assert state.steps["answer"].attempt == 3
    assert runtime.sim_requests(sim, "flaky") - before == 3
    events = await _step_events(sdk, run)
    assert events.count("step_retry") == 2
    assert events.count("step_done") == 1  # completed once, never twice


async def test_schema_violation_on_the_small_pool_escalates_to_the_large_one(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "escalate",
        {
            "pool": "small",
            "output": {"schema": ANSWER},
            "retry": {**FAST_RETRY, "maxAttempts": 2},
            "fallback": {"pool": "large"},
        },
    )
    sloppy, careful = runtime.sim_requests(sim, "sloppy"), runtime.sim_requests(sim, "careful")
    async with _workers(sim, redis_url, small="sloppy", large="careful"):
        run = await sdk.submit(NS, "escalate", {"q": "x"})
        state = await _settled(sdk, run, "succeeded")
    step = state.steps["answer"]
    assert (step.pool, step.attempt) == ("large", 3)  # two on the small pool, one on the large
    outcome = wire.AttemptOutcome
    assert [(a.attempt, a.outcome, a.pool) for a in step.attempt_log] == [
        (1, outcome.RETRY, "small"), (2, outcome.ESCALATED, "small"), (3, outcome.DONE, "large")
    ], "the attempt log keeps each attempt's pool and ending"  # fmt: skip
    assert sum(a.tokens for a in step.attempt_log) == step.tokens
    assert runtime.sim_requests(sim, "sloppy") - sloppy == 2
    assert runtime.sim_requests(sim, "careful") - careful == 1
    assert (await _step_events(sdk, run)).count("step_escalated") == 1


async def _unsure_run(sim: str, redis_url: str, sdk: Client) -> tuple[str, str]:
    """A run whose only step produced a valid output with confidence at most 0.5."""
    await _publish(
        sdk,
        "unsure",
        {
            "pool": "u",
            "output": {
                "schema": ANSWER,
                "minConfidence": {"field": "confidence", "threshold": 0.7},
            },
        },
    )
    async with _workers(sim, redis_url, u="unsure"):
        run = await sdk.submit(NS, "unsure", {"q": "x"})
        state = await _settled(sdk, run, "review")
    assert state.steps["answer"].state == "review"
    # Waiting on it says why it has not finished, in one line, instead of timing out bare.
    with pytest.raises(sdk_client.RunNotFinishedError, match="waits for human review"):
        await sdk.result(run, timeout=0.2)
    items = [i for i in await operations.reviews(sdk, NS) if f"{NS}/{i.run_id}" == run]
    assert len(items) == 1
    assert "below the step's minimum 0.7" in items[0].reason
    assert items[0].output["confidence"] <= 0.5
    stats = await workflows.run_stats(sdk.redis, NS, "unsure", now=time.time())
    assert stats.in_review >= 1
    return run, f"{NS}/{items[0].id}"


async def _cli(redis_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "trimtab", *args, "--redis-url", redis_url]
    return await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True)


async def test_low_confidence_goes_to_review_and_approval_completes_the_run(
    sim: str, redis_url: str, sdk: Client
) -> None:
    run, entry = await _unsure_run(sim, redis_url, sdk)
    assert await operations.approve(sdk, entry) == "ok"
    state = await _settled(sdk, run, "succeeded")
    assert state.steps["answer"].output["confidence"] <= 0.5  # the reviewed output, kept
    assert state.tokens > 0  # the reviewed attempt's tokens are charged once approved
    (logged,) = state.steps["answer"].attempt_log  # an approval ends no attempt of its own
    assert logged.outcome is wire.AttemptOutcome.REVIEW
    assert logged.tokens == state.steps["answer"].tokens
    with pytest.raises(LookupError):
        await operations.review_item(sdk, entry)  # resolved: gone from the queue


async def test_rejecting_a_review_fails_the_run(sim: str, redis_url: str, sdk: Client) -> None:
    """Through the command line, as a reviewer would."""
    run, entry = await _unsure_run(sim, redis_url, sdk)
    listed = await _cli(redis_url, "review", "list", "-n", NS)
    assert entry in listed.stdout
    shown = json.loads((await _cli(redis_url, "review", "show", entry)).stdout)
    assert shown["inputs"] == {"q": "x"}
    assert "below the step's minimum" in shown["reason"]
    rejected = await _cli(redis_url, "review", "reject", entry, "--reason", "not good enough")
    assert rejected.returncode == 0, rejected.stderr
    again = await _cli(redis_url, "review", "reject", entry)
    assert again.returncode == 1  # resolved already: a clear error, nothing changed
    assert "no review" in again.stderr
    state = await _settled(sdk, run, "failed")
    assert state.steps["answer"].error == "not good enough"
    assert "run_done" in await _step_events(sdk, run)


async def test_an_edited_output_must_fit_the_schema_and_then_continues_the_run(
    sim: str, redis_url: str, sdk: Client
) -> None:
    run, entry = await _unsure_run(sim, redis_url, sdk)
    with pytest.raises(operations.InvalidEditError):
        await operations.edit(sdk, entry, {"response": ""})
    fixed = {"response": "checked by a person", "confidence": 0.5}
    assert await operations.edit(sdk, entry, fixed) == "ok"
    state = await _settled(sdk, run, "succeeded")
    assert state.steps["answer"].output == fixed


async def test_a_dead_lettered_step_retried_from_the_queue_resumes_its_run(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "dlq", {"pool": "w", "retry": {**FAST_RETRY, "maxAttempts": 2}})
    async with _workers(sim, redis_url, w="wobbly"):
        run = await sdk.submit(NS, "dlq", {"q": "x"})
        await _settled(sdk, run, "failed")
        entries = [e for e in await operations.dead_letters(sdk, NS) if f"{NS}/{e.run_id}" == run]
        assert len(entries) == 1
        assert "http_5xx" in entries[0].reason
        resumed = await operations.retry_dead_letter(sdk, f"{NS}/{entries[0].id}")
        assert resumed.outcome is wire.Reply.RESUMED
        state = await _settled(sdk, run, "succeeded")
    assert state.steps["answer"].attempt == 3
    assert not [e for e in await operations.dead_letters(sdk, NS) if f"{NS}/{e.run_id}" == run]
    stats = await workflows.run_stats(sdk.redis, NS, "dlq", now=time.time())
    assert (stats.succeeded, stats.failed, stats.dead_lettered) == (1, 0, 1)


BREAKER = {
    "breaker__failureThreshold": 3,
    "breaker__windowSeconds": 30,
    "breaker__openSeconds": 1.0,
}


async def test_breaker_opens_keeps_calls_off_a_down_endpoint_and_closes_when_it_returns(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "breaker", {"pool": "b", "retry": {**FAST_RETRY, "maxAttempts": 10}})
    admin = sim.removesuffix("/v1") + "/admin/models/down"
    before = runtime.sim_requests(sim, "down")
    async with _workers(sim, redis_url, BREAKER, b="down"):
        run = await sdk.submit(NS, "breaker", {"q": "x"})
        deadline = time.monotonic() + 10
        while runtime.sim_requests(sim, "down") - before < 3:  # the threshold's worth of failures
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        # The simulator counts the third call before the worker hears its answer and
        # records it: give the record a moment.
        opened = await _model_breaker(sdk, "b")
        while opened is not breaker.State.OPEN and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            opened = await _model_breaker(sdk, "b")
        await asyncio.sleep(0.6)  # inside the 1 s cool-down: the step retries, no calls
        assert opened is breaker.State.OPEN
        assert runtime.sim_requests(sim, "down") - before == 3
        assert (await sdk.get(run)).status == "running"  # waiting, not failed
        async with httpx.AsyncClient() as http:  # the endpoint comes back
            (await http.put(admin, json={"rate_500": 0.0})).raise_for_status()
        state = await _settled(sdk, run, "succeeded")
    assert await _model_breaker(sdk, "b") is breaker.State.CLOSED
    # 3 failures, then one half-open probe that succeeded; nothing in between.
    assert runtime.sim_requests(sim, "down") - before == 4
    step = state.steps["answer"]
    assert step.attempt > 4  # breaker waits are attempts too, but not against the budget
    events = await _step_events(sdk, run)
    assert events.count("step_done") == 1


@contextlib.asynccontextmanager
async def _priced_workers(
    sim: str, redis_url: str, **pools: tuple[str, float]
) -> AsyncIterator[None]:
    """One worker per pool: (model, price per 1k completion tokens)."""
    async with contextlib.AsyncExitStack() as stack:
        for pool, (model, per_1k) in pools.items():
            spec = runtime.pool_spec(
                sim, model=model, model__pricing__inputPer1k=0.0, model__pricing__outputPer1k=per_1k
            )
            cfg = runtime.worker_settings(NS, pool, spec, redis_url)
            await stack.enter_async_context(runtime.in_process_worker(cfg))
        yield


async def _budgeted(sdk: Client, name: str, budget: dict[str, Any]) -> None:
    """Two steps in sequence: the second's worst case crosses the run's budget."""
    spec = {
        "defaultPool": "pricey",
        "budget": budget,
        "steps": [
            {"name": "first", "prompt": "Answer {{ inputs.q }}", "maxTokens": 20},
            {
                "name": "second",
                "dependsOn": ["first"],
                "prompt": "Then {{ first }}",
                "maxTokens": 20,
            },
        ],
    }
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def test_budget_exhausted_fails_the_run_before_the_step_calls_the_model(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _budgeted(sdk, "budget-fail", {"maxTokensPerRun": 30, "onExhausted": "Fail"})
    before = runtime.sim_requests(sim, "careful")
    async with _priced_workers(sim, redis_url, pricey=("careful", 0.002)):
        run = await sdk.submit(NS, "budget-fail", {"q": "x"})
        state = await _settled(sdk, run, "failed")
    assert state.steps["first"].state == "done"
    second = state.steps["second"]
    assert second.state == "dead"
    assert second.error is not None
    assert second.error.startswith("budget_exhausted: the run has used")
    assert runtime.sim_requests(sim, "careful") - before == 1  # the second step never started
    assert state.tokens <= 30
    entries = [e for e in await operations.dead_letters(sdk, NS) if f"{NS}/{e.run_id}" == run]
    assert [e.step for e in entries] == ["second"]


async def test_budget_exhausted_sends_the_step_to_human_review(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _budgeted(sdk, "budget-review", {"maxTokensPerRun": 30, "onExhausted": "HumanReview"})
    async with _priced_workers(sim, redis_url, pricey=("careful", 0.002)):
        run = await sdk.submit(NS, "budget-review", {"q": "x"})
        state = await _settled(sdk, run, "review")
    assert state.steps["second"].state == "review"
    items = [i for i in await operations.reviews(sdk, NS) if f"{NS}/{i.run_id}" == run]
    assert len(items) == 1
    assert items[0].reason.startswith("budget_exhausted")
    assert items[0].output is None  # nothing was produced: a reviewer supplies it
    assert await operations.edit(sdk, f"{NS}/{items[0].id}", "written by a person") == "ok"
    done = await _settled(sdk, run, "succeeded")
    assert done.steps["second"].output == "written by a person"


async def test_budget_exhausted_degrades_to_the_cheaper_pool(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _budgeted(
        sdk,
        "budget-degrade",
        {"maxCostPerRun": 0.025, "onExhausted": "Degrade", "degradePool": "cheap"},
    )
    async with _priced_workers(sim, redis_url, pricey=("careful", 1.0), cheap=("careful", 0.0001)):
        run = await sdk.submit(NS, "budget-degrade", {"q": "x"})
        state = await _settled(sdk, run, "succeeded")
    assert state.steps["first"].pool == "pricey"
    assert state.steps["second"].pool == "cheap"
    assert state.cost <= 0.025
    assert "step_escalated" in await _step_events(sdk, run)


async def test_the_same_prompt_twice_with_caching_makes_one_model_call_and_costs_nothing(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "cached",
        {"pool": "c", "output": {"schema": ANSWER}, "cache": {"ttlSeconds": 60}},
    )
    question = {"q": f"what is {time.time_ns()}"}  # a prompt no earlier test cached
    before = runtime.sim_requests(sim, "careful")
    async with _workers(sim, redis_url, c="careful"):
        first = await _settled(sdk, await sdk.submit(NS, "cached", question), "succeeded")
        second = await _settled(sdk, await sdk.submit(NS, "cached", question), "succeeded")
        other = await _settled(sdk, await sdk.submit(NS, "cached", {"q": "else"}), "succeeded")
    assert runtime.sim_requests(sim, "careful") - before == 2  # the first run and the other prompt
    assert second.steps["answer"].output == first.steps["answer"].output
    assert (second.tokens, second.cost) == (0, 0.0)
    assert first.tokens > 0
    assert (first.cache_hits, first.cache_misses) == (0, 1)
    assert (second.cache_hits, second.cache_misses) == (1, 0)
    assert other.cache_misses == 1


async def test_a_step_timeout_retries_then_dead_letters(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "timeout",
        {"pool": "s", "timeoutSeconds": 0.3, "retry": {**FAST_RETRY, "maxAttempts": 2}},
    )
    async with _workers(sim, redis_url, s="slow"):
        run = await sdk.submit(NS, "timeout", {"q": "x"})
        state = await _settled(sdk, run, "failed")
    step = state.steps["answer"]
    assert step.attempt == 2
    assert step.error is not None
    assert step.error.startswith("timeout: step timed out after 0.3 s")
    assert (await _step_events(sdk, run)).count("step_retry") == 1


async def test_the_pools_model_timeout_cuts_a_slow_call_before_the_steps_own(
    sim: str, redis_url: str, sdk: Client
) -> None:
    """model.timeoutSeconds 0.3 under a step timeout of 120 s: the request to the slow
    endpoint (1.2 s to answer) is cut off at the pool's limit and retried."""
    await _publish(sdk, "model-timeout", {"pool": "t", "retry": {**FAST_RETRY, "maxAttempts": 2}})
    async with _workers(sim, redis_url, {"model__timeoutSeconds": 0.3}, t="slow"):
        run = await sdk.submit(NS, "model-timeout", {"q": "x"})
        state = await _settled(sdk, run, "failed")
    step = state.steps["answer"]
    assert step.attempt == 2
    # The HTTP client's read timeout, not the step's own ("step timed out after").
    assert (step.error or "").startswith("timeout: timed out: no reply from the endpoint")


async def test_a_run_reaching_its_deadline_mid_call_ends_and_starts_no_further_step(
    sim: str, redis_url: str, sdk: Client
) -> None:
    spec = {
        "defaultPool": "s",
        "deadlineSeconds": 1,
        "steps": [
            {"name": "first", "prompt": "Answer {{ inputs.q }}"},
            {"name": "second", "dependsOn": ["first"], "prompt": "Then {{ first }}"},
        ],
    }
    await sdk.publish(NS, "deadline", awf.AgentWorkflowSpec.model_validate(spec))
    before = runtime.sim_requests(sim, "slow")
    async with _workers(sim, redis_url, s="slow"):
        run = await sdk.submit(NS, "deadline", {"q": "x"})
        state = await _settled(sdk, run, "failed", within=10)
    # The call takes 1.2 s; the run's 1 s deadline cut it off, and nothing came after.
    assert state.steps["first"].state == "dead"
    assert (state.steps["first"].error or "").startswith("deadline_exceeded")
    assert state.steps["second"].state == "pending"
    assert runtime.sim_requests(sim, "slow") - before == 1


async def test_breaker_opens_on_the_failure_rate_not_on_stray_errors(sdk: Client) -> None:
    spec = runtime.pool_spec("http://unused/v1", **BREAKER).breaker  # 3 failures, rate 0.5
    shared = breaker.Breaker(
        sdk.lua, namespace=NS, pool=f"rate-{time.time_ns()}", endpoint="model", spec=spec
    )
    now = time.time() * 1000
    for _ in range(10):  # a busy endpoint: ten calls, three of them fail
        assert (await shared.allow(now)).allowed
    for _ in range(3):
        assert await shared.record(ok=False, now_ms=now) is None
    assert (await shared.allow(now)).state is breaker.State.CLOSED
    for _ in range(3):  # now 6 of 11 calls failed: past half
        await shared.record(ok=False, now_ms=now)
    verdict = await shared.allow(now + 10)
    assert (verdict.allowed, verdict.state) == (False, breaker.State.OPEN)
    assert verdict.retry_at_ms == pytest.approx(now + 1000, abs=1)
    probe = await shared.allow(now + 1001)  # after the cool-down: one probe
    assert (probe.allowed, probe.state) == (True, breaker.State.HALF_OPEN)
    assert not (await shared.allow(now + 1002)).allowed  # only one probe at a time
    assert await shared.record(ok=True, now_ms=now + 1003) is breaker.State.CLOSED


async def test_a_429_is_retried_after_its_retry_after_not_the_shorter_backoff(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "limited", {"pool": "l", "retry": FAST_RETRY})  # backoff 0.05 s
    async with _workers(sim, redis_url, l="limited"):
        run = await sdk.submit(NS, "limited", {"q": "x"})
        state = await _settled(sdk, run, "succeeded")
    assert state.steps["answer"].attempt == 2
    events = await runs.events(sdk.redis, NS, run.split("/")[1])
    retried = [f for _, f in events if f["type"] == "step_retry"]
    assert len(retried) == 1
    assert retried[0]["error"].startswith("http_429")
    waited = (state.steps["answer"].started_ms or 0) - float(retried[0]["at"])
    # Retry-After says 0.8 s; the worker promotes due retries every 0.2 s.
    assert 800 <= waited <= 1600, waited


async def test_a_lower_failure_rate_opens_sooner_and_more_probes_go_through(sdk: Client) -> None:
    """failureRate 0.2 and halfOpenProbes 2: three failures of ten calls (0.3) open the
    breaker that the default rate of 0.5 kept closed above, and after the cool-down two
    probes may go out at once, not one."""
    overrides = {**BREAKER, "breaker__failureRate": 0.2, "breaker__halfOpenProbes": 2}
    spec = runtime.pool_spec("http://unused/v1", **overrides).breaker
    shared = breaker.Breaker(
        sdk.lua, namespace=NS, pool=f"low-{time.time_ns()}", endpoint="model", spec=spec
    )
    now = time.time() * 1000
    for _ in range(10):
        assert (await shared.allow(now)).allowed
    for _ in range(3):
        await shared.record(ok=False, now_ms=now)
    assert (await shared.allow(now + 10)).state is breaker.State.OPEN
    first, second = await shared.allow(now + 1001), await shared.allow(now + 1002)
    assert (first.allowed, second.allowed) == (True, True)
    assert not (await shared.allow(now + 1003)).allowed  # a third waits for their answers

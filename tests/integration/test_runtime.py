"""The workflow runtime on a real redis-server and the real inference simulator."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, keys, messages, runs, state, touched, wire, workflows
from trimtab.sdk import Client
from trimtab.worker import settings

NS = "rt"
SIM_CONFIG: dict[str, Any] = {
    "seed": 7,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 20},
    "models": {
        "slow": {
            "name": "slow",
            "ttft_seconds": 3.0,
            "per_token_seconds": 0.0,
            "output_tokens_mean": 5,
        },
        "broken": {"name": "broken", "ttft_seconds": 0.0, "rate_500": 1.0},
    },
}
RESPONSE_SCHEMA = {
    "type": "object",
    "required": ["response", "confidence"],
    "properties": {
        "response": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


def _tools(sim: str) -> str:
    return sim.removesuffix("/v1") + "/tools"


def _tool_step(name: str, url: str, body: str, *deps: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "tool",
        "tool": {"url": url, "body": body},
        "dependsOn": list(deps),
    }


async def _publish(sdk: Client, name: str, spec: dict[str, Any]) -> None:
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


def _observed(histogram: Any, outcome: str) -> tuple[float, float]:
    """How many observations a step histogram has for `outcome`, and their sum."""
    found = {
        sample.name.rsplit("_", 1)[-1]: sample.value
        for family in histogram.collect()
        for sample in family.samples
        if sample.labels.get("outcome") == outcome and sample.name.endswith(("_count", "_sum"))
    }
    return found.get("count", 0.0), found.get("sum", 0.0)


def _cfg(sim: str, redis_url: str, pool: str = "p", **overrides: Any) -> settings.WorkerSettings:
    return runtime.worker_settings(NS, pool, runtime.pool_spec(sim, **overrides), redis_url)


async def test_fan_out_dag_passes_outputs_along(sim: str, redis_url: str, sdk: Client) -> None:
    echo = _tools(sim) + "/echo"
    await _publish(
        sdk,
        "fan",
        {
            "defaultPool": "p",
            "steps": [
                _tool_step("a", echo, '{"x": "{{ inputs.x }}"}'),
                _tool_step("b", echo, '{"from_a": "{{ a.received.x }}", "who": "b"}', "a"),
                _tool_step("c", echo, '{"from_a": "{{ a.received.x }}", "who": "c"}', "a"),
                _tool_step("d", echo, '{"b": {{ b.received }}, "c": {{ c.received }}}', "b", "c"),
            ],
        },
    )
    async with runtime.in_process_worker(_cfg(sim, redis_url)):
        run = await sdk.submit(NS, "fan", {"x": "hello"})
        result = await sdk.result(run, timeout=20)
    assert result.status == "succeeded"
    assert result.outputs["d"]["received"] == {
        "b": {"from_a": "hello", "who": "b"},
        "c": {"from_a": "hello", "who": "c"},
    }
    got = await sdk.get(run)
    # b and c both waited for a alone, so neither started after d.
    assert got.steps["d"].queued_ms is not None
    assert (
        max(got.steps["b"].ended_ms or 0, got.steps["c"].ended_ms or 0) <= got.steps["d"].queued_ms
    )
    stats = await workflows.run_stats(sdk.redis, NS, "fan", now=time.time())
    assert (stats.started, stats.succeeded, stats.failed) == (1, 1, 0)
    assert stats.p95_seconds is not None  # the completing worker recorded the run's time


async def test_model_step_output_fits_its_schema_and_is_priced(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "answer",
        {
            "defaultPool": "p",
            "steps": [
                {
                    "name": "answer",
                    "prompt": "Answer {{ inputs.q }}",
                    "output": {"schema": RESPONSE_SCHEMA},
                }
            ],
        },
    )
    async with runtime.in_process_worker(_cfg(sim, redis_url)):
        result = await sdk.result(await sdk.submit(NS, "answer", {"q": "why"}), timeout=20)
    assert result.status == "succeeded"
    jsonschema.validate(result.outputs["answer"], RESPONSE_SCHEMA)
    assert result.tokens > 0
    assert result.cost == pytest.approx(result.tokens * 0.001 / 1000, rel=1.0)


async def test_failing_step_retries_then_dead_letters(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "doomed",
        {
            "defaultPool": "p",
            "steps": [
                {
                    "name": "call",
                    "prompt": "hi",
                    "retry": {
                        "maxAttempts": 2,
                        "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1},
                    },
                }
            ],
        },
    )
    async with runtime.in_process_worker(_cfg(sim, redis_url, model="broken")) as worker:
        result = await sdk.result(await sdk.submit(NS, "doomed", {}), timeout=20)
    # Each failed attempt is timed like any other (its HTTP call took some time).
    for outcome in ("retried", "dead_lettered"):
        count, seconds = _observed(worker.metrics.step_duration_seconds, outcome)
        assert count == 1
        assert seconds > 0
    assert result.status == "failed"
    assert "http_5xx" in result.errors["call"]
    assert "attempt 2 of 2" in result.errors["call"]
    dead = await sdk.redis.xrange(keys.dead_letter(NS))
    assert [(e["step"], e["run"]) for _, e in dead] == [("call", result.run.split("/")[1])]
    events = [e async for e in sdk.events(result.run)]
    assert [e["type"] for e in events].count("step_retry") == 1
    stats = await workflows.run_stats(sdk.redis, NS, "doomed", now=time.time())
    assert (stats.started, stats.succeeded, stats.failed, stats.dead_lettered) == (1, 0, 1, 1)


async def test_submit_with_the_same_idempotency_key_returns_the_same_run(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk, "once", {"defaultPool": "p", "steps": [_tool_step("a", _tools(sim) + "/echo", "{}")]}
    )
    await _publish(
        sdk, "twice", {"defaultPool": "p", "steps": [_tool_step("a", _tools(sim) + "/echo", "{}")]}
    )
    first = await sdk.submit(NS, "once", {"n": 1}, idempotency_key="order-42")
    again = await sdk.submit(NS, "once", {"n": 2}, idempotency_key="order-42")
    other = await sdk.submit(NS, "once", {"n": 3}, idempotency_key="order-43")
    elsewhere = await sdk.submit(NS, "twice", {"n": 4}, idempotency_key="order-42")
    assert first == again != other
    assert elsewhere not in (first, other)  # a key is scoped by its workflow
    assert (await sdk.get(first)).inputs == {"n": 1}
    assert (await sdk.get(elsewhere)).workflow == "twice"
    stream = keys.pool_stream(NS, "p")
    assert await sdk.redis.xlen(stream) == 3  # one root enqueued per distinct run


async def test_run_state_expires_with_the_workflow_ttl(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(
        sdk,
        "ttl",
        {
            "defaultPool": "p",
            "state": {"ttlSeconds": 120},
            "steps": [_tool_step("a", _tools(sim) + "/echo", "{}")],
        },
    )
    run = await sdk.submit(NS, "ttl", {}, idempotency_key="k")
    _, run_id = run.split("/")
    for key in (
        keys.run(NS, run_id),
        keys.run_events(NS, run_id),
        keys.idempotency(NS, "ttl", "k"),
    ):
        assert 0 < await sdk.redis.ttl(key) <= 120, key


async def test_conversation_state_round_trips_compresses_and_expires(redis_url: str) -> None:
    client = connection.connect_binary(redis_url)
    store = state.StateStore(client, NS, ttl_seconds=1, compress_above=100)
    big = {"turns": ["a long message " * 20] * 10}
    await store.save("s1", {"turns": ["hi"]})
    await store.save("s2", big)
    assert await store.get("s1") == {"turns": ["hi"]}
    assert await store.get("s2") == big
    raw = await client.get(keys.state(NS, "s2"))
    assert raw is not None
    assert raw[:1] == b"z"
    assert len(raw) < len(str(big))
    await asyncio.sleep(1.3)
    assert await store.get("s1") is None
    await client.aclose()


async def _wait_running(sdk: Client, run: str, step: str) -> None:
    for _ in range(200):
        if (await sdk.get(run)).steps[step].state == "running":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run}/{step} never started")


async def test_killed_worker_step_is_redelivered_and_completes_once(
    sim: str, redis_url: str, sdk: Client, tmp_path: pathlib.Path
) -> None:
    spec = runtime.pool_spec(
        sim, model="slow", queue__visibilityTimeoutSeconds=1, worker__concurrency=1
    )
    manifest = runtime.write_pool_manifest(tmp_path / "pool.json", NS, "p", spec)
    await _publish(
        sdk,
        "slow",
        {
            "defaultPool": "p",
            "steps": [{"name": "think", "prompt": "hmm", "retry": {"maxAttempts": 1}}],
        },
    )
    with runtime.worker_process(manifest, redis_url, tmp_path / "a.log") as victim:
        run = await sdk.submit(NS, "slow", {})
        await _wait_running(sdk, run, "think")
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    async with runtime.in_process_worker(runtime.worker_settings(NS, "p", spec, redis_url)):
        result = await sdk.result(run, timeout=30)
    assert result.status == "succeeded"
    _, run_id = run.split("/")
    record = await sdk.redis.hgetall(keys.run(NS, run_id))
    assert (
        record[wire.step_field("think", wire.StepField.ATTEMPT)] == "1"
    )  # redelivered, not retried
    assert record[wire.step_field("think", wire.StepField.DELIVERIES)] == "2"
    events = [e async for e in sdk.events(run)]
    assert [e["type"] for e in events].count("step_done") == 1


async def test_graceful_drain_releases_in_flight_steps_at_once(
    sim: str, redis_url: str, sdk: Client
) -> None:
    cfg = _cfg(sim, redis_url, model="slow", queue__visibilityTimeoutSeconds=600)
    await _publish(
        sdk, "drain", {"defaultPool": "p", "steps": [{"name": "think", "prompt": "hmm"}]}
    )
    run = await sdk.submit(NS, "drain", {})
    async with runtime.in_process_worker(cfg, grace_seconds=0.1):
        await _wait_running(sdk, run, "think")
    stream = keys.pool_stream(NS, "p")
    pending: Any = await sdk.redis.xpending(stream, keys.GROUP)
    assert pending["pending"] == 0  # released, not left for the 600 s visibility timeout
    step = (await sdk.get(run)).steps["think"]
    assert step.state == "queued"
    async with runtime.in_process_worker(cfg):
        result = await sdk.result(run, timeout=20)
    assert result.status == "succeeded"
    _, run_id = run.split("/")
    assert (
        await sdk.redis.hget(
            keys.run(NS, run_id), wire.step_field("think", wire.StepField.DELIVERIES)
        )
        == "1"
    )


async def test_runs_read_returns_none_for_an_unknown_run(redis_url: str) -> None:
    client = connection.connect(redis_url)
    assert await runs.read(client, NS, "nope") is None
    await client.aclose()


async def test_a_message_no_worker_can_process_is_dead_lettered_not_redelivered(
    sim: str, redis_url: str, sdk: Client
) -> None:
    ns = "poison"
    spec = {"defaultPool": "p", "steps": [_tool_step("a", _tools(sim) + "/echo", "{}")]}
    await sdk.publish(ns, "wf", awf.AgentWorkflowSpec.model_validate(spec))

    def task(step: str, generation: int) -> list[str]:
        return messages.Task(
            namespace=ns,
            run_id=f"forged-{step}-{generation}",
            step=step,
            attempt=1,
            workflow="wf",
            generation=generation,
            enqueued_ms=time.time() * 1000,
        ).encode()

    cfg = runtime.worker_settings(ns, "p", runtime.pool_spec(sim), redis_url)
    stream = keys.pool_stream(ns, "p")
    async with runtime.in_process_worker(cfg):
        for flat in (task("a", 99), task("ghost", 1)):
            await sdk.redis.xadd(stream, dict(zip(flat[::2], flat[1::2], strict=True)))
        deadline = time.monotonic() + 10
        while await sdk.redis.xlen(keys.dead_letter(ns)) < 2:
            assert time.monotonic() < deadline, "the forged messages were never dead-lettered"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # long enough for a redelivery, were there one
    reasons = {e["reason"] for _, e in await sdk.redis.xrange(keys.dead_letter(ns))}
    assert reasons == {
        "workflow poison/wf generation 99 is not stored",
        "workflow wf generation 1 has no step 'ghost'",
    }
    assert (await sdk.redis.xpending(stream, keys.GROUP))["pending"] == 0
    assert await sdk.redis.xlen(keys.dead_letter(ns)) == 2


async def test_every_enqueue_marks_its_pool_touched_for_the_autoscaler(
    sim: str, redis_url: str, sdk: Client
) -> None:
    """The submit script touches the root's pool, the completion script the dependent's;
    a pool nothing was enqueued on stays untouched."""
    echo = _tools(sim) + "/echo"
    second = {**_tool_step("b", echo, '{"x": 1}', "a"), "pool": "touched-later"}
    await _publish(
        sdk, "touch", {"defaultPool": "p", "steps": [_tool_step("a", echo, "{}"), second]}
    )
    pools = [(NS, "p"), (NS, "touched-later"), (NS, "never")]
    reader = touched.TouchedReader(sdk.redis)
    run = await sdk.submit(NS, "touch", {})
    assert await reader.read(pools) == {(NS, "p")}
    async with runtime.in_process_worker(_cfg(sim, redis_url)):
        for _ in range(200):
            if (await sdk.get(run)).steps["b"].state == wire.StepState.QUEUED:
                break
            await asyncio.sleep(0.05)
    assert (NS, "touched-later") in await reader.read(pools)
    assert (NS, "never") not in await touched.TouchedReader(sdk.redis).read(pools)

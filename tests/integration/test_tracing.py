"""Run traces in a real Jaeger: a DAG run with a retried step and a step reclaimed from
a SIGKILLed worker process, traced by worker processes exporting OTLP, its run span
recorded from the ended-runs outbox, then read back from Jaeger's query API.

What it shows: the run is one trace that continues its submitter's; every attempt's
span is a child of the run's span whichever worker ran it (the reclaimed step's on
the second worker), with a queue-wait child and a model or tool call child carrying
the GenAI attributes; the failed attempt is marked failed; the call's outgoing
request carried the call span's traceparent; and nothing of the inputs is recorded.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tests.harness import runtime
from trimtab import config, metrics
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import ended_runs, state
from trimtab.queue import keys, wire
from trimtab.sdk import Client
from trimtab.telemetry import ids, tracing
from trimtab_dev import jaeger as jaeger_mod

NS = "traced"
SECRET_INPUT = "do-not-record-me"
SIM_CONFIG: dict[str, Any] = {
    "seed": 3,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 8},
    "models": {
        "slow": {"name": "slow", "ttft_seconds": 2.0, "per_token_seconds": 0.0},
        "flaky": {"name": "flaky", "ttft_seconds": 0.0, "script": ["500"]},
    },
}
CALLER = ids.Parent(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, sampled=True
)


@pytest.fixture(scope="module")
def jaeger() -> Iterator[jaeger_mod.Jaeger]:
    with jaeger_mod.running_jaeger() as found:
        yield found


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


def _otel_env(jaeger: jaeger_mod.Jaeger) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def _workflow(sim: str) -> awf.AgentWorkflowSpec:
    """a -> (b, c) -> d: a slow model step (to kill its worker during), a model step on
    a pool whose model fails its first call (one retry), a tool step, a model step."""
    return awf.AgentWorkflowSpec.model_validate(
        {
            "defaultPool": "main",
            "steps": [
                {"name": "a", "prompt": "Start {{ inputs.secret }}", "maxTokens": 8},
                {
                    "name": "b",
                    "dependsOn": ["a"],
                    "pool": "flaky",
                    "prompt": "Then {{ a }}",
                    "retry": {"maxAttempts": 3, "backoff": {"initialSeconds": 0.2}},
                },
                {
                    "name": "c",
                    "dependsOn": ["a"],
                    "kind": "tool",
                    "tool": {"url": sim.removesuffix("/v1") + "/tools/lookup", "body": "{}"},
                },
                {"name": "d", "dependsOn": ["b", "c"], "prompt": "End {{ b }}", "maxTokens": 8},
            ],
        }
    )


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _parent(span: dict[str, Any]) -> str | None:
    refs = [r for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


async def _wait_running(sdk: Client, run: str, step: str) -> None:
    for _ in range(400):
        if (await sdk.get(run)).steps[step].state == "running":
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run}/{step} never started")


def _trace_with(
    jaeger: jaeger_mod.Jaeger, trace_id: int, names: set[str], timeout: float = 30.0
) -> dict[str, Any]:
    """The trace once every span named in `names` has arrived (export is batched)."""
    deadline = time.monotonic() + timeout
    found: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        found = jaeger.trace(trace_id)
        if found is not None and names <= {s["operationName"] for s in found["spans"]}:
            return found
        time.sleep(0.2)
    have = sorted(s["operationName"] for s in (found or {}).get("spans", []))
    raise AssertionError(f"trace {trace_id:032x} lacks {sorted(names)}: has {have}")


async def _run_through_a_kill(
    sim: str, redis_url: str, sdk: Client, tmp_path: pathlib.Path, env: dict[str, str]
) -> tuple[str, str]:
    """The run, its step a's worker SIGKILLed mid-call and a reclaimed by another
    worker process; returns the run and the killed worker's consumer name."""
    main = runtime.pool_spec(sim, model="slow", queue__visibilityTimeoutSeconds=2)
    flaky = runtime.pool_spec(sim, model="flaky")
    main_file = runtime.write_pool_manifest(tmp_path / "main.json", NS, "main", main)
    flaky_file = runtime.write_pool_manifest(tmp_path / "flaky.json", NS, "flaky", flaky)
    await sdk.publish(NS, "traced-dag", _workflow(sim))
    run = await sdk.submit(NS, "traced-dag", {"secret": SECRET_INPUT}, traceparent=CALLER.header())
    worker_field = wire.step_field("a", wire.StepField.WORKER)
    with runtime.worker_process(main_file, redis_url, tmp_path / "victim.log", env) as victim:
        await _wait_running(sdk, run, "a")
        victim_worker = await sdk.redis.hget(keys.run(NS, run.split("/")[1]), worker_field)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
    with (
        runtime.worker_process(main_file, redis_url, tmp_path / "main.log", env),
        runtime.worker_process(flaky_file, redis_url, tmp_path / "flaky.log", env),
    ):
        result = await sdk.result(run, timeout=60)
    assert result.status == "succeeded", result
    assert (await sdk.get(run)).steps["b"].attempt == 2, "b's first call failed: retried"
    return run, str(victim_worker)


async def _operator_pass(redis_url: str, sdk: Client) -> None:
    """The operator's pass over the outbox, which records the run's span."""
    shared = state.Shared(
        cfg=config.OperatorConfig(redis_url=redis_url),
        redis=sdk.redis,
        metrics=metrics.build(CollectorRegistry()),
        tracing=tracing.Tracing.from_env("trimtab-operator"),
    )
    assert await ended_runs.handle_ended_in(shared, NS) >= 1
    shared.tracing.shutdown()
    assert await sdk.redis.xlen(keys.ended_runs(NS)) == 0, "handled entries leave the outbox"


def _check_root(found: dict[str, Any], run_id: str) -> dict[str, Any]:
    service = {p: v["serviceName"] for p, v in found["processes"].items()}
    (root,) = [s for s in found["spans"] if s["operationName"] == "run traced-dag"]
    expected = ids.run_trace(NS, run_id, CALLER.header())
    assert root["spanID"] == f"{expected.span_id:016x}"
    assert _parent(root) == f"{CALLER.span_id:016x}", "the run continues its submitter's trace"
    assert service[root["processID"]] == "trimtab-operator"
    assert _tags(root)["trimtab.outcome"] == "succeeded"
    assert _tags(root)["trimtab.run"] == run_id
    return root


def _check_steps(found: dict[str, Any], root: dict[str, Any], victim_worker: str) -> None:
    spans = found["spans"]
    service = {p: v["serviceName"] for p, v in found["processes"].items()}
    steps = [s for s in spans if s["operationName"].startswith("step ")]
    assert {_parent(s) for s in steps} == {root["spanID"]}, "every attempt is the run's child"
    assert {service[s["processID"]] for s in steps} == {"trimtab-worker"}
    (a_span,) = [s for s in steps if s["operationName"] == "step a"]
    assert _tags(a_span)["trimtab.worker"] != victim_worker, "a was reclaimed by the other"
    b_spans = sorted(
        (s for s in steps if s["operationName"] == "step b"), key=lambda s: s["startTime"]
    )
    assert [_tags(s)["trimtab.attempt"] for s in b_spans] == [1, 2]
    assert _tags(b_spans[0])["otel.status_code"] == "ERROR"
    assert _tags(b_spans[0])["trimtab.outcome"] == "retried"
    assert _tags(b_spans[1])["trimtab.outcome"] == "succeeded"
    assert a_span["processID"] != b_spans[0]["processID"], "two workers, one trace"
    for step in steps:
        children = [s for s in spans if _parent(s) == step["spanID"]]
        assert "queue wait" in {c["operationName"] for c in children}, step["operationName"]


def _check_calls(found: dict[str, Any], tool_output: dict[str, Any]) -> None:
    spans = found["spans"]
    by_id = {s["spanID"]: s for s in spans}
    chats = [s for s in spans if s["operationName"].startswith("chat ")]
    for chat in chats:
        assert by_id[_parent(chat)]["operationName"].startswith("step ")
        tags = _tags(chat)
        assert tags["gen_ai.operation.name"] == "chat"
        assert tags["gen_ai.system"] == "openai"
        assert tags["gen_ai.request.model"] in ("slow", "flaky")
        assert tags["span.kind"] == "client"
    ok = [s for s in chats if _tags(s).get("otel.status_code") != "ERROR"]
    assert all(_tags(c)["gen_ai.usage.output_tokens"] > 0 for c in ok)
    assert all("gen_ai.response.finish_reasons" in _tags(c) for c in ok)
    assert any(_tags(c).get("otel.status_code") == "ERROR" for c in chats), "flaky's 500"
    (tool,) = [s for s in spans if s["operationName"] == "execute_tool c"]
    assert by_id[_parent(tool)]["operationName"] == "step c"
    # The tool received the call span's context: the outgoing request carried it.
    assert tool_output["traceparent"].split("-")[2] == tool["spanID"]


async def test_a_dag_run_is_one_trace_across_workers_retries_and_a_reclaim(
    jaeger: jaeger_mod.Jaeger,
    sim: str,
    redis_url: str,
    sdk: Client,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = _otel_env(jaeger)
    for name, value in env.items():  # the operator's, in this process
        monkeypatch.setenv(name, value)
    run, victim_worker = await _run_through_a_kill(sim, redis_url, sdk, tmp_path, env)
    await _operator_pass(redis_url, sdk)
    names = {"run traced-dag", "step a", "step b", "step c", "step d", "chat slow", "chat flaky"}
    found = _trace_with(jaeger, CALLER.trace_id, names | {"execute_tool c"})
    root = _check_root(found, run.split("/")[1])
    _check_steps(found, root, victim_worker)
    known = {s["spanID"] for s in found["spans"]}
    orphans = [
        s["operationName"] for s in found["spans"] if s is not root and _parent(s) not in known
    ]
    assert orphans == [], "the killed worker's attempt left no span behind"
    _check_calls(found, (await sdk.result(run)).outputs["c"])
    assert SECRET_INPUT not in repr(found), "inputs are never recorded"


def _exemplar_traces(histogram: Any) -> set[str]:
    """The trace ids a worker's histogram links its buckets to."""
    return {
        s.exemplar.labels["trace_id"]
        for family in histogram.collect()
        for s in family.samples
        if s.exemplar is not None
    }


async def test_a_traced_workers_histograms_link_to_the_runs_trace(
    jaeger: jaeger_mod.Jaeger, sim: str, redis_url: str, sdk: Client
) -> None:
    """Queue wait, attempt and model-call durations carry the run's trace id as their
    exemplar; a run whose trace is not sampled leaves none."""
    spec = runtime.pool_spec(sim, model="plain")
    cfg = runtime.worker_settings(NS, "exemplars", spec, redis_url)
    await sdk.publish(
        NS,
        "exemplars",
        awf.AgentWorkflowSpec.model_validate(
            {"defaultPool": "exemplars", "steps": [{"name": "only", "prompt": "hi"}]}
        ),
    )
    tracer = tracing.Tracing.from_env("trimtab-worker", env=_otel_env(jaeger))
    unsampled = ids.Parent(trace_id=0x1234, span_id=0x5678, sampled=False)
    async with runtime.in_process_worker(cfg, tracing=tracer) as worker:
        sampled_run = await sdk.submit(NS, "exemplars", {}, traceparent=CALLER.header())
        quiet_run = await sdk.submit(NS, "exemplars", {}, traceparent=unsampled.header())
        for run in (sampled_run, quiet_run):
            assert (await sdk.result(run, timeout=30)).status == "succeeded"
        m = worker.metrics
        expected = {f"{CALLER.trace_id:032x}"}
        assert _exemplar_traces(m.queue_wait_seconds) == expected
        assert _exemplar_traces(m.step_duration_seconds) == expected
        assert _exemplar_traces(m.model_call_seconds) == expected
        calls = m.model_call_seconds.labels(NS, "exemplars")
        count = next(
            s.value for f in calls.collect() for s in f.samples if s.name.endswith("_count")
        )
        assert count == 2, "every model call is observed, traced or not"
    tracer.shutdown()

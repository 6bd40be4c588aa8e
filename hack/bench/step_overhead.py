#!/usr/bin/env python3
"""Orchestration overhead per step, and the latency win of running a DAG in parallel.

1. Overhead: a 6-step chain against a zero-latency simulator, one worker process. For
   every hop, the time from a step's enqueue to its dependent's enqueue (claim, start,
   read the run, call the zero-latency endpoint, complete + enqueue the dependent), from
   the run record's microsecond timestamps. Once with one run at a time (latency), once
   with 16 runs in flight (under load). Target: p50 <= 2 ms, p99 <= 10 ms. Then the
   same chain held against budgets (its run's maxTokensPerRun and a namespace
   AgentBudget with an hourly and a daily limit): what the atomic reservation adds.
2. Parallel DAG: the customer-support shape (history, docs, intent: 2 s each, in
   parallel; then a 2 s response) against the same four steps chained, same worker.
3. Priorities: 10 interactive runs submitted just after a 400-run batch, one worker of
   16 slots, a 50 ms model. Their queue wait (enqueued -> started) when every run is
   Normal (one FIFO, as a single Celery queue or Redis list serves them) against
   interactive High and batch Low, and what the batch pays for it (its makespan).
Beside each overhead figure, the worker process's CPU per step (all it did in the
phase, claims and idle polls included, over the steps it ran). Prints figures; asserts
nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _local

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import agentbudgets
from trimtab.reconcile.agentbudget import windows
from trimtab.sdk import Client

NS = "bench"
CHAIN = 6
SIM = {
    "seed": 1,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 8},
    "models": {
        "fifty-ms": {"name": "fifty-ms", "ttft_seconds": 0.05, "per_token_seconds": 0.0},
        "two-seconds": {
            "name": "two-seconds",
            "ttft_seconds": 2.0,
            "per_token_seconds": 0.0,
            "output_tokens_mean": 8,
        },
    },
}


def _chain(length: int, *, prompt: str = "go") -> dict[str, Any]:
    steps = [
        {"name": f"s{i}", "prompt": prompt, "dependsOn": [f"s{i - 1}"] if i else []}
        for i in range(length)
    ]
    return {"defaultPool": "p", "steps": steps}


# Limits far above what the bench spends: every call is held and settled, none refused.
BUDGET = windows.Definition(
    frozenset({"budgeted"}),
    (windows.Limit("Hour", 10**9, None), windows.Limit("Day", 10**10, 10**6)),
)


def _support_shape() -> dict[str, Any]:
    roots = [{"name": n, "prompt": "work"} for n in ("history", "docs", "intent")]
    respond = {"name": "respond", "prompt": "answer", "dependsOn": ["history", "docs", "intent"]}
    return {"defaultPool": "p", "steps": [*roots, respond]}


async def _hops(client: Client, run: str) -> list[float]:
    steps = (await client.get(run)).steps
    return [
        (steps[f"s{i + 1}"].queued_ms or 0) - (steps[f"s{i}"].queued_ms or 0)
        for i in range(CHAIN - 1)
    ]


async def _run_batch(client: Client, workflow: str, count: int, *, concurrent: int) -> list[str]:
    runs: list[str] = []
    for start in range(0, count, concurrent):
        batch = [
            await client.submit(NS, workflow, {"i": i})
            for i in range(start, min(count, start + concurrent))
        ]
        for run in batch:
            result = await client.result(run, timeout=60)
            assert result.status == "succeeded", result
        runs += batch
    return runs


def _report(label: str, hops: list[float], cpu_ms: float | None = None) -> None:
    p50, p99 = _local.percentile(hops, 50), _local.percentile(hops, 99)
    cpu = f"  worker CPU {cpu_ms:5.2f} ms/step" if cpu_ms is not None else ""
    print(
        f"  {label:<28} hops={len(hops):5d}  p50={p50:6.2f} ms  p99={p99:6.2f} ms  "
        f"(target p50 <= 2, p99 <= 10){cpu}"
    )


async def overhead(redis_url: str, workers: list[int]) -> None:
    client = Client(redis_url)
    await client.publish(NS, "chain", awf.AgentWorkflowSpec.model_validate(_chain(CHAIN)))
    await _run_batch(client, "chain", 20, concurrent=1)  # warm connections and caches
    print("Orchestration overhead per step (enqueue -> dependent enqueued, zero-latency model):")
    for label, count, concurrent in (
        ("one run at a time", 300, 1),
        ("16 in flight (queueing)", 480, 16),  # includes waiting behind the other 15 runs
    ):
        cpu0 = _local.cpu_seconds(workers)
        runs = await _run_batch(client, "chain", count, concurrent=concurrent)
        cpu_ms = 1000 * (_local.cpu_seconds(workers) - cpu0) / (count * CHAIN)
        _report(label, [h for run in runs for h in await _hops(client, run)], cpu_ms)
    budgeted = {**_chain(CHAIN), "budget": {"maxTokensPerRun": 10**6}}
    await client.publish(NS, "budgeted", awf.AgentWorkflowSpec.model_validate(budgeted))
    await agentbudgets.publish(client.redis, NS, "team", BUDGET)
    await _run_batch(client, "budgeted", 20, concurrent=1)
    runs = await _run_batch(client, "budgeted", 300, concurrent=1)
    _report("one at a time, 3 budgets", [h for run in runs for h in await _hops(client, run)])
    await client.aclose()


async def parallel_dag(redis_url: str) -> None:
    client = Client(redis_url)
    timings = {}
    for name, spec in (("parallel", _support_shape()), ("sequential", _chain(4))):
        await client.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))
        t0 = time.perf_counter()
        result = await client.result(await client.submit(NS, name, {}), timeout=60)
        timings[name] = time.perf_counter() - t0
        assert result.status == "succeeded", result
    print("\nCustomer-support DAG, four 2 s model steps:")
    print(f"  parallel (3 roots, then respond): {timings['parallel']:5.2f} s (ideal 4 s)")
    print(f"  same steps chained:               {timings['sequential']:5.2f} s (ideal 8 s)")
    print(
        f"  speed-up:                         {timings['sequential'] / timings['parallel']:5.2f}x"
    )
    await client.aclose()


BATCH, INTERACTIVE = 400, 10


async def _queue_waits(client: Client, runs: list[str]) -> list[float]:
    steps = [(await client.get(run)).steps["s0"] for run in runs]
    return [(s.started_ms or 0) - (s.queued_ms or 0) for s in steps]


async def priorities(redis_url: str) -> None:
    client = Client(redis_url)
    await client.publish(NS, "one", awf.AgentWorkflowSpec.model_validate(_chain(1)))
    await _run_batch(client, "one", 20, concurrent=4)  # warm
    print(
        f"\n{INTERACTIVE} interactive runs submitted right after a {BATCH}-run batch "
        "(16 slots, 50 ms model), their queue wait:"
    )
    for label, batch_level, interactive_level in (
        ("one FIFO (all Normal)", "Normal", "Normal"),
        ("interactive High, batch Low", "Low", "High"),
    ):
        t0 = time.perf_counter()
        batch = [await client.submit(NS, "one", {}, priority=batch_level) for _ in range(BATCH)]
        urgent = [
            await client.submit(NS, "one", {}, priority=interactive_level)
            for _ in range(INTERACTIVE)
        ]
        for run in urgent + batch:
            assert (await client.result(run, timeout=120)).status == "succeeded"
        makespan = time.perf_counter() - t0
        waits = await _queue_waits(client, urgent)
        print(
            f"  {label:<28} p50={_local.percentile(waits, 50):7.1f} ms  "
            f"max={max(waits):7.1f} ms   batch done in {makespan:5.2f} s"
        )
    await client.aclose()


def main() -> None:
    with _local.services(SIM) as (redis_url, sim, work):
        with _local.workers(redis_url, work, pool=_local.pool_manifest(NS, "p", sim)) as pids:
            asyncio.run(overhead(redis_url, pids))
        pool = _local.pool_manifest(NS, "p", sim, model="fifty-ms")
        with _local.workers(redis_url, work, pool=pool):
            asyncio.run(priorities(redis_url))
        pool = _local.pool_manifest(NS, "p", sim, model="two-seconds")
        with _local.workers(redis_url, work, pool=pool):
            asyncio.run(parallel_dag(redis_url))


if __name__ == "__main__":
    main()

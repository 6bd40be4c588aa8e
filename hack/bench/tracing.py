#!/usr/bin/env python3
"""What tracing costs a step: orchestration overhead with tracing off, on with every
run sampled, and on with 1 % sampled, side by side in one run, exporting to a real
Jaeger (hack/build-jaeger.sh) over OTLP/HTTP.

The measure is step_overhead.py's: a 6-step chain against a zero-latency simulator,
one worker process, the time from a step's enqueue to its dependent's enqueue (from
the run record's microsecond timestamps), one run at a time and 16 in flight. Each
setting runs in two rounds, interleaved (off, 1.0, 0.01, off, ...), so the machine's
drift is shared. Then how many traces reached Jaeger, against how many were kept.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import _local

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.sdk import Client
from trimtab.telemetry import ids
from trimtab_dev import jaeger as jaeger_mod

NS = "bench-tracing"
CHAIN = 6
ROUNDS = 3
SEQUENTIAL, CONCURRENT, IN_FLIGHT = 150, 160, 16
SIM = {
    "seed": 1,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 8},
}
SETTINGS: dict[str, dict[str, str]] = {
    "off": {},
    "on, sampled 1.0": {"OTEL_TRACES_SAMPLER": "parentbased_always_on"},
    "on, sampled 0.01": {
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.01",
    },
}


def _chain() -> dict[str, Any]:
    steps = [
        {"name": f"s{i}", "prompt": "go", "dependsOn": [f"s{i - 1}"] if i else []}
        for i in range(CHAIN)
    ]
    return {"defaultPool": "p", "steps": steps}


async def _hops(client: Client, run: str) -> list[float]:
    steps = (await client.get(run)).steps
    return [
        (steps[f"s{i + 1}"].queued_ms or 0) - (steps[f"s{i}"].queued_ms or 0)
        for i in range(CHAIN - 1)
    ]


async def _runs(client: Client, count: int, concurrent: int) -> tuple[list[str], float]:
    runs: list[str] = []
    t0 = time.perf_counter()
    for start in range(0, count, concurrent):
        batch = [
            await client.submit(NS, "chain", {}) for _ in range(min(concurrent, count - start))
        ]
        for run in batch:
            assert (await client.result(run, timeout=60)).status == "succeeded"
        runs += batch
    return runs, time.perf_counter() - t0


async def _measure(redis_url: str) -> tuple[list[float], list[float], float, list[str]]:
    client = Client(redis_url)
    await client.publish(NS, "chain", awf.AgentWorkflowSpec.model_validate(_chain()))
    await _runs(client, 10, 1)  # warm connections and caches
    alone, _ = await _runs(client, SEQUENTIAL, 1)
    loaded, seconds = await _runs(client, CONCURRENT, IN_FLIGHT)
    one = [h for run in alone for h in await _hops(client, run)]
    many = [h for run in loaded for h in await _hops(client, run)]
    await client.aclose()
    return one, many, CONCURRENT / seconds, alone + loaded


def _in_jaeger(jaeger: jaeger_mod.Jaeger, runs: list[str]) -> int:
    found = 0
    for ref in runs:
        namespace, run_id = ref.split("/")
        if jaeger.trace(ids.run_trace(namespace, run_id).trace_id) is not None:
            found += 1
    return found


def main() -> None:
    figures: dict[str, dict[str, list[Any]]] = {
        name: {"one": [], "many": [], "rate": [], "runs": []} for name in SETTINGS
    }
    with jaeger_mod.running_jaeger() as jaeger, _local.services(SIM) as (redis_url, sim, work):
        endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint}
        pool = _local.pool_manifest(NS, "p", sim)
        for _ in range(ROUNDS):
            for name, extra in SETTINGS.items():
                env = {**endpoint, **extra} if extra else {}
                with _local.workers(redis_url, work, pool=pool, env=env):
                    one, many, rate, runs = asyncio.run(_measure(redis_url))
                f = figures[name]
                f["one"] += one
                f["many"] += many
                f["rate"].append(rate)
                f["runs"] += runs
        time.sleep(2)  # the last batches' export
        with urllib.request.urlopen(jaeger.query_url + "/api/services") as response:  # noqa: S310
            services = response.read().decode()
        print(
            f"Step overhead with tracing (a {CHAIN}-step chain, zero-latency model, one worker; "
            f"{ROUNDS} interleaved rounds; workers only: the run spans are the operator's):"
        )
        print(
            f"  {'setting':<18} {'alone p50':>10} {'alone p99':>10} {'16 in flight p50':>17} "
            f"{'p99':>8} {'runs/s':>8} {'traces in Jaeger':>17}"
        )
        for name, f in figures.items():
            traced = _in_jaeger(jaeger, f["runs"][:: max(1, len(f["runs"]) // 200)])
            sampled = len(f["runs"][:: max(1, len(f["runs"]) // 200)])
            print(
                f"  {name:<18} {_local.percentile(f['one'], 50):8.2f}ms "
                f"{_local.percentile(f['one'], 99):8.2f}ms "
                f"{_local.percentile(f['many'], 50):15.2f}ms "
                f"{_local.percentile(f['many'], 99):6.2f}ms "
                f"{sum(f['rate']) / len(f['rate']):8.1f} "
                f"{traced:>8d} of {sampled:<6d}"
            )
        base = _local.percentile(figures["off"]["one"], 50)
        for name in list(SETTINGS)[1:]:
            ratio = _local.percentile(figures[name]["one"], 50) / base
            print(f"  p50 alone, {name} / off: {ratio:5.2f}x")
        print(f"  Jaeger services: {services}")


if __name__ == "__main__":
    main()

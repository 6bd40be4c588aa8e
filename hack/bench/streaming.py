#!/usr/bin/env python3
"""Time to first token through Trimtab against streaming straight from the model server.

A one-step workflow whose model step streams (stream: true), one worker process, the
simulator answering with a fixed 100 ms time to first token and 5 ms a token. Each
probe submits a run with the SDK and waits on the run's events for its first `tokens`
event; the peer is an httpx client streaming the same request from the simulator
itself, which is the model's own time to first token as a client sees it. What
Trimtab adds is the difference: a probe's time minus the median direct time. Measured
at idle (one run at a time) and under load (8 other streaming runs kept in flight, half
the worker's slots, so a probe never waits for a free one).
Target: added p99 <= 50 ms at idle. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time

import _local
import httpx

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import wire
from trimtab.sdk import Client

NS = "bench"
PROBES = 60
LOAD = 8  # half the worker's 16 slots: load, not a queue in front of the probe
TTFT = 0.1
SIM = {
    "seed": 3,
    # Capacity past the load, so the model's own time stays its own under load.
    "default": {
        "ttft_seconds": TTFT,
        "per_token_seconds": 0.005,
        "output_tokens_mean": 60,
        "capacity": 64,
    },
}
WORKFLOW = {
    "defaultPool": "p",
    "steps": [{"name": "reply", "prompt": "Answer {{ inputs.q }}", "stream": True}],
}


async def _first_token(client: Client, q: str) -> float:
    started = time.perf_counter()
    run = await client.submit(NS, "chat", {"q": q})
    async for event in client.events(run, block_ms=5000):
        if event.get("type") == wire.EventType.TOKENS:
            return time.perf_counter() - started
    raise RuntimeError(f"run {run} ended without streaming")


async def _direct(sim: str, q: str) -> float:
    body = {
        "model": "sim-small",
        "messages": [{"role": "user", "content": f"Answer {q}"}],
        "max_tokens": 1024,
        "stream": True,
    }
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.perf_counter()
        async with http.stream("POST", sim + "/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    if delta.get("content"):
                        return time.perf_counter() - started
    raise RuntimeError("no content streamed")


async def _alternating(client: Client, sim: str, tag: str) -> tuple[list[float], list[float]]:
    """Direct and Trimtab probes in turn, so both see the same load."""
    direct, via = [], []
    for i in range(PROBES):
        direct.append(await _direct(sim, f"{tag}{i}"))
        via.append(await _first_token(client, f"{tag}{i}"))
    return direct, via


async def _keep_busy(client: Client, stop: asyncio.Event) -> None:
    while not stop.is_set():
        run = await client.submit(NS, "chat", {"q": "load"})
        with contextlib.suppress(Exception):
            await client.result(run, timeout=30)


def _row(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    p50, p99 = _local.percentile(ms, 50), _local.percentile(ms, 99)
    return f"  {label:<44}{p50:>9.1f}{p99:>9.1f}"


async def measure(redis_url: str, sim: str) -> None:
    client = Client(redis_url)
    await client.publish(NS, "chat", awf.AgentWorkflowSpec.model_validate(WORKFLOW))
    for i in range(5):  # warm connections and the worker's caches
        await _first_token(client, f"warm {i}")
        await _direct(sim, f"warm {i}")
    direct, idle = await _alternating(client, sim, "q")
    stop = asyncio.Event()
    load = [asyncio.create_task(_keep_busy(client, stop)) for _ in range(LOAD)]
    await asyncio.sleep(1.0)
    loaded_direct, loaded = await _alternating(client, sim, "l")
    stop.set()
    await asyncio.gather(*load)
    await client.aclose()
    base, loaded_base = statistics.median(direct), statistics.median(loaded_direct)
    results = {
        "direct": direct,
        "idle": idle,
        "added_idle": [v - base for v in idle],
        "loaded_direct": loaded_direct,
        "loaded": loaded,
        "added_loaded": [v - loaded_base for v in loaded],
    }
    print(f"time to first token, ms ({PROBES} probes each; model's own TTFT {TTFT * 1000:.0f} ms)")
    print(f"  {'':<44}{'p50':>9}{'p99':>9}")
    print(_row("idle: straight from the model server (peer)", results["direct"]))
    print(_row("idle: submit -> first tokens event (SDK)", results["idle"]))
    print(_row("idle: added by Trimtab (target p99 <= 50)", results["added_idle"]))
    print(_row(f"load ({LOAD} runs in flight): straight (peer)", results["loaded_direct"]))
    print(_row(f"load ({LOAD} runs in flight): via Trimtab", results["loaded"]))
    print(_row(f"load ({LOAD} runs in flight): added by Trimtab", results["added_loaded"]))


def main() -> None:
    with (
        _local.services(SIM) as (redis_url, sim, work),
        _local.workers(redis_url, work, pool=_local.pool_manifest(NS, "p", sim)),
    ):
        asyncio.run(measure(redis_url, sim))


if __name__ == "__main__":
    main()

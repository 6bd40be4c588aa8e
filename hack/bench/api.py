#!/usr/bin/env python3
"""The HTTP API's cost beside the SDK's direct Redis submit, in one run.

One `trimtab api serve` process (development mode: no token reviews, whose answers are
cached for 10 s anyway) on a real redis-server; runs of a one-step workflow on a pool
no worker serves, so only submitting is measured.
- Submit latency: sequential submits, alternating direct (SDK on Redis, the peer) and
  over HTTP (a keep-alive aiohttp client): p50 and p99, and what the API adds.
- Submits per second: CONCURRENCY callers for SECONDS, the SDK direct beside one API
  process.
- SSE fan-out: STREAMS concurrent event streams on the one process (STREAMS/10 runs,
  ten followers each); every run is then cancelled and each follower's time from the
  cancel to its run_done is taken. Reported with the server's memory and its Redis
  connections while all streams are open.
Prints figures; asserts nothing. The machine is shared: read ratios, not absolutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import subprocess
import sys
import time
from typing import Any

import _local
import aiohttp
import httpx

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.sdk import Client

NS = "bench"
SUBMITS = 400
CONCURRENCY = 32
SECONDS = 8.0
STREAMS = 1000
WORKFLOW = {"defaultPool": "nobody", "steps": [{"name": "a", "prompt": "hi {{ inputs.i }}"}]}


@contextlib.contextmanager
def api_server(redis_url: str, work: pathlib.Path) -> Any:
    port = _local.free_port()
    log = open(work / "api.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "trimtab", "api", "serve", "--no-auth", "--port", str(port),
         "--redis-url", redis_url, "--requests-per-second", "1000000", "--burst", "1000000"],
        stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _local.wait_for(lambda: httpx.get(url + "/healthz").status_code == 200, "the API")
        yield url, proc.pid
    finally:
        _local.stop(proc)
        log.close()


def _ms(values: list[float], q: float) -> float:
    return _local.percentile([v * 1000 for v in values], q)


async def latency(sdk: Client, url: str) -> tuple[list[float], list[float]]:
    direct, over = [], []
    path = f"{url}/v1/namespaces/{NS}/workflows/w/runs"
    async with aiohttp.ClientSession() as http:
        for i in range(SUBMITS + 20):  # the first 20 of each warm up, uncounted
            t0 = time.perf_counter()
            await sdk.submit(NS, "w", {"i": i})
            t1 = time.perf_counter()
            async with http.post(path, json={"inputs": {"i": i}}) as response:
                assert response.status == 201, await response.text()
            t2 = time.perf_counter()
            if i >= 20:
                direct.append(t1 - t0)
                over.append(t2 - t1)
    return direct, over


async def rate(submit: Any) -> float:
    done = 0
    stop = time.monotonic() + SECONDS

    async def caller() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await submit()
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    return done / (time.monotonic() - started)


async def _api_rate(url: str) -> float:
    """Submits/s over HTTP, from an aiohttp client (cheaper per request than httpx, so
    the client is less of what is measured)."""
    path = f"{url}/v1/namespaces/{NS}/workflows/w/runs"
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def submit() -> None:
            async with http.post(path, json={"inputs": {"i": 0}}) as response:
                assert response.status == 201, await response.text()

        return await rate(submit)


def _rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Followers:
    """Counts the streams open and notes when each saw its run end."""

    def __init__(self, total: int) -> None:
        self.total, self.open = total, 0
        self.all_open = asyncio.Event()
        self.ended: dict[int, float] = {}

    async def follow(self, http: aiohttp.ClientSession, url: str, key: int) -> None:
        async with http.get(url) as response:
            self.open += 1
            if self.open == self.total:
                self.all_open.set()
            async for line in response.content:
                if line == b"event: run_done\n":
                    self.ended[key] = time.perf_counter()


async def fan_out(sdk: Client, url: str, pid: int) -> dict[str, float]:
    runs = [await sdk.submit(NS, "w", {"i": i}) for i in range(STREAMS // 10)]
    # aiohttp for the followers: httpx's pool scans its connections on every event, which
    # at a thousand connections made the client, not the server, the bottleneck.
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        followers = Followers(STREAMS)
        before = len(await sdk.redis.client_list())
        tasks = []
        for k in range(STREAMS):
            run_id = runs[k % len(runs)].split("/")[1]
            path = f"{url}/v1/namespaces/{NS}/runs/{run_id}/events"
            tasks.append(asyncio.create_task(followers.follow(http, path, k)))
        await asyncio.wait_for(followers.all_open.wait(), 120)
        await asyncio.sleep(1.0)  # every stream has read its history and waits live
        connections = len(await sdk.redis.client_list()) - before
        rss = _rss_mib(pid)
        cancelled_at = time.perf_counter()
        await asyncio.gather(*(sdk.cancel(r) for r in runs))
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    waits = [t - cancelled_at for t in followers.ended.values()]
    return {"connections": connections, "rss": rss, "p50": _ms(waits, 50), "p99": _ms(waits, 99),
            "ended": len(followers.ended)}  # fmt: skip


async def measure(redis_url: str, work: pathlib.Path) -> None:
    sdk = Client(redis_url)
    await sdk.publish(NS, "w", awf.AgentWorkflowSpec.model_validate(WORKFLOW))
    with api_server(redis_url, work) as (url, pid):
        direct, over = await latency(sdk, url)
        direct_rate = await rate(lambda: sdk.submit(NS, "w", {"i": 0}))
        api_rate = await _api_rate(url)
        fan = await fan_out(sdk, url, pid)
    await sdk.aclose()
    print(f"submit latency, ms ({SUBMITS} sequential submits each, alternating)")
    print(f"  {'':<40}{'p50':>9}{'p99':>9}")
    print(f"  {'SDK straight to Redis (peer)':<40}{_ms(direct, 50):>9.2f}{_ms(direct, 99):>9.2f}")
    print(f"  {'HTTP API (one process)':<40}{_ms(over, 50):>9.2f}{_ms(over, 99):>9.2f}")
    added = (_ms(over, 50) - _ms(direct, 50), _ms(over, 99) - _ms(direct, 99))
    print(f"  {'added by the API':<40}{added[0]:>9.2f}{added[1]:>9.2f}")
    print(f"submits per second ({CONCURRENCY} concurrent callers, {SECONDS:g} s)")
    print(f"  {'SDK straight to Redis (peer)':<40}{direct_rate:>9.0f}")
    print(f"  {'HTTP API, one process':<40}{api_rate:>9.0f}")
    print(f"SSE fan-out: {STREAMS} concurrent streams on one API process ({STREAMS // 10} runs)")
    print(f"  streams that saw their run end{'':<10}{fan['ended']:>9.0f} of {STREAMS}")
    print(f"  cancel -> run_done at the client, ms  p50 {fan['p50']:.1f}  p99 {fan['p99']:.1f}")
    print(f"  API process memory, MiB{'':<17}{fan['rss']:>9.1f}")
    print(f"  Redis connections added by the streams{fan['connections']:>9.0f}")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    with _local.services({"seed": 1, "default": {}}) as (redis_url, _, work):
        asyncio.run(measure(redis_url, work))


if __name__ == "__main__":
    main()

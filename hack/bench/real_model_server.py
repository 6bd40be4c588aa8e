#!/usr/bin/env python3
"""llama.cpp's llama-server (the real model server the tests call) beside the project's
simulator, through the worker's own model client, on this machine.

Prints what a new checkout pays and gets: the cost of the server's first build (the
cache says whether it was built here or reused), the tiny model's generation time,
and for a 32-token completion (sequential calls) the client's p50 and p99 latency, the
time to first token of a streamed call, and the server's decode rate from its own
`timings`. The simulator is set to answer in zero time, so its column is the client's
and HTTP's floor. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import pathlib
import statistics
import tempfile
import time

import _local
import httpx

from trimtab.api.v1alpha1 import agentpool
from trimtab.worker.model_client import ModelClient
from trimtab_dev.llama import server as llama
from trimtab_dev.llama import tiny_model

CALLS = 60
SIM = {
    "seed": 1,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 32},
}


async def _latencies(url: str, model: str, *, stream: bool) -> list[float]:
    spec = agentpool.ModelEndpoint(endpoint=url, name=model, maxTokens=32)
    client = ModelClient(spec, api_key=None, max_connections=2)
    first: list[float] = []

    async def on_text(_: str) -> None:
        if len(first) == len(out):
            first.append(time.perf_counter() - started)

    out: list[float] = []
    try:
        for i in range(CALLS + 5):
            started = time.perf_counter()
            await client.chat(
                system=None, prompt=f"Tell me about order {i}.", on_text=on_text if stream else None
            )
            if i >= 5:  # the first calls warm connections and caches
                out.append(time.perf_counter() - started)
            elif stream:
                first.pop()
    finally:
        await client.aclose()
    return first if stream else out


def _decode_rate(url: str) -> float:
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "Go on."}],
        "max_tokens": 64,
        "ignore_eos": True,
    }
    rates = []
    for _ in range(10):
        timings = httpx.post(url + "/chat/completions", json=body, timeout=30).json()["timings"]
        rates.append(float(timings["predicted_per_second"]))
    return statistics.median(rates)


def _ms(values: list[float], q: float) -> str:
    return f"{_local.percentile([v * 1000 for v in values], q):9.1f}"


def main() -> None:
    started = time.perf_counter()
    binary = llama.llama_server_binary()
    found = time.perf_counter() - started
    started = time.perf_counter()
    tiny_model.write_tiny_model(pathlib.Path(tempfile.mkdtemp()) / "tiny.gguf")
    generated = time.perf_counter() - started
    how = "reused from the cache" if found < 5 else f"built in {found:.0f} s"
    print(f"llama-server: {binary} ({how})")
    print(f"tiny model: generated in {generated * 1000:.0f} ms")
    with llama.running_llama_server() as url, _local.services(SIM) as (_, sim, _work):
        rows = {
            "llama-server": (
                asyncio.run(_latencies(url, "tiny", stream=False)),
                asyncio.run(_latencies(url, "tiny", stream=True)),
            ),
            "simulator (zero-time model)": (
                asyncio.run(_latencies(sim, "sim-small", stream=False)),
                asyncio.run(_latencies(sim, "sim-small", stream=True)),
            ),
        }
        rate = _decode_rate(url)
    print(f"32-token completions, {CALLS} sequential calls each, ms")
    print(f"  {'':<30}{'p50':>9}{'p99':>9}{'TTFT p50':>10}{'TTFT p99':>10}")
    for name, (whole, ttft) in rows.items():
        print(f"  {name:<30}{_ms(whole, 50)}{_ms(whole, 99)} {_ms(ttft, 50)} {_ms(ttft, 99)}")
    print(
        f"llama-server decode rate (its own timings, 64 tokens, median of 10): {rate:,.0f} tokens/s"
    )


if __name__ == "__main__":
    main()

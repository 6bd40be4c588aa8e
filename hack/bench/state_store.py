#!/usr/bin/env python3
"""Conversation state store: get and save latency for 1 KB and 100 KB states.

One client, sequential calls against a local redis-server, as a worker would make them
between model calls; 100 KB states are compressed above the 1 KB threshold, so that row
includes zlib. Target: p99 <= 2 ms at 1 KB. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import random
import string
import time

import _local

from trimtab.queue import connection, state

ROUNDS = 2000


def _conversation(size: int, rng: random.Random) -> dict[str, object]:
    """Chat-like text of about `size` bytes (words, so compression is realistic)."""
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(400)]
    turns, total = [], 0
    while total < size:
        text = " ".join(rng.choices(words, k=30))
        turns.append({"role": rng.choice(["user", "assistant"]), "content": text})
        total += len(text) + 30
    return {"session": "s", "turns": turns}


async def _measure(store: state.StateStore, value: object) -> tuple[list[float], list[float]]:
    saves, gets = [], []
    for i in range(ROUNDS):
        t0 = time.perf_counter()
        await store.save(f"s{i % 100}", value)
        t1 = time.perf_counter()
        await store.get(f"s{i % 100}")
        t2 = time.perf_counter()
        saves.append((t1 - t0) * 1000)
        gets.append((t2 - t1) * 1000)
    return saves, gets


async def bench(redis_url: str) -> None:
    client = connection.connect_binary(redis_url)
    store = state.StateStore(client, "bench")
    rng = random.Random(5)
    print(f"Conversation state store, {ROUNDS} sequential calls each (ms):")
    for label, size in (("1 KB", 1024), ("100 KB", 100 * 1024)):
        value = _conversation(size, rng)
        stored = len(state.encode(value))
        saves, gets = await _measure(store, value)
        for op, samples in (("save", saves), ("get", gets)):
            print(
                f"  {label:>6} {op:<4} p50={_local.percentile(samples, 50):6.3f}  "
                f"p99={_local.percentile(samples, 99):6.3f}  (stored {stored} bytes)"
            )
    print("  target: p99 <= 2 ms at 1 KB")
    await client.aclose()


def main() -> None:
    with _local.services({"seed": 1}) as (redis_url, _, _):
        asyncio.run(bench(redis_url))


if __name__ == "__main__":
    main()

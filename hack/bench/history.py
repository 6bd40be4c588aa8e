#!/usr/bin/env python3
"""Archiving ended runs to PostgreSQL (Debian's server, trimtab_dev.postgres): how fast
a backlog drains, and how far behind the runs the archive is under steady load.

1. Throughput: 3000 two-step runs end while nothing archives (an operator that was
   down), then the operator's pass (trimtab.handlers.ended_runs: batches of 500 from
   the outbox, one transaction each, statements pipelined) drains them. Beside it the
   same rows written the way a naive consumer does, one transaction per run, into a
   second database.
2. Lag: runs submitted at a steady 20/s (the demo's average rate) for 30 s while the
   pass runs each second, as the operator's loop does; the lag of a run is its row's
   archived_at less its ended_at.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import _local
from prometheus_client import CollectorRegistry

from trimtab import config, metrics
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import archiving, ended_runs, state
from trimtab.history import archive, store
from trimtab.queue import ended
from trimtab.sdk import Client
from trimtab_dev import postgres

NS = "bench-history"
BACKLOG, IN_FLIGHT = 3000, 32
RATE, LOAD_SECONDS = 20.0, 30.0
SIM = {
    "seed": 2,
    "tool_delay_seconds": 0.0,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 8},
}
SPEC = {
    "defaultPool": "p",
    "steps": [
        {"name": "a", "prompt": "go {{ inputs.i }}"},
        {"name": "b", "prompt": "then {{ a }}", "dependsOn": ["a"]},
    ],
}


def _shared(redis_url: str, client: Client, pg: postgres.Postgres) -> state.Shared:
    shared = state.Shared(
        cfg=config.OperatorConfig(redis_url=redis_url),
        redis=client.redis,
        metrics=metrics.build(CollectorRegistry()),
        history=archive.Archive(pg.url),
    )
    shared.views.pools[(NS, "p")] = {"spec": {"model": {"name": "sim-small", "tier": "small"}}}
    return shared


async def _submit_all(client: Client, count: int) -> None:
    for start in range(0, count, IN_FLIGHT):
        batch = [await client.submit(NS, "two", {"i": i}) for i in range(start, start + IN_FLIGHT)]
        for run in batch:
            assert (await client.result(run, timeout=60)).status == "succeeded"


async def throughput(redis_url: str, pg: postgres.Postgres) -> tuple[float, float]:
    client = Client(redis_url)
    await client.publish(NS, "two", awf.AgentWorkflowSpec.model_validate(SPEC))
    await _submit_all(client, BACKLOG)
    # The rows, read once for the naive writer before the pass consumes the outbox.
    shared = _shared(redis_url, client, pg)
    backlog = await ended.read(client.redis, NS, BACKLOG)
    rows = [r for r in (archiving.archived(e, shared.views.pools) for e in backlog) if r]
    t0 = time.perf_counter()
    drained = await ended_runs.handle_ended_in(shared, NS)
    batched = drained / (time.perf_counter() - t0)
    assert shared.history is not None
    await shared.history.close()
    pg.query("CREATE DATABASE naive")
    conn = await store.connect(pg.url.rsplit("/", 1)[0] + "/naive")
    await store.migrate(conn)
    t0 = time.perf_counter()
    for row in rows:
        await store.archive(conn, [row])
    naive = len(rows) / (time.perf_counter() - t0)
    await conn.close()
    await client.aclose()
    return batched, naive


async def _archiving(shared: state.Shared, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await ended_runs.handle_ended_in(shared, NS)
        await asyncio.sleep(1.0)


async def lag(redis_url: str, pg: postgres.Postgres) -> list[float]:
    client = Client(redis_url)
    shared = _shared(redis_url, client, pg)
    stop = asyncio.Event()
    task = asyncio.create_task(_archiving(shared, stop))
    started = time.perf_counter()
    refs: list[str] = []
    while time.perf_counter() - started < LOAD_SECONDS:
        refs.append(await client.submit(NS, "two", {"i": len(refs)}))
        await asyncio.sleep(max(0.0, started + len(refs) / RATE - time.perf_counter()))
    for ref in refs:
        await client.result(ref, timeout=60)
    await asyncio.sleep(2.5)  # the last passes
    stop.set()
    await task
    assert shared.history is not None
    await shared.history.close()
    ids = ",".join(f"'{r.split('/')[1]}'" for r in refs)
    query = "SELECT extract(epoch FROM archived_at - ended_at) * 1000 FROM trimtab_runs"
    found = pg.query(f"{query} WHERE run_id IN ({ids})")
    await client.aclose()
    return [float(r[0]) for r in found]


def main() -> None:
    results: dict[str, Any] = {}
    with postgres.running_postgres() as pg, _local.services(SIM) as (redis_url, sim, work):
        pool = _local.pool_manifest(NS, "p", sim)
        with _local.workers(redis_url, work, pool=pool):
            results["batched"], results["naive"] = asyncio.run(throughput(redis_url, pg))
            lags = asyncio.run(lag(redis_url, pg))
    print(f"Archiving ended runs to PostgreSQL ({BACKLOG} two-step runs, each with its steps):")
    print(f"  {'writer':<44} {'runs/s':>8}")
    print(f"  {'the operator: batches of 500, pipelined':<44} {results['batched']:8.0f}")
    print(f"  {'one transaction per run (a naive consumer)':<44} {results['naive']:8.0f}")
    print(f"  ratio: {results['batched'] / results['naive']:.1f}x")
    print(
        f"Archive lag at {RATE:.0f} runs/s for {LOAD_SECONDS:.0f} s, a pass each second "
        f"({len(lags)} of the runs archived):"
    )
    print(
        f"  p50 {_local.percentile(lags, 50):7.0f} ms   p99 {_local.percentile(lags, 99):7.0f} ms"
        f"   max {max(lags):7.0f} ms   (a pass each 1000 ms bounds it near 1000 ms)"
    )


if __name__ == "__main__":
    main()

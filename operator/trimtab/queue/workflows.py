"""Compiled workflow definitions in Redis, by namespace, name and generation.

Each generation is stored immutably, so runs already under way keep executing the
definition they were submitted with while a new generation is published. A deleted
workflow is retired, not erased: no new run can start, and its definitions expire
only after its runs' TTL, so runs under way when it was deleted still finish.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from typing import Any

from redis import asyncio as aioredis

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.stats import rates, sketch


class WorkflowNotFoundError(LookupError):
    """No published workflow (or generation) by that name."""


async def publish(client: aioredis.Redis, document: dict[str, Any]) -> int:
    """Store `document` (namespace, name, generation, spec) and make it current."""
    ns, name, gen = document["namespace"], document["name"], int(document["generation"])
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.workflow_generation(ns, name, gen), json.dumps(document))
        pipe.set(keys.workflow_current(ns, name), gen)
        await pipe.execute()
    # The index is in a slot of its own (keys): written after the namespace's keys, so
    # a crash between leaves a workflow runs can use and the next publish indexes.
    await client.sadd(keys.workflow_index(), f"{ns}/{name}")
    return gen


class Compiled:
    """One process's compiled generations, by (namespace, name, generation): a
    generation never changes once published, so an entry never goes stale, and each is
    decoded and compiled once however many readers (steps, reviews, submissions) ask.
    The least recently used go first past `size`."""

    def __init__(self, client: aioredis.Redis, size: int = 256) -> None:
        self.client, self.size = client, size
        self._held: collections.OrderedDict[tuple[str, str, int], compile_mod.CompiledWorkflow]
        self._held = collections.OrderedDict()

    async def get(self, namespace: str, name: str, generation: int) -> compile_mod.CompiledWorkflow:
        key = (namespace, name, generation)
        found = self._held.get(key)
        if found is None:
            doc = await load(self.client, namespace, name, generation)
            found = self._held[key] = compile_mod.from_document(doc)
            while len(self._held) > self.size:
                self._held.popitem(last=False)
        self._held.move_to_end(key)
        return found


async def current_generation(client: aioredis.Redis, namespace: str, name: str) -> int:
    gen = await client.get(keys.workflow_current(namespace, name))
    if gen is None:
        raise WorkflowNotFoundError(
            f"workflow {namespace}/{name} is not published (never, or deleted since)"
        )
    return int(gen)


async def load(
    client: aioredis.Redis, namespace: str, name: str, generation: int | None = None
) -> dict[str, Any]:
    """The stored document of `generation` (the current one when None)."""
    if generation is None:
        generation = await current_generation(client, namespace, name)
    raw = await client.get(keys.workflow_generation(namespace, name, generation))
    if raw is None:
        raise WorkflowNotFoundError(
            f"workflow {namespace}/{name} generation {generation} is not stored"
        )
    return dict(json.loads(raw))


async def published(client: aioredis.Redis) -> set[tuple[str, str]]:
    """Every workflow published and not retired, as (namespace, name)."""
    members = await client.smembers(keys.workflow_index())
    pairs = (str(m).split("/", 1) for m in members if "/" in str(m))
    return {(ns, name) for ns, name in pairs}


async def retire(client: aioredis.Redis, namespace: str, name: str) -> bool:
    """Stop new runs of a deleted workflow; its data expires after its runs' TTL.

    Returns False when it was not published (or already retired): nothing to do."""
    try:
        document = await load(client, namespace, name)
    except WorkflowNotFoundError:
        await client.srem(keys.workflow_index(), f"{namespace}/{name}")
        return False
    generation = int(document["generation"])
    keep = awf.AgentWorkflowSpec.model_validate(document["spec"]).state.ttl_seconds
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(keys.workflow_current(namespace, name))
        for gen in range(1, generation + 1):
            pipe.expire(keys.workflow_generation(namespace, name, gen), keep)
        pipe.expire(keys.workflow_stats(namespace, name), keep)
        pipe.expire(keys.workflow_runs_index(namespace, name), keep)
        await pipe.execute()
    # After the namespace's keys (the index is in its own slot): a crash between leaves
    # an index entry whose workflow is gone, which the next retire removes.
    await client.srem(keys.workflow_index(), f"{namespace}/{name}")
    return True


# A note older than this is taken as stale: no worker has tried the Secret lately.
MISSING_SECRET_TTL_S = 600


async def note_missing_secret(
    client: aioredis.Redis, namespace: str, name: str, secret: tuple[str, str]
) -> None:
    key = keys.workflow_missing_secrets(namespace, name)
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(key, "/".join(secret), int(time.time() * 1000))
        pipe.expire(key, MISSING_SECRET_TTL_S)
        await pipe.execute()


async def clear_missing_secret(
    client: aioredis.Redis, namespace: str, name: str, secret: tuple[str, str]
) -> None:
    await client.hdel(keys.workflow_missing_secrets(namespace, name), "/".join(secret))


async def missing_secrets(
    client: aioredis.Redis, namespace: str, name: str, *, now: float
) -> list[tuple[str, str]]:
    """The (Secret, key) pairs workers of this workflow found missing lately, sorted."""
    noted: Any = await client.hgetall(keys.workflow_missing_secrets(namespace, name))
    return fresh_missing(noted, now=now)


def fresh_missing(noted: dict[str, str], *, now: float) -> list[tuple[str, str]]:
    """The pairs of a missing-Secrets hash noted within MISSING_SECRET_TTL_S, sorted."""
    cutoff = (now - MISSING_SECRET_TTL_S) * 1000
    fresh = [field.partition("/") for field, at in noted.items() if float(at) >= cutoff]
    return sorted((secret, key) for secret, _, key in fresh)


@dataclasses.dataclass(frozen=True)
class RunStats:
    """A workflow's run counters, and its p95 run time over the recent window."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0
    dead_lettered: int = 0
    in_review: int = 0
    tokens: int = 0
    cost: float = 0.0
    p95_seconds: float | None = None


async def run_stats(
    client: aioredis.Redis, namespace: str, name: str, *, now: float, window_seconds: int = 60
) -> RunStats:
    """Counters kept by the run scripts, and p95 merged from workers' per-second sketches."""
    seconds = rates.window_keys(now, bucket_seconds=1, window_seconds=window_seconds)
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.workflow_stats(namespace, name))
        for second in seconds:
            pipe.hgetall(keys.workflow_run_seconds(namespace, name, second))
        counters, *windows = await pipe.execute()
    return stats_from(counters, windows)


def stats_from(counters: dict[str, str], windows: list[dict[str, str]]) -> RunStats:
    """The statistics of a workflow's counters hash and its per-second sketch hashes."""
    merged = sketch.LatencySketch()
    for window in windows:
        for value in window.values():
            merged.merge(sketch.LatencySketch.from_bytes(value.encode()))
    return RunStats(
        started=int(counters.get(wire.WorkflowStat.STARTED, 0)),
        succeeded=int(counters.get(wire.WorkflowStat.SUCCEEDED, 0)),
        failed=int(counters.get(wire.WorkflowStat.FAILED, 0)),
        cancelled=int(counters.get(wire.WorkflowStat.CANCELLED, 0)),
        dead_lettered=int(counters.get(wire.WorkflowStat.DEAD_LETTERED, 0)),
        in_review=max(0, int(counters.get(wire.WorkflowStat.IN_REVIEW, 0))),
        tokens=int(counters.get(wire.WorkflowStat.TOKENS, 0)),
        cost=float(counters.get(wire.WorkflowStat.COST, 0.0)),
        p95_seconds=merged.quantile(0.95),
    )

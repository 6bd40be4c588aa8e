"""The operator's background loops: one for autoscaling every pool each second, one
refreshing workflow statuses and re-checking pool objects, one ending runs past their
deadline (trimtab.queue.deadlines) and pruning the run indexes (trimtab.queue.runindex),
one archiving the runs that ended and recording their spans (trimtab.handlers.ended_runs).
Started with the operator, stopped with it; they read the views kept by trimtab.handlers.views.

One loop over all pools replaces a kopf daemon per pool: no finalizer on every pool
(a daemon requires one), and one pass per second however many pools there are.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

import kopf

from trimtab.handlers import (
    agentbudget,
    agentworkflow,
    ended_runs,
    pool_objects,
    pool_scaler,
    state,
)
from trimtab.history import store
from trimtab.kube import objects
from trimtab.queue import (
    arrivals,
    connection,
    deadlines,
    load,
    runindex,
    scripts,
    touched,
    workflow_readings,
)
from trimtab.reconcile.agentpool import cadence

log = logging.getLogger(__name__)
OBJECTS_EVERY_SECONDS = 60.0
RECOVERABLE = (objects.ApiError, store.HistoryUnavailableError, *connection.UNAVAILABLE)


async def _guarded(what: str, call: Awaitable[Any]) -> bool:
    """Whether `call` succeeded; a failure is logged, for the next pass to retry."""
    try:
        await call
    except RECOVERABLE as exc:
        log.warning("%s: %s; next pass retries", what, exc)
    except Exception:
        log.exception("%s failed; next pass retries", what)
    else:
        return True
    return False


async def scale_pools(shared: state.Shared) -> None:
    """Tick, once per interval and concurrently, every pool not at rest, and those at rest
    whose inputs changed (trimtab.reconcile.agentpool.cadence)."""
    scalers: dict[tuple[str, tuple[str, str]], pool_scaler.PoolScaler] = {}
    reader, touches = load.LoadReader(shared.redis), touched.TouchedReader(shared.redis)
    while True:
        started = time.monotonic()
        live = {
            (b["metadata"].get("uid", ""), key): b for key, b in list(shared.views.pools.items())
        }
        _forget(shared, scalers, set(scalers) - set(live), reader, touches)
        now = time.time()
        fresh = await _touched(touches, [key for _, key in live])
        due: dict[tuple[str, tuple[str, str]], Hashable] = {}
        for ident, body in live.items():
            scaler = scalers.setdefault(ident, pool_scaler.PoolScaler(shared, *ident[1]))
            inputs = _inputs(shared, ident[1], body)
            woken = fresh is None or ident[1] in fresh
            if cadence.due(scaler.rest, inputs, touched=woken, now=now):
                due[ident] = inputs
        loads = await _loads(reader, [key for _, key in due], now)
        passes = []
        for ident, inputs in due.items():
            tick = scalers[ident].tick(live[ident], loads.get(ident[1]), now, inputs=inputs)
            passes.append(_guarded(f"scaling {ident[1][0]}/{ident[1][1]}", tick))
        await asyncio.gather(*passes)
        arrived = [(*ident[1], int(now), scalers[ident].arrived) for ident in due]
        await _guarded("recording arrivals", arrivals.record(shared.redis, arrived))
        shared.metrics.autoscaler_passed(time.time())
        elapsed = time.monotonic() - started
        await asyncio.sleep(max(0.0, shared.cfg.scale_interval_seconds - elapsed))


def _forget(
    shared: state.Shared,
    scalers: dict[tuple[str, tuple[str, str]], pool_scaler.PoolScaler],
    gone: set[tuple[str, tuple[str, str]]],
    reader: load.LoadReader,
    touches: touched.TouchedReader,
) -> None:
    for ident in gone:
        del scalers[ident]
    deleted = [key for _, key in gone if key not in shared.views.pools]  # not recreated
    for key in deleted:
        shared.metrics.pool_forgotten(*key)
    reader.forget(deleted)
    touches.forget(deleted)


def _inputs(shared: state.Shared, key: tuple[str, str], body: dict[str, Any]) -> Hashable:
    """What the watch views hold for a pool, as a value that changes when any of it does."""
    pods = shared.views.pods.get(key, {})
    return (
        body["metadata"].get("resourceVersion"),
        shared.views.deployments.get(key),
        tuple(sorted(pods.items())),
    )


async def _touched(
    touches: touched.TouchedReader, pools: list[tuple[str, str]]
) -> set[tuple[str, str]] | None:
    """The pools enqueued on since the last pass; None when Redis cannot say (every
    pool is then read)."""
    try:
        return await touches.read(pools)
    except connection.UNAVAILABLE as exc:
        log.warning("reading which pools have new work: %s; reading every pool", exc)
        return None


async def _loads(
    reader: load.LoadReader, pools: list[tuple[str, str]], now: float
) -> dict[tuple[str, str], load.PoolLoad]:
    """Every pool's load; none when Redis cannot be read (each pool then holds its size
    and reports MetricsAvailable=False)."""
    try:
        return await reader.read_all(pools, now=now)
    except connection.UNAVAILABLE as exc:
        log.warning("reading pool load: %s; holding every pool's size", exc)
        return {}


async def refresh(shared: state.Shared) -> None:
    """Workflow and budget statuses every status interval; once a minute, pool objects
    and the retirement of workflows and budgets deleted while no operator ran."""
    last_objects = 0.0
    reader = workflow_readings.WorkflowReader(shared.redis)
    passed: dict[tuple[str, str], Hashable] = {}  # each workflow's inputs at its last pass
    while True:
        await _guarded("refreshing workflows", _refresh_workflows(shared, reader, passed))
        for key, body in list(shared.views.budgets.items()):
            await _guarded(f"budget {key[0]}/{key[1]}", agentbudget.refresh(shared, body))
        if time.monotonic() - last_objects >= OBJECTS_EVERY_SECONDS:
            last_objects = time.monotonic()
            for key, body in list(shared.views.pools.items()):
                await _guarded(
                    f"pool objects {key[0]}/{key[1]}", pool_objects.ensure_objects(shared, body)
                )
                await asyncio.sleep(0)  # an unchanged pool awaits nothing: let others run
            await _guarded("retiring deleted workflows", _sweep(shared))
            _release_free_heap()
        await asyncio.sleep(shared.cfg.status_interval_seconds)


async def _refresh_workflows(
    shared: state.Shared,
    reader: workflow_readings.WorkflowReader,
    passed: dict[tuple[str, str], Hashable],
) -> None:
    """One status pass over every workflow, from one read of them all; a workflow whose
    object, reading and pools are as at its last pass is left alone: the same inputs
    decide the same status, which it holds already."""
    bodies = dict(shared.views.workflows)
    gone = [key for key in passed if key not in bodies]
    reader.forget(gone)
    for key in gone:
        del passed[key]
    readings = await reader.read_all(list(bodies), now=time.time())
    for key, body in bodies.items():
        pools = agentworkflow.pools_ready(shared, body)
        frozen = tuple(sorted(pools[0].items())), tuple(sorted(pools[1].items())), pools[2]
        inputs = (body["metadata"].get("resourceVersion"), readings[key], frozen)
        if passed.get(key) == inputs or shared.objects.first_sight(body):
            continue  # unchanged, or its watch event is handling it
        passed.pop(key, None)
        refreshed = agentworkflow.refresh(shared, body, readings[key], pools)
        if await _guarded(f"workflow {key[0]}/{key[1]}", refreshed):
            passed[key] = inputs  # a failed pass is passed again next time
        await asyncio.sleep(0)


def _release_free_heap() -> None:
    """Hand the C heap's free pages back to the system (glibc's malloc_trim). The start-up
    passes over thousands of objects leave the heap far above what stays in use, and glibc
    returns little of it on its own; elsewhere this does nothing."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


async def _sweep(shared: state.Shared) -> None:
    for ns, name in await agentworkflow.sweep_retired(shared):
        log.info("retired workflow %s/%s: deleted while no operator was watching", ns, name)
    for ns, name in await agentbudget.sweep_withdrawn(shared):
        log.info("withdrew budget %s/%s: deleted while no operator was watching", ns, name)


async def end_overdue_runs(shared: state.Shared, *, every_seconds: float = 1.0) -> None:
    """Each second, end the runs of watched namespaces (those with a workflow or a pool)
    that passed their deadline; every PRUNE_EVERY_SECONDS, drop expired runs from the
    run indexes the API lists."""
    lua = scripts.Scripts(shared.redis)
    last_prune = 0.0
    while True:
        await _guarded("ending overdue runs", _end_overdue(shared, lua))
        if time.monotonic() - last_prune >= PRUNE_EVERY_SECONDS:
            last_prune = time.monotonic()
            await _guarded("pruning run indexes", _prune_run_indexes(shared))
        await asyncio.sleep(every_seconds)


PRUNE_EVERY_SECONDS = 10.0


async def _prune_run_indexes(shared: state.Shared) -> None:
    removed = await runindex.prune_in(shared.redis, list(shared.views.workflows))
    if removed:
        log.debug("pruned %d expired run(s) from the run indexes", removed)


async def _end_overdue(shared: state.Shared, lua: scripts.Scripts) -> None:
    watched = sorted(shared.views.namespaces())
    ended = await deadlines.end_overdue_in(shared.redis, lua, watched, now_ms=time.time() * 1000)
    for ns, runs in ended.items():
        log.info("ended %d run(s) in %s at their deadline", len(runs), ns)


async def record_ended_runs(shared: state.Shared, *, every_seconds: float = 1.0) -> None:
    """Each second, the runs of watched namespaces that ended since: archived and
    their spans recorded (trimtab.handlers.ended_runs); every EXPIRE_EVERY_SECONDS, kept
    inputs and outputs past their retention removed from the history."""
    last_expiry = 0.0
    while True:
        for ns in sorted(shared.views.namespaces()):
            await _guarded(f"ended runs of {ns}", ended_runs.handle_ended_in(shared, ns))
        if shared.history is not None and time.monotonic() - last_expiry >= EXPIRE_EVERY_SECONDS:
            last_expiry = time.monotonic()
            now = datetime.datetime.now(datetime.UTC)
            await _guarded("expiring kept inputs and outputs", shared.history.expire(now))
        await asyncio.sleep(every_seconds)


EXPIRE_EVERY_SECONDS = 300.0


LOOPS: tuple[Callable[[state.Shared], Coroutine[Any, Any, None]], ...] = (
    scale_pools,
    refresh,
    end_overdue_runs,
    record_ended_runs,
)


@kopf.on.startup()
async def start_loops(memo: kopf.Memo, **_: Any) -> None:
    shared: state.Shared = memo["shared"]
    memo["loops"] = [asyncio.create_task(loop(shared)) for loop in LOOPS]


@kopf.on.cleanup()
async def stop_loops(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.get("loops", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

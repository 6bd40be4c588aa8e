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
import datetime
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
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
from trimtab.queue import arrivals, connection, deadlines, load, runindex, scripts

log = logging.getLogger(__name__)
OBJECTS_EVERY_SECONDS = 60.0
RECOVERABLE = (objects.ApiError, store.HistoryUnavailableError, *connection.UNAVAILABLE)


async def _guarded(what: str, call: Awaitable[Any]) -> None:
    try:
        await call
    except RECOVERABLE as exc:
        log.warning("%s: %s; next pass retries", what, exc)
    except Exception:
        log.exception("%s failed; next pass retries", what)


async def scale_pools(shared: state.Shared) -> None:
    """Tick every pool's autoscaler, concurrently, once per interval."""
    scalers: dict[tuple[str, tuple[str, str]], pool_scaler.PoolScaler] = {}
    reader = load.LoadReader(shared.redis)
    while True:
        started = time.monotonic()
        live = {
            (b["metadata"].get("uid", ""), key): b for key, b in list(shared.views.pools.items())
        }
        for gone in set(scalers) - set(live):
            del scalers[gone]
            if gone[1] not in shared.views.pools:  # deleted, not recreated under the same name
                shared.metrics.pool_forgotten(*gone[1])
        now = time.time()
        loads = await _loads(reader, [key for _, key in live], now)
        passes = []
        for ident, body in live.items():
            scaler = scalers.setdefault(ident, pool_scaler.PoolScaler(shared, *ident[1]))
            tick = scaler.tick(body, loads.get(ident[1]), now)
            passes.append(_guarded(f"scaling {ident[1][0]}/{ident[1][1]}", tick))
        await asyncio.gather(*passes)
        arrived = [(*ident[1], int(now), scalers[ident].arrived) for ident in live]
        await _guarded("recording arrivals", arrivals.record(shared.redis, arrived))
        shared.metrics.autoscaler_passed(time.time())
        elapsed = time.monotonic() - started
        await asyncio.sleep(max(0.0, shared.cfg.scale_interval_seconds - elapsed))


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
    while True:
        for key, body in list(shared.views.workflows.items()):
            await _guarded(f"workflow {key[0]}/{key[1]}", agentworkflow.refresh(shared, body))
        for key, body in list(shared.views.budgets.items()):
            await _guarded(f"budget {key[0]}/{key[1]}", agentbudget.refresh(shared, body))
        if time.monotonic() - last_objects >= OBJECTS_EVERY_SECONDS:
            last_objects = time.monotonic()
            for key, body in list(shared.views.pools.items()):
                await _guarded(
                    f"pool objects {key[0]}/{key[1]}", pool_objects.ensure_objects(shared, body)
                )
            await _guarded("retiring deleted workflows", _sweep(shared))
        await asyncio.sleep(shared.cfg.status_interval_seconds)


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

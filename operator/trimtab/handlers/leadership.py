"""Run the operator only while holding the leader Lease (trimtab.reconcile.leader).

A standby answers its liveness probe and polls the Lease, and stops at once on SIGTERM
or SIGINT (as its container's PID 1 it would otherwise ignore them, and every rollout or
uninstall would wait out the grace period). Once it holds the Lease it
starts the operator and keeps renewing; if it cannot renew within the renew deadline
(API server unreachable, or another replica took over) it stops the operator and exits
non-zero, so its pod restarts as a standby: a leader that may have lost the Lease never
keeps reconciling. A clean stop releases the Lease so a standby takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web

from trimtab.kube import lease
from trimtab.reconcile import leader

log = logging.getLogger(__name__)
RunOperator = Callable[[asyncio.Event], Awaitable[None]]


async def _healthz(_: web.Request) -> web.Response:
    return web.Response(text="standby\n")


async def _standby_probe(port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/healthz", _healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()  # noqa: S104 - the kubelet probes it
    return runner


async def _try(lock: lease.LeaseLock) -> bool:
    try:
        return await asyncio.to_thread(lock.try_acquire, time.time())
    except Exception as exc:  # the API server away: neither held nor lost, try again
        log.warning("reading lease %s/%s: %s", lock.namespace, lock.name, exc)
        return False


async def _acquire(lock: lease.LeaseLock, stopping: asyncio.Event) -> bool:
    """Poll until the Lease is held (True) or `stopping` is set (False)."""
    announced = False
    while not await _try(lock):
        if not announced:
            log.info("standing by for lease %s/%s", lock.namespace, lock.name)
            announced = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), leader.RETRY_SECONDS)
        if stopping.is_set():
            return False
    log.info("acquired lease %s/%s as %s", lock.namespace, lock.name, lock.me)
    return True


@contextlib.contextmanager
def _stop_on_signals(stopping: asyncio.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stopping` while standing by; the operator installs its own
    handlers once it leads. Off the main thread (tests) signals are not ours to take."""
    loop = asyncio.get_running_loop()
    taken = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stopping.set)
            taken.append(sig)
    try:
        yield
    finally:
        for sig in taken:
            loop.remove_signal_handler(sig)


async def _hold(lock: lease.LeaseLock, stop: asyncio.Event) -> bool:
    """Renew until `stop` is set; False (and `stop` set) when leadership is lost."""
    last_renewed = time.monotonic()
    while not stop.is_set():
        if await _try(lock):
            last_renewed = time.monotonic()
        if time.monotonic() - last_renewed > leader.RENEW_SECONDS:
            log.error("lost lease %s/%s: stopping the operator", lock.namespace, lock.name)
            stop.set()
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), leader.RETRY_SECONDS)
    return True


async def lead(lock: lease.LeaseLock, run_operator: RunOperator, *, health_port: int) -> int:
    """Stand by until this replica leads, run the operator while it does; the exit code."""
    probe = await _standby_probe(health_port)
    stopping = asyncio.Event()
    try:
        with _stop_on_signals(stopping):
            acquired = await _acquire(lock, stopping)
    finally:
        await probe.cleanup()  # the operator serves the probe from here on
    if not acquired:
        log.info("stopped while standing by for lease %s/%s", lock.namespace, lock.name)
        return 0
    stop = asyncio.Event()
    holding = asyncio.create_task(_hold(lock, stop))
    try:
        await run_operator(stop)
    finally:
        stop.set()
        kept = await holding
    if kept:
        await asyncio.to_thread(lock.release)
        return 0
    return 1

"""The job for arq, and its worker: `python -m peers.arq_app`."""

from __future__ import annotations

from typing import Any

import aiohttp
from arq import worker
from arq.connections import RedisSettings

from peers import CONNECTIONS, READY_KEY, job_async, redis_url


async def noop(ctx: dict[str, Any]) -> object:
    return await job_async(ctx["http"])


async def startup(ctx: dict[str, Any]) -> None:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    ctx["http"] = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(10))
    await ctx["redis"].incr(READY_KEY)


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].close()


class WorkerSettings:
    functions = [noop]  # noqa: RUF012 - arq reads these class attributes
    redis_settings = RedisSettings.from_dsn(redis_url())
    on_startup = startup
    on_shutdown = shutdown
    # As many jobs in flight per process as a Trimtab worker (worker.concurrency 64).
    max_jobs = 64
    # The default 0.5 s pause between queue polls caps a worker well below what it can
    # do; a short one is how arq is tuned for throughput.
    poll_delay = 0.01


if __name__ == "__main__":
    # arq's own entry point minus the CLI's INFO logging of every job start and result,
    # which would be log I/O the other frameworks are not doing.
    worker.run_worker(WorkerSettings)  # type: ignore[arg-type]

"""A worker process: clients, signal handling, its HTTP endpoints (metrics, readiness,
liveness: trimtab.worker.serving), the loop."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal

from trimtab import metrics
from trimtab.queue import connection
from trimtab.telemetry import tracing as traces
from trimtab.worker import execute, loop, serving, settings, tokens
from trimtab.worker.model_client import ModelClient
from trimtab.worker.tools import ToolClient

log = logging.getLogger(__name__)


def build_clients(
    cfg: settings.WorkerSettings,
    tracing: traces.Tracing | None = None,
    recorded: metrics.Metrics | None = None,
) -> execute.Clients:
    """The worker's model and tool clients; with `recorded`, each model call's
    duration is observed there."""
    spec = cfg.spec
    limit = spec.worker.concurrency * 2  # headroom for retries overlapping slow replies
    tracing = tracing or traces.Tracing()
    observe = None
    if recorded is not None:
        observe = functools.partial(_model_called, recorded, cfg.namespace, cfg.pool)
    return execute.Clients(
        model=ModelClient(
            spec.model,
            api_key=cfg.api_key,
            max_connections=limit,
            count_tokens=tokens.counter(spec.model.tokenizer),
            tracing=tracing,
            observe=observe,
        ),
        tools=ToolClient(
            max_connections=limit,
            timeout_seconds=spec.model.timeout_seconds,
            secrets_root=cfg.tool_secrets_dir,
            tracing=tracing,
        ),
        pricing=spec.model.pricing,
        tracing=tracing,
    )


def _model_called(
    recorded: metrics.Metrics, namespace: str, pool: str, seconds: float, trace_id: str | None
) -> None:
    recorded.model_called(namespace, pool, seconds=seconds, trace_id=trace_id)


def worker_tracing(cfg: settings.WorkerSettings) -> traces.Tracing:
    """The worker's tracer, as the OTEL_* variables the operator passed on configure it."""
    return traces.Tracing.from_env(
        "trimtab-worker",
        {
            "k8s.namespace.name": cfg.namespace,
            "k8s.pod.name": os.environ.get("HOSTNAME", ""),
            "trimtab.pool": cfg.pool,
            "service.instance.id": cfg.consumer,
        },
    )


async def serve(cfg: settings.WorkerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop`), then drain within the grace period."""
    stop = stop or asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(sig, stop.set)
    client = connection.connect(cfg.redis_url, max_connections=cfg.spec.worker.concurrency + 8)
    recorded = metrics.default()
    clients = build_clients(cfg, worker_tracing(cfg), recorded)
    worker = loop.Worker(cfg, client=client, clients=clients, metrics=recorded)
    endpoints = (
        await serving.start(worker.readiness, cfg.metrics_port) if cfg.metrics_port else None
    )
    log.info(
        "worker %s serving %s/%s (concurrency %d)",
        cfg.consumer,
        cfg.namespace,
        cfg.pool,
        worker.concurrency,
    )
    # Leave a little of the pod's grace period for releasing leftovers and closing.
    grace = max(0.0, cfg.spec.worker.termination_grace_period_seconds - 5)
    try:
        await worker.run(stop, grace_seconds=grace)
    finally:
        if endpoints is not None:
            await endpoints.cleanup()
        await clients.model.aclose()
        await clients.tools.aclose()
        await client.aclose()
        clients.tracing.shutdown()

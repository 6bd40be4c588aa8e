"""Operator start-up and shutdown: kopf settings, shared clients, the metrics endpoint."""

from __future__ import annotations

import logging
from typing import Any

import kopf
import prometheus_client

from trimtab import config, metrics
from trimtab.handlers import state
from trimtab.history import archive
from trimtab.queue import connection
from trimtab.reconcile.agentpool import redis_access
from trimtab.telemetry import tracing

log = logging.getLogger(__name__)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # `trimtab operator run` decides the settings and hands them over in the memo;
    # under a bare `kopf run -m trimtab.handlers` they come from the environment alone.
    cfg = memo.get("cfg")
    if not isinstance(cfg, config.OperatorConfig):
        cfg = config.from_env()
    if problem := cfg.worker_redis.problem():  # `operator run` refused it already
        raise kopf.PermanentError(problem)
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=state.KOPF_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=state.KOPF_PREFIX, key=state.DIFFBASE_KEY
    )
    settings.posting.level = logging.WARNING
    settings.scanning.disabled = not cfg.scan_cluster
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 20
    memo["shared"] = state.Shared(
        cfg=cfg,
        redis=connection.connect(cfg.redis_url),
        metrics=metrics.default(),
        tracing=tracing.Tracing.from_env("trimtab-operator"),
        history=archive.Archive(cfg.history_url, cfg.history_password) if cfg.history_url else None,
    )
    if cfg.metrics_port:
        prometheus_client.start_http_server(cfg.metrics_port)
    log.info("trimtab operator started (redis %s)", redis_access.redacted(cfg.redis_url))


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    shared: state.Shared | None = memo.get("shared")
    if shared is not None:
        await shared.redis.aclose()
        shared.kube.close()
        shared.tracing.shutdown()
        if shared.history is not None:
            await shared.history.close()


@kopf.on.probe(id="redis")
async def redis_reachable(memo: kopf.Memo, **_: Any) -> bool:
    shared: state.Shared = memo["shared"]
    return bool(await shared.redis.ping())

"""The job for Celery (Redis broker and result backend); workers: `celery -A peers.celery_app`."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery, signals

from peers import READY_KEY, job_sync, redis_url

app = Celery("bench", broker=redis_url(), backend=redis_url())
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop() -> object:
    return job_sync()


@signals.worker_ready.connect
def _ready(**_: Any) -> None:
    redis.Redis.from_url(redis_url()).incr(READY_KEY)

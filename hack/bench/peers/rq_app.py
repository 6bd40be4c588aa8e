"""The job for RQ; workers: `rq worker --worker-class rq.SimpleWorker`."""

from __future__ import annotations

from peers import job_sync


def noop() -> object:
    return job_sync()

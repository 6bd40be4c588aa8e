"""Each run's own span, recorded by the operator once the run has ended: the outbox
(trimtab.queue.ended) names every run as it ends, whichever process ended it (the
worker of its last step, a reviewer's rejection, a cancel, its deadline), so one
reader records every run's span, from its submit to its end, with the ids its steps'
spans already name as their parent (trimtab.telemetry.ids).
"""

from __future__ import annotations

from typing import Any

from trimtab.handlers import state
from trimtab.queue import ended, wire
from trimtab.telemetry import ids, tracing

BATCH = 500


def run_span(run: ended.EndedRun) -> tuple[str, tracing.Attributes, tuple[str, str] | None]:
    """The span's name, attributes and error (None unless the run failed) of an
    ended run whose record is still there."""
    record = run.run
    assert record is not None
    attributes: dict[str, Any] = {
        "trimtab.namespace": run.namespace,
        "trimtab.workflow": record.workflow,
        "trimtab.workflow.generation": record.generation,
        "trimtab.run": run.run_id,
        "trimtab.outcome": run.status.value,
        "trimtab.tokens": record.tokens,
        "trimtab.cost": record.cost,
    }
    if record.priority:
        attributes["trimtab.priority"] = record.priority
    if record.session:
        attributes["trimtab.session"] = record.session
    error = None
    if run.status is wire.RunStatus.FAILED:
        error = ("run_failed", record.error or "a step failed")
    return f"run {record.workflow}", attributes, error


def record(tracer: tracing.Tracing, run: ended.EndedRun) -> bool:
    """Record the run's span; False when its record expired before it was read."""
    if run.run is None:
        return False
    name, attributes, error = run_span(run)
    trace = ids.run_trace(run.namespace, run.run_id, run.run.traceparent)
    tracer.record_run(
        trace,
        name,
        start_ns=int(run.run.created_ms * 1e6),
        end_ns=int(run.run.ended_ms * 1e6),
        attributes=attributes,
        error=error,
    )
    return True


async def record_ended_in(shared: state.Shared, namespace: str) -> int:
    """Every run of the namespace that ended since the last pass, its span recorded
    (when tracing is on) and its outbox entry acknowledged; how many."""
    done = 0
    while True:
        batch = await ended.read(shared.redis, namespace, BATCH)
        for run in batch:
            record(shared.tracing, run)
        await ended.ack(shared.redis, namespace, [r.entry_id for r in batch])
        done += len(batch)
        if len(batch) < BATCH:
            return done

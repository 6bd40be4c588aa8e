"""What the operator does with each run once it has ended: archive it to the history
database (when one is configured) and record its own span (when tracing is on).

The outbox (trimtab.queue.ended) names every run as it ends, whichever process ended
it (the worker of its last step, a reviewer's rejection, a cancel, its deadline), so
one reader handles every run. Entries are acknowledged only once the batch is archived:
while PostgreSQL is away they stay pending, and the next pass reads them again. The
run's span has the ids its steps' spans already name as their parent
(trimtab.telemetry.ids).
"""

from __future__ import annotations

import time
from typing import Any

from trimtab.handlers import archiving, state
from trimtab.history import store
from trimtab.metrics import RunOutcome
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
        "trimtab.priority": record.priority.value,
    }
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
        end_ns=int((run.run.ended_ms or run.at_ms) * 1e6),
        attributes=attributes,
        error=error,
    )
    return True


_OUTCOMES = {
    wire.RunStatus.SUCCEEDED: RunOutcome.SUCCEEDED,
    wire.RunStatus.FAILED: RunOutcome.FAILED,
    wire.RunStatus.CANCELLED: RunOutcome.CANCELLED,
}


def _measure(shared: state.Shared, run: ended.EndedRun) -> None:
    r = run.run
    if r is None or run.status not in _OUTCOMES:
        return
    trace = ids.run_trace(run.namespace, run.run_id, r.traceparent)
    sampled = shared.tracing.enabled and shared.tracing.sampled(trace)
    shared.metrics.run_ended(
        run.namespace,
        r.workflow,
        outcome=_OUTCOMES[run.status],
        seconds=max(0.0, ((r.ended_ms or run.at_ms) - r.created_ms) / 1000),
        tokens=r.tokens,
        trace_id=f"{trace.trace_id:032x}" if sampled else None,  # only traces that exist
    )


async def handle_ended_in(shared: state.Shared, namespace: str) -> int:
    """Every run of the namespace that ended since the last pass: archived, its span
    recorded, its outbox entry acknowledged; how many. Raises HistoryUnavailableError,
    acknowledging nothing of that batch, while the history database is away."""
    done = [0]
    try:
        await _drain(shared, namespace, done)
    except store.HistoryUnavailableError:
        await _observe(shared, namespace, done[0])
        raise
    # Not in a `finally`: a pass cancelled at shutdown must not start more Redis calls.
    await _observe(shared, namespace, done[0])
    return done[0]


async def _drain(shared: state.Shared, namespace: str, done: list[int]) -> None:
    while True:
        batch = await ended.read(shared.redis, namespace, BATCH)
        if shared.history is not None:
            views = shared.views
            found = (archiving.archived(r, views.pools, views.workflows) for r in batch)
            rows = [a for a in found if a]
            await shared.history.write(rows)
        for run in batch:
            record(shared.tracing, run)
            _measure(shared, run)
        await ended.ack(shared.redis, namespace, [r.entry_id for r in batch])
        done[0] += len(batch)
        if len(batch) < BATCH:
            return


async def _observe(shared: state.Shared, namespace: str, done: int) -> None:
    waiting = await ended.ages(shared.redis, namespace, time.time() * 1000)
    archived_now = done if shared.history is not None else 0
    shared.metrics.history_observed(namespace, lag_seconds=waiting.ended, archived=archived_now)
    shared.metrics.reviews_observed(namespace, oldest_seconds=waiting.review)

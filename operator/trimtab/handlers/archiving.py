"""What the history keeps of an ended run: its record in Redis turned into the rows
trimtab.history writes (a pure function of the run, the pools and the workflows the
operator watches).

A step's attempts come from its attempt log (trimtab.queue.attempts). An attempt still
running when its run ended (the run was cancelled, timed out or failed on another
branch) logged nothing; it gets a row of its own (wire.AttemptOutcome.INTERRUPTED)
holding what the step spent beyond its logged attempts, so a step's attempts add up
to the step.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.history import records
from trimtab.metrics import error_type_of
from trimtab.queue import attempts, ended, runs, wire
from trimtab.telemetry import ids

Pools = Mapping[tuple[str, str], Mapping[str, Any]]


def _error_type(error: str | None) -> str | None:
    found = error_type_of(error)
    return found.value if found is not None else None


def _model(namespace: str, pool: str | None, pools: Pools) -> Mapping[str, Any]:
    """The model (name, tier) of a pool the operator watches; {} when it is unknown."""
    found: Mapping[str, Any] = (
        (pools.get((namespace, pool)) or {}).get("spec", {}).get("model", {}) if pool else {}
    )
    return found


def _attempt(a: attempts.AttemptView, namespace: str, pools: Pools) -> records.ArchivedAttempt:
    model = _model(namespace, a.pool, pools)
    ended_at = records.at(a.ended_ms)
    assert ended_at is not None
    return records.ArchivedAttempt(
        attempt=a.attempt,
        outcome=a.outcome.value,
        pool=a.pool,
        model=model.get("name"),
        tier=model.get("tier"),
        capacity=a.capacity,
        worker=a.worker,
        started_at=records.at(a.started_ms),
        ended_at=ended_at,
        tokens=a.tokens,
        cost=a.cost,
        error=a.error,
        error_type=_error_type(a.error),
    )


def _cut_off(s: runs.StepView, ended_ms: float) -> attempts.AttemptView | None:
    """The step's latest attempt when it started after its last logged ending (a step
    waiting out a retry's backoff has not): what the step spent beyond its logged
    attempts went there."""
    logged = s.attempt_log
    if s.started_ms is None or (logged and s.started_ms <= logged[-1].ended_ms):
        return None
    return attempts.AttemptView(
        attempt=s.attempt,
        outcome=wire.AttemptOutcome.INTERRUPTED,
        pool=s.pool,
        worker=s.worker,
        capacity=s.capacity,
        started_ms=s.started_ms,
        ended_ms=s.ended_ms or ended_ms,
        tokens=max(0, s.tokens - sum(a.tokens for a in logged)),
        cost=max(0.0, s.cost - sum(a.cost for a in logged)),
        error=None,
    )


def _step(
    name: str, s: runs.StepView, namespace: str, pools: Pools, ended_ms: float
) -> records.ArchivedStep:
    model = _model(namespace, s.pool, pools)
    cut = _cut_off(s, ended_ms)
    rows = [_attempt(a, namespace, pools) for a in (*s.attempt_log, *([cut] if cut else []))]
    return records.ArchivedStep(
        step=name,
        state=s.state.value,
        attempts=s.attempt,
        pool=s.pool,
        model=model.get("name"),
        tier=model.get("tier"),
        queued_at=records.at(s.queued_ms),
        started_at=records.at(s.started_ms),
        ended_at=records.at(s.ended_ms),
        tokens=s.tokens,
        cost=s.cost,
        error=s.error,
        error_type=_error_type(s.error),
        attempt_rows=tuple(rows),
    )


def _kept(workflow: Mapping[str, Any] | None) -> awf.HistorySpec:
    """The workflow's spec.history as the operator last saw it (its defaults if gone)."""
    found = ((workflow or {}).get("spec") or {}).get("history") or {}
    try:
        return awf.HistorySpec.model_validate(found)
    except ValueError:  # an object the apiserver let through but this version rejects
        return awf.HistorySpec()


def archived(
    run: ended.EndedRun, pools: Pools, workflows: Pools | None = None
) -> records.ArchivedRun | None:
    """What the history keeps of an ended run (its steps' models from the pools the
    operator watches; its inputs and outputs when its workflow's spec.history keeps
    them); None when its record expired before it was read."""
    r = run.run
    if r is None:
        return None
    kept = _kept((workflows or {}).get((run.namespace, r.workflow)))
    trace = ids.run_trace(run.namespace, run.run_id, r.traceparent)
    created = records.at(r.created_ms)
    ended_at = records.at(r.ended_ms or run.at_ms)
    assert created is not None
    assert ended_at is not None
    return records.ArchivedRun(
        namespace=run.namespace,
        run_id=run.run_id,
        workflow=r.workflow,
        generation=r.generation,
        status=run.status.value,
        priority=r.priority.value,
        created_at=created,
        ended_at=ended_at,
        tokens=r.tokens,
        cost=r.cost,
        error=r.error,
        session=r.session,
        idempotency_key=r.idempotency_key,
        trace_id=f"{trace.trace_id:032x}",
        steps=tuple(
            _step(n, s, run.namespace, pools, r.ended_ms or run.at_ms)
            for n, s in sorted(r.steps.items())
        ),
        inputs=r.inputs if kept.keep_inputs_and_outputs else None,
        outputs=r.outputs() if kept.keep_inputs_and_outputs else None,
        io_expires_at=ended_at + datetime.timedelta(days=kept.retention_days)
        if kept.keep_inputs_and_outputs
        else None,
    )

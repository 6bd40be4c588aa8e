"""The runtime's records (trimtab.queue's dataclasses) as the API's bodies
(trimtab.api.rest): the one place the server turns one into the other."""

from __future__ import annotations

import json
from typing import Any

from trimtab.api import rest
from trimtab.queue import attempts, deadletter, review, runs


def links(namespace: str, run_id: str) -> rest.Links:
    base = f"/v1/namespaces/{namespace}/runs/{run_id}"
    return rest.Links.model_validate(
        {"self": base, "events": f"{base}/events", "cancel": f"{base}/cancel"}
    )


def step(s: runs.StepView) -> rest.StepBody:
    return rest.StepBody(
        state=s.state.value,
        attempt=s.attempt,
        pool=s.pool,
        output=s.output,
        error=s.error,
        tokens=s.tokens,
        cost=s.cost,
        queued_ms=s.queued_ms,
        started_ms=s.started_ms,
        ended_ms=s.ended_ms,
        compensation=s.compensation.value if s.compensation else None,
        compensation_error=s.compensation_error,
        transcript=json.loads(s.transcript) if s.transcript else None,
        review=s.review,
        worker=s.worker,
        capacity=s.capacity,
        attempts=[_attempt(a) for a in s.attempt_log],
    )


def _attempt(a: attempts.AttemptView) -> rest.AttemptBody:
    return rest.AttemptBody(
        attempt=a.attempt,
        outcome=a.outcome.value,
        pool=a.pool,
        worker=a.worker,
        capacity=a.capacity,
        started_ms=a.started_ms,
        ended_ms=a.ended_ms,
        tokens=a.tokens,
        cost=a.cost,
        error=a.error,
    )


def run(state: runs.RunState, *, reviews: list[str], dead_letters: list[str]) -> rest.RunBody:
    return rest.RunBody(
        id=state.run_id,
        namespace=state.namespace,
        workflow=state.workflow,
        generation=state.generation,
        status=state.status.value,
        priority=state.priority.value,
        session=state.session,
        inputs=state.inputs,
        created_ms=state.created_ms,
        ended_ms=state.ended_ms,
        tokens=state.tokens,
        cost=state.cost,
        error=state.error,
        outputs=state.outputs(),
        steps={name: step(s) for name, s in state.steps.items()},
        reviews=reviews,
        dead_letters=dead_letters,
    )


def summary(r: runs.RunSummary) -> rest.RunSummaryBody:
    return rest.RunSummaryBody(
        id=r.run_id,
        workflow=r.workflow,
        status=r.status.value,
        created_ms=r.created_ms,
        ended_ms=r.ended_ms,
        tokens=r.tokens,
        cost=r.cost,
        error=r.error,
    )


def review_item(
    item: review.ReviewItem, *, inputs: Any = None, schema: dict[str, Any] | None = None
) -> rest.ReviewBody:
    return rest.ReviewBody(
        id=item.id,
        run=f"{item.namespace}/{item.run_id}",
        step=item.step,
        attempt=item.attempt,
        workflow=item.workflow,
        generation=item.generation,
        pool=item.pool,
        reason=item.reason,
        output=item.output,
        tokens=item.tokens,
        cost=item.cost,
        at_ms=item.at_ms,
        inputs=inputs,
        output_schema=schema,
    )


def dead_letter(entry: deadletter.DeadLetter) -> rest.DeadLetterBody:
    return rest.DeadLetterBody(
        id=entry.id,
        run=f"{entry.namespace}/{entry.run_id}" if entry.run_id else None,
        step=entry.step,
        attempt=entry.attempt,
        workflow=entry.workflow,
        pool=entry.pool,
        reason=entry.reason,
        at_ms=entry.at_ms,
    )

"""What a worker's spans of a step attempt are named and say: the attempt (from its
enqueue to its ending, under the run's span) and its queue wait; its calls' spans are
trimtab.worker.call_spans. Trimtab's own attributes are `trimtab.*`. No prompt, input
or output is ever an attribute: traces go to a backend with other readers than the
run's.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from trimtab.queue import messages
from trimtab.telemetry import tracing
from trimtab.worker import ending


def attempt_name(task: messages.Task) -> str:
    return f"step {task.step}"


def attempt_attributes(task: messages.Task, pool: str, consumer: str) -> tracing.Attributes:
    return {
        "trimtab.namespace": task.namespace,
        "trimtab.workflow": task.workflow,
        "trimtab.workflow.generation": task.generation,
        "trimtab.run": task.run_id,
        "trimtab.step": task.step,
        "trimtab.attempt": task.attempt,
        "trimtab.pool": pool,
        "trimtab.worker": consumer,
    }


def ending_attributes(end: ending.Ending) -> tracing.Attributes:
    out: dict[str, Any] = {"trimtab.outcome": ending.step_outcome(end).value}
    result = end.result if isinstance(end, ending.Completed | ending.Review) else None
    if result is not None:
        out["trimtab.tokens"] = result.tokens
        out["trimtab.cost"] = result.cost
    if end.error is not None:
        out["error.type"] = end.error.value
    if isinstance(end, ending.Escalate):
        out["trimtab.escalated_to"] = end.pool
    return out


def annotate(span: trace.Span, end: ending.Ending) -> None:
    """The attempt's span says how it ended; an attempt that did not complete failed
    (a valid output sent to review did not)."""
    span.set_attributes(ending_attributes(end))
    reason = getattr(end, "reason", "")
    if end.error is not None and not isinstance(end, ending.Completed):
        tracing.failed(span, end.error.value, reason)
    elif isinstance(end, ending.DeadLetter):
        tracing.failed(span, "dead_lettered", reason)

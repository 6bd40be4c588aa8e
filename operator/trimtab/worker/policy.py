"""What happens after a step attempt fails, decided from plain data: retry on the same
pool after a backoff, move to the fallback pool with a fresh retry budget, park for
human review, or give up to the dead-letter queue. One pure function, so every path is
unit-tested without Redis; the worker's finisher applies the answer.

Order: retries first (retryable errors only, while the budget lasts), then the
fallback pool (typically a larger model) unless the step already runs there, then
human review if the step asks for it, then the dead-letter queue. An error that the
same inputs would repeat anywhere (a template that cannot render) skips the fallback.
"""

from __future__ import annotations

import dataclasses
import enum

from trimtab.api.v1alpha1 import agentworkflow as awf


class Action(enum.StrEnum):
    RETRY = "retry"
    ESCALATE = "escalate"
    REVIEW = "review"
    DEAD_LETTER = "dead_letter"


@dataclasses.dataclass(frozen=True)
class Next:
    action: Action
    pool: str | None = None  # the fallback pool, for ESCALATE


def after_failure(
    *,
    retryable: bool,
    portable: bool,
    attempts_in_budget: int,
    retry: awf.RetryPolicy,
    fallback: awf.Fallback | None,
    pool: str,
) -> Next:
    """The next move for a failed attempt. `portable`: another pool might succeed where
    this one failed (false for errors in the step's own inputs)."""
    if retryable and attempts_in_budget < retry.max_attempts:
        return Next(Action.RETRY)
    if fallback is not None and portable and fallback.pool and fallback.pool != pool:
        return Next(Action.ESCALATE, fallback.pool)
    if fallback is not None and fallback.human_review:
        return Next(Action.REVIEW)
    return Next(Action.DEAD_LETTER)


def confidence_shortfall(output: object, minimum: awf.MinConfidence | None) -> str | None:
    """Why a valid output should still go to review (its confidence is below the
    threshold), or None. A missing or non-numeric confidence counts as zero."""
    if minimum is None:
        return None
    value: object = output
    for part in minimum.field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    confidence = float(value) if numeric else 0.0  # type: ignore[arg-type]
    if confidence >= minimum.threshold:
        return None
    return f"confidence {confidence:g} is below the step's minimum {minimum.threshold:g}"

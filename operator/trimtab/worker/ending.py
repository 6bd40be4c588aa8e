"""How a step attempt ends, as a value: completed, retried after a backoff, moved to
another pool, parked for a person, or dead-lettered, each with why it did not complete
(the metrics' error type).

Every way an attempt can end is decided here or in trimtab.worker.policy, by pure
functions of the failure, the step's spec and the clock, and returned; the worker's
Finisher applies an ending in one place (the queue transition, then the metrics), so
no path ends an attempt by a side effect the caller has to know about.
"""

from __future__ import annotations

import dataclasses
import random

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.metrics import ErrorType, StepOutcome, described
from trimtab.queue import messages
from trimtab.worker import backoff, errors, execute, policy


@dataclasses.dataclass(frozen=True)
class Completed:
    result: execute.StepResult
    cached: bool = False  # answered from the response cache
    digest: str | None = None  # the cache entry to fill once the result is accepted
    error: None = None


@dataclasses.dataclass(frozen=True)
class Retry:
    due_ms: float
    reason: str
    error: ErrorType
    keep_budget: bool = False  # the attempt never reached the endpoint


@dataclasses.dataclass(frozen=True)
class Escalate:
    pool: str
    reason: str
    error: ErrorType


@dataclasses.dataclass(frozen=True)
class Review:
    reason: str
    output: object  # the output in question, or None
    result: execute.StepResult | None = None  # what producing it used, when it ran
    error: ErrorType | None = None  # None: a valid output a person should confirm


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    reason: str
    error: ErrorType | None = None  # None: delivered too often, never finishing


Ending = Completed | Retry | Escalate | Review | DeadLetter


def step_outcome(ending: Ending) -> StepOutcome:
    """The `outcome` label of trimtab_steps_total for an applied ending."""
    if ending.error is ErrorType.BUDGET_EXHAUSTED:
        return StepOutcome.BUDGET_EXCEEDED
    match ending:
        case Completed(cached=True):
            return StepOutcome.CACHED
        case Completed():
            return StepOutcome.SUCCEEDED
        case Retry() | Escalate():
            return StepOutcome.RETRIED
        case Review():
            return StepOutcome.REVIEW
        case DeadLetter():
            return StepOutcome.DEAD_LETTERED


def after_failure(
    exc: errors.StepError,
    task: messages.Task,
    spec: awf.Step,
    *,
    pool: str,
    now_ms: float,
    rng: random.Random,
) -> Ending:
    """A failed attempt's next move: policy.after_failure's answer, made concrete."""
    decided = policy.after_failure(
        retryable=exc.retryable,
        portable=exc.portable,
        attempts_in_budget=task.attempts_in_budget,
        retry=spec.retry,
        fallback=spec.fallback,
        pool=pool,
    )
    kind = exc.error_type
    error = described(kind, str(exc))
    match decided.action:
        case policy.Action.RETRY:
            delay = backoff.delay_seconds(
                spec.retry.backoff, task.attempts_in_budget, rng=rng, retry_after=exc.retry_after
            )
            return Retry(due_ms=now_ms + delay * 1000, reason=error, error=kind)
        case policy.Action.ESCALATE:
            assert decided.pool is not None
            return Escalate(decided.pool, f"{error}; moved to pool {decided.pool}", kind)
        case policy.Action.REVIEW:
            # An invalid output is kept for the reviewer; other failures have none.
            rejected = exc.output if isinstance(exc, errors.InvalidOutputError) else None
            return Review(error, rejected, error=kind)
    of = f"attempt {task.attempts_in_budget} of {spec.retry.max_attempts}"
    return DeadLetter(f"{error} ({of})", kind)


def within_deadline(end: Ending, deadline_ms: float | None, deadline_s: int | None) -> Ending:
    """`end`, unless it would have the step wait past the run's deadline: a retry (or a
    breaker's wait) due after it ends the step instead, as the deadline would."""
    if deadline_ms is None or not isinstance(end, Retry) or end.due_ms <= deadline_ms:
        return end
    why = f"{end.reason}; its next attempt would be due after the run's {deadline_s} s deadline"
    return DeadLetter(described(ErrorType.DEADLINE_EXCEEDED, why), ErrorType.DEADLINE_EXCEEDED)


def breaker_open(
    spec: awf.Step, *, pool: str, retry_at_ms: float, now_ms: float
) -> Escalate | Retry:
    """The endpoint's breaker is open: move to the fallback pool if the step has one,
    otherwise wait (without holding a worker slot) until the breaker lets a call
    through. Neither counts against the step's retries."""
    reason = described(ErrorType.BREAKER_OPEN, f"the endpoint of pool {pool} is failing")
    fallback = spec.fallback
    if fallback is not None and fallback.pool and fallback.pool != pool:
        return Escalate(fallback.pool, reason, ErrorType.BREAKER_OPEN)
    due = max(retry_at_ms, now_ms)
    return Retry(due_ms=due, reason=reason, error=ErrorType.BREAKER_OPEN, keep_budget=True)


def rate_limited(*, pool: str, due_ms: float) -> Retry:
    """The pool's model rate limit has no room for a while: the step waits its turn
    without holding a worker slot, its retries untouched."""
    reason = described(ErrorType.RATE_LIMITED, f"pool {pool}'s model rate limit has no room yet")
    return Retry(due_ms=due_ms, reason=reason, error=ErrorType.RATE_LIMITED, keep_budget=True)


HELD_WAIT_MS = 1000.0


def budget_held(shortfall: str, *, now_ms: float) -> Retry:
    """The run's budget has room for the step once the steps under way settle what they
    hold: it waits (its retries untouched) and asks again."""
    reason = described(ErrorType.BUDGET_HELD, f"{shortfall}; waiting for them to settle")
    return Retry(now_ms + HELD_WAIT_MS, reason, ErrorType.BUDGET_HELD, keep_budget=True)


def budget_exhausted(budget: awf.Budget | None, *, pool: str, shortfall: str) -> Ending:
    """The step may not start within its budgets: degrade, review or fail."""
    decided = policy.on_budget_exhausted(budget, pool)
    why = described(ErrorType.BUDGET_EXHAUSTED, shortfall)
    kind = ErrorType.BUDGET_EXHAUSTED
    match decided.action:
        case policy.Action.ESCALATE:
            assert decided.pool is not None
            return Escalate(decided.pool, f"{why}; degraded to pool {decided.pool}", kind)
        case policy.Action.REVIEW:
            return Review(why, None, error=kind)
    return DeadLetter(why, kind)

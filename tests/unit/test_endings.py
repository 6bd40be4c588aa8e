"""How a step attempt ends, decided as a value (trimtab.worker.ending): each failure, an
open breaker and an exhausted budget map to one ending with the right error type, and
each ending to its metrics outcome."""

from __future__ import annotations

import random

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.metrics import ErrorType, StepOutcome
from trimtab.queue import messages
from trimtab.worker import ending, errors, execute

NOW = 1_000_000.0
BACKOFF = awf.Backoff(initial_seconds=2, factor=2, max_seconds=60, jitter=0.0)


def _step(fallback: awf.Fallback | None = None) -> awf.Step:
    return awf.Step(
        name="s", prompt="p", retry=awf.RetryPolicy(max_attempts=3, backoff=BACKOFF),
        fallback=fallback,
    )  # fmt: skip


def _task(attempt: int, budget_from: int = 0) -> messages.Task:
    return messages.Task(
        namespace="n", run_id="r", step="s", attempt=attempt, workflow="w", generation=1,
        enqueued_ms=0.0, budget_from=budget_from,
    )  # fmt: skip


def _after(exc: errors.StepError, attempt: int, fallback: awf.Fallback | None = None,
           budget_from: int = 0) -> ending.Ending:  # fmt: skip
    return ending.after_failure(
        exc, _task(attempt, budget_from), _step(fallback), pool="small", now_ms=NOW,
        rng=random.Random(1),
    )  # fmt: skip


def test_a_retryable_failure_retries_after_its_backoff_with_its_error_type() -> None:
    exc = errors.ModelError("HTTP 503", error_type=ErrorType.HTTP_5XX)
    assert _after(exc, attempt=2) == ending.Retry(
        due_ms=NOW + 4000, reason="http_5xx: HTTP 503", error=ErrorType.HTTP_5XX
    )


def test_retry_after_from_the_endpoint_sets_the_due_time() -> None:
    exc = errors.ModelError("slow down", error_type=ErrorType.HTTP_429, retry_after=30)
    got = _after(exc, attempt=1)
    assert isinstance(got, ending.Retry)
    assert got.due_ms == NOW + 30_000


def test_the_retry_budget_counts_from_the_move_to_the_fallback_pool() -> None:
    exc = errors.StepTimeoutError("slow")
    assert isinstance(_after(exc, attempt=5, budget_from=3), ending.Retry)
    assert isinstance(_after(exc, attempt=6, budget_from=3), ending.DeadLetter)


def test_spent_retries_move_to_the_fallback_pool() -> None:
    exc = errors.StepTimeoutError("slow")
    got = _after(exc, attempt=3, fallback=awf.Fallback(pool="large"))
    assert got == ending.Escalate("large", "timeout: slow; moved to pool large", ErrorType.TIMEOUT)


def test_an_invalid_output_goes_to_review_with_the_rejected_text() -> None:
    exc = errors.InvalidOutputError("not JSON", output="{oops")
    got = _after(exc, attempt=3, fallback=awf.Fallback(human_review=True))
    assert got == ending.Review("invalid_output: not JSON", "{oops", error=ErrorType.INVALID_OUTPUT)


def test_a_permanent_failure_is_dead_lettered_with_the_attempt_count() -> None:
    exc = errors.ToolError("HTTP 404", error_type=ErrorType.HTTP_4XX)
    assert _after(exc, attempt=1) == ending.DeadLetter(
        "http_4xx: HTTP 404 (attempt 1 of 3)", ErrorType.HTTP_4XX
    )


@pytest.mark.parametrize(
    ("fallback", "retry_at", "want"),
    [
        pytest.param(
            awf.Fallback(pool="large"), NOW + 5,
            ending.Escalate(
                "large", "breaker_open: the endpoint of pool small is failing",
                ErrorType.BREAKER_OPEN,
            ),
            id="moves-to-the-fallback",
        ),
        pytest.param(
            None, NOW + 5,
            ending.Retry(
                NOW + 5, "breaker_open: the endpoint of pool small is failing",
                ErrorType.BREAKER_OPEN, keep_budget=True,
            ),
            id="waits-for-the-breaker-without-spending-a-retry",
        ),
        pytest.param(
            None, NOW - 5,
            ending.Retry(
                NOW, "breaker_open: the endpoint of pool small is failing",
                ErrorType.BREAKER_OPEN, keep_budget=True,
            ),
            id="never-due-in-the-past",
        ),
    ],
)  # fmt: skip
def test_an_open_breaker(
    fallback: awf.Fallback | None, retry_at: float, want: ending.Ending
) -> None:
    got = ending.breaker_open(_step(fallback), pool="small", retry_at_ms=retry_at, now_ms=NOW)
    assert got == want


@pytest.mark.parametrize(
    ("budget", "want_type", "pool"),
    [
        (None, ending.DeadLetter, None),
        (awf.Budget(max_tokens_per_run=9, on_exhausted="HumanReview"), ending.Review, None),
        (
            awf.Budget(max_tokens_per_run=9, on_exhausted="Degrade", degrade_pool="tiny"),
            ending.Escalate,
            "tiny",
        ),
    ],
    ids=["fails-by-default", "review", "degrades"],
)
def test_an_exhausted_budget(budget: awf.Budget | None, want_type: type, pool: str | None) -> None:
    got = ending.budget_exhausted(budget, pool="small", shortfall="over")
    assert isinstance(got, want_type)
    assert got.error is ErrorType.BUDGET_EXHAUSTED
    assert ending.step_outcome(got) is StepOutcome.BUDGET_EXCEEDED
    assert getattr(got, "pool", None) == pool


RESULT = execute.StepResult(output={"a": 1})


@pytest.mark.parametrize(
    ("end", "outcome"),
    [
        (ending.Completed(RESULT), StepOutcome.SUCCEEDED),
        (ending.Completed(RESULT, cached=True), StepOutcome.CACHED),
        (ending.Retry(0.0, "r", ErrorType.TIMEOUT), StepOutcome.RETRIED),
        (ending.Escalate("large", "r", ErrorType.TIMEOUT), StepOutcome.RETRIED),
        (ending.Review("unsure", {"a": 1}, RESULT), StepOutcome.REVIEW),
        (ending.DeadLetter("r", ErrorType.HTTP_4XX), StepOutcome.DEAD_LETTERED),
        (ending.DeadLetter("delivered too often"), StepOutcome.DEAD_LETTERED),
    ],
)
def test_each_ending_has_its_metrics_outcome(end: ending.Ending, outcome: StepOutcome) -> None:
    assert ending.step_outcome(end) is outcome


def test_every_step_error_carries_a_metrics_error_type() -> None:
    classes = [errors.StepError, errors.StepTimeoutError, errors.InvalidOutputError]
    classes += [errors.TemplateInputError]
    assert all(isinstance(c.error_type, ErrorType) for c in classes)
    assert errors.ModelError("x", error_type=ErrorType.HTTP_4XX).retryable is False
    assert errors.ToolError("x", error_type=ErrorType.HTTP_5XX).retryable is True


def test_a_retry_due_after_the_deadline_ends_the_step_and_others_pass() -> None:
    retry = ending.Retry(due_ms=10_500.0, reason="http_5xx: down", error=ErrorType.HTTP_5XX)
    late = ending.within_deadline(retry, 10_000.0, 10)
    assert isinstance(late, ending.DeadLetter)
    assert late.error is ErrorType.DEADLINE_EXCEEDED
    assert late.reason.startswith("deadline_exceeded: http_5xx: down")
    assert ending.within_deadline(retry, 11_000.0, 11) is retry
    assert ending.within_deadline(retry, None, None) is retry
    dead = ending.DeadLetter("gone")
    assert ending.within_deadline(dead, 0.0, 1) is dead

"""The worker's failure policy: retry, fallback pool, review or dead letter."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.worker import policy

RETRY = awf.RetryPolicy(max_attempts=3)
TO_LARGE = awf.Fallback(pool="large")
TO_LARGE_THEN_REVIEW = awf.Fallback(pool="large", human_review=True)
REVIEW_ONLY = awf.Fallback(human_review=True)


@pytest.mark.parametrize(
    ("retryable", "portable", "attempts", "fallback", "pool", "want"),
    [
        (True, True, 1, None, "small", policy.Next(policy.Action.RETRY)),
        (True, True, 2, TO_LARGE, "small", policy.Next(policy.Action.RETRY)),
        (True, True, 3, None, "small", policy.Next(policy.Action.DEAD_LETTER)),
        (True, True, 3, TO_LARGE, "small", policy.Next(policy.Action.ESCALATE, "large")),
        (True, True, 3, TO_LARGE, "large", policy.Next(policy.Action.DEAD_LETTER)),
        (True, True, 3, TO_LARGE_THEN_REVIEW, "large", policy.Next(policy.Action.REVIEW)),
        (True, True, 3, REVIEW_ONLY, "small", policy.Next(policy.Action.REVIEW)),
        (False, True, 1, None, "small", policy.Next(policy.Action.DEAD_LETTER)),
        (False, True, 1, TO_LARGE, "small", policy.Next(policy.Action.ESCALATE, "large")),
        (False, False, 1, TO_LARGE, "small", policy.Next(policy.Action.DEAD_LETTER)),
        (False, False, 1, TO_LARGE_THEN_REVIEW, "small", policy.Next(policy.Action.REVIEW)),
    ],
    ids=[
        "first-failure-retries",
        "retries-before-fallback",
        "budget-spent-no-fallback",
        "budget-spent-escalates",
        "already-on-fallback",
        "fallback-spent-then-review",
        "review-without-fallback-pool",
        "permanent-error-no-fallback",
        "permanent-error-tries-another-pool",
        "template-error-skips-the-fallback",
        "template-error-goes-to-review",
    ],
)
def test_after_failure(
    retryable: bool,
    portable: bool,
    attempts: int,
    fallback: awf.Fallback | None,
    pool: str,
    want: policy.Next,
) -> None:
    got = policy.after_failure(
        retryable=retryable,
        portable=portable,
        attempts_in_budget=attempts,
        retry=RETRY,
        fallback=fallback,
        pool=pool,
    )
    assert got == want


MIN = awf.MinConfidence(field="meta.confidence", threshold=0.7)


@pytest.mark.parametrize(
    ("output", "unsure"),
    [
        ({"meta": {"confidence": 0.9}}, False),
        ({"meta": {"confidence": 0.7}}, False),
        ({"meta": {"confidence": 0.5}}, True),
        ({"meta": {}}, True),
        ({"meta": {"confidence": "high"}}, True),
        ({"meta": {"confidence": True}}, True),
        ("plain text", True),
    ],
    ids=["confident", "at-threshold", "below", "missing", "not-a-number", "bool", "not-an-object"],
)
def test_confidence_shortfall(output: Any, unsure: bool) -> None:
    assert (policy.confidence_shortfall(output, MIN) is not None) is unsure


def test_no_minimum_means_no_review() -> None:
    assert policy.confidence_shortfall({"confidence": 0.0}, None) is None


PRICING = agentpool.Pricing(input_per_1k=1.0, output_per_1k=2.0)
STEP = awf.Step(name="s", prompt="p", max_tokens=100)


@pytest.mark.parametrize(
    ("step", "budget", "spent", "cost", "over"),
    [
        (STEP, None, 10_000, 100.0, None),
        (STEP.model_copy(update={"token_budget": 150}), None, 0, 0.0, "over its tokenBudget 150"),
        (STEP.model_copy(update={"token_budget": 200}), None, 0, 0.0, None),
        (STEP, awf.Budget(max_tokens_per_run=300), 100, 0.0, None),
        (STEP, awf.Budget(max_tokens_per_run=300), 101, 0.0, "may exceed 300"),
        (STEP, awf.Budget(max_cost_per_run=1.0), 0, 0.7, None),
        (STEP, awf.Budget(max_cost_per_run=1.0), 0, 0.71, "may exceed 1"),
    ],
    ids=[
        "no-budget",
        "step-token-budget-exceeded",
        "step-token-budget-fits",
        "run-tokens-exactly-fit",
        "run-tokens-one-over",
        "run-cost-fits",
        "run-cost-over",
    ],
)
def test_budget_shortfall_uses_the_worst_case(
    step: awf.Step, budget: awf.Budget | None, spent: int, cost: float, over: str | None
) -> None:
    # 100 prompt tokens + 100 completion tokens: 200 tokens, 0.1 + 0.2 = 0.3 at PRICING.
    got = policy.budget_shortfall(
        step=step,
        budget=budget,
        spent_tokens=spent,
        spent_cost=cost,
        prompt_tokens=100,
        max_tokens=100,
        pricing=PRICING,
    )
    if over is None:
        assert got is None
    else:
        assert got is not None
        assert over in got


@pytest.mark.parametrize(
    ("budget", "pool", "want"),
    [
        (None, "p", policy.Next(policy.Action.DEAD_LETTER)),
        (awf.Budget(on_exhausted="Fail"), "p", policy.Next(policy.Action.DEAD_LETTER)),
        (awf.Budget(on_exhausted="HumanReview"), "p", policy.Next(policy.Action.REVIEW)),
        (
            awf.Budget(on_exhausted="Degrade", degrade_pool="cheap"),
            "p",
            policy.Next(policy.Action.ESCALATE, "cheap"),
        ),
        (
            awf.Budget(on_exhausted="Degrade", degrade_pool="cheap"),
            "cheap",
            policy.Next(policy.Action.DEAD_LETTER),
        ),
    ],
    ids=["default-fails", "fail", "review", "degrade", "already-degraded-fails"],
)
def test_on_budget_exhausted(budget: awf.Budget | None, pool: str, want: policy.Next) -> None:
    assert policy.on_budget_exhausted(budget, pool) == want


@pytest.mark.parametrize(
    ("deadline", "created", "now", "late"),
    [(None, 1000.0, 9e12, False), (10, 1000.0, 11_000.0, False), (10, 1000.0, 11_001.0, True)],
    ids=["no-deadline", "at-the-deadline", "past-it"],
)
def test_past_deadline(deadline: int | None, created: float, now: float, late: bool) -> None:
    assert (policy.past_deadline(deadline, created, now) is not None) is late

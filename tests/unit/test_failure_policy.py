"""The worker's failure policy: retry, fallback pool, review or dead letter."""

from __future__ import annotations

from typing import Any

import pytest

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

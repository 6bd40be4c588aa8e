"""The worker's failure policy: retry, fallback pool, review or dead letter."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import budgets, wire
from trimtab.reconcile.agentbudget import windows
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


def test_the_worst_case_is_the_prompt_and_the_whole_completion_allowance() -> None:
    # 100 prompt tokens + 100 completion tokens: 200 tokens, 0.1 + 0.2 = 0.3 at PRICING.
    worst = policy.worst_case(prompt_tokens=100, max_tokens=100, pricing=PRICING)
    assert worst == budgets.WorstCase(tokens=200, cost=pytest.approx(0.3))


@pytest.mark.parametrize(
    ("token_budget", "over"),
    [(None, None), (150, "over its tokenBudget 150"), (200, None)],
    ids=["none", "exceeded", "exactly-fits"],
)
def test_a_step_over_its_own_token_budget_does_not_call(
    token_budget: int | None, over: str | None
) -> None:
    step = STEP.model_copy(update={"token_budget": token_budget})
    got = policy.step_shortfall(step, budgets.WorstCase(tokens=200, cost=0.3))
    if over is None:
        assert got is None
    else:
        assert got is not None
        assert over in got


def test_run_limits_are_held_only_when_the_budget_sets_one() -> None:
    assert not policy.run_limits(None).any
    assert not policy.run_limits(awf.Budget(on_exhausted="HumanReview")).any
    assert policy.run_limits(awf.Budget(max_tokens_per_run=300)) == budgets.Limits(300, None)
    assert policy.run_limits(awf.Budget(max_cost_per_run=1.0)) == budgets.Limits(None, 1.0)


def test_a_refusal_says_what_was_spent_and_what_others_hold() -> None:
    worst, limits = budgets.WorstCase(tokens=200, cost=0.3), budgets.Limits(400, 1.0)
    tokens = budgets.Hold(wire.Reply.OVER_BUDGET, kind=wire.LimitKind.TOKENS, spent=50, held=200)
    assert policy.hold_shortfall(tokens, worst, limits) == (
        "the run has used 50 tokens and steps under way hold 200; 200 more may exceed 400"
    )
    cost = budgets.Hold(wire.Reply.OVER_BUDGET, kind=wire.LimitKind.COST, spent=0.5, held=0.3)
    assert "0.300000 more may exceed 1" in policy.hold_shortfall(cost, worst, limits)


def test_a_refusal_by_an_agentbudget_names_it_and_weighs_its_own_limit() -> None:
    worst, run = budgets.WorstCase(tokens=200, cost=0.3), budgets.Limits(None, None)
    window = windows.Window("ns", "team", "Day", 0, 86400, tokens=1000, cost=None)
    hold = budgets.Hold(
        wire.Reply.OVER_BUDGET, kind=wire.LimitKind.TOKENS, spent=700, held=250, window=window
    )
    assert policy.hold_shortfall(hold, worst, run) == (
        "AgentBudget team (day) has used 700 tokens and calls under way hold 250; "
        "200 more may exceed 1000"
    )
    assert policy.held_back(hold, worst, run)  # 700 + 200 fits 1000 once the others settle
    spent = dataclasses.replace(hold, spent=801)
    assert not policy.held_back(spent, worst, run)


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


@pytest.mark.parametrize(
    ("kind", "spent", "held_back"),
    [
        (wire.LimitKind.TOKENS, 200, True),
        (wire.LimitKind.TOKENS, 201, False),
        (wire.LimitKind.COST, 0.7, True),
        (wire.LimitKind.COST, 0.71, False),
    ],
    ids=["others-hold-it", "spent-leaves-no-room", "cost-others-hold-it", "cost-spent"],
)
def test_a_step_waits_only_when_the_others_holds_are_what_keep_it_out(
    kind: wire.LimitKind, spent: float, held_back: bool
) -> None:
    worst, limits = budgets.WorstCase(tokens=200, cost=0.3), budgets.Limits(400, 1.0)
    hold = budgets.Hold(wire.Reply.OVER_BUDGET, kind=kind, spent=spent, held=500)
    assert policy.held_back(hold, worst, limits) is held_back

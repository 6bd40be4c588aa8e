"""What happens after a step attempt fails, decided from plain data: retry on the same
pool after a backoff, move to the fallback pool with a fresh retry budget, park for
human review, or give up to the dead-letter queue. One pure function, so every path is
unit-tested without Redis; the worker's finisher applies the answer.

Budgets are checked before a step calls its model: its own tokenBudget here
(`step_shortfall`), the run's limits atomically in Redis against what the steps under
way hold (trimtab.queue.budgets, worded by `run_shortfall`); an exhausted budget
follows the workflow's `onExhausted` (`on_budget_exhausted`).

Order: retries first (retryable errors only, while the budget lasts), then the
fallback pool (typically a larger model) unless the step already runs there, then
human review if the step asks for it, then the dead-letter queue. An error that the
same inputs would repeat anywhere (a template that cannot render) skips the fallback.
"""

from __future__ import annotations

import dataclasses
import enum

from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.metrics import ErrorType, described
from trimtab.queue import budgets, wire


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


def worst_case(
    *, prompt_tokens: int, max_tokens: int, pricing: agentpool.Pricing
) -> budgets.WorstCase:
    """What one call may spend at most: the prompt plus the step's whole completion
    allowance, priced at this pool's rates."""
    cost = (prompt_tokens * pricing.input_per_1k + max_tokens * pricing.output_per_1k) / 1000
    return budgets.WorstCase(tokens=prompt_tokens + max_tokens, cost=cost)


def step_shortfall(step: awf.Step, worst: budgets.WorstCase) -> str | None:
    """Why the step must not call (its worst case is over its own tokenBudget), or None.
    One attempt of a step runs at a time, so this needs no hold; the run's limits do
    (budgets.reserve)."""
    if step.token_budget is not None and worst.tokens > step.token_budget:
        return f"the step may use {worst.tokens} tokens, over its tokenBudget {step.token_budget}"
    return None


def run_limits(budget: awf.Budget | None) -> budgets.Limits:
    """The run's limits to hold calls against (both None when it has none)."""
    if budget is None:
        return budgets.Limits(tokens=None, cost=None)
    return budgets.Limits(tokens=budget.max_tokens_per_run, cost=budget.max_cost_per_run)


def _limit_of(hold: budgets.Hold, limits: budgets.Limits) -> budgets.Limits:
    """The limits the refusal was against: an AgentBudget window's, or the run's."""
    w = hold.window
    return limits if w is None else budgets.Limits(tokens=w.tokens, cost=w.cost)


def held_back(hold: budgets.Hold, worst: budgets.WorstCase, limits: budgets.Limits) -> bool:
    """Whether the refusal is only the other calls' holds: what was spent leaves room
    for this worst case, so the step waits for them to settle instead of failing."""
    limit = _limit_of(hold, limits)
    if hold.kind is wire.LimitKind.COST:
        return limit.cost is not None and hold.spent + worst.cost <= limit.cost
    return limit.tokens is not None and hold.spent + worst.tokens <= limit.tokens


def hold_shortfall(hold: budgets.Hold, worst: budgets.WorstCase, limits: budgets.Limits) -> str:
    """Why the step must not call, from reserve.lua's refusal."""
    limit = _limit_of(hold, limits)
    whose, others = (
        ("the run", "steps under way")
        if hold.window is None
        else (hold.window.label(), "calls under way")
    )
    if hold.kind is wire.LimitKind.COST:
        return (
            f"{whose} has cost {hold.spent:.6f} and {others} hold {hold.held:.6f}; "
            f"{worst.cost:.6f} more may exceed {limit.cost:g}"
        )
    return (
        f"{whose} has used {hold.spent:.0f} tokens and {others} hold {hold.held:.0f}; "
        f"{worst.tokens} more may exceed {limit.tokens}"
    )


def on_budget_exhausted(budget: awf.Budget | None, pool: str) -> Next:
    """The workflow's `onExhausted`: degrade to the cheaper pool (once), send to
    review, or fail (the default, and what Degrade becomes on the degrade pool itself)."""
    action = budget.on_exhausted if budget is not None else "Fail"
    if action == "Degrade" and budget is not None and budget.degrade_pool not in (None, pool):
        return Next(Action.ESCALATE, budget.degrade_pool)
    if action == "HumanReview":
        return Next(Action.REVIEW)
    return Next(Action.DEAD_LETTER)


def deadline_ms(deadline_seconds: int | None, created_ms: float) -> float | None:
    """When the run must have ended (ms), or None without a deadline."""
    if deadline_seconds is None or not created_ms:
        return None
    return created_ms + deadline_seconds * 1000


def past_deadline(deadline_seconds: int | None, created_ms: float, now_ms: float) -> str | None:
    """Why the run's next step must not start (its deadline passed), or None."""
    if deadline_seconds is None or not created_ms:
        return None
    age = (now_ms - created_ms) / 1000
    if age <= deadline_seconds:
        return None
    why = f"the run is {age:.1f} s old, past its {deadline_seconds} s deadline"
    return described(ErrorType.DEADLINE_EXCEEDED, why)

"""AgentBudget: a namespace's spend limits over time, for its workflows' model calls.

A run's own `budget` bounds one run; an AgentBudget bounds what many runs spend
together, per hour, day or month, in tokens and cost. Workers hold every call's worst
case against each budget that applies before calling (the same reservation that keeps a
run's parallel steps within its limit), so concurrent runs can never together spend past
it. Once a budget is spent, new runs of its workflows are refused until its window
turns, and a step whose worst case no longer fits ends as the workflow's
`budget.onExhausted` says.
"""

from __future__ import annotations

from typing import Literal

import pydantic

from trimtab.api.v1alpha1 import base

Field = pydantic.Field

Period = Literal["Hour", "Day", "Month"]
MAX_WORKFLOWS = 100
MAX_LABELS = 16


class Limit(base.Model):
    """What may be spent in one calendar window (UTC): tokens, cost, or both."""

    CEL = (
        base.CelRule(
            rule="has(self.tokens) || has(self.cost)",
            message="a limit names tokens, cost, or both",
            check=lambda limit: limit.tokens is not None or limit.cost is not None,
        ),
    )

    period: Period = Field(
        description="The window: Hour, Day (UTC midnight to midnight) or Month (from the "
        "first of the month, UTC). Spend counts in the window its call was held in."
    )
    tokens: int | None = Field(default=None, ge=1, le=1_000_000_000_000)
    cost: float | None = Field(
        default=None, ge=0, le=1_000_000_000, description="In the pools' pricing unit."
    )


class WorkflowSelector(base.Model):
    """Workflows by their labels."""

    match_labels: base.Labels = Field(min_length=1, max_length=MAX_LABELS)


class AgentBudgetSpec(base.Model):
    """Spend limits over time for the namespace's workflows, or some of them."""

    CEL = (
        base.CelRule(
            rule="!(has(self.workflows) && has(self.workflowSelector))",
            message="an AgentBudget names workflows or a workflowSelector, not both",
            check=lambda s: s.workflows is None or s.workflow_selector is None,
        ),
        base.CelRule(
            rule="self.limits.all(a, self.limits.exists_one(b, b.period == a.period))",
            message="each period has one limit",
            check=lambda s: len({limit.period for limit in s.limits}) == len(s.limits),
        ),
    )

    workflows: list[base.Name] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_WORKFLOWS,
        description="The workflows this budget covers, by name. With neither this nor "
        "workflowSelector, every workflow of the namespace.",
    )
    workflow_selector: WorkflowSelector | None = None
    limits: list[Limit] = Field(min_length=1, max_length=3)
    warn_at: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="The share of a limit at which the budget warns: a Warning Event, "
        "the NearLimit condition and trimtab_budget_warnings_total.",
    )


class PeriodSpend(base.Model):
    """One limit's current window: what is spent, held by calls under way, and left."""

    period: Period
    window_start: str = Field(
        max_length=32, description="The window's first moment, RFC 3339 (UTC)."
    )
    tokens_spent: int = Field(default=0, ge=0)
    tokens_held: int = Field(default=0, ge=0)
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    cost_spent: float = Field(default=0.0, ge=0)
    cost_held: float = Field(default=0.0, ge=0)
    cost_limit: float | None = None
    cost_remaining: float | None = None


class AgentBudgetStatus(base.Model):
    """Observed state of an AgentBudget: what it covers and what each window has left,
    refreshed periodically."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: base.Conditions = Field(default_factory=list)
    workflows: list[base.Name] = Field(
        default_factory=list,
        max_length=MAX_WORKFLOWS,
        description="The workflows covered now (a selector's matches change with labels).",
    )
    periods: list[PeriodSpend] = Field(default_factory=list, max_length=3)

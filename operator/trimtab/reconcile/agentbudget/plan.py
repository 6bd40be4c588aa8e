"""One AgentBudget's pass: the definition to publish for the workers, and its status.

Ready says the workers enforce it (always, once published: a budget has nothing else
to wait for); NearLimit and Exhausted say whether a window has spent its `warnAt` share
or all of a limit, each a Warning Event when it turns True. Spend counts what ended;
what calls under way hold is shown beside it but warns of nothing, since it is
settled to the real spend when each call ends.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from trimtab.api.v1alpha1 import agentbudget as ab
from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions, statuses
from trimtab.reconcile.agentbudget import windows as windows_mod


@dataclasses.dataclass(frozen=True)
class BudgetPlan:
    status: ab.AgentBudgetStatus
    patch: dict[str, Any]  # the status fields that differ from what is held
    events: tuple[conditions.Event, ...]
    used: tuple[tuple[str, float], ...]  # each period's share spent, for the gauge
    warned: tuple[str, ...]  # the periods that crossed warnAt since the last pass


def covered(
    spec: ab.AgentBudgetSpec, workflows: Mapping[str, Mapping[str, str]]
) -> frozenset[str] | None:
    """The workflows the budget covers, from the namespace's workflows and their labels;
    None for every workflow of the namespace, present or future."""
    if spec.workflows is not None:
        return frozenset(spec.workflows)
    if spec.workflow_selector is None:
        return None
    wanted = spec.workflow_selector.match_labels.items()
    return frozenset(name for name, labels in workflows.items() if wanted <= labels.items())


def definition(
    spec: ab.AgentBudgetSpec, workflows: frozenset[str] | None
) -> windows_mod.Definition:
    return windows_mod.Definition(
        workflows=workflows,
        limits=tuple(windows_mod.Limit(x.period, x.tokens, x.cost) for x in spec.limits),
    )


def used_share(s: windows_mod.Spend) -> float:
    """The higher of the tokens and cost shares the window has spent."""
    return _share(s.tokens, s.window.tokens, s.cost, s.window.cost)


def _share(tokens: float, token_limit: int | None, cost: float, cost_limit: float | None) -> float:
    shares = [tokens / token_limit] if token_limit else []
    shares += [cost / cost_limit] if cost_limit else []
    return max(shares, default=0.0)


def _period(s: windows_mod.Spend) -> ab.PeriodSpend:
    w = s.window
    start = datetime.datetime.fromtimestamp(w.start, datetime.UTC)
    return ab.PeriodSpend(
        period=w.period,  # type: ignore[arg-type]  # a Limit's period, from the spec
        window_start=conditions.format_time(start),
        tokens_spent=max(0, s.tokens),
        tokens_held=s.held_tokens,
        tokens_limit=w.tokens,
        tokens_remaining=None if w.tokens is None else max(0, w.tokens - s.tokens),
        cost_spent=round(max(0.0, s.cost), 6),
        cost_held=round(s.held_cost, 6),
        cost_limit=w.cost,
        cost_remaining=None if w.cost is None else round(max(0.0, w.cost - s.cost), 6),
    )


def _figure(s: windows_mod.Spend) -> str:
    w = s.window
    parts = [f"{s.tokens} of {w.tokens} tokens"] if w.tokens is not None else []
    parts += [f"{s.cost:.6f} of {w.cost:g} cost"] if w.cost is not None else []
    return f"{w.period.lower()}: {' and '.join(parts)} ({used_share(s):.0%})"


def _conditions(
    spec: ab.AgentBudgetSpec, workflows: frozenset[str] | None, spend: Sequence[windows_mod.Spend]
) -> list[conditions.Desired]:
    scope = (
        "every workflow of the namespace"
        if workflows is None
        else (f"{len(workflows)} workflow(s)" if workflows else "no workflow yet (none matches)")
    )
    near = [s for s in spend if used_share(s) >= spec.warn_at]
    spent = [s for s in spend if s.spent_out() is not None]
    within = conditions.joined(_figure(s) for s in spend)
    return [
        conditions.Desired(
            ConditionType.READY, True, Reason.ENFORCED, f"held on the model calls of {scope}"
        ),
        conditions.Desired(
            ConditionType.NEAR_LIMIT,
            bool(near),
            Reason.WARN_AT_REACHED if near else Reason.WITHIN_LIMITS,
            conditions.joined(f"{_figure(s)}, past warnAt {spec.warn_at:g}" for s in near)
            if near
            else within,
        ),
        conditions.Desired(
            ConditionType.EXHAUSTED,
            bool(spent),
            Reason.LIMIT_REACHED if spent else Reason.WITHIN_LIMITS,
            conditions.joined(f"{s.spent_out()}: new runs are refused" for s in spent)
            if spent
            else within,
        ),
    ]


def plan(
    spec: ab.AgentBudgetSpec,
    *,
    generation: int,
    workflows: frozenset[str] | None,
    spend: Sequence[windows_mod.Spend],
    held: Mapping[str, Any],
    now: datetime.datetime,
) -> BudgetPlan:
    """The pass for one budget, given its windows' figures and the status it holds."""
    current = statuses.parse(ab.AgentBudgetStatus, held)
    merged = conditions.merge(
        current.conditions, _conditions(spec, workflows, spend), generation=generation, now=now
    )
    status = ab.AgentBudgetStatus(
        observed_generation=generation,
        conditions=merged,
        workflows=sorted(workflows or ())[: ab.MAX_WORKFLOWS],
        periods=[_period(s) for s in spend],
    )
    before: dict[str, ab.PeriodSpend] = {p.period: p for p in current.periods}
    warned = tuple(
        s.window.period
        for s in spend
        if used_share(s) >= spec.warn_at and not _was_past(before.get(s.window.period), s, spec)
    )
    return BudgetPlan(
        status=status,
        patch=statuses.changes(held, status),
        events=tuple(conditions.transitions(current.conditions, merged)),
        used=tuple((s.window.period, used_share(s)) for s in spend),
        warned=warned,
    )


def _was_past(
    before: ab.PeriodSpend | None, now: windows_mod.Spend, spec: ab.AgentBudgetSpec
) -> bool:
    """Whether the status already showed this window past warnAt (counted then)."""
    if before is None or before.window_start != _period(now).window_start:
        return False
    shown = _share(before.tokens_spent, before.tokens_limit, before.cost_spent, before.cost_limit)
    return shown >= spec.warn_at

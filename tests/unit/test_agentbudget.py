"""AgentBudget decisions without servers: calendar windows, which workflows a budget
covers, and the status, conditions and warnings a window's figures call for."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentbudget as ab
from trimtab.reconcile.agentbudget import plan, windows

NOW = datetime.datetime(2026, 12, 31, 23, 30, 15, tzinfo=datetime.UTC)


def _at(*args: int) -> int:
    return int(datetime.datetime(*args, tzinfo=datetime.UTC).timestamp())


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("Hour", _at(2026, 12, 31, 23), _at(2027, 1, 1, 0)),
        ("Day", _at(2026, 12, 31), _at(2027, 1, 1)),
        ("Month", _at(2026, 12, 1), _at(2027, 1, 1)),
    ],
)
def test_windows_are_calendar_windows_in_utc(period: str, start: int, end: int) -> None:
    assert windows.window_bounds(period, NOW.timestamp()) == (start, end)


def test_a_leap_february_is_29_days() -> None:
    start, end = windows.window_bounds("Month", _at(2028, 2, 10))
    assert (end - start) // windows.DAY == 29


def _spec(**fields: Any) -> ab.AgentBudgetSpec:
    return ab.AgentBudgetSpec.model_validate(
        {"limits": [{"period": "Day", "tokens": 1000}], **fields}
    )


WORKFLOWS = {"support": {"team": "support"}, "triage": {"team": "support"}, "etl": {}}


def test_a_budget_covers_named_workflows_labelled_ones_or_the_whole_namespace() -> None:
    assert plan.covered(_spec(workflows=["etl", "gone"]), WORKFLOWS) == {"etl", "gone"}
    selector = {"workflowSelector": {"matchLabels": {"team": "support"}}}
    assert plan.covered(_spec(**selector), WORKFLOWS) == {"support", "triage"}
    assert plan.covered(_spec(), WORKFLOWS) is None  # and any workflow created later


def test_a_call_is_held_on_every_window_of_every_budget_that_covers_it() -> None:
    day = windows.Limit("Day", 1000, None)
    hour = windows.Limit("Hour", None, 2.0)
    defs = {
        "team": windows.Definition(frozenset({"support"}), (day, hour)),
        "all": windows.Definition(None, (day,)),
        "other": windows.Definition(frozenset({"etl"}), (day,)),
    }
    found = windows.covering("ns", "support", defs, NOW.timestamp())
    assert [(w.budget, w.period) for w in found] == [
        ("all", "Day"),
        ("team", "Day"),
        ("team", "Hour"),
    ]
    assert windows.Definition.from_json(defs["team"].to_json()) == defs["team"]


def _spend(tokens: int, *, limit: int = 1000, held: int = 0) -> windows.Spend:
    start, end = windows.window_bounds("Day", NOW.timestamp())
    w = windows.Window("ns", "team", "Day", start, end, tokens=limit, cost=None)
    return windows.Spend(w, tokens=tokens, cost=0.0, held_tokens=held, held_cost=0.0)


def _plan(tokens: int, status: dict[str, Any] | None = None, *, held: int = 0) -> plan.BudgetPlan:
    return plan.plan(
        _spec(warnAt=0.8),
        generation=2,
        workflows=frozenset({"support"}),
        spend=[_spend(tokens, held=held)],
        held=status or {},
        now=NOW,
    )


def _condition(p: plan.BudgetPlan, kind: str) -> tuple[str, str]:
    c = next(c for c in p.status.conditions if c.type == kind)
    return c.status, c.reason


def test_status_shows_each_window_spent_held_and_left() -> None:
    p = _plan(300, held=200)
    [period] = p.status.periods
    assert (period.tokens_spent, period.tokens_held, period.tokens_remaining) == (300, 200, 700)
    assert period.window_start == "2026-12-31T00:00:00Z"
    assert _condition(p, "Ready") == ("True", "Enforced")
    assert _condition(p, "NearLimit") == ("False", "WithinLimits")
    assert _condition(p, "Exhausted") == ("False", "WithinLimits")
    assert p.status.observed_generation == 2
    assert p.status.workflows == ["support"]


def test_crossing_warn_at_warns_once_with_a_warning_event() -> None:
    first = _plan(850)
    assert _condition(first, "NearLimit") == ("True", "WarnAtReached")
    assert first.warned == ("Day",)
    warnings = [e for e in first.events if e.reason == "WarnAtReached"]
    assert warnings
    assert all(e.type == "Warning" for e in warnings)
    again = _plan(870, first.status.model_dump(by_alias=True, mode="json"))
    assert again.warned == ()  # the status already showed this window past warnAt
    assert not [e for e in again.events if e.reason == "WarnAtReached"]


def test_a_spent_limit_is_exhausted_and_says_new_runs_are_refused() -> None:
    p = _plan(1000)
    assert _condition(p, "Exhausted") == ("True", "LimitReached")
    exhausted = next(c for c in p.status.conditions if c.type == "Exhausted")
    assert "has used 1000 of its 1000 tokens: new runs are refused" in exhausted.message
    assert p.used == (("Day", 1.0),)
    assert p.status.periods[0].tokens_remaining == 0


def test_an_unchanged_pass_patches_nothing() -> None:
    first = _plan(300)
    assert _plan(300, first.status.model_dump(by_alias=True, mode="json")).patch == {}


def test_a_call_refused_for_lack_of_room_spends_the_window_out_for_new_runs() -> None:
    window = _spend(900).window
    refused = windows.Spend(window, 900, 0.0, 0, 0.0, refused_tokens=150)
    assert refused.spent_out() == (
        "AgentBudget team (day) has used 900 of its 1000 tokens, too few left for a call of 150"
    )
    assert (refused.refusal() or "").endswith("; the window turns at 2027-01-01T00:00:00Z")
    assert _spend(900).spent_out() is None  # room left, and no call refused yet
    raised = dataclasses.replace(window, tokens=2000)  # an admin raised the limit since
    assert windows.Spend(raised, 900, 0.0, 0, 0.0, refused_tokens=150).spent_out() is None


def test_an_unknown_period_is_an_error_not_a_month() -> None:
    with pytest.raises(ValueError, match="unknown budget period 'Week'"):
        windows.window_bounds("Week", NOW.timestamp())

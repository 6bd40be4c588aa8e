"""Condition semantics: transition time moves only with status; transitions for events."""

from __future__ import annotations

import datetime

import pytest

from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions, naming

T0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
T1 = T0 + datetime.timedelta(minutes=5)
READY = conditions.Desired(ConditionType.READY, True, Reason.AVAILABLE, "3/3 replicas ready")


def test_first_write_stamps_now_and_generation() -> None:
    [c] = conditions.merge([], [READY], generation=4, now=T0)
    assert c.model_dump(by_alias=True, mode="json") == {
        "type": "Ready",
        "status": "True",
        "reason": "Available",
        "message": "3/3 replicas ready",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 4,
    }


@pytest.mark.parametrize(
    ("later", "moves"),
    [
        pytest.param(
            conditions.Desired(ConditionType.READY, True, Reason.AVAILABLE, "4/4"),
            False,
            id="same-status-new-message-keeps-time",
        ),
        pytest.param(
            conditions.Desired(ConditionType.READY, False, Reason.PROGRESSING),
            True,
            id="new-status-moves-time",
        ),
        pytest.param(
            conditions.Desired(ConditionType.READY, None, Reason.PROGRESSING),
            True,
            id="unknown-is-a-status",
        ),
    ],
)
def test_transition_time_moves_only_with_status(later: conditions.Desired, moves: bool) -> None:
    first = conditions.merge([], [READY], generation=1, now=T0)
    second = conditions.merge(first, [later], generation=2, now=T1)
    expected = "2026-01-01T12:05:00Z" if moves else "2026-01-01T12:00:00Z"
    assert conditions.format_time(second[0].last_transition_time) == expected
    assert second[0].observed_generation == 2


def test_transitions_list_new_and_changed_conditions_only() -> None:
    fallback = conditions.Desired(ConditionType.SPOT_FALLBACK, False, Reason.ON_SPOT)
    first = conditions.merge([], [READY, fallback], generation=1, now=T0)
    [announced] = conditions.transitions([], first)  # a first status: one Event for all
    assert announced.reason == "Available"
    assert announced.message.startswith("Ready=True: ")
    assert "; SpotFallback=False: " in announced.message
    same = conditions.merge(first, [READY, fallback], generation=1, now=T1)
    assert conditions.transitions(first, same) == []
    changed = conditions.merge(
        first,
        [READY, conditions.Desired(ConditionType.SPOT_FALLBACK, True, Reason.SPOT_UNSCHEDULABLE)],
        generation=1,
        now=T1,
    )
    [moved] = conditions.transitions(first, changed)
    assert (moved.type, moved.reason) == ("Normal", "SpotUnschedulable")
    assert moved.message.startswith("SpotFallback=True")


def test_a_reason_that_follows_every_decision_moves_no_event_on_its_own() -> None:
    def active(status: bool, reason: Reason) -> conditions.Desired:
        return conditions.Desired(ConditionType.SCALING_ACTIVE, status, reason)

    first = conditions.merge([], [active(True, Reason.STEADY)], generation=1, now=T0)
    quiet = {ConditionType.SCALING_ACTIVE}
    up = conditions.merge(first, [active(True, Reason.SCALED_UP)], generation=1, now=T1)
    assert conditions.transitions(first, up, status_only=quiet) == []
    assert len(conditions.transitions(first, up)) == 1
    off = conditions.merge(first, [active(False, Reason.MANUAL_MODE)], generation=1, now=T1)
    assert [e.reason for e in conditions.transitions(first, off, status_only=quiet)] == [
        "ManualMode"
    ]


@pytest.mark.parametrize(
    ("kind", "status", "warning"),
    [
        (ConditionType.READY, False, True),
        (ConditionType.READY, True, False),
        (ConditionType.METRICS_AVAILABLE, False, True),
        (ConditionType.SCALING_LIMITED, False, False),
        (ConditionType.SPOT_FALLBACK, True, False),
        (ConditionType.SPEC_VALID, False, True),
    ],
)
def test_a_false_condition_warns_only_where_false_is_trouble(
    kind: ConditionType, status: bool, warning: bool
) -> None:
    [event] = conditions.transitions(
        [],
        conditions.merge(
            [], [conditions.Desired(kind, status, Reason.AVAILABLE)], generation=1, now=T0
        ),
    )
    assert event.warning is warning


def test_names_fit_kubernetes_limits_for_the_longest_pool_name() -> None:
    pool = "p" * 50
    for name in (
        naming.worker_deployment(pool),
        naming.metrics_service(pool),
        naming.disruption_budget(pool),
    ):
        assert len(name) <= 63
    assert all(len(v) <= 63 for v in naming.object_labels(pool).values())
    assert naming.selector_string("a") == (
        "app.kubernetes.io/instance=a,app.kubernetes.io/name=trimtab-worker,trimtab.io/pool=a"
    )


def test_find_and_is_true_read_a_status_list() -> None:
    listed = [{"type": "Ready", "status": "True"}, {"type": "SpotFallback", "status": "False"}]
    assert conditions.find(listed, "SpotFallback") == listed[1]
    assert conditions.find(None, "Ready") == {}
    assert conditions.is_true(listed, "Ready")
    assert not conditions.is_true(listed, "SpotFallback")
    assert not conditions.is_true([], "Ready")


def test_times_round_trip() -> None:
    stamp = conditions.format_time(T0)
    assert stamp == "2026-01-01T12:00:00Z"
    assert conditions.parse_time(stamp) == T0.timestamp()
    assert conditions.parse_time(None) is None


def test_a_first_status_announces_trouble_on_its_own_and_the_rest_together() -> None:
    idle = conditions.Desired(ConditionType.SCALING_ACTIVE, False, Reason.IDLE)
    waiting = conditions.Desired(ConditionType.POOLS_READY, False, Reason.POOLS_NOT_READY)
    first = conditions.merge([], [READY, idle, waiting], generation=1, now=T0)
    together, alone = conditions.transitions([], first)
    assert together.message.startswith("Ready=True: ")
    assert "; ScalingActive=False: " in together.message  # a pool at zero is at ease
    assert (alone.warning, alone.reason) == (True, "PoolsNotReady")

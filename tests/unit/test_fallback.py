"""Spot fallback decisions: when to leave spot, when to try it again."""

from __future__ import annotations

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import fallback


def _spec(capacity: str = "Spot", after: int = 30) -> agentpool.AgentPoolSpec:
    return agentpool.AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://m:1/v1", "name": "m"},
            "placement": {"capacity": capacity, "fallbackAfterSeconds": after},
        }
    )


STUCK = fallback.PodView(unschedulable_since=100.0, capacity="Spot")
FRESH = fallback.PodView(unschedulable_since=125.0, capacity="Spot")
ON_DEMAND_STUCK = fallback.PodView(unschedulable_since=100.0, capacity="OnDemand")
RUNNING = fallback.PodView(unschedulable_since=None, capacity="Spot")


@pytest.mark.parametrize(
    ("spec", "active", "switched_at", "pods", "now", "expected"),
    [
        pytest.param(_spec(), False, None, [STUCK, RUNNING], 131.0, True, id="stuck-past-limit"),
        pytest.param(_spec(), False, None, [FRESH], 131.0, False, id="not-long-enough"),
        pytest.param(_spec(), False, None, [RUNNING], 500.0, False, id="all-scheduled"),
        pytest.param(
            _spec(), False, None, [ON_DEMAND_STUCK], 500.0, False, id="only-spot-pods-count"
        ),
        pytest.param(_spec("OnDemand"), False, None, [STUCK], 500.0, False, id="not-spot"),
        pytest.param(
            _spec("SpotPreferred"),
            False,
            None,
            [STUCK],
            500.0,
            False,
            id="spot-preferred-needs-no-fallback",
        ),
        pytest.param(_spec(after=0), False, None, [STUCK], 500.0, False, id="disabled"),
        pytest.param(_spec(), True, 100.0, [], 150.0, True, id="stays-until-probe"),
        pytest.param(_spec(), True, 100.0, [], 190.0, False, id="probes-spot-again"),
        pytest.param(_spec(after=1), True, 100.0, [], 105.0, True, id="probe-has-a-floor"),
        pytest.param(_spec(after=1), True, 100.0, [], 110.0, False, id="floor-reached"),
        pytest.param(_spec(after=60), True, 100.0, [], 250.0, True, id="probe-scales-with-limit"),
    ],
)
def test_decide(
    spec: agentpool.AgentPoolSpec,
    active: bool,
    switched_at: float | None,
    pods: list[fallback.PodView],
    now: float,
    expected: bool,
) -> None:
    state = fallback.decide(spec, active=active, switched_at=switched_at, pods=pods, now=now)
    assert state.active is expected


def test_message_says_how_many_and_how_long() -> None:
    state = fallback.decide(_spec(), active=False, switched_at=None, pods=[STUCK, STUCK], now=200.0)
    assert state.message == (
        "2 spot pod(s) unschedulable for 30 s or more; running on on-demand capacity"
    )

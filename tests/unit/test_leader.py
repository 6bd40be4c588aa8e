"""Leader-election decisions over a Lease: create, renew, take over only when expired
(on the deciding replica's own clock) or released, and the spec each writes."""

from __future__ import annotations

import pytest

from trimtab.reconcile import conditions, leader

NOW = 1_800_000_000.0


def _view(holder: str, renewed_ago: float | None, transitions: int = 3) -> leader.LeaseView:
    renewed = None if renewed_ago is None else NOW - renewed_ago
    return leader.LeaseView(
        holder=holder,
        renewed_at=renewed,
        duration_seconds=15,
        transitions=transitions,
        resource_version="42",
    )


@pytest.mark.parametrize(
    ("view", "unchanged_for", "action"),
    [
        pytest.param(None, 0, leader.Action.CREATE, id="no-lease"),
        pytest.param(_view("me", 1), 0, leader.Action.RENEW, id="mine"),
        pytest.param(_view("me", 60), 60, leader.Action.RENEW, id="mine-even-if-expired"),
        pytest.param(_view("other", 1), 14.9, leader.Action.WAIT, id="other-seen-unchanged-14.9s"),
        pytest.param(_view("other", 1), 15, leader.Action.TAKE_OVER, id="other-unchanged-15s"),
        # The holder's renewTime looks an hour old (its clock is behind ours), but the
        # record changed a moment ago: it is alive.
        pytest.param(_view("other", 3600), 1, leader.Action.WAIT, id="skewed-clock-alive"),
        pytest.param(_view("", 1), 0, leader.Action.TAKE_OVER, id="released"),
        pytest.param(_view("other", None), 0, leader.Action.TAKE_OVER, id="never-renewed"),
    ],
)
def test_decide(view: leader.LeaseView | None, unchanged_for: float, action: leader.Action) -> None:
    assert leader.decide(view, "me", NOW, unchanged_since=NOW - unchanged_for) is action


def test_timings_never_let_two_replicas_lead_at_once() -> None:
    # A leader stops once it could not renew for RENEW_SECONDS, before a standby may
    # take over at LEASE_SECONDS; retries fit several times into the difference.
    assert leader.RENEW_SECONDS + 2 * leader.RETRY_SECONDS <= leader.LEASE_SECONDS


def test_spec_counts_transitions_and_stamps_acquire_only_on_takeover() -> None:
    created = leader.lease_spec(None, "me", NOW)
    assert created["holderIdentity"] == "me"
    assert created["leaseTransitions"] == 0
    assert conditions.parse_time(created["acquireTime"]) == pytest.approx(NOW)
    renewed = leader.lease_spec(_view("me", 2), "me", NOW + 5)
    assert renewed["leaseTransitions"] == 3
    assert "acquireTime" not in renewed
    assert conditions.parse_time(renewed["renewTime"]) == pytest.approx(NOW + 5)
    taken = leader.lease_spec(_view("other", 30), "me", NOW)
    assert taken["leaseTransitions"] == 4
    assert "acquireTime" in taken


def test_view_of_a_released_lease() -> None:
    lease = {"metadata": {"resourceVersion": "7"}, "spec": leader.released_spec()}
    view = leader.view_of(lease)
    assert (view.holder, view.renewed_at, view.resource_version) == ("", None, "7")
    assert leader.decide(view, "me", NOW, unchanged_since=NOW) is leader.Action.TAKE_OVER

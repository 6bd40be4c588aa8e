"""Leader election over a coordination.k8s.io Lease: who may run the operator.

With more than one operator replica, exactly one reconciles and the rest stand by. kopf's
peering is not that: replicas of equal priority all keep working, with a warning. A
Lease is what Kubernetes' own controllers use: the holder renews it every few seconds;
when it stops renewing for the lease's duration, a standby takes it over. Writes carry
the resourceVersion they were decided on, so two standbys racing for one expired lease
cannot both win.

Expiry is judged on the standby's own clock, as client-go does: the lease has expired
when the standby has seen the same record for a whole lease duration. Comparing the
holder's renewTime with the standby's clock instead would let clock skew between nodes
cut a live leader's lease short.

This module decides; trimtab.kube.lease reads and writes the Lease.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Any

from trimtab.reconcile import conditions

LEASE_SECONDS = 15  # a silent leader is replaced after this long
RENEW_SECONDS = 10  # a leader that could not renew for this long stops leading
RETRY_SECONDS = 2  # how often standbys look and leaders renew


class Action(enum.Enum):
    CREATE = "create"  # no lease yet: create it, held by me
    RENEW = "renew"  # mine: renew it
    TAKE_OVER = "take_over"  # someone else's, expired or released: take it
    WAIT = "wait"  # someone else holds it and renews it


@dataclasses.dataclass(frozen=True)
class LeaseView:
    holder: str  # empty when released
    renewed_at: float | None  # seconds since the epoch
    duration_seconds: int
    transitions: int
    resource_version: str


def decide(view: LeaseView | None, me: str, now: float, *, unchanged_since: float) -> Action:
    """What to do with the lease; `unchanged_since` is when this replica first saw the
    record as it is now (its resourceVersion), on this replica's clock."""
    if view is None:
        return Action.CREATE
    if view.holder == me:
        return Action.RENEW
    if not view.holder or view.renewed_at is None:
        return Action.TAKE_OVER
    if now >= unchanged_since + view.duration_seconds:
        return Action.TAKE_OVER
    return Action.WAIT


def _micro_time(epoch: float) -> str:
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_spec(
    view: LeaseView | None, me: str, now: float, *, duration_seconds: int = LEASE_SECONDS
) -> dict[str, Any]:
    """The Lease's spec after I create, renew or take it over."""
    taking = view is None or view.holder != me
    transitions = 0 if view is None else view.transitions + (1 if taking else 0)
    spec: dict[str, Any] = {
        "holderIdentity": me,
        "leaseDurationSeconds": duration_seconds,
        "renewTime": _micro_time(now),
        "leaseTransitions": transitions,
    }
    if taking:
        spec["acquireTime"] = _micro_time(now)
    return spec


def released_spec() -> dict[str, Any]:
    """What a leader stopping cleanly writes, so a standby need not wait out the lease."""
    return {"holderIdentity": None, "renewTime": None}


def view_of(lease: dict[str, Any]) -> LeaseView:
    spec = lease.get("spec") or {}
    return LeaseView(
        holder=spec.get("holderIdentity") or "",
        renewed_at=conditions.parse_time(spec.get("renewTime")),
        duration_seconds=int(spec.get("leaseDurationSeconds") or LEASE_SECONDS),
        transitions=int(spec.get("leaseTransitions") or 0),
        resource_version=str(lease["metadata"].get("resourceVersion", "")),
    )

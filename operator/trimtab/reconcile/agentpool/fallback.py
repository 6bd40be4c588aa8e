"""Spot to on-demand fallback, and back, decided from the pool's pods and its status.

A Spot pool whose pods stay unschedulable past `fallbackAfterSeconds` (spot capacity
gone, or the spot nodes full or cordoned) switches to on-demand. After a probe interval
it tries spot again; if spot is still unavailable, the pods go Pending and the pool
falls back again one `fallbackAfterSeconds` later. The switch time is the SpotFallback
condition's lastTransitionTime, so the decision survives operator restarts.
"""

from __future__ import annotations

import dataclasses

from trimtab.api.v1alpha1 import agentpool

MIN_PROBE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class PodView:
    """One worker pod as the fallback needs it."""

    unschedulable_since: float | None  # when PodScheduled turned False/Unschedulable
    capacity: str  # the trimtab.io/capacity label: Spot, OnDemand or Mixed


@dataclasses.dataclass(frozen=True)
class FallbackState:
    active: bool
    message: str


def probe_seconds(spec: agentpool.AgentPoolSpec) -> float:
    return max(MIN_PROBE_SECONDS, 3.0 * spec.placement.fallback_after_seconds)


def _stuck_spot(pods: list[PodView], *, now: float, after: float) -> int:
    return sum(
        1
        for p in pods
        if p.capacity == "Spot"
        and p.unschedulable_since is not None
        and now - p.unschedulable_since >= after
    )


def decide(
    spec: agentpool.AgentPoolSpec,
    *,
    active: bool,
    switched_at: float | None,
    pods: list[PodView],
    now: float,
) -> FallbackState:
    """Whether the pool should run on on-demand capacity now, and why."""
    after = spec.placement.fallback_after_seconds
    if spec.placement.capacity != "Spot" or after == 0:
        return FallbackState(False, "")
    if active:
        if switched_at is not None and now - switched_at >= probe_seconds(spec):
            return FallbackState(False, "probing spot capacity again")
        return FallbackState(True, "spot pods were unschedulable; running on on-demand")
    stuck = _stuck_spot(pods, now=now, after=after)
    if stuck:
        return FallbackState(
            True,
            f"{stuck} spot pod(s) unschedulable for {after} s or more; "
            "running on on-demand capacity",
        )
    return FallbackState(False, "")

"""What a scaling decision says about itself: its reason constant and its message, as
the ScalingActive condition, the pool's events and `lastScaleReason` show them."""

from __future__ import annotations

import datetime

from trimtab.api.v1alpha1.agentpool import ScalingSpec
from trimtab.reasons import Reason
from trimtab.reconcile import conditions


def reason(current: int, replicas: int, *, target: int, active: bool) -> Reason:
    """`target` is the clamped raw recommendation: when it differs from an unchanged
    count, the window is what holds the pool."""
    if replicas == 0 and not active:
        return Reason.IDLE
    if replicas > current:
        woke = current == 0 and replicas == 1 and active
        return Reason.WOKE_FROM_ZERO if woke else Reason.SCALED_UP
    if replicas < current:
        return Reason.SCALED_DOWN
    return Reason.STABILIZING if target != current else Reason.STEADY


def message(
    decided: Reason,
    why: str,
    *,
    up: bool,
    current: int,
    replicas: int,
    last_active: float,
    spec: ScalingSpec,
) -> str:
    window = spec.stabilization.scale_up_seconds if up else spec.stabilization.scale_down_seconds
    idle = idle_since(last_active)
    return {
        Reason.IDLE: f"{idle}: scaled to zero" if current else f"{idle}: at zero",
        Reason.WOKE_FROM_ZERO: f"woke from zero: {why}",
        Reason.SCALED_UP: f"scaled up from {current} to {replicas}: {why}",
        Reason.SCALED_DOWN: f"scaled down from {current} to {replicas}: {why}",
        Reason.STABILIZING: f"holding {current} through the {window} s scale-"
        f"{'up' if up else 'down'} window: {why}",
    }.get(decided, f"steady at {replicas}: {why}")


def idle_since(last_active: float) -> str:
    """A fixed time, not a running count: an idle pool's status must not change (and
    cost a write) every pass."""
    moment = datetime.datetime.fromtimestamp(last_active, datetime.UTC)
    return f"idle since {conditions.format_time(moment)}"


def limit_note(limited: Reason | None, scaling: ScalingSpec) -> str:
    if limited is Reason.AT_MAX_REPLICAS:
        return f"; capped at maxReplicas {scaling.max_replicas}"
    if limited is Reason.AT_MIN_REPLICAS:
        return f"; raised to minReplicas {scaling.min_replicas}"
    if limited is Reason.RATE_LIMITED:
        return "; held where the model's rate limit keeps every replica busy"
    return ""

"""An AgentPool's status, decided from its spec, its Deployment and the last scaling
decision: replica counts, load figures, and the conditions `kubectl get apool` and
alerts read (Ready, ScalingActive, ScalingLimited, MetricsAvailable, SpotFallback)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions, naming


@dataclasses.dataclass(frozen=True)
class Scaling:
    """What the autoscaler last concluded, as status reports it."""

    desired: int
    reason: Reason
    message: str
    limited: Reason | None
    metrics_ok: bool
    queue_depth: int = 0
    in_flight: int = 0
    p95_seconds: float | None = None  # end to end: queue wait plus execution
    breaker: str | None = None  # Closed | Open | HalfOpen, from the model endpoint's breaker
    predicted_replicas: int | None = None  # the predictive floor, in Preview or Enabled mode
    startup_seconds: float | None = None  # measured ask-to-Ready of recent scale-ups


def _ready(spec: agentpool.AgentPoolSpec, desired: int, ready: int) -> conditions.Desired:
    if desired == 0:
        return conditions.Desired(
            ConditionType.READY,
            True,
            Reason.SCALED_TO_ZERO,
            "no replicas needed; scales up when work arrives",
        )
    if ready >= 1:
        return conditions.Desired(
            ConditionType.READY, True, Reason.AVAILABLE, f"{ready}/{desired} replicas ready"
        )
    return conditions.Desired(
        ConditionType.READY, False, Reason.PROGRESSING, f"0/{desired} replicas ready"
    )


def _scaling_conditions(
    spec: agentpool.AgentPoolSpec, scaling: Scaling
) -> list[conditions.Desired]:
    manual = spec.scaling.mode != "Auto"
    active = conditions.Desired(
        ConditionType.SCALING_ACTIVE,
        not manual and scaling.metrics_ok,
        Reason.MANUAL_MODE if manual else scaling.reason,
        scaling.message,
    )
    limited = conditions.Desired(
        ConditionType.SCALING_LIMITED,
        scaling.limited is not None,
        scaling.limited or Reason.WITHIN_BOUNDS,
        f"bounds {spec.scaling.min_replicas}..{spec.scaling.max_replicas}",
    )
    metrics = conditions.Desired(
        ConditionType.METRICS_AVAILABLE,
        scaling.metrics_ok,
        Reason.METRICS_READ if scaling.metrics_ok else Reason.METRICS_UNAVAILABLE,
        "queue and latency statistics read from Redis"
        if scaling.metrics_ok
        else "cannot read Redis: holding the current replica count",
    )
    return [active, limited, metrics]


def _spot(spec: agentpool.AgentPoolSpec, fallback: bool, message: str) -> conditions.Desired:
    if spec.placement.capacity != "Spot":
        return conditions.Desired(
            ConditionType.SPOT_FALLBACK,
            False,
            Reason.NOT_SPOT,
            f"capacity {spec.placement.capacity}",
        )
    if fallback:
        return conditions.Desired(
            ConditionType.SPOT_FALLBACK, True, Reason.SPOT_UNSCHEDULABLE, message
        )
    return conditions.Desired(
        ConditionType.SPOT_FALLBACK, False, Reason.ON_SPOT, "running on spot capacity"
    )


def _rounded(seconds: float | None) -> float | None:
    """To a tenth of a second: a measured time that moves by milliseconds is not news."""
    return None if seconds is None else round(seconds, 1)


def decide(
    spec: agentpool.AgentPoolSpec,
    *,
    name: str,
    deployment: Mapping[str, Any] | None,
    scaling: Scaling,
    fallback: bool,
    fallback_message: str = "",
) -> dict[str, Any]:
    """Status fields (without conditions' merge) and the desired conditions, as
    {"fields": {...}, "conditions": [...]} for the handler to merge and patch."""
    dep_status = (deployment or {}).get("status") or {}
    replicas = int(dep_status.get("replicas") or 0)
    ready = int(dep_status.get("readyReplicas") or 0)
    fields = {
        "replicas": replicas,
        "readyReplicas": ready,
        "desiredReplicas": scaling.desired,
        "replicaSummary": f"{ready}/{scaling.desired}",
        "selector": naming.selector_string(name),
        "queueDepth": scaling.queue_depth,
        "inFlight": scaling.in_flight,
        "p95LatencySeconds": scaling.p95_seconds,
        "predictedReplicas": scaling.predicted_replicas,
        "startupSeconds": _rounded(scaling.startup_seconds),
        "capacity": "OnDemand" if fallback or spec.placement.capacity == "OnDemand" else "Spot",
        "breaker": scaling.breaker,
    }
    wanted = [
        _ready(spec, scaling.desired, ready),
        *_scaling_conditions(spec, scaling),
        _spot(spec, fallback, fallback_message),
    ]
    return {"fields": fields, "conditions": wanted}

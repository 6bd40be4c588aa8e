"""An AgentPool's status, decided as the API's own `AgentPoolStatus` model from one
observation and the scaling decision: replica counts, load figures, and the conditions
`kubectl get apool` and alerts read (Ready, ScalingActive, ScalingLimited,
MetricsAvailable, SpotFallback). Building the model validates every field, so a
misspelt or out-of-range field fails here rather than being pruned by the apiserver.

`status_patch` decides what to write: every change that matters at once, and the load
figures at most once a status interval, so a steady pool writes almost nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions, naming, statuses
from trimtab.reconcile.agentpool import fallback, scaling


@dataclasses.dataclass(frozen=True)
class Workload:
    """The pool's Deployment as the pass reads it."""

    replicas: int  # its status.replicas
    ready: int  # its status.readyReplicas


def parse(raw: Mapping[str, Any]) -> agentpool.AgentPoolStatus:
    """The status the apiserver holds (statuses.parse)."""
    return statuses.parse(agentpool.AgentPoolStatus, raw)


def _ready(desired: int, ready: int, backlog: int, problems: tuple[str, ...]) -> conditions.Desired:
    if problems:
        return conditions.Desired(
            ConditionType.READY, False, Reason.INVALID_SPEC, "the spec is refused: see SpecValid"
        )
    if desired == 0 and backlog > 0:
        # Manual mode at 0 replicas, or a ceiling of 0: the steps wait until their runs'
        # deadlines, so the pool, and every workflow that uses it, says so.
        return conditions.Desired(
            ConditionType.READY,
            False,
            Reason.UNSERVED,
            f"{backlog} task(s) queued and no replica wanted to take them",
        )
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
    spec: agentpool.AgentPoolSpec,
    decision: scaling.Decision,
    metrics_ok: bool,
    problems: tuple[str, ...],
) -> list[conditions.Desired]:
    manual = spec.scaling.mode != "Auto"
    active = conditions.Desired(
        ConditionType.SCALING_ACTIVE,
        not manual and metrics_ok,
        Reason.MANUAL_MODE if manual else decision.reason,
        decision.message,
    )
    if problems:
        active = conditions.Desired(
            ConditionType.SCALING_ACTIVE, False, Reason.INVALID_SPEC, "holding: the spec is refused"
        )
    limited = conditions.Desired(
        ConditionType.SCALING_LIMITED,
        decision.limited is not None,
        decision.limited or Reason.WITHIN_BOUNDS,
        f"bounds {spec.scaling.min_replicas}..{spec.scaling.max_replicas}",
    )
    metrics = conditions.Desired(
        ConditionType.METRICS_AVAILABLE,
        metrics_ok,
        Reason.METRICS_READ if metrics_ok else Reason.METRICS_UNAVAILABLE,
        "queue and latency statistics read from Redis"
        if metrics_ok
        else "cannot read Redis: holding the current replica count",
    )
    return [active, limited, metrics]


def _spot(spec: agentpool.AgentPoolSpec, spot: fallback.FallbackState) -> conditions.Desired:
    if spec.placement.capacity != "Spot":
        return conditions.Desired(
            ConditionType.SPOT_FALLBACK,
            False,
            Reason.NOT_SPOT,
            f"capacity {spec.placement.capacity}",
        )
    if spot.active:
        return conditions.Desired(
            ConditionType.SPOT_FALLBACK, True, Reason.SPOT_UNSCHEDULABLE, spot.message
        )
    return conditions.Desired(
        ConditionType.SPOT_FALLBACK, False, Reason.ON_SPOT, "running on spot capacity"
    )


def _spec_valid(problems: tuple[str, ...]) -> conditions.Desired:
    if not problems:
        return conditions.Desired(
            ConditionType.SPEC_VALID, True, Reason.VALID, "within the cluster's policy"
        )
    message = conditions.joined(problems)
    return conditions.Desired(ConditionType.SPEC_VALID, False, Reason.INVALID_SPEC, message)


def _rounded(seconds: float | None) -> float | None:
    """To a tenth of a second: a measured time that moves by milliseconds is not news."""
    return None if seconds is None else round(seconds, 1)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What one pass decided and read, as status reports it."""

    name: str
    generation: int
    current: agentpool.AgentPoolStatus
    workload: Workload
    observed: scaling.Observed
    decision: scaling.Decision
    spot: fallback.FallbackState
    breaker: agentpool.BreakerStatus | None  # the model endpoint's breaker
    problems: tuple[str, ...] = ()  # why the spec is refused (admission)


def desired(
    spec: agentpool.AgentPoolSpec, given: Inputs, now: datetime.datetime
) -> agentpool.AgentPoolStatus:
    """The whole status to hold after this pass."""
    decision, observed, current = given.decision, given.observed, given.current
    wanted = [
        _ready(decision.replicas, given.workload.ready, observed.backlog, given.problems),
        *_scaling_conditions(spec, decision, observed.metrics_ok, given.problems),
        _spot(spec, given.spot),
        _spec_valid(given.problems),
    ]
    scaled = decision.replicas != observed.current_replicas
    on_demand = given.spot.active or spec.placement.capacity == "OnDemand"
    return agentpool.AgentPoolStatus(
        observed_generation=given.generation,
        conditions=conditions.merge(
            current.conditions, wanted, generation=given.generation, now=now
        ),
        replicas=given.workload.replicas,
        ready_replicas=given.workload.ready,
        desired_replicas=decision.replicas,
        replica_summary=f"{given.workload.ready}/{decision.replicas}",
        selector=naming.selector_string(given.name),
        queue_depth=observed.backlog,
        in_flight=observed.in_flight,
        p95_latency_seconds=observed.latency_p95_seconds,
        predicted_replicas=decision.predicted_replicas,
        startup_seconds=_rounded(observed.startup_seconds),
        last_scale_time=now if scaled else current.last_scale_time,
        last_scale_reason=(
            f"{decision.reason.value}: {decision.message}"[:1024]
            if scaled
            else current.last_scale_reason
        ),
        capacity="OnDemand" if on_demand else "Spot",
        breaker=given.breaker,
    )


def _alias(field: str) -> str:
    return agentpool.AgentPoolStatus.model_fields[field].alias or field


# Figures that move with every tick: refreshed once a status interval, never urgent.
SLOW_FIELDS = frozenset(
    _alias(f)
    for f in (
        "queue_depth",
        "in_flight",
        "p95_latency_seconds",
        "predicted_replicas",
        "startup_seconds",
    )
)


def _kinds(conds: Any) -> list[tuple[Any, Any, Any]]:
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in conds or []]


def status_patch(
    held: Mapping[str, Any], want: agentpool.AgentPoolStatus, *, refresh_due: bool
) -> dict[str, Any] | None:
    """The merge patch from the status the apiserver holds to `want`, or None when
    nothing urgent changed and the load figures are not due for a refresh."""
    changed = statuses.changes(held, want)
    urgent = set(changed) - SLOW_FIELDS
    if "conditions" in urgent and _kinds(held.get("conditions")) == _kinds(changed["conditions"]):
        urgent.discard("conditions")  # only messages moved ("idle 42 s"): not urgent
    if not changed or (not urgent and not refresh_due):
        return None
    return changed

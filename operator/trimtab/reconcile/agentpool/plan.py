"""One autoscaler pass of one pool, decided as a value: `plan(seen, spec, memory, now)`
returns the replicas to apply, the placement to move to, the status patch, the Events,
and the memory for the next pass. Pure (decisions as values, in the manner of
Karpenter's): the operator's handler (trimtab.handlers.pool_scaler) gathers the
`Observation` and executes the `PoolPlan`, and nothing else.

The pass joins three decisions: how many replicas (trimtab.reconcile.agentpool.scaling,
through the autoscaler's memory), spot or on-demand (fallback), and the status that
reports both (status). Every condition that changes status, or reason where the reason
is news (not ScalingActive's, which follows each decision), becomes an Event, and so
does every change of replicas.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reasons import ConditionType
from trimtab.reconcile import conditions
from trimtab.reconcile.agentpool import autoscaler, fallback, scaling
from trimtab.reconcile.agentpool import status as status_mod


@dataclasses.dataclass(frozen=True)
class Observation:
    """What the handler read for one pool this pass."""

    name: str
    generation: int
    status: Mapping[str, Any]  # the status the apiserver holds, as it holds it
    workload: status_mod.Workload
    observed: scaling.Observed  # the load as the policy reads it (autoscaler.observe)
    pods: tuple[fallback.PodView, ...]
    breaker: agentpool.BreakerStatus | None  # None: the queue could not be read
    # Why the operator refuses the spec (trimtab.reconcile.agentpool.admission): while
    # there are any, the pool's size and placement are held and nothing is rebuilt.
    problems: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Memory:
    """What one pass leaves for the next."""

    scaling: autoscaler.Memory = dataclasses.field(default_factory=autoscaler.Memory)
    status_written_at: float = 0.0  # when a status patch was last planned


@dataclasses.dataclass(frozen=True)
class PoolPlan:
    """What to do for a pool this pass; the handler applies each part that is set."""

    replicas: int | None  # the Deployment's new spec.replicas; None: leave it
    fallback: bool | None  # re-apply the objects on on-demand (True) or spot; None: stay
    status: dict[str, Any] | None  # the status merge patch; None: nothing worth writing
    events: tuple[conditions.Event, ...]
    decision: scaling.Decision  # for the scaling metrics
    memory: Memory


def _spot(
    spec: agentpool.AgentPoolSpec, seen: Observation, current: agentpool.AgentPoolStatus, now: float
) -> tuple[bool, fallback.FallbackState]:
    held = conditions.condition_of(current.conditions, ConditionType.SPOT_FALLBACK)
    active = held is not None and held.status == "True"
    switched_at = None if held is None else held.last_transition_time.timestamp()
    decided = fallback.decide(
        spec, active=active, switched_at=switched_at, pods=list(seen.pods), now=now
    )
    return active, decided


def _scale_event(decision: scaling.Decision, current: int) -> tuple[conditions.Event, ...]:
    if decision.replicas == current:
        return ()
    message = f"{current} -> {decision.replicas}: {decision.message}"
    return (conditions.Event(False, decision.reason.value, message),)


def plan(
    seen: Observation,
    spec: agentpool.AgentPoolSpec,
    memory: Memory,
    now: float,
    *,
    status_interval: float,
) -> PoolPlan:
    """The pass for one pool at `now` (epoch seconds); `status_interval` is how often
    the load figures alone may be rewritten."""
    decision, kept = autoscaler.decide(
        seen.observed, spec, memory.scaling, now, ready=seen.workload.ready
    )
    if seen.problems:  # a refused spec changes nothing the operator runs
        decision = dataclasses.replace(decision, replicas=seen.observed.current_replicas)
        kept = memory.scaling
    current = status_mod.parse(seen.status)
    was_active, spot = _spot(spec, seen, current, now)
    wall = datetime.datetime.fromtimestamp(int(now), datetime.UTC)
    given = status_mod.Inputs(
        seen.name,
        seen.generation,
        current,
        seen.workload,
        seen.observed,
        decision,
        spot,
        seen.breaker,
        seen.problems,
    )
    want = status_mod.desired(spec, given, wall)
    due = now - memory.status_written_at >= status_interval
    patch = status_mod.status_patch(seen.status, want, refresh_due=due)
    moved = conditions.transitions(
        current.conditions, want.conditions, status_only={ConditionType.SCALING_ACTIVE}
    )
    current_replicas = seen.observed.current_replicas
    scaled_to = decision.replicas if decision.replicas != current_replicas else None
    return PoolPlan(
        replicas=scaled_to,
        fallback=spot.active if spot.active != was_active and not seen.problems else None,
        status=patch,
        events=(*_scale_event(decision, current_replicas), *moved),
        decision=decision,
        memory=Memory(kept, now if patch is not None else memory.status_written_at),
    )

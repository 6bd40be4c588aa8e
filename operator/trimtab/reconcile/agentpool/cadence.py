"""Which pools the autoscaler reads and ticks this second, decided as values.

A pool is at rest when a pass found it at zero replicas with no work queued, running or
arriving, nothing time-driven in its spec (scheduled floors, predictive scaling), its
queue readable, and planned nothing: no replicas, no status, no Event, no placement.
Nothing changes for such a pool until something it reads changes, so its passes are
skipped until then: its AgentPool, Deployment or pods (the `inputs` the handler
fingerprints from the watch views), or its queue (the touched set,
trimtab.queue.touched). It is ticked anyway once every REST_TICK_SECONDS, staggered
by name so that pools that came to rest together do not wake together; that bounds
how stale a resting pool's status can be and covers a task enqueued by anything other
than the scripts.

Why: at a thousand pools and more, a pass per pool per second (seven Redis commands,
a plan, a status comparison) was most of the operator's idle CPU, while almost every
pool was at rest.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Hashable

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import plan as plan_mod

REST_TICK_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Resting:
    """A pool found at rest: what its pass read, and when it is ticked all the same."""

    inputs: Hashable
    until: float


def at_rest(
    spec: agentpool.AgentPoolSpec, seen: plan_mod.Observation, planned: plan_mod.PoolPlan
) -> bool:
    """Whether the pass `planned` for `seen` leaves the pool with nothing to do until
    something it reads changes."""
    observed = seen.observed
    quiet = (
        observed.metrics_ok
        and not observed.active
        and observed.completion_rate == 0
        and observed.current_replicas == 0
        and seen.workload.replicas == 0
    )
    timeless = not spec.scaling.schedules and spec.scaling.predictive.mode == "Disabled"
    idle_plan = (
        planned.replicas is None
        and planned.status is None
        and not planned.events
        and planned.fallback is None
    )
    return quiet and timeless and idle_plan


def resting(key: tuple[str, str], inputs: Hashable, now: float) -> Resting:
    """The rest of a pool found at rest at `now`, staggered by its name."""
    stagger = zlib.crc32(f"{key[0]}/{key[1]}".encode()) % 1000 / 1000 * REST_TICK_SECONDS
    return Resting(inputs, now + REST_TICK_SECONDS + stagger)


def due(rest: Resting | None, inputs: Hashable, *, touched: bool, now: float) -> bool:
    """Whether a pool is read and ticked this second."""
    return rest is None or touched or rest.inputs != inputs or now >= rest.until

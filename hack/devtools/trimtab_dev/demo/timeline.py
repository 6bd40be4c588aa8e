"""What the demo records while it runs, and what the report is drawn from: plain data,
sampled once a second, with a price model for the capacity the pools used."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

# Illustrative node prices per replica-hour: spot at about a third of on-demand, as on
# the big clouds' general-purpose instances. Only their ratio matters to the comparison.
ON_DEMAND_PER_REPLICA_HOUR = 0.096
SPOT_PER_REPLICA_HOUR = 0.032


@dataclasses.dataclass(frozen=True)
class PoolSample:
    """One pool at one moment; `t` is seconds since the load started."""

    t: float
    pool: str
    capacity: str  # "Spot" or "OnDemand": where the pool's pods are placed now
    desired: int
    ready: int
    queue_depth: int
    in_flight: int
    p95_seconds: float | None
    breaker: str  # Closed, Open or HalfOpen
    service_seconds: float | None = None  # mean step execution time over the last 10 s
    real_pods: int = 0  # of its Running pods, those running as containers on a real node


@dataclasses.dataclass(frozen=True)
class RunsSample:
    """All runs at one moment: counts so far, and tokens and model cost so far."""

    t: float
    submitted: int
    succeeded: int
    failed: int  # dead-lettered or rejected
    review: int
    tokens: int
    cost: float


@dataclasses.dataclass
class Timeline:
    pools: list[PoolSample] = dataclasses.field(default_factory=list)
    runs: list[RunsSample] = dataclasses.field(default_factory=list)
    run_seconds: list[float] = dataclasses.field(default_factory=list)  # succeeded runs
    slowest_run: str = ""  # the succeeded run that took longest (NAMESPACE/ID)
    slowest_seconds: float = 0.0
    model_cost_by_pool: dict[str, float] = dataclasses.field(default_factory=dict)
    load_seconds: float = 0.0  # how long the load phase ran
    # Per pool: arrivals per second as the operator recorded them, and the pool's spec.
    recorded_arrivals: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)
    pool_specs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def pool_names(self) -> list[str]:
        return sorted({s.pool for s in self.pools})


@dataclasses.dataclass(frozen=True)
class CapacityCost:
    """Node cost of the run as it went, against the peak replica count of every pool
    held all the time on on-demand nodes (what a fixed-size deployment would pay)."""

    spot_replica_hours: float
    on_demand_replica_hours: float
    actual: float
    peak_on_demand: float

    @property
    def saving(self) -> float:
        return 1 - self.actual / self.peak_on_demand if self.peak_on_demand else 0.0


def capacity_cost(timeline: Timeline) -> CapacityCost:
    """Integrate ready replicas over time, priced by where they ran."""
    spot = on_demand = 0.0
    peak: dict[str, int] = {}
    by_pool: dict[str, list[PoolSample]] = {}
    for sample in timeline.pools:
        by_pool.setdefault(sample.pool, []).append(sample)
        peak[sample.pool] = max(peak.get(sample.pool, 0), sample.ready, sample.desired)
    for samples in by_pool.values():
        samples.sort(key=lambda s: s.t)
        for before, after in itertools.pairwise(samples):
            hours = (after.t - before.t) * before.ready / 3600
            if before.capacity == "Spot":
                spot += hours
            else:
                on_demand += hours
    span_hours = max((s.t for s in timeline.pools), default=0.0) / 3600
    return CapacityCost(
        spot_replica_hours=spot,
        on_demand_replica_hours=on_demand,
        actual=spot * SPOT_PER_REPLICA_HOUR + on_demand * ON_DEMAND_PER_REPLICA_HOUR,
        peak_on_demand=sum(peak.values()) * span_hours * ON_DEMAND_PER_REPLICA_HOUR,
    )

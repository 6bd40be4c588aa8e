"""Runs a trace through several controllers and scores each the same way: the share of
requests within the SLO, latency percentiles, replica-seconds, cost against the
cheapest static fleet that holds the SLO, and the first request's wait.

The static baseline is found by search: the smallest fixed replica count whose run of
the same trace (same seed) keeps STATIC_ATTAINMENT of requests within the SLO. It
knows the trace in hindsight, so it is a stricter yardstick than a fleet sized by rule
of thumb for the peak.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

from trimtab.sim.fleet import model, peers, traces

STATIC_ATTAINMENT = 0.999

Factory = Callable[[], model.Controller]


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str
    make: Factory  # a fresh controller for each run
    initial_replicas: int  # replicas already running at second 0


@dataclasses.dataclass(frozen=True)
class Score:
    name: str
    requests: int
    within_slo: float  # share of requests finished within the SLO
    p50: float
    p95: float
    p99: float
    replica_seconds: float
    cost_ratio: float  # replica-seconds over the static fleet's
    first_wait: float  # the first request's wait for a slot (s): the cold start
    peak_replicas: int


def score(name: str, outcome: model.Outcome, *, slo: float, static_cost: float) -> Score:
    latencies = sorted(d.latency for d in outcome.done) + [math.inf] * outcome.unfinished
    n = len(latencies)
    within = sum(1 for x in latencies if x <= slo) / n if n else 1.0
    first = min(outcome.done, key=lambda d: d.arrived, default=None)
    return Score(
        name=name,
        requests=n,
        within_slo=within,
        p50=_quantile(latencies, 0.50),
        p95=_quantile(latencies, 0.95),
        p99=_quantile(latencies, 0.99),
        replica_seconds=outcome.replica_seconds,
        cost_ratio=outcome.replica_seconds / static_cost if static_cost else math.inf,
        first_wait=(first.started - first.arrived) if first else 0.0,
        peak_replicas=max((d for _, d, _ in outcome.replicas_over_time), default=0),
    )


def _quantile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def run(
    pool: model.PoolModel, trace: traces.Trace, contender: Contender, *, seed: int
) -> model.Outcome:
    sized = dataclasses.replace(pool, initial_replicas=contender.initial_replicas)
    return model.Simulation(sized, trace, seed=seed).run(contender.make())


def attainment(outcome: model.Outcome, slo: float) -> float:
    total = len(outcome.done) + outcome.unfinished
    return sum(1 for d in outcome.done if d.latency <= slo) / total if total else 1.0


def static_fleet(
    pool: model.PoolModel, trace: traces.Trace, *, slo: float, seed: int, limit: int = 2000
) -> tuple[int, model.Outcome]:
    """The smallest static fleet keeping STATIC_ATTAINMENT within the SLO, and its run."""
    runs: dict[int, model.Outcome] = {}

    def holds(n: int) -> bool:
        contender = Contender(f"static {n}", lambda: peers.Static(n), n)
        runs[n] = run(pool, trace, contender, seed=seed)
        return attainment(runs[n], slo) >= STATIC_ATTAINMENT

    per_replica = pool.slots / pool.service_mean
    low, high = 1, max(1, math.ceil(trace.peak_rate() / per_replica * 2))
    while not holds(high) and high < limit:
        low, high = high + 1, min(limit, high * 2)
    while low < high:
        mid = (low + high) // 2
        if holds(mid):
            high = mid
        else:
            low = mid + 1
    if high not in runs:
        holds(high)
    return high, runs[high]


def compare(
    pool: model.PoolModel,
    trace: traces.Trace,
    contenders: Sequence[Contender],
    *,
    slo: float,
    seed: int,
) -> tuple[int, list[Score], dict[str, model.Outcome]]:
    """The static fleet's size, every contender's score (the static fleet last), and
    each run's outcome by name."""
    size, static = static_fleet(pool, trace, slo=slo, seed=seed)
    cost = static.replica_seconds
    outcomes = {c.name: run(pool, trace, c, seed=seed) for c in contenders}
    outcomes[f"static ({size})"] = static
    scores = [score(name, o, slo=slo, static_cost=cost) for name, o in outcomes.items()]
    return size, scores, outcomes

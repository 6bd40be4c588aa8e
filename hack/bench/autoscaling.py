#!/usr/bin/env python3
"""Autoscaling quality: Trimtab's policy against KEDA, an HPA on CPU and a static fleet,
in the scaling simulator (trimtab.sim.fleet), over the load shapes of the autoscaler's
goals, several seeds each. Prints one table; asserts nothing.

The pool: 4 slots per replica, lognormal steps (mean 2 s, CV 0.5), a 15 s replica
start-up (60 s in the last shape), a 10 s end-to-end SLO. Rows per shape:
- Trimtab default: the AgentPool defaults (maxReplicas raised to 300 so the bound
  never decides);
- Trimtab tuned: the spec a user would settle on with `trimtab simulate scaling`
  for that shape (printed under the table);
- KEDA default / tuned, HPA on CPU: trimtab.sim.fleet.contenders;
- clairvoyant: knows the exact rate one start-up ahead and sizes for the SLO by
  Erlang C; it pays start-ups like everyone; the floor of what reacting can reach;
- static: the smallest fixed fleet keeping 99.9 % within the SLO on that trace
  (found by search, knowing the trace): cost 1.00x is its replica-seconds.
Columns: SLO % (mean of seeds), the worst seed's, p95 latency (s, mean), cost in
replica-seconds against the static fleet (mean), the first request's wait (s, mean).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import statistics
import sys
import time
from typing import Any

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.reconcile.agentpool import erlang
from trimtab.sim.fleet import compare, contenders, model, traces

SLO = 10.0
SEEDS = (1, 2, 3)
MAX_REPLICAS = 300
BURSTY = "bursty:mean=5,peak=10,period=900,burst=30,rise=15,duration=3600"
RECURRING = "bursty:mean=5,peak=10,period=900,burst=30,rise=15,jitter=0.02,duration=10800"
LEARNED = {"mode": "Enabled", "periodSeconds": 900, "bucketSeconds": 10, "lookbackPeriods": 3}


@dataclasses.dataclass(frozen=True)
class Case:
    label: str
    trace: str
    startup: float  # replica start-up, seconds
    tuned: dict[str, Any]  # the tuned spec's scaling
    warmup: float = 0.0  # seconds of history before scoring starts


CASES = [
    Case("bursty 10:1", BURSTY, 15.0, {"standby": 4, "stabilization": {"scaleDownSeconds": 20}}),
    Case(
        "cold start",
        "cold:rate=10,idle=300,duration=900",
        15.0,
        {"minReplicas": 3, "targets": {"p95LatencySeconds": SLO}},
    ),
    Case(
        "diurnal",
        "diurnal:peak=20,trough=0.1,period=7200,duration=7200",
        15.0,
        {"minReplicas": 1, "targets": {"p95LatencySeconds": SLO}},
    ),
    Case(
        "ramp",
        "ramp:start=2,end=20,duration=1800",
        15.0,
        {"minReplicas": 1, "targets": {"p95LatencySeconds": SLO}},
    ),
    Case(
        "bursty, 60 s start-up",
        BURSTY,
        60.0,
        {"standby": 18, "stabilization": {"scaleDownSeconds": 20}},
    ),
    Case(
        "recurring bursts, 60 s start-up (after 1 h of history)",
        RECURRING,
        60.0,
        {"predictive": LEARNED, "stabilization": {"scaleDownSeconds": 20}},
        warmup=3600.0,
    ),
]
ORDER = (
    "Trimtab default",
    "Trimtab tuned",
    "KEDA default",
    "KEDA tuned",
    "HPA on CPU",
    "clairvoyant",
    "static",
)


def pool_spec(scaling: dict[str, Any]) -> AgentPoolSpec:
    return AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://model.local:8000/v1", "name": "m"},
            "worker": {"concurrency": 4},
            "scaling": {"maxReplicas": MAX_REPLICAS, **scaling},
        }
    )


class Clairvoyant:
    """Sizes by Erlang C for the highest exact rate between now and one (slowest)
    start-up ahead, plus the slots that drain what waits within the SLO's slack."""

    def __init__(self, shape: traces.Shape, pool: model.PoolModel) -> None:
        self.shape, self.pool = shape, pool

    def __call__(self, view: model.View) -> int:
        lead = self.pool.startup_seconds * (1 + self.pool.startup_jitter)
        ahead = max(self.shape.rate(view.now + s) for s in range(0, math.ceil(lead) + 1))
        service = self.pool.service_mean
        budget = SLO - 2 * service
        slots = erlang.slots_for_wait(ahead * service, service=service, budget=budget, tail=0.02)
        slots += view.backlog * service / budget
        return max(1, math.ceil(slots / self.pool.slots - 1e-9))


def one(job: tuple[int, int]) -> tuple[int, int, list[compare.Score], int]:
    index, seed = job
    case = CASES[index]
    pool = model.PoolModel(slots=4, startup_seconds=case.startup, warmup_seconds=case.warmup)
    shape = traces.shape(case.trace, seed)
    trace = traces.sample(shape, seed)
    default = pool_spec({})
    line_up = [
        contenders.trimtab("Trimtab default", default),
        contenders.trimtab("Trimtab tuned", pool_spec(case.tuned)),
        *contenders.peers_of(default, slots=4),
        compare.Contender("clairvoyant", lambda: Clairvoyant(shape, pool), 1),
    ]
    size, scores, _ = compare.compare(pool, trace, line_up, slo=SLO, seed=seed)
    named = [
        dataclasses.replace(s, name="static") if s.name.startswith("static") else s for s in scores
    ]
    return index, seed, named, size


def main() -> int:
    t0 = time.monotonic()
    jobs = [(i, seed) for i in range(len(CASES)) for seed in SEEDS]
    with multiprocessing.Pool(min(2, multiprocessing.cpu_count())) as workers:
        results = workers.map(one, jobs)
    print(
        f"Autoscaling in the scaling simulator: {len(SEEDS)} seeds per shape, 4 slots per "
        f"replica, steps 2 s mean (CV 0.5), SLO {SLO:g} s end to end"
    )
    for i, case in enumerate(CASES):
        runs = [(scores, size) for idx, _, scores, size in results if idx == i]
        sizes = sorted(size for _, size in runs)
        print(
            f"\n{case.label} ({case.trace}; start-up {case.startup:g} s; static fleet "
            f"{sizes[0]}-{sizes[-1]} replicas)"
        )
        print(f"  {'':16} {'SLO %':>8} {'worst':>8} {'p95 s':>7} {'cost':>6} {'first s':>8}")
        for name in ORDER:
            rows = [s for scores, _ in runs for s in scores if s.name == name]
            slo = statistics.mean(r.within_slo for r in rows) * 100
            worst = min(r.within_slo for r in rows) * 100
            p95 = statistics.mean(r.p95 for r in rows)
            cost = statistics.mean(r.cost_ratio for r in rows)
            first = statistics.mean(r.first_wait for r in rows)
            print(f"  {name:16} {slo:8.2f} {worst:8.2f} {p95:7.2f} {cost:5.2f}x {first:8.1f}")
    print("\nTrimtab tuned, per shape (spec.scaling):")
    for case in CASES:
        print(f"  {case.label}: {case.tuned}")
    print(f"\n({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

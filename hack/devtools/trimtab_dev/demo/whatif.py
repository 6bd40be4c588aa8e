"""The report's "same load, other autoscalers" section: each pool's arrivals as the
operator recorded them during the demo, replayed through the scaling simulator with the
pool's own spec beside KEDA, an HPA on CPU and the cheapest static fleet.

The demo's simulated nodes start pods in about a second; the replay assumes a
START_UP_SECONDS start-up, as on a cloud node pool, so the comparison shows what the
policy does where start-ups hurt. Step times are the mean the pool really measured.
"""

from __future__ import annotations

import statistics

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.sim.fleet import compare, contenders, model, traces
from trimtab_dev.demo.timeline import Timeline

START_UP_SECONDS = 15.0
DEFAULT_SLO_SECONDS = 10.0


def section(timeline: Timeline) -> list[str]:
    """Markdown lines: one table per pool that saw arrivals."""
    lines = [
        "## Same load, other autoscalers",
        "",
        f"Each pool's recorded arrivals replayed in `trimtab simulate scaling` with a "
        f"{START_UP_SECONDS:g} s replica start-up, its own spec, and the peers.",
    ]
    for pool, counts in sorted(timeline.recorded_arrivals.items()):
        spec = timeline.pool_specs.get(pool)
        if not counts or spec is None:
            continue
        lines += ["", *_pool_table(pool, AgentPoolSpec.model_validate(spec), counts, timeline)]
    return lines


def _pool_table(
    pool: str, spec: AgentPoolSpec, counts: dict[int, int], timeline: Timeline
) -> list[str]:
    measured = [s.service_seconds for s in timeline.pools if s.pool == pool and s.service_seconds]
    service = statistics.median(measured) if measured else 1.0
    fleet = model.PoolModel(
        slots=spec.worker.concurrency, startup_seconds=START_UP_SECONDS, service_mean=service
    )
    slo = spec.scaling.targets.p95_latency_seconds or DEFAULT_SLO_SECONDS
    trace = traces.from_counts(counts, name=pool)
    line_up = [contenders.trimtab("Trimtab", spec), *contenders.peers_of(spec, slots=fleet.slots)]
    _, scores, _ = compare.compare(fleet, trace, line_up, slo=slo, seed=1)
    rows = [
        f"| {s.name} | {s.within_slo:.1%} | {s.p95:.2f} | {s.replica_seconds:.0f} | "
        f"{s.cost_ratio:.2f}x |"
        for s in scores
    ]
    return [
        f"**{pool}**: {len(trace.arrivals)} steps, {service:.2f} s each, SLO {slo:g} s",
        "",
        "| autoscaler | within SLO | p95 s | replica-seconds | vs static |",
        "|---|---|---|---|---|",
        *rows,
    ]

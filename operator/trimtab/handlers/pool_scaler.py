"""One pool's autoscaler in the operator: ticked every second by trimtab.handlers.loops
over the load read for all pools at once. Each tick gathers what the pool looks like
(its Deployment, pods and status from the watch views, its load from Redis), has the
pure `plan` (trimtab.reconcile.agentpool.plan) decide, and executes the plan: the
replica count under its own field manager, the status patch, the Events, the placement,
the metrics and the pool's arrivals. It is the only writer of the pool's status.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any

from trimtab import metrics
from trimtab.api.v1alpha1 import API_VERSION, agentpool
from trimtab.handlers import pool_objects, state
from trimtab.queue import arrivals, load
from trimtab.reconcile.agentpool import autoscaler, cadence, desired, forecast, scaling
from trimtab.reconcile.agentpool import plan as plan_mod
from trimtab.reconcile.agentpool import status as status_mod

SCALER_MANAGER = "trimtab-scaler"


def _load(pool_load: load.PoolLoad | None) -> autoscaler.Load | None:
    """The policy's figures from the queue's; None (Redis unreadable) holds the size."""
    if pool_load is None:
        return None
    return autoscaler.Load(
        backlog=pool_load.backlog,
        in_flight=pool_load.in_flight,
        added_total=pool_load.added_total,
        completion_rate=pool_load.completion_rate,
        service_seconds=pool_load.service_seconds,
        latency_p95_seconds=pool_load.p95_seconds,
    )


class PoolScaler:
    """One pool's scaling state across ticks, and how each tick is applied."""

    def __init__(self, shared: state.Shared, ns: str, name: str) -> None:
        self.shared, self.ns, self.name = shared, ns, name
        self.autoscaler = autoscaler.Autoscaler()
        self.status_written_at = 0.0
        self.arrived = 0  # messages that reached the stream since the last tick
        self._history_for: forecast.Seasonal | None = None
        # Set while the pool is at rest (trimtab.reconcile.agentpool.cadence): its passes
        # are skipped until what it reads changes.
        self.rest: cadence.Resting | None = None

    async def tick(
        self,
        body: Mapping[str, Any],
        pool_load: load.PoolLoad | None,
        now: float,
        *,
        inputs: Hashable = None,
    ) -> None:
        """One scaling pass for this pool: gather, plan, apply. `inputs` fingerprints what
        the watch views hold for it, to tell a later second whether they changed."""
        key = (self.ns, self.name)
        deployment = self.shared.views.deployments.get(key)
        self.arrived, self.rest = 0, None
        spec, problems = pool_objects.parsed(self.shared, body)  # once per generation
        if deployment is None and not problems:
            return  # the Deployment is not there yet: reconcile_objects creates it
        # A refused pool's status is written whether or not it has a Deployment.
        deployment = deployment or state.DeploymentView(0, status_mod.Workload(0, 0))
        await self._load_history(spec, now)
        t0 = time.perf_counter()
        before = self.autoscaler.arrivals_total
        workload = deployment.workload
        reading = autoscaler.Reading(deployment.asked, workload.ready, _load(pool_load))
        seen = plan_mod.Observation(
            name=self.name,
            generation=int(body["metadata"]["generation"]),
            status=body.get("status") or {},
            workload=workload,
            observed=self.autoscaler.observe(reading, spec, now),
            pods=tuple(self.shared.views.pods.get(key, {}).values()),
            breaker=pool_load.breaker if pool_load is not None else None,
            problems=problems,
        )
        if pool_load is not None and before is not None:
            self.arrived = max(0, pool_load.added_total - before)
        memory = plan_mod.Memory(self.autoscaler.memory, self.status_written_at)
        planned = plan_mod.plan(
            seen, spec, memory, now, status_interval=self.shared.cfg.status_interval_seconds
        )
        await self._apply(body, planned)
        if cadence.at_rest(spec, seen, planned):
            self.rest = cadence.resting(key, inputs, now)
        self.autoscaler.memory = planned.memory.scaling
        self.status_written_at = planned.memory.status_written_at
        self._record(spec, seen, planned, pool_load, seconds=time.perf_counter() - t0)

    async def _load_history(self, spec: agentpool.AgentPoolSpec, now: float) -> None:
        """Fill a newly made seasonal memory from the arrivals recorded in Redis."""
        seasonal = self.autoscaler.seasonal_for(spec)
        if seasonal is None or seasonal is self._history_for:
            return
        since = now - forecast.seconds_needed(seasonal.cycle)
        counts = await arrivals.read(
            self.shared.redis, namespace=self.ns, pool=self.name, since=since, until=now
        )
        seasonal.load(counts, since=min(counts, default=now))
        self._history_for = seasonal

    async def _apply(self, body: Mapping[str, Any], planned: plan_mod.PoolPlan) -> None:
        """Replicas, then status, then the Events that report both, then placement."""
        kube = self.shared.kube
        if planned.replicas is not None:
            doc = desired.build_replicas_patch(self.ns, self.name, planned.replicas)
            await kube.apply(doc, field_manager=SCALER_MANAGER)
        if planned.status is not None:
            await kube.patch_status(
                API_VERSION, "AgentPool", self.name, planned.status, namespace=self.ns
            )
        for event in planned.events:
            await kube.post_event(
                dict(body), type_=event.type, reason=event.reason, message=event.message
            )
        if planned.fallback is not None:  # placement moves with the condition
            await pool_objects.ensure_objects(self.shared, body, fallback_active=planned.fallback)

    def _record(
        self,
        spec: agentpool.AgentPoolSpec,
        seen: plan_mod.Observation,
        planned: plan_mod.PoolPlan,
        pool_load: load.PoolLoad | None,
        *,
        seconds: float,
    ) -> None:
        decision: scaling.Decision = planned.decision
        current = seen.observed.current_replicas
        direction = metrics.ScaleDirection.NONE
        if decision.replicas != current:
            up = decision.replicas > current
            direction = metrics.ScaleDirection.UP if up else metrics.ScaleDirection.DOWN
        self.shared.metrics.scale_decided(
            self.ns, self.name, direction=direction, desired=decision.replicas, seconds=seconds
        )
        if pool_load is None:
            return
        self.shared.metrics.pool_observed(
            self.ns,
            self.name,
            backlog=pool_load.backlog,
            oldest_backlog_seconds=pool_load.oldest_backlog_seconds,
            p95_seconds=pool_load.p95_seconds,
            p95_target_seconds=spec.scaling.targets.p95_latency_seconds,
            predicted_replicas=decision.predicted_replicas,
            startup_seconds=seen.observed.startup_seconds,
        )

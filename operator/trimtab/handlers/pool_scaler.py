"""One pool's autoscaler in the operator: ticked every second by trimtab.handlers.loops
over the load read for all pools at once, it feeds the pool's `Autoscaler`
(trimtab.reconcile.agentpool.autoscaler), applies the replica count under its own field
manager, records events, metrics and the pool's arrivals, and is the only writer of
the pool's status.

The decision itself is pure and shared with `trimtab simulate scaling`; what is here is
reading (the Deployment and its ready count from the watch views, the load from
Redis, recorded history when a predictive floor is switched on) and applying.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from trimtab import metrics
from trimtab.api.v1alpha1 import agentpool
from trimtab.handlers import pool_objects, pool_status, state
from trimtab.kube import events
from trimtab.queue import arrivals, load
from trimtab.reconcile.agentpool import autoscaler, desired, fallback, forecast, scaling
from trimtab.reconcile.agentpool import status as status_mod

SCALER_MANAGER = "trimtab-scaler"


def _current_replicas(deployment: Mapping[str, Any] | None) -> int | None:
    if deployment is None:
        return None
    replicas = deployment.get("replicas")
    return int(replicas) if replicas is not None else 1  # the API's default


def _ready_replicas(deployment: Mapping[str, Any]) -> int:
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)


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
        self.writer = pool_status.StatusWriter(shared, ns, name)
        self.arrived = 0  # messages that reached the stream since the last tick
        self._spec: tuple[int, agentpool.AgentPoolSpec] | None = None
        self._history_for: forecast.Seasonal | None = None

    def spec(self, body: Mapping[str, Any]) -> agentpool.AgentPoolSpec:
        """The parsed spec, re-validated only when the generation changes (not every tick)."""
        generation = int(body["metadata"]["generation"])
        if self._spec is None or self._spec[0] != generation:
            self._spec = (generation, agentpool.AgentPoolSpec.model_validate(dict(body["spec"])))
        return self._spec[1]

    async def tick(
        self, body: Mapping[str, Any], pool_load: load.PoolLoad | None, now: float
    ) -> None:
        """One scaling pass for this pool: decide, apply, report."""
        key = (self.ns, self.name)
        deployment = self.shared.deployments.get(key)
        current = _current_replicas(deployment)
        self.arrived = 0
        if deployment is None or current is None:
            return  # the Deployment is not there yet: reconcile_objects creates it
        spec = self.spec(body)
        await self._load_history(spec, now)
        t0 = time.perf_counter()
        before = self.autoscaler.arrivals_total
        reading = autoscaler.Reading(current, _ready_replicas(deployment), _load(pool_load))
        decision = self.autoscaler.decide(reading, spec, now)
        if pool_load is not None and before is not None:
            self.arrived = max(0, pool_load.added_total - before)
        await self._apply(body, decision, current=current, t0=t0)
        observed = self.autoscaler.last_observed
        if pool_load is not None and observed is not None:
            self._publish(spec, pool_load, decision, observed)
        if observed is not None:
            await self._write_status(body, spec, decision, observed, pool_load, now=now)

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

    async def _apply(
        self, body: Mapping[str, Any], decision: scaling.Decision, *, current: int, t0: float
    ) -> None:
        direction = metrics.ScaleDirection.NONE
        if decision.replicas != current:
            doc = desired.build_replicas_patch(self.ns, self.name, decision.replicas)
            await self.shared.kube(self.shared.store.apply, doc, field_manager=SCALER_MANAGER)
            up = decision.replicas > current
            direction = metrics.ScaleDirection.UP if up else metrics.ScaleDirection.DOWN
            await self.shared.kube(
                events.post,
                self.shared.store,
                body,
                type_="Normal",
                reason=decision.reason.value,
                message=f"{current} -> {decision.replicas}: {decision.message}",
            )
        self.shared.metrics.scale_decided(
            self.ns,
            self.name,
            direction=direction,
            desired=decision.replicas,
            seconds=time.perf_counter() - t0,
        )

    def _publish(
        self,
        spec: agentpool.AgentPoolSpec,
        pool_load: load.PoolLoad,
        decision: scaling.Decision,
        observed: scaling.Observed,
    ) -> None:
        self.shared.metrics.pool_observed(
            self.ns,
            self.name,
            backlog=pool_load.backlog,
            oldest_backlog_seconds=pool_load.oldest_backlog_seconds,
            p95_seconds=pool_load.p95_seconds,
            p95_target_seconds=spec.scaling.targets.p95_latency_seconds,
            predicted_replicas=decision.predicted_replicas,
            startup_seconds=observed.startup_seconds,
        )

    async def _write_status(
        self,
        body: Mapping[str, Any],
        spec: agentpool.AgentPoolSpec,
        decision: scaling.Decision,
        observed: scaling.Observed,
        pool_load: load.PoolLoad | None,
        *,
        now: float,
    ) -> None:
        key = (self.ns, self.name)
        status = dict(body.get("status") or {})
        active = pool_objects.on_fallback(status)
        spot = fallback.decide(
            spec,
            active=active,
            switched_at=pool_objects.switched_at(status),
            pods=list(self.shared.pods.get(key, {}).values()),
            now=now,
        )
        breaker = pool_load.breaker if pool_load is not None else None
        decided = status_mod.decide(
            spec,
            name=self.name,
            deployment=self.shared.deployments.get(key),
            scaling=pool_status.scaling_view(decision, observed, breaker),
            fallback=spot.active,
            fallback_message=spot.message,
        )
        decided["reason"] = f"{decision.reason.value}: {decision.message}"[:1024]
        await self.writer.write(
            status,
            decided,
            generation=int(body["metadata"]["generation"]),
            scaled=decision.replicas != observed.current_replicas,
            now=now,
        )
        if spot.active != active:  # placement moves with the condition
            await pool_objects.ensure_objects(self.shared, body, fallback_active=spot.active)

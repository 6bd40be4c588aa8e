"""The pool autoscaler's status: the view of a decision status reports, and a writer
that patches on every change that matters and refreshes the load figures at most every
status interval, so a steady pool writes almost nothing."""

from __future__ import annotations

import datetime
from typing import Any

from trimtab.api.v1alpha1 import API_VERSION
from trimtab.handlers import state
from trimtab.reconcile import conditions
from trimtab.reconcile.agentpool import scaling
from trimtab.reconcile.agentpool import status as status_mod


def scaling_view(
    decision: scaling.Decision, observed: scaling.Observed, breaker: str | None
) -> status_mod.Scaling:
    return status_mod.Scaling(
        desired=decision.replicas,
        reason=decision.reason,
        message=decision.message,
        limited=decision.limited,
        metrics_ok=observed.metrics_ok,
        queue_depth=observed.backlog,
        in_flight=observed.in_flight,
        p95_seconds=observed.latency_p95_seconds,
        breaker=breaker,
        predicted_replicas=decision.predicted_replicas,
        startup_seconds=observed.startup_seconds,
    )


class StatusWriter:
    """Patches status when conditions or replica counts change, and refreshes the load
    figures at most every `interval` seconds, so a steady pool writes almost nothing."""

    def __init__(self, shared: state.Shared, namespace: str, name: str) -> None:
        self.shared, self.namespace, self.name = shared, namespace, name
        self.last_write = 0.0

    async def write(
        self,
        current: dict[str, Any],
        decided: dict[str, Any],
        *,
        generation: int,
        scaled: bool,
        now: float,
    ) -> None:
        wall = datetime.datetime.now(datetime.UTC)
        merged = conditions.merge(
            current.get("conditions") or [], decided["conditions"], generation=generation, now=wall
        )
        fields = {**decided["fields"], "conditions": merged, "observedGeneration": generation}
        if scaled:
            fields["lastScaleTime"] = conditions.format_time(wall)
            fields["lastScaleReason"] = decided["reason"]
        changed = {k: v for k, v in fields.items() if current.get(k) != v}
        slow = {
            "queueDepth",
            "inFlight",
            "p95LatencySeconds",
            "predictedReplicas",
            "startupSeconds",
        }
        urgent = set(changed) - slow
        if "conditions" in urgent and _kinds(current.get("conditions")) == _kinds(merged):
            urgent.discard("conditions")  # only messages moved ("idle 42 s"): not urgent
        if not changed or (
            not urgent and now - self.last_write < self.shared.cfg.status_interval_seconds
        ):
            return
        await self.shared.kube(
            self.shared.store.patch,
            API_VERSION,
            "AgentPool",
            self.name,
            {"status": changed},
            namespace=self.namespace,
            subresource="status",
        )
        self.last_write = now


def _kinds(conds: Any) -> list[tuple[str, str, str]]:
    return [(c.get("type"), c.get("status"), c.get("reason")) for c in conds or []]

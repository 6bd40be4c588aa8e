"""The controllers the simulator compares: Trimtab's own policy, KEDA (a ScaledObject
with the redis-streams scaler, driving an HPA), an HPA on CPU, and a static fleet.

Each is a callable from the model's `View` to the replicas it wants (None: no change
this tick), seeing only what that system would see:
- Trimtab: the operator's own `Autoscaler`, fed the figures the operator reads;
- KEDA: every `pollingInterval` it checks the trigger's activity to move between 0 and
  1 replica (and back to 0 after `cooldownPeriod` inactive); above zero the HPA syncs
  every 15 s on the triggers' External metrics (the stream's consumer-group lag, and
  optionally its pending entries), each with an AverageValue target, the largest wins;
- HPA on CPU: utilization of ready pods against a target; a worker's CPU tracks the
  share of its slots in use, averaged over the metrics-server's 15 s resolution;
- static: a fixed count, from the first second.
"""

from __future__ import annotations

import dataclasses
import datetime

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.reconcile.agentpool import autoscaler
from trimtab.sim.fleet import hpa, model

# Cron schedules and predictions read wall-clock time: simulated second 0 is this
# moment (a Monday, 00:00 UTC), unless the caller picks another.
DEFAULT_EPOCH = datetime.datetime(2026, 1, 5, tzinfo=datetime.UTC).timestamp()


class Trimtab:
    """Trimtab's policy, driven exactly as the operator drives it."""

    def __init__(self, spec: AgentPoolSpec, *, epoch: float = DEFAULT_EPOCH) -> None:
        self.spec, self.epoch = spec, epoch
        self.scaler = autoscaler.Autoscaler()
        self.reasons: list[tuple[float, int, str]] = []  # (t, replicas, message) on changes

    def __call__(self, view: model.View) -> int | None:
        load = autoscaler.Load(
            backlog=view.backlog,
            in_flight=view.in_flight,
            added_total=view.added_total,
            completion_rate=len(view.recent) / model.LATENCY_WINDOW_SECONDS,
            service_seconds=view.service_seconds,
            latency_p95_seconds=view.latency_p95,
        )
        reading = autoscaler.Reading(view.desired, view.ready, load)
        decision = self.scaler.decide(reading, self.spec, self.epoch + view.now)
        if decision.replicas != view.desired:
            self.reasons.append((view.now, decision.replicas, decision.message))
        return decision.replicas


@dataclasses.dataclass(frozen=True)
class KedaConfig:
    polling_seconds: float = 30.0
    cooldown_seconds: float = 300.0
    lag_target: float = 5.0  # lagCount
    pending_target: float | None = None  # pendingEntriesCount, as a second trigger
    activation: float = 0.0  # activationLagCount
    min_replicas: int = 0
    behavior: hpa.Behavior = dataclasses.field(default_factory=hpa.Behavior)


class Keda:
    def __init__(self, config: KedaConfig) -> None:
        self.c = config
        self.hpa = hpa.Hpa(config.behavior)
        self.next_poll = 0.0
        self.last_active: float | None = None

    def __call__(self, view: model.View) -> int | None:
        current = view.desired
        if view.now + 1e-9 >= self.next_poll:
            self.next_poll = view.now + self.c.polling_seconds
            wanted = self._poll(view, current)
            if wanted is not None:
                return wanted
        if current == 0 or not self.hpa.due(view.now):
            return None
        return self.hpa.step(self._raw(view, current), current, view.now)

    def _poll(self, view: model.View, current: int) -> int | None:
        """KEDA's own loop: activate from zero, deactivate after the cooldown."""
        active = view.backlog > self.c.activation
        if active:
            self.last_active = view.now
        floor = max(self.c.min_replicas, 1)
        if current == 0 and active:
            return floor
        idle = self.last_active is None or view.now - self.last_active >= self.c.cooldown_seconds
        if current > 0 and not active and idle and self.c.min_replicas == 0:
            return 0
        return None

    def _raw(self, view: model.View, current: int) -> int:
        tol = self.c.behavior.tolerance
        raw = hpa.external_average(view.backlog, self.c.lag_target, current, tol)
        if self.c.pending_target is not None:
            pending = hpa.external_average(view.in_flight, self.c.pending_target, current, tol)
            raw = max(raw, pending)
        return raw


@dataclasses.dataclass(frozen=True)
class CpuConfig:
    target: float = 0.7  # averageUtilization 70 %
    metric_window: float = 15.0  # metrics-server resolution
    behavior: hpa.Behavior = dataclasses.field(default_factory=hpa.Behavior)


class HpaCpu:
    def __init__(self, config: CpuConfig) -> None:
        self.c = config
        self.hpa = hpa.Hpa(config.behavior)
        self.samples: list[tuple[float, float]] = []  # (t, utilization of ready pods)
        self.started = False

    def __call__(self, view: model.View) -> int | None:
        util = view.ready_busy / (view.ready * view.slots) if view.ready else 0.0
        self.samples = [(t, u) for t, u in self.samples if t > view.now - self.c.metric_window]
        self.samples.append((view.now, util))
        if not self.started:  # the Deployment starts at the HPA's minimum
            self.started = True
            return max(view.desired, self.c.behavior.min_replicas)
        if not self.hpa.due(view.now) or view.ready == 0:
            return None
        mean = sum(u for _, u in self.samples) / len(self.samples)
        unready = max(0, view.desired - view.ready)
        tol = self.c.behavior.tolerance
        raw = hpa.utilization([mean] * view.ready, unready, self.c.target, view.desired, tol)
        return self.hpa.step(raw, view.desired, view.now)


class Static:
    def __init__(self, replicas: int) -> None:
        self.replicas = replicas

    def __call__(self, view: model.View) -> int | None:
        return self.replicas if view.desired != self.replicas else None

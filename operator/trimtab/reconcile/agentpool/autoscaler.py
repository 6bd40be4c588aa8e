"""One pool's autoscaler across ticks: it turns the raw figures read each tick into the
policy's `Observed` and keeps what the policy needs to remember between them.

The operator (trimtab.handlers.agentpool) and the scaling simulator (trimtab.sim.fleet)
both drive a pool through this class, so a simulated pool runs exactly the arrival
windows, start-up measurement, seasonal memory and decision the operator runs. No I/O:
the operator reads Redis and Kubernetes, the simulator its model, and both hand the
figures in as a `Reading`.
"""

from __future__ import annotations

import dataclasses

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec, Predictive
from trimtab.reconcile.agentpool import arrivals, forecast, scaling
from trimtab.reconcile.agentpool import startup as startup_mod


@dataclasses.dataclass(frozen=True)
class Reading:
    """The raw figures of one tick; None for the load when the queue could not be read."""

    current_replicas: int  # the Deployment's spec.replicas
    ready_replicas: int  # its status.readyReplicas
    load: Load | None


@dataclasses.dataclass(frozen=True)
class Load:
    backlog: int  # undelivered messages now
    in_flight: int  # delivered, unacknowledged messages now
    added_total: int  # messages ever added to the pool's stream
    completion_rate: float  # steps/s over the latency window
    service_seconds: float | None  # mean execution time over the window
    latency_p95_seconds: float | None  # end-to-end p95 over the window


@dataclasses.dataclass(frozen=True)
class Memory:
    """What a decision leaves for the next one: the policy's history and the open
    scale-ups whose start-up time is being measured."""

    history: scaling.History = dataclasses.field(default_factory=scaling.History.empty)
    startup: startup_mod.Startup = dataclasses.field(default_factory=startup_mod.Startup)


def decide(
    observed: scaling.Observed, spec: AgentPoolSpec, memory: Memory, now: float, *, ready: int
) -> tuple[scaling.Decision, Memory]:
    """The replicas to apply, and the memory to keep (pure); `ready` is the
    Deployment's ready replicas, which answer the open scale-ups."""
    decision = scaling.scale_decision(observed, spec, memory.history, now)
    startup = startup_mod.track(
        memory.startup,
        now=now,
        current=observed.current_replicas,
        desired=decision.replicas,
        ready=ready,
    )
    return decision, Memory(decision.history, startup)


class Autoscaler:
    """Arrival windows and seasonal memory (which fold each tick's counters into rates),
    and the decision's `Memory` between ticks."""

    def __init__(self) -> None:
        self.arrivals = arrivals.ArrivalWindow()
        self.memory = Memory()
        self.seasonal: forecast.Seasonal | None = None
        self.last_observed: scaling.Observed | None = None

    def cycle(self, spec: AgentPoolSpec) -> forecast.Cycle | None:
        """The predictive cycle the spec asks for, None when predictive scaling is Disabled."""
        return _cycle(spec.scaling.predictive)

    def seasonal_for(self, spec: AgentPoolSpec) -> forecast.Seasonal | None:
        """The seasonal memory for the spec's cycle, created afresh when the cycle changed
        (the caller then loads recorded history into it)."""
        cycle = self.cycle(spec)
        if cycle is None:
            self.seasonal = None
        elif self.seasonal is None or self.seasonal.cycle != cycle:
            self.seasonal = forecast.Seasonal(cycle)
        return self.seasonal

    def observe(self, reading: Reading, spec: AgentPoolSpec, now: float) -> scaling.Observed:
        """The policy's view of this tick; also feeds the windows and the seasonal memory."""
        current = reading.current_replicas
        load = reading.load
        if load is None:
            return scaling.Observed(
                0,
                0,
                arrivals.Arrivals.none(),
                0.0,
                None,
                None,
                current,
                startup_seconds=self.memory.startup.seconds(),
                metrics_ok=False,
            )
        before = self.arrivals_total
        seen = self.arrivals.observe(now, load.added_total)
        seasonal = self.seasonal_for(spec)
        if seasonal is not None and before is not None:
            seasonal.add(now, max(0, load.added_total - before))
        measured = self.memory.startup.seconds()
        lead = scaling.startup_seconds(spec, measured)
        predicted = seasonal.predicted_rate(now, now + lead) if seasonal is not None else None
        return scaling.Observed(
            backlog=load.backlog,
            in_flight=load.in_flight,
            arrivals=seen,
            completion_rate=load.completion_rate,
            service_seconds=load.service_seconds,
            latency_p95_seconds=load.latency_p95_seconds,
            current_replicas=current,
            startup_seconds=measured,
            predicted_rate=predicted,
        )

    @property
    def arrivals_total(self) -> int | None:
        return self.arrivals.last_total

    def decide(self, reading: Reading, spec: AgentPoolSpec, now: float) -> scaling.Decision:
        """Observe, decide, and remember: the decision to apply."""
        observed = self.observe(reading, spec, now)
        decision, self.memory = decide(
            observed, spec, self.memory, now, ready=reading.ready_replicas
        )
        self.last_observed = observed
        return decision


def _cycle(predictive: Predictive) -> forecast.Cycle | None:
    if predictive.mode == "Disabled":
        return None
    return forecast.Cycle(
        predictive.period_seconds, predictive.bucket_seconds, predictive.lookback_periods
    )

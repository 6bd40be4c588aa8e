"""The autoscaling policy: how many workers a pool needs now, and why, from one reading.

`scale_decision(observed, spec, history, now)` is pure; the operator calls it once a
tick per pool and the scaling simulator (trimtab.sim.fleet) calls the same function,
so what a user simulates is what the operator does. A decision is made in four steps:

1. the reactive need: the largest of the load, backlog and latency signals
   (trimtab.reconcile.agentpool.need), and at least one replica while there is work;
2. floors: an active schedule and the predictive floor may raise it, and `standby`
   replicas are added on top (trimtab.reconcile.agentpool.floors);
3. stabilization: up at once, down only once a lower count held for the down window
   (trimtab.reconcile.agentpool.stabilize); capacity asked for to drain a backlog is
   held for `backlogSeconds` at most (and never longer than the down window), and
   in-flight work is a floor at all times;
4. bounds: minReplicas to maxReplicas; zero after `idleSecondsToZero` without work,
   unless a floor or standby holds replicas. Without metrics the pool holds its size.

KEDA polls its scaler every 30 s and hands the number to an HPA that syncs every 15 s
and waits 300 s before scaling down; this loop runs every second, scales up at once
and down after the pool's own window (the simulator measures both side by side).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec, ScalingSpec
from trimtab.reasons import Reason
from trimtab.reconcile.agentpool import arrivals as arrivals_mod
from trimtab.reconcile.agentpool import explain, floors, need, ratecap, stabilize
from trimtab.reconcile.agentpool import startup as startup_mod

# With no service time ever measured, assume a step takes a second; the first
# completions replace the guess, and the last measurement outlives idle spells.
ASSUMED_SERVICE_SECONDS = 1.0


@dataclass(frozen=True)
class Observed:
    """One reading of a pool, taken once a tick (about a second). Counts are as of now;
    rates, means and percentiles cover the window their field names."""

    backlog: int  # messages now: in the stream, not yet delivered (consumer-group lag)
    in_flight: int  # messages now: delivered to a worker, not acknowledged (pending)
    arrivals: arrivals_mod.Arrivals  # short, smoothing and long windows (arrivals.py)
    completion_rate: float  # steps/s completed over the last need.LATENCY_WINDOW_SECONDS
    service_seconds: float | None  # mean execution time (s) of those steps; None: none
    latency_p95_seconds: float | None  # p95 (s) of enqueue-to-done of those steps
    current_replicas: int  # the Deployment's spec.replicas now
    startup_seconds: float | None = None  # measured ask-to-Ready (s) of recent scale-ups
    predicted_rate: float | None = None  # peak msgs/s history predicts within a start-up time
    metrics_ok: bool = True  # False: the queue could not be read

    @property
    def active(self) -> bool:
        return self.backlog > 0 or self.in_flight > 0 or self.arrivals.any


@dataclass(frozen=True)
class History:
    """What the policy remembers between calls, kept by the caller and passed back."""

    recommendations: stabilize.Recommendations  # (time, raw replicas) within the windows
    last_active: float | None  # last time there was backlog, in-flight work or arrivals
    last_scale_time: float | None
    last_scale_up: float | None = None
    service_seconds: float | None = None  # the last measured mean step time (s)
    drains: stabilize.Recommendations = ()  # (time, replicas) the backlog asked for
    burst_since: float | None = None  # when the arrivals' current burst was first seen

    @classmethod
    def empty(cls) -> History:
        return cls(recommendations=(), last_active=None, last_scale_time=None)


@dataclass(frozen=True)
class Decision:
    """Replicas to apply, why, and the history to keep."""

    replicas: int
    reason: Reason
    message: str
    limited: Reason | None  # AT_MAX_REPLICAS / AT_MIN_REPLICAS when the bounds clamped
    signals: Mapping[str, int]  # each signal's and floor's replica count
    history: History
    predicted_replicas: int | None = None  # the predictive floor, in Preview or Enabled mode


@dataclass(frozen=True)
class _Choice:
    """The raw recommendation, its explanation, and the idle bookkeeping behind it."""

    raw: int  # the sustained need: load, latency and floors (held by the down window)
    drain: int  # what the backlog asks for (held briefly: see _drains)
    floor: int  # what neither stabilization nor idling may go below
    why: str
    last_active: float
    to_zero: bool


def startup_seconds(spec: AgentPoolSpec, measured: float | None) -> float:
    """The start-up time the policy plans with: the spec's, else measured, else assumed."""
    if spec.scaling.startup_seconds is not None:
        return spec.scaling.startup_seconds
    return measured if measured is not None else startup_mod.ASSUMED_SECONDS


def scale_decision(
    observed: Observed, spec: AgentPoolSpec, history: History, now: float
) -> Decision:
    """The replicas the pool should run now, the reason, and the updated history."""
    if spec.scaling.mode != "Auto":
        return _manual(observed, spec, history=history, now=now)
    if not observed.metrics_ok:
        return _blind(observed, spec, history=history, now=now)
    return _auto(observed, spec, history=history, now=now)


def _manual(observed: Observed, spec: AgentPoolSpec, *, history: History, now: float) -> Decision:
    current = observed.current_replicas
    replicas = current if spec.replicas is None else spec.replicas
    source = "the current size" if spec.replicas is None else "spec.replicas"
    message = f"{spec.scaling.mode} mode: {replicas} replicas from {source}"
    # Auto-mode memory is stale once someone else sizes the pool: start afresh on return.
    scaled = now if replicas != current else history.last_scale_time
    return Decision(replicas, Reason.MANUAL_MODE, message, None, {}, History((), None, scaled))


def _blind(observed: Observed, spec: AgentPoolSpec, *, history: History, now: float) -> Decision:
    current = observed.current_replicas
    recs = stabilize.prune(history.recommendations, now, windows=spec.scaling.stabilization)
    # Time without metrics counts as active, so the idle clock restarts when they return.
    kept = dataclasses.replace(history, recommendations=recs, last_active=now)
    message = f"metrics unavailable: holding {current} replicas"
    return Decision(current, Reason.METRICS_UNAVAILABLE, message, None, {}, kept)


def _service(observed: Observed, history: History) -> tuple[float, float | None]:
    """The step time to plan with, and the measurement to remember."""
    measured = observed.service_seconds
    if measured is not None and 0 < measured < float("inf"):
        return measured, measured
    remembered = history.service_seconds
    return (remembered or ASSUMED_SERVICE_SECONDS), remembered


def _reading(
    observed: Observed, spec: AgentPoolSpec, *, history: History, now: float, service: float
) -> need.Reading:
    last_up, since = history.last_scale_up, history.burst_since
    return need.Reading(
        backlog=observed.backlog,
        in_flight=observed.in_flight,
        arrivals=observed.arrivals,
        latency_p95_seconds=observed.latency_p95_seconds,
        current_replicas=observed.current_replicas,
        service_seconds=service,
        startup_seconds=startup_seconds(spec, observed.startup_seconds),
        since_scale_up=None if last_up is None else now - last_up,
        burst_for=0.0 if since is None else now - since,
    )


def _auto(observed: Observed, spec: AgentPoolSpec, *, history: History, now: float) -> Decision:
    observed = dataclasses.replace(observed, arrivals=observed.arrivals.sane())
    scaling, current = spec.scaling, observed.current_replicas
    service, remembered = _service(observed, history)
    needs = need.needs(_reading(observed, spec, history=history, now=now, service=service), spec)
    found = floors.floors(spec, now=now, predicted_rate=observed.predicted_rate, service=service)
    choice = _choose(observed, scaling, needs, found, history=history, now=now)
    recs = stabilize.record(
        history.recommendations, now, current=current, raw=choice.raw, spec=scaling
    )
    drains = _drains(history.drains, now, choice.drain, scaling)
    # Work in flight is an immediate floor, up or down: it is running on those replicas.
    keep = needs[need.Signal.IN_FLIGHT].replicas
    windows = scaling.stabilization
    sustained = stabilize.stabilized(recs, now, current=current, windows=windows)
    held = max(sustained, keep, *(r for _, r in drains))
    replicas, limited = _clamp(0 if choice.to_zero else max(held, choice.floor), scaling)
    replicas, limited = _rate_capped(spec, service, replicas, limited)
    target = _clamp(max(choice.raw, choice.drain), scaling)[0]
    reason = explain.reason(current, replicas, target=target, active=observed.active)
    message = explain.message(
        reason,
        choice.why,
        up=target > current,
        current=current,
        replicas=replicas,
        last_active=choice.last_active,
        spec=scaling,
    )
    message += explain.limit_note(limited, scaling) + "".join(f"; {p}" for p in found.problems)
    kept = History(
        recs,
        choice.last_active,
        now if replicas != current else history.last_scale_time,
        now if replicas > current else history.last_scale_up,
        remembered,
        drains,
        _burst_since(observed, history, now),
    )
    predicted = found.predicted.replicas if found.predicted else None
    return Decision(replicas, reason, message, limited, _counts(needs, found), kept, predicted)


def _burst_since(observed: Observed, history: History, now: float) -> float | None:
    if need.burst_rate(observed.arrivals) is None:
        return None
    return now if history.burst_since is None else history.burst_since


def _drains(
    past: stabilize.Recommendations, now: float, drain: int, scaling: ScalingSpec
) -> stabilize.Recommendations:
    """What the backlog asked for within the drain hold: `backlogSeconds`, and never
    longer than the down window. Capacity for a backlog is kept while it drains, then
    released without waiting out the down window, which is for the sustained load
    (holding drain capacity a minute after the backlog is gone is most of what a burst
    costs)."""
    hold = min(scaling.targets.backlog_seconds, scaling.stabilization.scale_down_seconds)
    return (*((t, r) for t, r in past if now - hold <= t <= now), (now, drain))


def _choose(
    observed: Observed,
    scaling: ScalingSpec,
    needs: Mapping[need.Signal, need.Need],
    found: floors.Floors,
    *,
    history: History,
    now: float,
) -> _Choice:
    active = observed.active
    # With no memory of activity the idle clock starts now: a restart never zeroes a pool.
    last_active = now if active or history.last_active is None else history.last_active
    lowest = found.lowest()
    floor = lowest.replicas if lowest is not None else 0
    held_by_floor = found.standby > 0 or floor > 0
    to_zero = (
        not active
        and not held_by_floor
        and scaling.min_replicas == 0
        and now - last_active >= scaling.idle_seconds_to_zero
    )
    # Any work needs a worker; an idle pool keeps one until its idle period is over.
    keep_one = observed.current_replicas >= 1 and not to_zero and not held_by_floor
    work = 1 if active or keep_one else 0
    sustained = max((needs[need.Signal.LOAD], needs[need.Signal.LATENCY]), key=lambda n: n.replicas)
    backlog = needs[need.Signal.BACKLOG]
    top = backlog if backlog.replicas > sustained.replicas else sustained
    base, why = top.replicas, top.why
    if base < work:
        base = work
        why = "work is waiting" if active else f"{explain.idle_since(last_active)}, keeping 1"
    if floor > base:
        base, why = floor, lowest.why if lowest is not None else why
    if found.standby:
        why += f"; plus {found.standby} standby"
    raw = max(sustained.replicas, work, floor) + found.standby
    return _Choice(
        raw=raw,
        drain=backlog.replicas + found.standby if backlog.replicas else 0,
        floor=max(work, floor) + found.standby,
        why=why,
        last_active=last_active,
        to_zero=to_zero,
    )


def _counts(needs: Mapping[need.Signal, need.Need], found: floors.Floors) -> dict[str, int]:
    counts = {str(s): n.replicas for s, n in needs.items()}
    counts["standby"] = found.standby
    if found.schedule is not None:
        counts["schedule"] = found.schedule.replicas
    if found.predicted is not None:
        counts["predicted"] = found.predicted.replicas
    return counts


def _rate_capped(
    spec: AgentPoolSpec, service: float, replicas: int, limited: Reason | None
) -> tuple[int, Reason | None]:
    """No more replicas than the model's rate limit can keep busy (minReplicas stands)."""
    cap = ratecap.ceiling(spec, service)
    if cap is None or replicas <= max(cap, spec.scaling.min_replicas):
        return replicas, limited
    return max(cap, spec.scaling.min_replicas), Reason.RATE_LIMITED


def _clamp(replicas: int, scaling: ScalingSpec) -> tuple[int, Reason | None]:
    if replicas > scaling.max_replicas:
        return scaling.max_replicas, Reason.AT_MAX_REPLICAS
    if replicas < scaling.min_replicas:
        return scaling.min_replicas, Reason.AT_MIN_REPLICAS
    return replicas, None

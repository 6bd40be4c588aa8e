"""The autoscaling policy: how many workers a pool needs now, and why, from one reading.

Each signal turns what the queue shows into a replica count; the largest wins:

- backlog: drain the waiting messages within `backlogSeconds` while keeping up with
  arrivals, at `concurrency / service time` steps/s per replica (or `messagesPerReplica`);
- in-flight (Little's law): delivered work needs `concurrency x utilization` per replica;
- arrivals: `arrival rate x service time` steps are in progress at steady state;
- latency: while there is work and p95 is above its target, grow by the overshoot.

Like the HPA's `behavior`, raw recommendations are kept for a window: scaling up takes
the smallest recommendation of the up window and scaling down the largest of the down
window, so a lower count must persist the whole window before it is applied, and never
below what in-flight work needs. Work at zero replicas wakes the pool at once; with
`minReplicas` 0 a pool goes to zero after `idleSecondsToZero` without backlog, in-flight
work or arrivals. Without metrics the pool holds its size: it never scales to zero blind.

KEDA polls its scaler every 30 s and hands the number to an HPA that syncs every 15 s and
waits 300 s before scaling down; this loop runs every second, scales up at once and down
after the pool's own window.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from dataclasses import dataclass

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec, ScalingSpec, Stabilization
from trimtab.reasons import Reason
from trimtab.reconcile import conditions

# With no service time reported and none derivable, assume a step takes a second; the
# first completions replace the guess.
ASSUMED_SERVICE_SECONDS = 1.0
# p95 is measured over a window that lags a scale-up; without a pause, a one-second loop
# would multiply replicas by the same overshoot every tick until the window catches up.
LATENCY_SETTLE_SECONDS = 30.0
# Float ratios such as 8 / (10 x 0.8) land a hair above a whole number; don't round that up.
_EPSILON = 1e-9
# Far above any maxReplicas; keeps absurd readings (a near-zero rate) finite.
_SIGNAL_CAP = 1_000_000

Recommendations = tuple[tuple[float, int], ...]


@dataclass(frozen=True)
class Observed:
    """One reading of the pool's queue and workers."""

    backlog: int  # waiting: consumer-group lag, not yet delivered
    in_flight: int  # delivered, not acknowledged: pending entries
    arrival_rate: float  # messages/s over the last window
    completion_rate: float  # steps/s over the last window
    service_seconds: float | None  # mean step service time over the window
    p95_seconds: float | None
    current_replicas: int  # the Deployment's spec.replicas now
    metrics_ok: bool = True

    @property
    def active(self) -> bool:
        return self.backlog > 0 or self.in_flight > 0 or self.arrival_rate > 0


@dataclass(frozen=True)
class History:
    """What the policy remembers between calls, kept by the caller and passed back."""

    recommendations: Recommendations  # (time, raw replicas) within the longest window
    last_active: float | None  # last time there was backlog, in-flight work or arrivals
    last_scale_time: float | None

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
    signals: Mapping[str, int]  # each signal's replica count
    history: History


@dataclass(frozen=True)
class _Signal:
    name: str
    replicas: int
    why: str


@dataclass(frozen=True)
class _Need:
    """The raw recommendation, its explanation, and the idle bookkeeping behind it."""

    raw: int
    floor: int  # 1 while there is work, or while an idle pool keeps its last replica
    why: str
    last_active: float
    to_zero: bool


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
    recs = _prune(history.recommendations, now, windows=spec.scaling.stabilization)
    # Time without metrics counts as active, so the idle clock restarts when they return.
    kept = History(recs, now, history.last_scale_time)
    message = f"metrics unavailable: holding {current} replicas"
    return Decision(current, Reason.METRICS_UNAVAILABLE, message, None, {}, kept)


def _auto(observed: Observed, spec: AgentPoolSpec, *, history: History, now: float) -> Decision:
    scaling, current = spec.scaling, observed.current_replicas
    signals = _signals(observed, spec, history=history, now=now)
    need = _need(observed, spec, history=history, now=now, signals=signals)
    recs = _record(history.recommendations, now, current=current, raw=need.raw, spec=scaling)
    keep = signals["in_flight"].replicas
    held = _stabilize(recs, now, current=current, windows=scaling.stabilization, keep=keep)
    replicas, limited = _clamp(0 if need.to_zero else max(held, need.floor), scaling)
    target = _clamp(need.raw, scaling)[0]
    reason = _reason(current, replicas, target=target, active=observed.active)
    message = _message(reason, need, current=current, replicas=replicas, now=now, spec=scaling)
    message += _limit_note(limited, scaling)
    scaled = now if replicas != current else history.last_scale_time
    counts = {name: s.replicas for name, s in signals.items()}
    kept = History(recs, need.last_active, scaled)
    return Decision(replicas, reason, message, limited, counts, kept)


def _need(
    observed: Observed,
    spec: AgentPoolSpec,
    *,
    history: History,
    now: float,
    signals: Mapping[str, _Signal],
) -> _Need:
    scaling, active = spec.scaling, observed.active
    # With no memory of activity the idle clock starts now: a restart never zeroes a pool.
    last_active = now if active or history.last_active is None else history.last_active
    idle_for = now - last_active
    to_zero = not active and scaling.min_replicas == 0 and idle_for >= scaling.idle_seconds_to_zero
    # Any work needs a worker; an idle pool keeps one until its idle period is over.
    floor = 1 if active or (observed.current_replicas >= 1 and not to_zero) else 0
    top = max(signals.values(), key=lambda s: s.replicas)  # ties go to the first signal
    why = top.why
    if top.replicas < floor:
        why = "work is waiting" if active else f"{_idle_since(last_active)}, keeping 1 replica"
    return _Need(max(top.replicas, floor), floor, why, last_active, to_zero)


def _ceil(x: float) -> int:
    """Whole replicas for a fractional need; an unbounded need is capped, not a crash."""
    return 0 if math.isnan(x) else math.ceil(min(max(x, 0.0), _SIGNAL_CAP) - _EPSILON)


def _service_seconds(observed: Observed) -> float | None:
    """The reported mean service time, else Little's law: in flight / completions per second."""
    reported = observed.service_seconds
    if reported is not None and 0 < reported < math.inf:
        return reported
    if observed.completion_rate > 0 and observed.in_flight > 0:
        estimate = observed.in_flight / observed.completion_rate
        return estimate if 0 < estimate < math.inf else None
    return None


def _signals(
    observed: Observed, spec: AgentPoolSpec, *, history: History, now: float
) -> dict[str, _Signal]:
    """Backlog, in-flight, arrival and latency signals, in that order."""
    targets, concurrency = spec.scaling.targets, spec.worker.concurrency
    known = _service_seconds(observed)
    service = known or ASSUMED_SERVICE_SECONDS
    busy = concurrency * targets.in_flight_utilization
    in_flight = _ceil(observed.in_flight / busy)
    arrival = _ceil(observed.arrival_rate * service / busy) if known else 0
    per = f"replicas at {targets.in_flight_utilization:.0%} of concurrency {concurrency}"
    arriving = f"{observed.arrival_rate:.1f}/s arriving at {service:.2f} s per step"
    signals = (
        _backlog_signal(observed, spec, per_replica=concurrency / service),
        _Signal("in_flight", in_flight, f"{observed.in_flight} in flight need {in_flight} {per}"),
        _Signal("arrival", arrival, f"{arriving} need {arrival} {per}"),
        _latency_signal(observed, spec, history=history, now=now),
    )
    return {s.name: s for s in signals}


def _backlog_signal(observed: Observed, spec: AgentPoolSpec, *, per_replica: float) -> _Signal:
    targets, backlog = spec.scaling.targets, observed.backlog
    drain = _ceil((backlog / targets.backlog_seconds + observed.arrival_rate) / per_replica)
    per = targets.messages_per_replica
    count = 0 if per is None else _ceil(backlog / per)
    if count > drain:
        why = f"backlog {backlog} at {per} messages per replica needs {count} replicas"
        return _Signal("backlog", count, why)
    why = (
        f"backlog {backlog} needs {drain} replicas to drain in {targets.backlog_seconds:g} s "
        f"at {per_replica:.1f} steps/s per replica"
    )
    if observed.arrival_rate > 0:
        why += f" while {observed.arrival_rate:.1f}/s arrive"
    return _Signal("backlog", drain, why)


def _latency_signal(
    observed: Observed, spec: AgentPoolSpec, *, history: History, now: float
) -> _Signal:
    """Grow by p95's overshoot, at least by one; hold while a recent scale takes effect."""
    target, p95 = spec.scaling.targets.p95_latency_seconds, observed.p95_seconds
    # Latency of work that isn't there says nothing about what more replicas would do.
    if target is None or p95 is None or not p95 > target or not observed.active:
        return _Signal("latency", 0, "p95 latency within target")
    current, last = observed.current_replicas, history.last_scale_time
    above = f"p95 {p95:.2f} s above {target:g} s"
    if last is not None and now - last < LATENCY_SETTLE_SECONDS:
        return _Signal("latency", current, f"{above}, letting the last scale settle")
    grown = max(_ceil(current * p95 / target), current + 1)
    return _Signal("latency", grown, f"{above} needs {grown} replicas")


def _record(
    recs: Recommendations, now: float, *, current: int, raw: int, spec: ScalingSpec
) -> Recommendations:
    """Add this recommendation. With nothing remembered, the current count stands for the
    past before a scale-down (the HPA seeds it too), so a restart can't skip the window."""
    kept = _prune(recs, now, windows=spec.stabilization)
    # Only a history that never held anything is a restart; one the window merely emptied
    # (ticks slower than a short window) must not be re-seeded, or it would never go down.
    if not recs and raw < current and spec.stabilization.scale_down_seconds > 0:
        kept = ((now, current),)
    return (*kept, (now, raw))


def _prune(recs: Recommendations, now: float, *, windows: Stabilization) -> Recommendations:
    """Recommendations inside the longest window; later ones mean the clock went back."""
    oldest = now - max(windows.scale_up_seconds, windows.scale_down_seconds)
    return tuple((t, r) for t, r in recs if oldest <= t <= now)


def _stabilize(
    recs: Recommendations, now: float, *, current: int, windows: Stabilization, keep: int
) -> int:
    """HPA-style: up to the up window's minimum, down to the down window's maximum, and
    never down below `keep`, what in-flight work needs."""
    up = min(_window(recs, now, windows.scale_up_seconds))
    down = max(_window(recs, now, windows.scale_down_seconds))
    return up if up > current else min(max(down, keep), current)


def _window(recs: Recommendations, now: float, seconds: int) -> list[int]:
    """The newest recommendation (the last) and the others of the past `seconds`; a 0 s
    window is the newest alone, even beside an older one of the same instant."""
    *past, (_, newest) = recs
    return [r for t, r in past if seconds > 0 and t >= now - seconds] + [newest]


def _clamp(replicas: int, scaling: ScalingSpec) -> tuple[int, Reason | None]:
    if replicas > scaling.max_replicas:
        return scaling.max_replicas, Reason.AT_MAX_REPLICAS
    if replicas < scaling.min_replicas:
        return scaling.min_replicas, Reason.AT_MIN_REPLICAS
    return replicas, None


def _reason(current: int, replicas: int, *, target: int, active: bool) -> Reason:
    """`target` is the clamped raw recommendation: when it differs from an unchanged
    count, the window is what holds the pool."""
    if replicas == 0 and not active:
        return Reason.IDLE
    if replicas > current:
        woke = current == 0 and replicas == 1 and active
        return Reason.WOKE_FROM_ZERO if woke else Reason.SCALED_UP
    if replicas < current:
        return Reason.SCALED_DOWN
    return Reason.STABILIZING if target != current else Reason.STEADY


def _message(
    reason: Reason, need: _Need, *, current: int, replicas: int, now: float, spec: ScalingSpec
) -> str:
    up = need.raw > current
    window = spec.stabilization.scale_up_seconds if up else spec.stabilization.scale_down_seconds
    idle = _idle_since(need.last_active)
    return {
        Reason.IDLE: f"{idle}: scaled to zero" if current else f"{idle}: at zero",
        Reason.WOKE_FROM_ZERO: f"woke from zero: {need.why}",
        Reason.SCALED_UP: f"scaled up from {current} to {replicas}: {need.why}",
        Reason.SCALED_DOWN: f"scaled down from {current} to {replicas}: {need.why}",
        Reason.STABILIZING: f"holding {current} through the {window} s scale-"
        f"{'up' if up else 'down'} window: {need.why}",
    }.get(reason, f"steady at {replicas}: {need.why}")


def _idle_since(last_active: float) -> str:
    """A fixed time, not a running count: an idle pool's status must not change (and
    cost a write) every pass."""
    moment = datetime.datetime.fromtimestamp(last_active, datetime.UTC)
    return f"idle since {conditions.format_time(moment)}"


def _limit_note(limited: Reason | None, scaling: ScalingSpec) -> str:
    if limited is Reason.AT_MAX_REPLICAS:
        return f"; capped at maxReplicas {scaling.max_replicas}"
    if limited is Reason.AT_MIN_REPLICAS:
        return f"; raised to minReplicas {scaling.min_replicas}"
    return ""

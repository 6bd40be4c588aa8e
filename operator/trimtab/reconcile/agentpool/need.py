"""The reactive signals: how many replicas the load seen now needs, each with its why.

All of them speak in slots (one slot runs one step at a time; a replica has
`worker.concurrency` of them) and turn into replicas at the end:

- load: the offered load, arrivals/s x seconds per step (Erlangs), plus square-root
  staffing headroom (`targets.headroom` x sqrt(load)) for its Poisson noise. The rate is
  the larger of the smoothed rate and, when the short window holds a statistically
  significant burst, the burst's own rate, so a burst jumps the pool to its size at
  once instead of tick by tick; a significant rise is extrapolated over the start-up
  time, so the replicas asked for now fit the load they will meet when Ready, but
  never further ahead than twice as long as the rise has been seen (a step looks like
  a rise for its first seconds; a rise seen for 3 s is not assumed to go on for 60);
- backlog: the load plus the slots that drain the waiting steps within
  `targets.backlogSeconds` (or `messagesPerReplica` per replica);
- in-flight: the work already running; a floor, never a reason to grow;
- latency: while steps wait and the end-to-end p95 is above its target, grow by the
  overshoot, but only once the last scale-up has had its start-up time and a latency
  window to show, so the signal never compounds on itself or grows an empty queue.
"""

from __future__ import annotations

import dataclasses
import enum
import math

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec, ScalingTargets
from trimtab.reconcile.agentpool import arrivals as arrivals_mod
from trimtab.reconcile.agentpool import erlang

# Seconds of completions behind the service time and p95 the workers publish.
LATENCY_WINDOW_SECONDS = 10.0
# A burst: the short window's count beyond the long-run expectation by this many
# Poisson standard deviations, and by at least BURST_MIN_EXCESS messages.
BURST_Z = 4.0
BURST_MIN_EXCESS = 3
# A rise counts when the trend is this many standard deviations above zero. Both tests
# run every second on overlapping windows: at 4 sigma a steady load sees a false
# burst about once a day, where 3 sigma saw one every half hour.
TREND_Z = 4.0
# A rise is extrapolated to at most this multiple of the rate seen now.
PROJECTION_CAP = 4.0
# Sizing for a latency target: the wait may use what the target leaves after this many
# mean step times (the slow steps' share of the p95), and exceed it for WAIT_TAIL of steps.
WAIT_SERVICE_MULTIPLE = 2.0
WAIT_TAIL = 0.02
# One overshoot may at most double the pool; the next, once settled, may double it again.
LATENCY_MAX_GROWTH = 2.0
# Float ratios such as 8 / (10 x 0.8) land a hair above a whole number; don't round that up.
_EPSILON = 1e-9
# Far above any maxReplicas; keeps absurd readings (a near-zero rate) finite.
_CAP = 1_000_000


class Signal(enum.StrEnum):
    LOAD = "load"
    BACKLOG = "backlog"
    IN_FLIGHT = "in_flight"
    LATENCY = "latency"


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the signals read: the queue now, arrivals, and the pool's timings (s)."""

    backlog: int
    in_flight: int
    arrivals: arrivals_mod.Arrivals
    latency_p95_seconds: float | None
    current_replicas: int
    service_seconds: float  # mean execution time, measured or assumed
    startup_seconds: float  # ask to Ready, measured or assumed
    since_scale_up: float | None  # seconds since the last scale-up, None if never
    burst_for: float  # seconds the current burst has been seen (0: no burst)


@dataclasses.dataclass(frozen=True)
class Need:
    signal: Signal
    replicas: int
    why: str


def ceil(x: float) -> int:
    """Whole replicas for a fractional need; an unbounded need is capped, not a crash."""
    return 0 if math.isnan(x) else math.ceil(min(max(x, 0.0), _CAP) - _EPSILON)


def staffed_slots(rate: float, service: float, targets: ScalingTargets) -> float:
    """Slots for `rate` arrivals/s at `service` s per step. With a latency target, the
    fewest that keep P(wait > target - WAIT_SERVICE_MULTIPLE x service) within WAIT_TAIL
    (Erlang C); without one, square-root staffing with `targets.headroom`."""
    load = max(rate, 0.0) * service
    target = targets.p95_latency_seconds
    if target is None:
        return load + targets.headroom * math.sqrt(load)
    budget = max(0.0, target - WAIT_SERVICE_MULTIPLE * service)
    return erlang.slots_for_wait(load, service=service, budget=budget, tail=WAIT_TAIL)


def burst_rate(a: arrivals_mod.Arrivals) -> float | None:
    """The short window's rate when it is a burst, else None: beyond what both the
    long-run and the smoothed rate lead one to expect (after a step up, the long-run
    rate lags for minutes; the smoothed one catches up within its window)."""
    expected = max(a.long_rate, a.smooth_rate) * a.short_seconds
    threshold = expected + BURST_Z * math.sqrt(expected) + BURST_MIN_EXCESS
    return a.short_count / a.short_seconds if a.short_count >= threshold else None


def rising(a: arrivals_mod.Arrivals) -> float:
    """The trend in messages/s per second during a burst when significant, else 0: a
    steady load's noise must not be extrapolated over a start-up time."""
    significant = a.trend > TREND_Z * a.trend_sigma
    return a.trend if significant and burst_rate(a) is not None else 0.0


def needs(r: Reading, spec: AgentPoolSpec) -> dict[Signal, Need]:
    """Every signal's replicas and explanation."""
    load_slots, load_why = _load(r, spec)
    per = spec.worker.concurrency
    load = Need(Signal.LOAD, ceil(load_slots / per), load_why)
    found = (
        load,
        _backlog(r, spec, load_slots=load_slots),
        _in_flight(r, per),
        _latency(r, spec),
    )
    return {n.signal: n for n in found}


def _load(r: Reading, spec: AgentPoolSpec) -> tuple[float, str]:
    a, targets = r.arrivals, spec.scaling.targets
    burst = burst_rate(a)
    rate = max(a.smooth_rate, burst or 0.0)
    horizon = min(r.startup_seconds, 2 * (r.burst_for + a.short_seconds))
    ahead = min(rate + rising(a) * horizon, rate * PROJECTION_CAP)
    slots = staffed_slots(ahead, r.service_seconds, targets)
    seen = (
        f"burst of {a.short_count} arrivals in {a.short_seconds:g} s ({rate:.1f}/s against "
        f"{a.long_rate:.1f}/s long-run)"
        if burst is not None
        else f"{rate:.1f}/s arriving"
    )
    if ahead > rate:
        seen += f", rising to {ahead:.1f}/s within {horizon:.0f} s"
    sizing = (
        f"headroom {targets.headroom:g}"
        if targets.p95_latency_seconds is None
        else f"a {targets.p95_latency_seconds:g} s p95 target"
    )
    why = f"{seen} at {r.service_seconds:.2f} s per step need {slots:.1f} slots for {sizing}"
    return slots, why


def _backlog(r: Reading, spec: AgentPoolSpec, *, load_slots: float) -> Need:
    targets, per = spec.scaling.targets, spec.worker.concurrency
    drain = r.backlog * r.service_seconds / targets.backlog_seconds
    replicas = ceil((load_slots + drain) / per) if r.backlog else 0
    why = (
        f"backlog {r.backlog} needs {replicas} replicas to drain in {targets.backlog_seconds:g} s "
        f"beside the arriving load"
    )
    count = (
        0
        if targets.messages_per_replica is None
        else ceil(r.backlog / targets.messages_per_replica)
    )
    if count > replicas:
        why = f"backlog {r.backlog} at {targets.messages_per_replica} messages per replica"
        replicas = count
    return Need(Signal.BACKLOG, replicas, f"{why} needs {replicas} replicas" if count else why)


def _in_flight(r: Reading, per: int) -> Need:
    replicas = ceil(r.in_flight / per)
    return Need(
        Signal.IN_FLIGHT, replicas, f"{r.in_flight} steps in flight need {replicas} replicas"
    )


def _latency(r: Reading, spec: AgentPoolSpec) -> Need:
    target, p95 = spec.scaling.targets.p95_latency_seconds, r.latency_p95_seconds
    # Latency says nothing about more replicas unless steps are waiting for one.
    if target is None or p95 is None or not p95 > target or r.backlog == 0:
        return Need(Signal.LATENCY, 0, "end-to-end p95 within target")
    above = f"end-to-end p95 {p95:.2f} s above {target:g} s"
    settle = r.startup_seconds + LATENCY_WINDOW_SECONDS
    if r.since_scale_up is not None and r.since_scale_up < settle:
        return Need(Signal.LATENCY, 0, f"{above}, letting the last scale-up settle")
    current = r.current_replicas
    grown = max(ceil(current * min(p95 / target, LATENCY_MAX_GROWTH)), current + 1)
    return Need(Signal.LATENCY, grown, f"{above} needs {grown} replicas")

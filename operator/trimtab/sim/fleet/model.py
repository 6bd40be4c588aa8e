"""A discrete-event model of a pool: one FIFO stream, replicas with a fixed number of
slots that take a start-up time to serve, and a controller that sets the replica count
once a tick from what it can observe.

What it models, and why each part matters to an autoscaler:
- start-up: a replica asked for at t serves from t + startup (with jitter), and costs
  from t: capacity arrives late and is paid for while it starts;
- service times: lognormal with a mean and a coefficient of variation; optional
  saturation slows a step by `saturation x busy/slots` of its replica, as a model
  server slows when its batch fills;
- scale-down: starting replicas are cancelled first, then the newest ready ones (the
  ReplicaSet controller's order); a removed replica takes no new work, finishes what it
  runs (its termination grace), and costs until then;
- what a controller sees (`View`): queue length, in flight, arrivals so far, the last
  window's completions, each replica's busy time, readiness; never the future.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import heapq
import math
import random
from collections.abc import Callable

from trimtab.sim.fleet import traces

LATENCY_WINDOW_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class PoolModel:
    slots: int = 4  # steps one replica runs at once
    startup_seconds: float = 15.0  # ask to serving
    startup_jitter: float = 0.2  # +- this share of the start-up, uniform
    service_mean: float = 2.0  # seconds per step
    service_cv: float = 0.5  # coefficient of variation of the lognormal
    saturation: float = 0.0  # slowdown at a full replica: 0.5 = 50 % slower
    tick_seconds: float = 1.0
    initial_replicas: int = 0
    warmup_seconds: float = 0.0  # history the controller sees before scoring begins


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    GONE = "gone"


@dataclasses.dataclass
class Replica:
    ident: int
    asked: float
    ready_at: float
    state: State = State.STARTING
    busy: int = 0
    ended: float | None = None


@dataclasses.dataclass(frozen=True)
class Done:
    arrived: float
    started: float
    finished: float

    @property
    def latency(self) -> float:
        return self.finished - self.arrived


@dataclasses.dataclass(frozen=True)
class View:
    """What a controller can read at one tick."""

    now: float
    backlog: int
    in_flight: int
    added_total: int
    desired: int  # the replica count last set (a Deployment's spec.replicas)
    ready: int  # replicas serving
    recent: tuple[Done, ...]  # completions of the last LATENCY_WINDOW_SECONDS
    ready_busy: int  # slots in use on ready replicas (a CPU-like utilization signal)
    slots: int

    @property
    def service_seconds(self) -> float | None:
        if not self.recent:
            return None
        return sum(d.finished - d.started for d in self.recent) / len(self.recent)

    @property
    def latency_p95(self) -> float | None:
        if not self.recent:
            return None
        ordered = sorted(d.latency for d in self.recent)
        return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


Controller = Callable[[View], int | None]  # the replicas to run, None to leave them


# After the trace ends, work still queued gets this long to finish; what is left then
# counts as missing the SLO (a controller that never serves is not rewarded for it).
DRAIN_LIMIT_SECONDS = 900.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    done: tuple[Done, ...]
    unfinished: int  # arrivals never finished within DRAIN_LIMIT_SECONDS of the end
    replica_seconds: float
    replicas_over_time: tuple[tuple[float, int, int], ...]  # (t, desired, ready) per tick
    duration: float


class Simulation:
    """One run of a trace through the model under a controller."""

    def __init__(self, model: PoolModel, trace: traces.Trace, *, seed: int) -> None:
        self.model, self.trace = model, trace
        self.rng = random.Random(seed)
        sigma2 = math.log(1 + model.service_cv**2)
        self._mu, self._sigma = math.log(model.service_mean) - sigma2 / 2, math.sqrt(sigma2)
        self.queue: collections.deque[float] = collections.deque()
        self.replicas: dict[int, Replica] = {}  # every replica ever asked for, by id
        self.alive: dict[int, Replica] = {}  # those not gone
        self.free: dict[int, None] = {}  # ready replicas with a free slot, insertion-ordered
        self.events: list[tuple[float, int, int, int, float, float]] = []
        self.seq, self.added, self.desired = 0, 0, 0
        self.window: collections.deque[Done] = collections.deque()
        self.done: list[Done] = []
        self.timeline: list[tuple[float, int, int]] = []

    # --- events -----------------------------------------------------------------------
    _READY, _FINISH = 0, 1

    def _push(
        self, at: float, kind: int, ident: int, arrived: float = 0.0, started: float = 0.0
    ) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, ident, arrived, started))

    def run(self, controller: Controller) -> Outcome:
        self.scale(self.model.initial_replicas, now=0.0, immediate=True)
        arrivals, i, n = self.trace.arrivals, 0, len(self.trace.arrivals)
        tick, end = 0.0, self.trace.duration
        while tick <= end + DRAIN_LIMIT_SECONDS:
            next_arrival = arrivals[i] if i < n else math.inf
            next_event = self.events[0][0] if self.events else math.inf
            if tick <= min(next_arrival, next_event):
                if tick > end and i >= n and not self.queue and not self._busy():
                    break
                self._tick(tick, controller)
                tick += self.model.tick_seconds
            elif next_event <= next_arrival:
                self._event(heapq.heappop(self.events))
            else:
                self._arrive(next_arrival)
                i += 1
        # The run ends with the trace, or with its last step; capacity after it is no cost.
        last = max((d.finished for d in self.done), default=0.0)
        over = min(max(end, last), end + DRAIN_LIMIT_SECONDS)
        return self._outcome(over, unfinished=n - len(self.done))

    def _busy(self) -> bool:
        return any(r.busy for r in self.alive.values())

    def _tick(self, now: float, controller: Controller) -> None:
        while self.window and self.window[0].finished < now - LATENCY_WINDOW_SECONDS:
            self.window.popleft()
        wanted = controller(self.view(now))
        if wanted is not None:
            self.scale(max(0, wanted), now=now)
        self.timeline.append((now, self.desired, self._count(State.READY)))

    def _arrive(self, at: float) -> None:
        self.added += 1
        self.queue.append(at)
        self._dispatch(at)

    def _event(self, event: tuple[float, int, int, int, float, float]) -> None:
        at, _, kind, ident, arrived, started = event
        replica = self.replicas[ident]
        if kind == self._READY:
            if replica.state is State.STARTING and replica.ready_at == at:
                replica.state = State.READY
                self.free[ident] = None
                self._dispatch(at)
            return
        replica.busy -= 1
        finished = Done(arrived, started, at)
        self.done.append(finished)
        self.window.append(finished)
        if replica.state is State.DRAINING and replica.busy == 0:
            self._end(replica, at)
        elif replica.state is State.READY:
            self.free[ident] = None
            self._dispatch(at)

    def _dispatch(self, now: float) -> None:
        """Start waiting steps on free slots, oldest step first."""
        while self.queue and self.free:
            ident = next(iter(self.free))
            replica = self.replicas[ident]
            arrived = self.queue.popleft()
            replica.busy += 1
            if replica.busy >= self.model.slots:
                del self.free[ident]
            self._push(now + self._service(replica), self._FINISH, ident, arrived, now)

    def _service(self, replica: Replica) -> float:
        base = self.rng.lognormvariate(self._mu, self._sigma)
        return base * (1 + self.model.saturation * (replica.busy - 1) / self.model.slots)

    # --- scaling ----------------------------------------------------------------------
    def scale(self, wanted: int, *, now: float, immediate: bool = False) -> None:
        self.desired = wanted
        live = [r for r in self.alive.values() if r.state in (State.STARTING, State.READY)]
        for _ in range(wanted - len(live)):
            self._add(now, immediate=immediate)
        if wanted < len(live):
            # Unready first, then the newest: the ReplicaSet controller's deletion order.
            order = sorted(live, key=lambda r: (r.state is State.READY, r.ready_at))
            for replica in order[: len(live) - wanted]:
                self._remove(replica, now)

    def _add(self, now: float, *, immediate: bool) -> None:
        jitter = 1 + self.model.startup_jitter * (2 * self.rng.random() - 1)
        ready_at = now if immediate else now + self.model.startup_seconds * jitter
        ident = len(self.replicas)
        self.replicas[ident] = self.alive[ident] = Replica(ident, now, ready_at)
        self._push(ready_at, self._READY, ident)

    def _remove(self, replica: Replica, now: float) -> None:
        self.free.pop(replica.ident, None)
        if replica.state is State.READY and replica.busy:
            replica.state = State.DRAINING
        else:
            self._end(replica, now)

    def _end(self, replica: Replica, now: float) -> None:
        replica.state, replica.ended = State.GONE, now
        self.free.pop(replica.ident, None)
        del self.alive[replica.ident]

    def _count(self, state: State) -> int:
        return sum(1 for r in self.alive.values() if r.state is state)

    def view(self, now: float) -> View:
        ready = [r for r in self.alive.values() if r.state is State.READY]
        return View(
            now=now,
            backlog=len(self.queue),
            in_flight=sum(r.busy for r in self.alive.values()),
            added_total=self.added,
            desired=self.desired,
            ready=len(ready),
            recent=tuple(self.window),
            ready_busy=sum(r.busy for r in ready),
            slots=self.model.slots,
        )

    def _outcome(self, end: float, *, unfinished: int) -> Outcome:
        """What happened after the warm-up: its requests and its replica-seconds."""
        start = self.model.warmup_seconds
        cost = sum(
            max(0.0, min(end if r.ended is None else r.ended, end) - max(r.asked, start))
            for r in self.replicas.values()
        )
        scored = tuple(d for d in self.done if d.arrived >= start)
        timeline = tuple(x for x in self.timeline if x[0] >= start)
        return Outcome(scored, unfinished, cost, timeline, end - start)

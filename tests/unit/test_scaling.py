"""The autoscaling policy: signals, floors, stabilization windows, idle-to-zero, bounds."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.reasons import Reason
from trimtab.reconcile.agentpool import need, scaling, startup
from trimtab.reconcile.agentpool.arrivals import Arrivals
from trimtab.reconcile.agentpool.scaling import (
    Decision,
    History,
    Observed,
    scale_decision,
)

pytestmark = pytest.mark.unit

# 2026-12-01 10:00 UTC, a Tuesday: inside office hours for the schedule tests.
TEN_AM = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC).timestamp()


def pool(*, concurrency: int = 8, replicas: int | None = None, **scaling: Any) -> AgentPoolSpec:
    """A pool spec; `scaling` takes the wire's camelCase keys, with windows in `stabilization`."""
    return AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://vllm.models:8000/v1", "name": "m"},
            "worker": {"concurrency": concurrency},
            "replicas": replicas,
            "scaling": scaling,
        }
    )


def burst(*, count: int, long: float, smooth: float, trend: float = 0.0) -> Arrivals:
    """`count` arrivals in the last 5 s against the given long-run and smoothed rates."""
    return Arrivals(
        last_rate=count / 5,
        short_count=count,
        short_seconds=5.0,
        smooth_rate=smooth,
        trend=trend,
        trend_sigma=0.1,
        long_rate=long,
        covered=3600.0,
    )


def seen(
    *,
    backlog: int = 0,
    in_flight: int = 0,
    arrival: float | Arrivals = 0.0,
    service: float | None = None,
    p95: float | None = None,
    current: int = 1,
    ok: bool = True,
    predicted: float | None = None,
    startup: float | None = None,
) -> Observed:
    arrivals = arrival if isinstance(arrival, Arrivals) else Arrivals.steady(arrival)
    completion = 0.0 if service is None else in_flight / service
    return Observed(
        backlog=backlog,
        in_flight=in_flight,
        arrivals=arrivals,
        completion_rate=completion,
        service_seconds=service,
        latency_p95_seconds=p95,
        current_replicas=current,
        startup_seconds=startup,
        predicted_rate=predicted,
        metrics_ok=ok,
    )


def run(
    spec: AgentPoolSpec, readings: list[Observed], *, start: int = 0, current: int | None = None
) -> list[Decision]:
    """One decision a second, applying each to the next reading as the operator would."""
    history, out = History.empty(), []
    for t, reading in enumerate(readings, start=start):
        replicas = reading.current_replicas if current is None else current
        decision = scale_decision(
            dataclasses.replace(reading, current_replicas=replicas), spec, history, float(t)
        )
        history, current = decision.history, decision.replicas
        out.append(decision)
    return out


OFFICE_HOURS = {"name": "office", "start": "0 9 * * 1-5", "end": "0 17 * * 1-5", "minReplicas": 5}
PREDICT = {"periodSeconds": 600, "bucketSeconds": 10}

# --- one reading at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "observed", "replicas", "reason", "limited"),
    [
        pytest.param(
            pool(maxReplicas=10), seen(backlog=1000, service=2.0, current=2),
            10, Reason.SCALED_UP, Reason.AT_MAX_REPLICAS,
            id="spike-up-to-max",
        ),
        pytest.param(
            pool(maxReplicas=50), seen(backlog=1000, service=2.0, current=2),
            25, Reason.SCALED_UP, None,
            id="spike-drains-in-backlog-seconds",
        ),
        pytest.param(
            pool(), seen(backlog=1, current=0), 1, Reason.WOKE_FROM_ZERO, None,
            id="from-zero-one-message",
        ),
        pytest.param(
            pool(), seen(arrival=0.5, current=0), 1, Reason.WOKE_FROM_ZERO, None,
            id="from-zero-arrivals-only",
        ),
        pytest.param(
            pool(maxReplicas=10), seen(backlog=1000, current=0), 10, Reason.SCALED_UP,
            Reason.AT_MAX_REPLICAS,
            id="from-zero-big-backlog-is-a-scale-up",
        ),
        pytest.param(
            pool(), seen(arrival=10.0, service=2.0), 4, Reason.SCALED_UP, None,
            id="load-with-square-root-headroom",  # 20 + 1.5 sqrt(20) = 26.7 slots
        ),
        pytest.param(
            pool(targets={"headroom": 0}), seen(arrival=10.0, service=2.0), 3, Reason.SCALED_UP,
            None,
            id="no-headroom-runs-full",  # 20 slots
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 10}), seen(arrival=10.0, service=2.0), 3,
            Reason.SCALED_UP, None,
            id="loose-latency-target-sizes-by-erlang-c",  # 22 slots wait under 6 s
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 2.5}), seen(arrival=10.0, service=2.0), 4,
            Reason.SCALED_UP, None,
            id="tight-latency-target-keeps-spare-slots",  # no wait budget: 27 slots
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 1.0}),
            seen(backlog=5, in_flight=8, service=1.0, p95=3.0, current=2),
            4, Reason.SCALED_UP, None,
            id="latency-breach-grows-at-most-double",
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 1.0}),
            seen(backlog=1, in_flight=8, service=1.0, p95=1.01, current=4),
            5, Reason.SCALED_UP, None,
            id="latency-breach-adds-at-least-one",
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 1.0}, idleSecondsToZero=600),
            seen(in_flight=8, service=1.0, p95=5.0, current=1),
            1, Reason.STEADY, None,
            id="latency-without-a-queue-adds-nothing",
        ),
        pytest.param(
            pool(targets={"messagesPerReplica": 10}), seen(backlog=100, service=0.1, current=1),
            10, Reason.SCALED_UP, None,
            id="messages-per-replica",
        ),
        pytest.param(
            pool(), seen(backlog=50, current=3, ok=False), 3, Reason.METRICS_UNAVAILABLE,
            None,
            id="metrics-missing-holds",
        ),
        pytest.param(
            pool(minReplicas=0, idleSecondsToZero=0), seen(current=4, ok=False), 4,
            Reason.METRICS_UNAVAILABLE, None,
            id="metrics-missing-never-zero",
        ),
        pytest.param(
            pool(maxReplicas=10), seen(in_flight=200, current=10), 10, Reason.STABILIZING,
            Reason.AT_MAX_REPLICAS,
            id="in-flight-beyond-max-stays-at-max",
        ),
        pytest.param(
            pool(minReplicas=3), seen(current=1), 3, Reason.SCALED_UP,
            Reason.AT_MIN_REPLICAS,
            id="min-clamp",
        ),
        pytest.param(
            pool(minReplicas=3, idleSecondsToZero=0, stabilization={"scaleDownSeconds": 0}),
            seen(current=3), 3, Reason.STEADY, Reason.AT_MIN_REPLICAS,
            id="min-clamp-when-idle",
        ),
        pytest.param(
            pool(mode="Manual", replicas=4), seen(backlog=1000, current=2), 4,
            Reason.MANUAL_MODE, None,
            id="manual-follows-spec-replicas",
        ),
        pytest.param(
            pool(mode="External", replicas=0, minReplicas=2), seen(backlog=9, current=2), 0,
            Reason.MANUAL_MODE, None,
            id="external-follows-spec-replicas-unclamped",
        ),
        pytest.param(
            pool(mode="Manual"), seen(current=5), 5, Reason.MANUAL_MODE, None,
            id="manual-without-replicas-keeps-current",
        ),
        pytest.param(
            pool(stabilization={"scaleDownSeconds": 0}), seen(in_flight=40, current=10),
            5, Reason.SCALED_DOWN, None,
            id="in-flight-floor-on-scale-down",
        ),
        pytest.param(
            pool(), seen(in_flight=40, current=2), 5, Reason.SCALED_UP, None,
            id="in-flight-floor-raises-at-once",
        ),
        pytest.param(
            pool(), seen(arrival=burst(count=50, long=1.0, smooth=1.5), service=2.0), 4,
            Reason.SCALED_UP, None,
            id="burst-jumps-to-its-size",  # 10/s: 26.7 slots, not the smoothed 1.5/s
        ),
        pytest.param(
            pool(), seen(arrival=burst(count=14, long=1.0, smooth=2.5), service=2.0), 2,
            Reason.SCALED_UP, None,
            id="noise-is-no-burst",  # 14 in 5 s against 12.5 expected: sized for 2.5/s
        ),
        pytest.param(
            pool(), seen(arrival=burst(count=50, long=1.0, smooth=1.5, trend=2.0), service=2.0),
            9, Reason.SCALED_UP, None,
            id="rising-burst-sized-ahead",  # 10/s + 2/s^2 x 10 s = 30/s: 71.6 slots
        ),
        pytest.param(
            pool(standby=2), seen(arrival=10.0, service=2.0), 6, Reason.SCALED_UP, None,
            id="standby-on-top-of-the-need",
        ),
        pytest.param(
            pool(standby=2, idleSecondsToZero=0), seen(current=0), 2, Reason.SCALED_UP, None,
            id="standby-holds-an-idle-pool-warm",
        ),
        pytest.param(
            pool(schedules=[OFFICE_HOURS]), seen(arrival=1.0, service=2.0), 5, Reason.SCALED_UP,
            None,
            id="scheduled-floor-in-office-hours",
        ),
        pytest.param(
            pool(predictive={"mode": "Enabled", **PREDICT}),
            seen(arrival=1.0, service=2.0, predicted=20.0), 7, Reason.SCALED_UP, None,
            id="predictive-floor-raises",  # 40 + 1.5 sqrt(40) = 49.5 slots
        ),
        pytest.param(
            pool(predictive={"mode": "Enabled", **PREDICT}),
            seen(arrival=10.0, service=2.0, predicted=0.5), 4, Reason.SCALED_UP, None,
            id="predictive-floor-never-lowers",
        ),
        pytest.param(
            pool(predictive={"mode": "Preview", **PREDICT}),
            seen(arrival=1.0, service=2.0, predicted=20.0), 1, Reason.STEADY, None,
            id="predictive-preview-does-not-act",
        ),
    ],
)  # fmt: skip
def test_single_decision(
    spec: AgentPoolSpec,
    observed: Observed,
    replicas: int,
    reason: Reason,
    limited: Reason | None,
) -> None:
    decision = scale_decision(observed, spec, History.empty(), TEN_AM)
    assert (decision.replicas, decision.reason, decision.limited) == (replicas, reason, limited)


def test_message_names_the_numbers() -> None:
    decision = scale_decision(
        seen(backlog=1000, service=2.0, current=2), pool(maxReplicas=30), History.empty(), 0.0
    )
    assert decision.replicas == 25
    assert decision.message == (
        "scaled up from 2 to 25: backlog 1000 needs 25 replicas to drain in 10 s "
        "beside the arriving load"
    )
    assert decision.signals == {
        "load": 0, "backlog": 25, "in_flight": 0, "latency": 0, "standby": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "observed", "words"),
    [
        pytest.param(
            pool(), seen(arrival=burst(count=50, long=1.0, smooth=1.5), service=2.0),
            "burst of 50 arrivals in 5 s (10.0/s against 1.0/s long-run)",
            id="burst",
        ),
        pytest.param(
            pool(standby=2), seen(arrival=10.0, service=2.0), "; plus 2 standby", id="standby",
        ),
        pytest.param(
            pool(schedules=[OFFICE_HOURS]), seen(arrival=1.0, service=2.0),
            "schedule office holds 5 replicas", id="schedule",
        ),
        pytest.param(
            pool(predictive={"mode": "Enabled", **PREDICT}),
            seen(arrival=1.0, service=2.0, predicted=20.0),
            "the last cycles (600 s) predict 20.0/s, needing 7 replicas", id="predicted",
        ),
        pytest.param(
            pool(schedules=[{**OFFICE_HOURS, "timezone": "Mars/Olympus"}]), seen(),
            "schedule office ignored: unknown time zone 'Mars/Olympus'", id="bad-time-zone",
        ),
        pytest.param(
            pool(schedules=[{**OFFICE_HOURS, "start": "0 17-9 * * *"}]), seen(),
            "schedule office ignored: cron '0 17-9 * * *': hour '17-9'", id="backward-range",
        ),
        pytest.param(
            pool(maxReplicas=3), seen(backlog=1000), "; capped at maxReplicas 3", id="capped",
        ),
    ],
)  # fmt: skip
def test_message_says_what_decided(spec: AgentPoolSpec, observed: Observed, words: str) -> None:
    assert words in scale_decision(observed, spec, History.empty(), TEN_AM).message


def test_schedule_is_off_outside_its_hours() -> None:
    evening = TEN_AM + 8 * 3600  # 18:00
    decision = scale_decision(seen(), pool(schedules=[OFFICE_HOURS]), History.empty(), evening)
    assert decision.replicas == 1
    assert "schedule" not in decision.signals


def test_preview_reports_the_prediction() -> None:
    spec = pool(predictive={"mode": "Preview", **PREDICT})
    decision = scale_decision(seen(predicted=20.0, service=2.0), spec, History.empty(), 0.0)
    assert (decision.replicas, decision.predicted_replicas) == (1, 7)


# --- sequences: one reading a second ----------------------------------------------------


def test_drain_capacity_is_released_after_backlog_seconds() -> None:
    spec = pool(maxReplicas=10, stabilization={"scaleDownSeconds": 60})
    spike = seen(backlog=1000, service=2.0, current=2)
    drained = seen(in_flight=8, service=2.0)
    decisions = run(spec, [spike] + [drained] * 12, current=2)
    assert [d.replicas for d in decisions[:11]] == [10] * 11
    # The sustained need is the two replicas the pool had; the backlog's ten are gone.
    assert (decisions[11].replicas, decisions[11].reason) == (2, Reason.SCALED_DOWN)


def test_sustained_need_scales_down_only_after_the_down_window() -> None:
    spec = pool(maxReplicas=20, stabilization={"scaleDownSeconds": 60})
    busy, quiet = seen(arrival=30.0, service=2.0), seen(arrival=2.0, service=2.0)
    decisions = run(spec, [busy] + [quiet] * 61, current=1)
    assert decisions[0].replicas == 9  # 60 + 1.5 sqrt(60) = 71.6 slots
    assert all(d.replicas == 9 for d in decisions[1:61])
    assert all(d.reason is Reason.STABILIZING for d in decisions[1:61])
    assert (decisions[61].replicas, decisions[61].reason) == (1, Reason.SCALED_DOWN)


def test_scale_up_window_delays_a_higher_count() -> None:
    spec = pool(maxReplicas=20, stabilization={"scaleUpSeconds": 10})
    low, high = seen(arrival=2.0, service=2.0), seen(arrival=40.0, service=2.0)
    decisions = run(spec, [low] + [high] * 11, current=1)
    assert [d.replicas for d in decisions[:11]] == [1] * 11
    assert decisions[5].reason is Reason.STABILIZING
    assert decisions[11].replicas == 12


def test_idle_goes_to_zero_only_after_idle_seconds() -> None:
    spec = pool(minReplicas=0, idleSecondsToZero=300, stabilization={"scaleDownSeconds": 60})
    decisions = run(spec, [seen(in_flight=16)] + [seen()] * 300, current=3)
    replicas = [d.replicas for d in decisions]
    assert 0 not in replicas[:300]
    assert replicas[299] == 1  # scaled down toward one under the normal window
    assert (decisions[300].replicas, decisions[300].reason) == (0, Reason.IDLE)


@pytest.mark.parametrize("min_replicas", [pytest.param(1, id="min-1"), pytest.param(2, id="min-2")])
def test_idle_never_goes_to_zero_with_a_minimum(min_replicas: int) -> None:
    spec = pool(minReplicas=min_replicas, idleSecondsToZero=0)
    decisions = run(spec, [seen()] * 100, current=3)
    assert min(d.replicas for d in decisions) == min_replicas


def test_standby_keeps_an_idle_pool_from_zero() -> None:
    spec = pool(standby=1, idleSecondsToZero=0, stabilization={"scaleDownSeconds": 0})
    decisions = run(spec, [seen()] * 20, current=3)
    assert [d.replicas for d in decisions[-5:]] == [1] * 5


def test_zero_stays_zero_while_idle_and_wakes_on_a_message() -> None:
    spec = pool(minReplicas=0, idleSecondsToZero=0, stabilization={"scaleUpSeconds": 30})
    decisions = run(spec, [seen()] * 5 + [seen(backlog=1)], current=0)
    assert all((d.replicas, d.reason) == (0, Reason.IDLE) for d in decisions[:5])
    assert (decisions[5].replicas, decisions[5].reason) == (1, Reason.WOKE_FROM_ZERO)


def test_smoothed_noise_does_not_oscillate() -> None:
    """Per-second arrivals that jump between 4 and 16 average 10/s in the smoothing window:
    the pool holds one size instead of following each second."""
    spec = pool(maxReplicas=20, stabilization={"scaleDownSeconds": 60})
    readings = [
        seen(arrival=dataclasses.replace(Arrivals.steady(10.0), last_rate=r), service=2.0)
        for r in (4.0, 16.0) * 30
    ]
    assert {d.replicas for d in run(spec, readings, current=1)} == {4}


def test_latency_waits_for_a_scale_up_to_settle() -> None:
    """After growing for latency, the signal waits a start-up time plus its own window
    (15 s assumed + 10 s) before it may grow again: a p95 measured before the new
    replicas served says nothing about them."""
    spec = pool(maxReplicas=100, targets={"p95LatencySeconds": 1.0})
    breach = seen(backlog=1, in_flight=4, service=1.0, p95=2.0)
    replicas = [d.replicas for d in run(spec, [breach] * 27, current=2)]
    assert replicas[0] == 4
    assert set(replicas[1:25]) == {4}
    assert replicas[25] == 8


def test_measured_start_up_sets_the_settle_time() -> None:
    spec = pool(maxReplicas=100, targets={"p95LatencySeconds": 1.0})
    breach = seen(backlog=1, in_flight=4, service=1.0, p95=2.0, startup=2.0)
    replicas = [d.replicas for d in run(spec, [breach] * 13, current=2)]
    assert replicas[11:] == [4, 8]  # 2 s start-up + 10 s window


def test_metrics_outage_restarts_the_idle_clock() -> None:
    spec = pool(minReplicas=0, idleSecondsToZero=10, stabilization={"scaleDownSeconds": 0})
    readings = [seen()] * 5 + [seen(ok=False)] * 20 + [seen()] * 11
    replicas = [d.replicas for d in run(spec, readings, current=1)]
    assert replicas[:34] == [1] * 34
    assert replicas[35] == 0


def test_a_restart_does_not_skip_the_down_window() -> None:
    spec = pool(stabilization={"scaleDownSeconds": 10})
    decisions = run(spec, [seen(in_flight=4)] * 12, current=5)  # History.empty() at first
    assert [d.replicas for d in decisions] == [5] * 11 + [1]


def test_history_keeps_only_the_longest_window() -> None:
    spec = pool(stabilization={"scaleUpSeconds": 5, "scaleDownSeconds": 20})
    decisions = run(spec, [seen(in_flight=8)] * 100, current=1)
    assert len(decisions[-1].history.recommendations) == 21
    assert len(decisions[-1].history.drains) == 11  # backlogSeconds 10, and now


def test_manual_mode_forgets_auto_history() -> None:
    auto = run(pool(), [seen(backlog=500)] * 3, current=1)[-1].history
    manual = scale_decision(seen(current=4), pool(mode="Manual", replicas=4), auto, 3.0)
    assert manual.history.recommendations == ()


def test_service_time_is_remembered_across_an_idle_spell() -> None:
    spec = pool(maxReplicas=100, idleSecondsToZero=600)
    busy = seen(backlog=100, in_flight=8, service=4.0)
    woken = seen(backlog=100)  # no completions in the window: no service time now
    last = run(spec, [busy, seen(), woken], current=1)[-1]
    assert last.replicas == 5  # 100 x 4 s / 10 s = 40 slots; forgotten, 10 slots: 2


def test_a_window_shorter_than_the_tick_still_scales_down() -> None:
    """Ticks 1.2 s apart with a 1 s down window: the emptied window is not a restart."""
    spec = pool(
        minReplicas=1,
        maxReplicas=10,
        targets={"messagesPerReplica": 100, "backlogSeconds": 1},
        stabilization={"scaleDownSeconds": 1},
    )
    history, current, now = History.empty(), 1, 1000.0
    for backlog in (300, 300, 0, 0, 0, 0):
        decision = scale_decision(seen(backlog=backlog, current=current), spec, history, now)
        history, current, now = decision.history, decision.replicas, now + 1.2
    assert current == 1


# --- properties -------------------------------------------------------------------------

NOW = 10_000.0


@st.composite
def specs(draw: st.DrawFn) -> AgentPoolSpec:
    max_replicas = draw(st.integers(1, 1000))
    return pool(
        concurrency=draw(st.integers(1, 1024)),
        minReplicas=draw(st.integers(0, max_replicas)),
        maxReplicas=max_replicas,
        idleSecondsToZero=draw(st.integers(0, 3600)),
        standby=draw(st.integers(0, 100)),
        targets={
            "backlogSeconds": draw(st.floats(0.1, 3600)),
            "messagesPerReplica": draw(st.none() | st.integers(1, 100_000)),
            "headroom": draw(st.floats(0, 10)),
            "p95LatencySeconds": draw(st.none() | st.floats(0.01, 3600)),
        },
        stabilization={
            "scaleUpSeconds": draw(st.integers(0, 600)),
            "scaleDownSeconds": draw(st.integers(0, 600)),
        },
        predictive={"mode": draw(st.sampled_from(["Disabled", "Preview", "Enabled"]))},
    )


rates = st.floats(0, 10_000, allow_nan=False)
counts = st.integers(0, 1_000_000)
times = st.none() | st.floats(NOW - 4000, NOW)
arrivals = st.builds(
    Arrivals,
    last_rate=rates,
    short_count=counts,
    short_seconds=st.floats(1, 5),
    smooth_rate=rates,
    trend=st.floats(-1000, 1000),
    trend_sigma=st.floats(0, 100),
    long_rate=rates,
    covered=st.floats(0, 1e6),
)
observations = st.builds(
    Observed,
    backlog=st.integers(0, 1_000_000),
    in_flight=st.integers(0, 100_000),
    arrivals=arrivals,
    completion_rate=rates,
    service_seconds=st.none() | st.floats(0, 600),
    latency_p95_seconds=st.none() | st.floats(0, 3600),
    current_replicas=st.integers(0, 1000),
    startup_seconds=st.none() | st.floats(0.1, 3600),
    predicted_rate=st.none() | rates,
    metrics_ok=st.booleans(),
)
recommendations = st.lists(
    st.tuples(st.floats(NOW - 700, NOW), st.integers(0, 5000)), max_size=30
).map(lambda recs: tuple(sorted(recs)))
histories = st.builds(
    History,
    recommendations=recommendations,
    last_active=times,
    last_scale_time=times,
    last_scale_up=times,
    service_seconds=st.none() | st.floats(0.001, 600),
    drains=recommendations,
    burst_since=times,
)


@given(observations, specs(), histories)
def test_result_stays_within_bounds(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    decision = scale_decision(dataclasses.replace(observed, metrics_ok=True), spec, history, NOW)
    assert spec.scaling.min_replicas <= decision.replicas <= spec.scaling.max_replicas
    if decision.replicas == 0:
        assert decision.reason is Reason.IDLE


@given(observations, specs(), histories)
def test_never_below_what_in_flight_work_needs(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    decision = scale_decision(dataclasses.replace(observed, metrics_ok=True), spec, history, NOW)
    running = need.ceil(observed.in_flight / spec.worker.concurrency)
    assert decision.replicas >= min(running, spec.scaling.max_replicas)


@given(observations, specs(), histories)
def test_floors_only_raise(observed: Observed, spec: AgentPoolSpec, history: History) -> None:
    """The same reading with a prediction switched on never decides fewer replicas."""
    ok = dataclasses.replace(observed, metrics_ok=True)
    scaling = spec.scaling
    off = spec.model_copy(
        update={"scaling": scaling.model_copy(update={"predictive": scaling.predictive.model_copy(
            update={"mode": "Disabled"})})}
    )  # fmt: skip
    on = spec.model_copy(
        update={"scaling": scaling.model_copy(update={"predictive": scaling.predictive.model_copy(
            update={"mode": "Enabled"})})}
    )  # fmt: skip
    assert (
        scale_decision(ok, on, history, NOW).replicas
        >= scale_decision(ok, off, history, NOW).replicas
    )


@given(
    st.builds(
        Observed,
        backlog=st.integers(0, 10**12),
        in_flight=st.integers(0, 10**12),
        arrivals=st.builds(
            Arrivals,
            last_rate=st.floats(),
            short_count=st.integers(0, 10**12),
            short_seconds=st.floats(1, 5),
            smooth_rate=st.floats(),
            trend=st.floats(),
            trend_sigma=st.floats(),
            long_rate=st.floats(),
            covered=st.floats(),
        ),
        completion_rate=st.floats(),
        service_seconds=st.none() | st.floats(),
        latency_p95_seconds=st.none() | st.floats(),
        current_replicas=st.integers(0, 1000),
        startup_seconds=st.none() | st.floats(0.1, 3600),
        predicted_rate=st.none() | st.floats(),
    ),
    specs(),
    histories,
)
def test_absurd_readings_still_decide_within_bounds(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    decision = scale_decision(observed, spec, history, NOW)
    assert spec.scaling.min_replicas <= decision.replicas <= spec.scaling.max_replicas


@given(observations, specs(), histories)
def test_blind_never_changes_replicas(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    decision = scale_decision(dataclasses.replace(observed, metrics_ok=False), spec, history, NOW)
    assert decision.replicas == observed.current_replicas
    assert decision.reason is Reason.METRICS_UNAVAILABLE


@given(observations, specs(), histories)
def test_decisions_are_deterministic(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    assert scale_decision(observed, spec, history, NOW) == scale_decision(
        observed, spec, history, NOW
    )


def test_a_set_start_up_time_wins_over_the_measured_one() -> None:
    measured = 20.0
    assert scaling.startup_seconds(pool(startupSeconds=90), measured) == 90
    assert scaling.startup_seconds(pool(), measured) == measured
    assert scaling.startup_seconds(pool(), None) == startup.ASSUMED_SECONDS

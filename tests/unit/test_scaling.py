"""The autoscaling policy: signals, stabilization windows, idle-to-zero and bounds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.reasons import Reason
from trimtab.reconcile.agentpool.scaling import (
    Decision,
    History,
    Observed,
    scale_decision,
)


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


def seen(
    *,
    backlog: int = 0,
    in_flight: int = 0,
    arrival: float = 0.0,
    completion: float = 0.0,
    service: float | None = None,
    p95: float | None = None,
    current: int = 1,
    ok: bool = True,
) -> Observed:
    return Observed(backlog, in_flight, arrival, completion, service, p95, current, ok)


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


# --- one reading at a time --------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "observed", "replicas", "reason", "limited"),
    [
        pytest.param(
            pool(maxReplicas=10),
            seen(backlog=1000, service=2.0, current=2),
            10, Reason.SCALED_UP, Reason.AT_MAX_REPLICAS,
            id="spike-up-to-max",
        ),
        pytest.param(
            pool(maxReplicas=50),
            seen(backlog=1000, service=2.0, current=2),
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
            pool(targets={"p95LatencySeconds": 1.0}),
            seen(in_flight=8, service=1.0, p95=3.0, current=2),
            6, Reason.SCALED_UP, None,
            id="latency-breach-grows-by-overshoot",
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 1.0}),
            seen(in_flight=8, service=1.0, p95=1.01, current=4),
            5, Reason.SCALED_UP, None,
            id="latency-breach-adds-at-least-one",
        ),
        pytest.param(
            pool(targets={"p95LatencySeconds": 1.0}, idleSecondsToZero=600),
            seen(p95=5.0, current=1),
            1, Reason.STEADY, None,
            id="stale-latency-without-work-adds-nothing",
        ),
        pytest.param(
            pool(), seen(in_flight=12, service=1.0, current=2), 2, Reason.STEADY, None,
            id="steady",
        ),
        pytest.param(
            pool(), seen(arrival=10.0, service=2.0, current=1), 4, Reason.SCALED_UP, None,
            id="arrivals-times-service-time",
        ),
        pytest.param(
            pool(targets={"messagesPerReplica": 10}),
            seen(backlog=100, service=0.1, current=1),
            10, Reason.SCALED_UP, None,
            id="messages-per-replica",
        ),
        pytest.param(
            pool(), seen(backlog=100, in_flight=16, completion=4.0, current=1), 5,
            Reason.SCALED_UP, None,
            id="service-time-from-littles-law",
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
            pool(maxReplicas=10), seen(in_flight=200, current=10), 10, Reason.STEADY,
            Reason.AT_MAX_REPLICAS,
            id="max-clamp",
        ),
        pytest.param(
            pool(minReplicas=3), seen(current=1), 3, Reason.SCALED_UP,
            Reason.AT_MIN_REPLICAS,
            id="min-clamp",
        ),
        pytest.param(
            pool(minReplicas=3, idleSecondsToZero=0, stabilization={"scaleDownSeconds": 0}),
            seen(current=3), 3, Reason.STEADY,
            Reason.AT_MIN_REPLICAS,
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
            pool(stabilization={"scaleDownSeconds": 0}),
            seen(in_flight=40, current=10),
            7, Reason.SCALED_DOWN, None,
            id="in-flight-floor-on-scale-down",
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
    decision = scale_decision(observed, spec, History.empty(), 100.0)
    assert (decision.replicas, decision.reason, decision.limited) == (replicas, reason, limited)


def test_message_names_the_numbers() -> None:
    decision = scale_decision(
        seen(backlog=1000, service=8 / 11.2, current=2), pool(maxReplicas=20), History.empty(), 0.0
    )
    assert decision.replicas == 9
    assert decision.message == (
        "scaled up from 2 to 9: backlog 1000 needs 9 replicas to drain in 10 s "
        "at 11.2 steps/s per replica"
    )
    assert decision.signals == {"backlog": 9, "in_flight": 0, "arrival": 0, "latency": 0}


def test_clamped_message_says_which_bound() -> None:
    decision = scale_decision(
        seen(backlog=1000, current=1), pool(maxReplicas=3), History.empty(), 0.0
    )
    assert decision.message.endswith("; capped at maxReplicas 3")


# --- sequences: one reading a second ----------------------------------------------------


def test_drain_scales_down_only_after_the_down_window() -> None:
    spec = pool(maxReplicas=10, stabilization={"scaleDownSeconds": 60})
    spike = seen(backlog=1000, service=2.0, current=2)
    drained = seen(in_flight=8, service=2.0)  # needs 2
    decisions = run(spec, [spike] + [drained] * 61, current=2)
    assert decisions[0].replicas == 10
    assert all(d.replicas == 10 for d in decisions[1:61])
    assert all(d.reason is Reason.STABILIZING for d in decisions[1:61])
    assert (decisions[61].replicas, decisions[61].reason) == (2, Reason.SCALED_DOWN)


def test_scale_up_window_delays_a_higher_count() -> None:
    spec = pool(stabilization={"scaleUpSeconds": 10})
    decisions = run(spec, [seen(in_flight=6)] + [seen(in_flight=60)] * 11, current=1)
    assert [d.replicas for d in decisions[:11]] == [1] * 11
    assert decisions[5].reason is Reason.STABILIZING
    assert decisions[11].replicas == 10


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


def test_zero_stays_zero_while_idle_and_wakes_on_a_message() -> None:
    spec = pool(minReplicas=0, idleSecondsToZero=0, stabilization={"scaleUpSeconds": 30})
    decisions = run(spec, [seen()] * 5 + [seen(backlog=1)], current=0)
    assert all((d.replicas, d.reason) == (0, Reason.IDLE) for d in decisions[:5])
    assert (decisions[5].replicas, decisions[5].reason) == (1, Reason.WOKE_FROM_ZERO)


def test_flapping_input_does_not_oscillate() -> None:
    spec = pool(maxReplicas=20, stabilization={"scaleDownSeconds": 60})
    high, low = seen(in_flight=64, service=1.0), seen(in_flight=8, service=1.0)
    decisions = run(spec, [high, low] * 30, current=1)
    replicas = [d.replicas for d in decisions]
    assert replicas == [10] * 60


def test_in_flight_floor_holds_after_the_window() -> None:
    spec = pool(maxReplicas=20, stabilization={"scaleDownSeconds": 5})
    decisions = run(spec, [seen(backlog=2000)] + [seen(in_flight=40)] * 10, current=1)
    assert decisions[0].replicas == 20
    assert min(d.replicas for d in decisions) == 7  # ceil(40 / (8 x 0.8))


def test_latency_waits_for_a_scale_to_take_effect() -> None:
    spec = pool(maxReplicas=100, targets={"p95LatencySeconds": 1.0})
    breach = seen(in_flight=4, service=1.0, p95=2.0)
    replicas = [d.replicas for d in run(spec, [breach] * 31, current=2)]
    assert replicas[:30] == [4] * 30
    assert replicas[30] == 8


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


def test_manual_mode_forgets_auto_history() -> None:
    auto = run(pool(), [seen(backlog=500)] * 3, current=1)[-1].history
    manual = scale_decision(seen(current=4), pool(mode="Manual", replicas=4), auto, 3.0)
    assert manual.history.recommendations == ()


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
        targets={
            "backlogSeconds": draw(st.floats(0.1, 3600)),
            "messagesPerReplica": draw(st.none() | st.integers(1, 100_000)),
            "inFlightUtilization": draw(st.floats(0.01, 1.0)),
            "p95LatencySeconds": draw(st.none() | st.floats(0.01, 3600)),
        },
        stabilization={
            "scaleUpSeconds": draw(st.integers(0, 600)),
            "scaleDownSeconds": draw(st.integers(0, 600)),
        },
    )


rates = st.floats(0, 10_000, allow_nan=False)
times = st.none() | st.floats(NOW - 4000, NOW)
observations = st.builds(
    Observed,
    backlog=st.integers(0, 1_000_000),
    in_flight=st.integers(0, 100_000),
    arrival_rate=rates,
    completion_rate=rates,
    service_seconds=st.none() | st.floats(0, 600),
    p95_seconds=st.none() | st.floats(0, 3600),
    current_replicas=st.integers(0, 1000),
    metrics_ok=st.booleans(),
)
histories = st.builds(
    History,
    recommendations=st.lists(
        st.tuples(st.floats(NOW - 700, NOW), st.integers(0, 5000)), max_size=30
    ).map(lambda recs: tuple(sorted(recs))),
    last_active=times,
    last_scale_time=times,
)


@given(observations, specs(), histories)
def test_result_stays_within_bounds(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    decision = scale_decision(dataclasses.replace(observed, metrics_ok=True), spec, history, NOW)
    assert spec.scaling.min_replicas <= decision.replicas <= spec.scaling.max_replicas
    if decision.replicas == 0:
        assert decision.reason is Reason.IDLE


@given(
    st.builds(
        Observed,
        backlog=st.integers(0, 10**12),
        in_flight=st.integers(0, 10**12),
        arrival_rate=st.floats(),
        completion_rate=st.floats(),
        service_seconds=st.none() | st.floats(),
        p95_seconds=st.none() | st.floats(),
        current_replicas=st.integers(0, 1000),
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
def test_immediate_scale_up_without_an_up_window(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    scaling = spec.scaling
    spec = spec.model_copy(
        update={
            "scaling": scaling.model_copy(
                update={
                    "stabilization": scaling.stabilization.model_copy(
                        update={"scale_up_seconds": 0}
                    )
                }
            )
        }
    )
    decision = scale_decision(dataclasses.replace(observed, metrics_ok=True), spec, history, NOW)
    wanted = min(max(decision.signals.values()), scaling.max_replicas)
    assert decision.replicas >= wanted
    if wanted > observed.current_replicas:
        assert decision.replicas == max(wanted, scaling.min_replicas)


@given(observations, specs(), histories)
def test_decisions_are_deterministic(
    observed: Observed, spec: AgentPoolSpec, history: History
) -> None:
    assert scale_decision(observed, spec, history, NOW) == scale_decision(
        observed, spec, history, NOW
    )


def test_a_window_shorter_than_the_tick_still_scales_down() -> None:
    """Ticks 1.2 s apart with a 1 s down window: the emptied window is not a restart."""
    spec = AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://m:1/v1", "name": "m"},
            "scaling": {
                "minReplicas": 1,
                "maxReplicas": 10,
                "targets": {"messagesPerReplica": 100, "backlogSeconds": 600},
                "stabilization": {"scaleDownSeconds": 1},
            },
        }
    )
    history, current, now = History.empty(), 1, 1000.0
    for backlog in (300, 300, 0, 0, 0, 0):
        observed = Observed(
            backlog=backlog,
            in_flight=0,
            arrival_rate=0.0,
            completion_rate=0.0,
            service_seconds=None,
            p95_seconds=None,
            current_replicas=current,
        )
        decision = scale_decision(observed, spec, history, now)
        history, current, now = decision.history, decision.replicas, now + 1.2
    assert current == 1

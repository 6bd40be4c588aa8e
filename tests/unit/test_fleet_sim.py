"""The scaling simulator: traces, the discrete-event model, scoring, and the peers'
arithmetic (the HPA's and KEDA's documented behaviour)."""

from __future__ import annotations

import dataclasses

import pytest

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec
from trimtab.sim.fleet import compare, contenders, hpa, model, peers, traces

pytestmark = pytest.mark.unit
POOL = model.PoolModel(slots=4, startup_seconds=15.0, startup_jitter=0.0)


def trace_at(*times: float, duration: float = 60.0) -> traces.Trace:
    return traces.Trace("test", tuple(times), duration)


def simulate(trace: traces.Trace, controller: model.Controller, **changes: float) -> model.Outcome:
    return model.Simulation(dataclasses.replace(POOL, **changes), trace, seed=1).run(controller)


# --- traces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        pytest.param("steady:rate=10,duration=600", 10.0, id="steady"),
        pytest.param("bursty:mean=5,duration=3600", 5.0, id="bursty"),
        pytest.param("diurnal:peak=20,trough=0.1,period=3600,duration=3600", 11.0, id="diurnal"),
        pytest.param("ramp:start=2,end=20,duration=1800", 11.0, id="ramp"),
        pytest.param("cold:rate=10,idle=300,duration=900", 10.0 * 600 / 900, id="cold"),
    ],
)  # fmt: skip
def test_shapes_have_their_mean_rate(spec: str, mean: float) -> None:
    assert traces.named(spec, seed=3).mean_rate == pytest.approx(mean, rel=0.1)


def test_bursts_reach_their_peak() -> None:
    trace = traces.named("bursty:mean=5,peak=10,duration=3600", seed=3)
    assert 40 < trace.peak_rate() < 60


def test_a_seed_gives_the_same_trace() -> None:
    assert traces.named("bursty:mean=5", 7) == traces.named("bursty:mean=5", 7)
    assert traces.named("bursty:mean=5", 7) != traces.named("bursty:mean=5", 8)


def test_csv_round_trip_starts_at_zero() -> None:
    parsed = traces.from_csv("arrival_seconds\n1700000010.5\n1700000010\n1700000012\n", name="x")
    assert parsed.arrivals == (0.0, 0.5, 2.0)
    assert traces.from_csv(traces.to_csv(parsed), name="y").arrivals == parsed.arrivals


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(lambda: traces.named("wave", 1), "unknown shape 'wave'", id="shape"),
        pytest.param(lambda: traces.named("steady:speed=3", 1), "key in duration, rate", id="key"),
        pytest.param(lambda: traces.named("steady:rate=fast", 1), "rate='fast' is not", id="value"),
        pytest.param(lambda: traces.named("steady:rate=-1", 1), "finite number >= 0", id="sign"),
        pytest.param(lambda: traces.named("bursty:mean=5,period=10,burst=30", 1), "cannot average",
                     id="impossible-burst"),
        pytest.param(lambda: traces.from_csv("t\n1\nsoon\n", name="f.csv"), "f.csv:3: 'soon'",
                     id="csv-line"),
        pytest.param(lambda: traces.from_csv("t\n", name="f.csv"), "no arrival times", id="empty"),
    ],
)  # fmt: skip
def test_bad_traces_say_why(make: object, words: str) -> None:
    with pytest.raises(traces.TraceError, match=words):
        make()  # type: ignore[operator]


# --- the model --------------------------------------------------------------------------


def test_every_arrival_completes() -> None:
    trace = traces.named("bursty:mean=3,duration=1200", seed=2)
    outcome = simulate(trace, peers.Static(8), initial_replicas=8)
    assert len(outcome.done) == len(trace.arrivals)
    assert outcome.unfinished == 0
    assert sorted(d.arrived for d in outcome.done) == list(trace.arrivals)


def test_a_seed_gives_the_same_run() -> None:
    trace = traces.named("steady:rate=4,duration=300", seed=1)
    spec = AgentPoolSpec.model_validate({"model": {"endpoint": "http://m:1/v1", "name": "m"}})
    first = simulate(trace, peers.Trimtab(spec))
    second = simulate(trace, peers.Trimtab(spec))
    assert first == second


def test_a_replica_serves_only_after_its_start_up() -> None:
    outcome = simulate(trace_at(0.5), lambda view: 1)
    (only,) = outcome.done
    assert only.started == pytest.approx(15.0)  # asked at 0 s


def test_capacity_is_paid_from_the_ask() -> None:
    outcome = simulate(trace_at(duration=100.0), peers.Static(3), initial_replicas=0)
    assert outcome.replica_seconds == pytest.approx(3 * 100.0)


def test_a_removed_replica_finishes_its_steps_first() -> None:
    calls = iter([None] * 3 + [0] * 1000)
    outcome = simulate(trace_at(0.1, 0.2, duration=5.0), lambda view: next(calls),
                       initial_replicas=1, service_mean=10.0, service_cv=0.0)  # fmt: skip
    assert len(outcome.done) == 2  # both ran to the end although the pool went to 0 at 3 s
    assert outcome.replica_seconds == pytest.approx(10.2, abs=0.01)  # until the last ends


def test_work_never_served_counts_as_missed() -> None:
    outcome = simulate(trace_at(1.0, 2.0), lambda view: 0)
    assert (len(outcome.done), outcome.unfinished) == (0, 2)
    assert compare.attainment(outcome, 10.0) == 0.0


def test_warm_up_is_not_scored() -> None:
    outcome = simulate(trace_at(1.0, 50.0, duration=60.0), peers.Static(1), initial_replicas=1,
                       warmup_seconds=30.0)  # fmt: skip
    assert [d.arrived for d in outcome.done] == [50.0]
    assert outcome.replica_seconds == pytest.approx(30.0)


def test_saturation_slows_a_full_replica() -> None:
    burst = trace_at(*(0.01 * i for i in range(4)), duration=30.0)
    calm = simulate(burst, peers.Static(1), initial_replicas=1, service_cv=0.0)
    slow = simulate(burst, peers.Static(1), initial_replicas=1, service_cv=0.0, saturation=1.0)
    assert max(d.latency for d in slow.done) > max(d.latency for d in calm.done) * 1.5


def test_the_static_fleet_is_the_smallest_that_holds_the_slo() -> None:
    trace = traces.named("steady:rate=8,duration=600", seed=4)
    size, outcome = compare.static_fleet(POOL, trace, slo=10.0, seed=4)
    assert compare.attainment(outcome, 10.0) >= compare.STATIC_ATTAINMENT
    smaller = compare.run(POOL, trace, compare.Contender("s", lambda: peers.Static(size - 1),
                                                         size - 1), seed=4)  # fmt: skip
    assert compare.attainment(smaller, 10.0) < compare.STATIC_ATTAINMENT


def test_trimtab_beats_its_peers_on_a_burst() -> None:
    """More requests within the SLO than every peer, for less than KEDA spends (an HPA
    on CPU is cheaper here only by leaving half the requests late)."""
    trace = traces.named("bursty:mean=3,duration=1800", seed=5)
    spec = AgentPoolSpec.model_validate(
        {"model": {"endpoint": "http://m:1/v1", "name": "m"}, "worker": {"concurrency": 4},
         "scaling": {"maxReplicas": 200, "standby": 3}}
    )  # fmt: skip
    line_up = [contenders.trimtab("trimtab", spec), *contenders.peers_of(spec, slots=4)]
    _, scores, _ = compare.compare(POOL, trace, line_up, slo=10.0, seed=5)
    by = {s.name: s for s in scores}
    assert by["trimtab"].within_slo > 0.99
    for peer in ("KEDA default", "KEDA tuned", "HPA on CPU"):
        assert by["trimtab"].within_slo > by[peer].within_slo + 0.1
    for peer in ("KEDA default", "KEDA tuned"):
        assert by["trimtab"].cost_ratio < by[peer].cost_ratio


# --- the HPA's arithmetic ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "current", "expected"),
    [
        pytest.param(100.0, 10, 10, id="at-target"),
        pytest.param(108.0, 10, 10, id="within-tolerance"),
        pytest.param(120.0, 10, 12, id="above"),
        pytest.param(41.0, 10, 5, id="below"),
        pytest.param(0.0, 3, 0, id="nothing"),
    ],
)  # fmt: skip
def test_external_average_value(total: float, current: int, expected: int) -> None:
    assert hpa.external_average(total, 10.0, current, 0.1) == expected


@pytest.mark.parametrize(
    ("usage", "unready", "expected"),
    [
        pytest.param([0.7, 0.7], 0, 2, id="at-target"),
        pytest.param([1.0, 1.0], 0, 3, id="scale-up"),  # ceil(2 x 1.0 / 0.7)
        pytest.param([1.0] * 4, 1, 6, id="unready-at-zero"),  # ceil(5 x (4 / 5) / 0.7)
        pytest.param([0.8, 0.8], 2, 4, id="unready-reverses-direction"),  # holds
        pytest.param([0.1, 0.1], 0, 1, id="scale-down"),
    ],
)  # fmt: skip
def test_utilization(usage: list[float], unready: int, expected: int) -> None:
    assert hpa.utilization(usage, unready, 0.7, len(usage) + unready, 0.1) == expected


def test_scale_up_is_limited_per_period() -> None:
    """Default behaviour: the larger of +4 pods and +100 % per 15 s."""
    controller = hpa.Hpa(hpa.Behavior(max_replicas=1000))
    assert controller.step(100, 2, now=0.0) == 6  # +4 beats +100 % from 2
    assert controller.step(100, 6, now=5.0) == 6  # the period's +4 is spent
    assert controller.step(100, 6, now=16.0) == 12  # a new period: +100 % of 6


def test_scale_down_waits_for_the_stabilization_window() -> None:
    controller = hpa.Hpa(hpa.Behavior(max_replicas=100))
    assert controller.step(10, 10, now=0.0) == 10
    assert controller.step(2, 10, now=15.0) == 10
    assert controller.step(2, 10, now=299.0) == 10
    assert controller.step(2, 10, now=301.0) == 2


def test_the_hpa_syncs_every_period() -> None:
    controller = hpa.Hpa(hpa.Behavior())
    assert [controller.due(t) for t in (0.0, 1.0, 14.0, 15.0, 16.0, 30.0)] == [
        True, False, False, True, False, True,
    ]  # fmt: skip


def test_hpa_bounds() -> None:
    controller = hpa.Hpa(hpa.Behavior(min_replicas=2, max_replicas=5))
    assert controller.step(0, 3, now=400.0) == 2
    assert controller.step(50, 3, now=800.0) == 5


def view(*, now: float, backlog: int = 0, desired: int = 0, in_flight: int = 0) -> model.View:
    return model.View(now, backlog, in_flight, 0, desired, desired, (), 0, 4)


def test_keda_activates_from_zero_on_its_polling_interval() -> None:
    keda = peers.Keda(peers.KedaConfig())
    assert keda(view(now=0.0)) is None  # idle at the first poll
    assert keda(view(now=10.0, backlog=50)) is None  # between polls: nothing sees it
    assert keda(view(now=30.0, backlog=50)) == 1  # the next poll activates


def test_keda_returns_to_zero_after_its_cooldown() -> None:
    keda = peers.Keda(peers.KedaConfig(polling_seconds=30.0, cooldown_seconds=300.0))
    keda(view(now=0.0, backlog=5, desired=1))
    decisions = [keda(view(now=t, desired=1)) for t in range(1, 331)]
    assert 0 not in decisions[:298]
    assert decisions.index(0) == 299  # the poll at 300 s, 300 s after the last activity


def test_keda_hands_the_lag_to_the_hpa() -> None:
    keda = peers.Keda(peers.KedaConfig())
    keda(view(now=0.0, backlog=1, desired=1))  # the poll at 0 s; the HPA's first sync too
    assert keda(view(now=15.0, backlog=50, desired=1)) == 5  # ceil(50 / 5), limited to +4

"""One pool's pass as a value: replicas, placement, status patch, Events and memory."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import arrivals, fallback, scaling
from trimtab.reconcile.agentpool import plan as plan_mod
from trimtab.reconcile.agentpool import status as status_mod

T0 = 1_780_000_000.0
INTERVAL = 10.0


def _spec(**placement: Any) -> agentpool.AgentPoolSpec:
    return agentpool.AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://m:1/v1", "name": "m"},
            "worker": {"concurrency": 4},
            "scaling": {"minReplicas": 0, "maxReplicas": 20},
            "placement": placement,
        }
    )


def _seen(
    held: dict[str, Any],
    *,
    backlog: int = 0,
    current: int = 1,
    ready: int = 1,
    ok: bool = True,
    pods: tuple[fallback.PodView, ...] = (),
    problems: tuple[str, ...] = (),
) -> plan_mod.Observation:
    observed = scaling.Observed(
        backlog=backlog,
        in_flight=0,
        arrivals=arrivals.Arrivals.none(),
        completion_rate=0.0,
        service_seconds=1.0 if ok else None,
        latency_p95_seconds=None,
        current_replicas=current,
        metrics_ok=ok,
    )
    return plan_mod.Observation(
        name="small",
        generation=2,
        status=held,
        workload=status_mod.Workload(replicas=current, ready=ready),
        observed=observed,
        pods=pods,
        breaker="Closed" if ok else None,
        problems=problems,
    )


def _apply(held: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON merge patch applied as the apiserver applies it (None removes a field)."""
    out = dict(held)
    for key, value in (patch or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _pass(
    held: dict[str, Any], memory: plan_mod.Memory, now: float, **seen: Any
) -> tuple[plan_mod.PoolPlan, dict[str, Any]]:
    spec = seen.pop("spec", _spec())
    planned = plan_mod.plan(_seen(held, **seen), spec, memory, now, status_interval=INTERVAL)
    return planned, _apply(held, planned.status)


def test_a_backlog_scales_up_and_reports_it_in_status_and_events() -> None:
    planned, held = _pass({}, plan_mod.Memory(), T0, backlog=400)
    assert planned.replicas is not None
    assert planned.replicas > 1
    first = planned.events[0]
    assert (first.type, first.reason) == ("Normal", "ScaledUp")
    assert first.message.startswith(f"1 -> {planned.replicas}: ")
    assert held["desiredReplicas"] == planned.replicas
    assert held["replicaSummary"] == f"1/{planned.replicas}"
    assert held["queueDepth"] == 400
    assert held["observedGeneration"] == 2
    assert held["lastScaleReason"].startswith("ScaledUp: ")
    assert held["lastScaleTime"] == "2026-05-28T20:26:40Z"
    assert {c["type"] for c in held["conditions"]} == {
        "Ready",
        "ScalingActive",
        "ScalingLimited",
        "MetricsAvailable",
        "SpotFallback",
        "SpecValid",
    }
    # Every condition is new and none is trouble: all six are announced in one Event.
    assert len(planned.events) == 1 + 1
    assert all(f"{c['type']}=" in planned.events[1].message for c in held["conditions"])
    assert planned.memory.status_written_at == T0


def test_a_steady_pool_writes_nothing_until_its_figures_are_due() -> None:
    first, held = _pass({}, plan_mod.Memory(), T0, backlog=0, current=1)
    assert first.status is not None
    again, _ = _pass(held, first.memory, T0 + 1, backlog=0, current=first.decision.replicas)
    assert (again.status, again.events, again.replicas) == (None, (), None)
    # A load figure alone waits for the interval, then is all that is written.
    busier, _ = _pass(held, first.memory, T0 + 2, backlog=1, current=1)
    later, _ = _pass(held, first.memory, T0 + INTERVAL, backlog=1, current=1)
    assert busier.replicas is None  # one message fits the one replica
    assert busier.status is None
    assert later.status is not None
    assert later.status["queueDepth"] == 1
    assert set(later.status) <= {"queueDepth", "conditions"}  # messages move with figures
    assert later.events == ()


def test_losing_the_queue_is_a_warning_and_holds_the_size() -> None:
    first, held = _pass({}, plan_mod.Memory(), T0, backlog=0, current=3, ready=3)
    blind, held = _pass(held, first.memory, T0 + 1, ok=False, current=3, ready=3)
    assert blind.replicas is None
    warnings = [e for e in blind.events if e.warning]
    assert [e.reason for e in warnings] == ["MetricsUnavailable"]
    assert "breaker" not in held  # unknown while Redis is unreadable: removed, not stale


def test_stuck_spot_pods_move_the_pool_to_on_demand_and_back() -> None:
    spot = _spec(capacity="Spot", fallbackAfterSeconds=30)
    stuck = (fallback.PodView(unschedulable_since=T0 - 60, capacity="Spot"),)
    first, held = _pass({}, plan_mod.Memory(), T0, spec=spot, pods=stuck)
    assert first.fallback is True
    assert held["capacity"] == "OnDemand"
    moved = [e for e in first.events if e.reason == "SpotUnschedulable"]
    assert len(moved) == 1
    assert not moved[0].warning
    steady, held = _pass(held, first.memory, T0 + 1, spec=spot, pods=stuck)
    assert steady.fallback is None  # already on on-demand: nothing to re-apply
    probe_at = T0 + fallback.probe_seconds(spot)
    back, held = _pass(held, steady.memory, probe_at, spec=spot, pods=())
    assert back.fallback is False
    assert held["capacity"] == "Spot"


def test_a_status_from_another_version_is_rewritten_whole() -> None:
    held = {"replicas": -3, "retiredField": True}
    planned, _ = _pass(held, plan_mod.Memory(), T0)
    assert planned.status is not None
    assert planned.status["replicas"] == 1
    assert "retiredField" not in planned.status  # the apiserver prunes what the CRD lacks


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.booleans(), st.integers(0, 5)), min_size=1, max_size=25
    )
)
def test_the_held_status_always_parses_and_tracks_the_deployment(
    ticks: list[tuple[int, bool, int]],
) -> None:
    """Whatever the load, metrics and readiness do, the status the apiserver ends up
    holding is a valid AgentPoolStatus whose desired count is the replicas last asked for."""
    held: dict[str, Any] = {}
    memory = plan_mod.Memory()
    current = 1
    for i, (backlog, ok, ready) in enumerate(ticks):
        now = T0 + i * INTERVAL  # every pass is due, so status is never stale
        planned, held = _pass(
            held, memory, now, backlog=backlog, ok=ok, current=current, ready=min(ready, current)
        )
        memory = planned.memory
        if planned.replicas is not None:
            current = planned.replicas
        parsed = agentpool.AgentPoolStatus.model_validate(held)
        assert parsed.desired_replicas == current
        assert parsed.observed_generation == 2
        assert len({c.type for c in parsed.conditions}) == 6


def test_a_refused_spec_holds_the_pool_and_says_why() -> None:
    why = ("spec.worker.image: image evil.example/miner:1 is not allowed here",)
    planned, held = _pass({}, plan_mod.Memory(), T0, backlog=400, current=0, ready=0, problems=why)
    assert planned.replicas is None  # a backlog, but nothing is scaled from a refused spec
    assert planned.fallback is None
    assert all(e.reason != "ScaledUp" for e in planned.events)
    conds = {c["type"]: c for c in held["conditions"]}
    assert (conds["SpecValid"]["status"], conds["SpecValid"]["reason"]) == ("False", "InvalidSpec")
    assert conds["SpecValid"]["message"] == why[0]
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "InvalidSpec")
    assert held["desiredReplicas"] == 0
    assert "lastScaleTime" not in held
    warned = {e.reason for e in planned.events if e.warning}
    assert warned == {"InvalidSpec"}
    fixed, held = _pass(held, planned.memory, T0 + 1, backlog=400, current=0, ready=0)
    assert fixed.replicas is not None
    assert {c["type"]: c["status"] for c in held["conditions"]}["SpecValid"] == "True"


def _manual(replicas: int) -> agentpool.AgentPoolSpec:
    doc = _spec().to_wire()
    doc["scaling"]["mode"] = "Manual"
    doc["replicas"] = replicas
    return agentpool.AgentPoolSpec.model_validate(doc)


def _ready_condition(held: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in held["conditions"] if c["type"] == "Ready")


def test_queued_work_with_no_replica_wanted_makes_the_pool_unready() -> None:
    # Manual mode at 0 replicas: the autoscaler will not wake it, so the steps would wait
    # with no sign; the pool says so, and so does every workflow on it (PoolsReady).
    _, held = _pass({}, plan_mod.Memory(), T0, backlog=5, current=0, ready=0, spec=_manual(0))
    ready = _ready_condition(held)
    assert (ready["status"], ready["reason"]) == ("False", "Unserved")
    assert ready["message"].startswith("5 task(s) queued")
    # Nothing queued: scaled to zero is fine.
    _, idle = _pass({}, plan_mod.Memory(), T0, backlog=0, current=0, ready=0, spec=_manual(0))
    assert (_ready_condition(idle)["status"], _ready_condition(idle)["reason"]) == (
        "True",
        "ScaledToZero",
    )
    # In Auto mode the same backlog wakes the pool instead.
    woke, awake = _pass({}, plan_mod.Memory(), T0, backlog=5, current=0, ready=0)
    assert woke.replicas is not None
    assert woke.replicas >= 1
    assert _ready_condition(awake)["reason"] != "Unserved"

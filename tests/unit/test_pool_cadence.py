"""Which pools the autoscaler passes each second: a pool at rest is skipped until what
it reads changes, it is touched, or its rest runs out."""

from __future__ import annotations

from typing import Any

from tests.unit.test_pool_plan import INTERVAL, T0, _apply, _seen, _spec
from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import cadence
from trimtab.reconcile.agentpool import plan as plan_mod


def _spec_with(**scaling: Any) -> agentpool.AgentPoolSpec:
    return agentpool.AgentPoolSpec.model_validate(
        {
            "model": {"endpoint": "http://m:1/v1", "name": "m"},
            "scaling": {"minReplicas": 0, "maxReplicas": 20, **scaling},
        }
    )


def _settled(spec: agentpool.AgentPoolSpec, **seen: Any) -> tuple[plan_mod.Observation, Any]:
    """The second pass over a pool: the first writes its initial status."""
    held: dict[str, Any] = {}
    memory = plan_mod.Memory()
    for now in (T0, T0 + 1):
        observation = _seen(held, **seen)
        planned = plan_mod.plan(observation, spec, memory, now, status_interval=INTERVAL)
        held, memory = _apply(held, planned.status), planned.memory
    return observation, planned


def test_a_pool_at_zero_with_nothing_queued_comes_to_rest_once_its_status_is_written() -> None:
    spec = _spec()
    first = plan_mod.plan(
        _seen({}, current=0, ready=0), spec, plan_mod.Memory(), T0, status_interval=INTERVAL
    )
    assert first.status is not None
    assert not cadence.at_rest(spec, _seen({}, current=0, ready=0), first)
    seen, planned = _settled(spec, current=0, ready=0)
    assert cadence.at_rest(spec, seen, planned)


def test_a_pool_with_replicas_backlog_or_an_unreadable_queue_never_rests() -> None:
    spec = _spec()
    for seen in (
        {"current": 1, "ready": 1},
        {"current": 0, "ready": 0, "backlog": 3},
        {"current": 0, "ready": 0, "ok": False},
    ):
        observation, planned = _settled(spec, **seen)
        assert not cadence.at_rest(spec, observation, planned), seen


def test_a_time_driven_spec_never_rests() -> None:
    schedule = {"name": "mornings", "start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 1}
    for spec in (_spec_with(schedules=[schedule]), _spec_with(predictive={"mode": "Preview"})):
        observation, planned = _settled(spec, current=0, ready=0)
        assert not cadence.at_rest(spec, observation, planned)


def test_a_resting_pool_is_due_when_touched_changed_or_its_rest_runs_out() -> None:
    rest = cadence.resting(("ns", "small"), ("rv1", None), T0)
    assert T0 + cadence.REST_TICK_SECONDS <= rest.until < T0 + 2 * cadence.REST_TICK_SECONDS
    assert not cadence.due(rest, ("rv1", None), touched=False, now=T0 + 1)
    assert cadence.due(rest, ("rv1", None), touched=True, now=T0 + 1)
    assert cadence.due(rest, ("rv2", None), touched=False, now=T0 + 1)
    assert cadence.due(rest, ("rv1", None), touched=False, now=rest.until)
    assert cadence.due(None, ("rv1", None), touched=False, now=T0 + 1)


def test_pools_that_rest_together_wake_apart() -> None:
    wakes = {cadence.resting(("ns", f"pool-{i}"), None, T0).until for i in range(100)}
    assert len(wakes) > 90

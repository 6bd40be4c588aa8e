"""The demo's bursty load: reproducible, with the peak-to-average it promises."""

from __future__ import annotations

import pytest

from tests.harness import samples
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import validation
from trimtab_dev.demo import load, stack


def test_the_same_seed_gives_the_same_load_and_another_seed_does_not() -> None:
    shape = load.Shape(rate=4.0)
    first = load.schedule(shape, 120, seed=7)
    assert first == load.schedule(shape, 120, seed=7)
    assert first != load.schedule(shape, 120, seed=8)


def test_rates_match_the_shape_over_a_long_run() -> None:
    shape = load.Shape(rate=5.0, peak_ratio=10.0, period=40.0, burst=3.0)
    duration = 4000.0
    arrivals = load.schedule(shape, duration, seed=1)
    assert len(arrivals) / duration == pytest.approx(5.0, rel=0.05)
    in_bursts = sum(1 for a in arrivals if a.at % shape.period < shape.burst)
    burst_rate = in_bursts / (duration / shape.period * shape.burst)
    assert burst_rate / (len(arrivals) / duration) == pytest.approx(10.0, rel=0.1)
    assert all(0 <= a.at < duration for a in arrivals)
    assert [a.at for a in arrivals] == sorted(a.at for a in arrivals)


def test_batch_share_and_inputs() -> None:
    arrivals = load.schedule(load.Shape(rate=10.0, batch_share=0.2), 300, seed=2)
    batch = [a for a in arrivals if a.workflow == "batch-summarize"]
    assert len(batch) / len(arrivals) == pytest.approx(0.2, abs=0.04)
    assert all(set(a.inputs) == {"part_1", "part_2"} for a in batch)
    support = [a for a in arrivals if a.workflow == "customer-support"]
    assert all({"customer_id", "message"} <= set(a.inputs) for a in support)


def test_a_burst_too_long_for_the_peak_is_refused_with_the_limit() -> None:
    with pytest.raises(ValueError, match="the burst must be under 4 s"):
        load.Shape(period=40.0, burst=5.0, peak_ratio=10.0)


def test_the_agent_share_goes_to_the_support_agent_in_sessions_that_come_back() -> None:
    arrivals = load.schedule(load.Shape(rate=10.0, batch_share=0.2, agent_share=0.1), 300, seed=4)
    agent = [a for a in arrivals if a.workflow == "support-agent"]
    assert len(agent) / len(arrivals) == pytest.approx(0.1, abs=0.03)
    assert all(a.session == f"customer-{a.inputs['customer_id']}" for a in agent)
    assert len({a.session for a in agent}) < len(agent)  # conversations continue
    assert all(a.session is None for a in arrivals if a.workflow != "support-agent")


def test_the_demos_support_agent_calls_the_simulators_tools_and_is_valid() -> None:
    tuning = {"stabilization": {}, "idleSecondsToZero": 30}
    docs = stack.samples(samples.ROOT, "demo", "http://127.0.0.1:9/v1", tuning)
    (agent,) = [d for d in docs if d["metadata"]["name"] == "support-agent"]
    spec = awf.AgentWorkflowSpec.model_validate(agent["spec"])
    assert {t.call.url for t in spec.tools} == {
        f"http://127.0.0.1:9/tools/{t.name}" for t in spec.tools
    }
    assert validation.find_problems(spec) == []

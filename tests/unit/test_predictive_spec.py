"""The predictive floor's cycle comes from the pool's spec.scaling.predictive: its
period says which past moment is "the same time", its bucket how finely arrivals are
counted (and so the rate a bucket's count means), its lookback how many past cycles
are averaged; Disabled learns nothing."""

from __future__ import annotations

from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile.agentpool import autoscaler

T0 = 1_800_000_000.0 - 1_800_000_000.0 % 3600  # a whole hour: buckets line up
SPIKE = 600  # arrivals, all in the second the spike starts


def _spec(**predictive: Any) -> agentpool.AgentPoolSpec:
    doc = {
        "model": {"endpoint": "http://127.0.0.1:1/v1", "name": "m"},
        "scaling": {"predictive": {"mode": "Enabled", **predictive}},
    }
    return agentpool.AgentPoolSpec.model_validate(doc)


def _predicted(spec: agentpool.AgentPoolSpec, spikes_at: list[float], at: float) -> float | None:
    """What the pool's seasonal memory predicts at `at` after spikes at `spikes_at`."""
    seasonal = autoscaler.Autoscaler().seasonal_for(spec)
    assert seasonal is not None
    seasonal.add(T0, 0)  # history starts here
    for moment in spikes_at:
        seasonal.add(moment, SPIKE)
    return seasonal.predicted_rate(at, at)


def test_the_period_says_which_past_moment_is_the_same_time() -> None:
    spikes = [T0 + 600 * k for k in range(1, 4)]  # every 600 s
    at = T0 + 600 * 4
    every = _spec(periodSeconds=600, bucketSeconds=60, lookbackPeriods=3)
    assert _predicted(every, spikes, at) == SPIKE / 60
    # A 900 s cycle looks 900 s back, where nothing spiked.
    other = _spec(periodSeconds=900, bucketSeconds=60, lookbackPeriods=1)
    assert _predicted(other, spikes, at) == 0.0


def test_the_bucket_sets_the_rate_a_count_means() -> None:
    spikes = [T0 + 600 * k for k in range(1, 4)]
    at = T0 + 600 * 4
    coarse = _spec(periodSeconds=600, bucketSeconds=300, lookbackPeriods=3)
    assert _predicted(coarse, spikes, at) == SPIKE / 300


def test_the_lookback_averages_that_many_past_cycles() -> None:
    only_last = [T0 + 600 * 3]  # one spike, in the cycle just past
    at = T0 + 600 * 4
    spec = _spec(periodSeconds=600, bucketSeconds=60, lookbackPeriods=1)
    assert _predicted(spec, only_last, at) == SPIKE / 60
    spec = _spec(periodSeconds=600, bucketSeconds=60, lookbackPeriods=3)
    assert _predicted(spec, only_last, at) == SPIKE / 60 / 3


def test_disabled_learns_nothing() -> None:
    assert autoscaler.Autoscaler().seasonal_for(_spec(mode="Disabled")) is None

"""The replicas a model rate limit can keep busy, and the autoscaler holding there."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.reasons import Reason
from trimtab.reconcile.agentpool import arrivals, ratecap, scaling

T0 = 1_780_000_000.0


def _spec(rate: dict[str, int] | None, **scaling_spec: Any) -> agentpool.AgentPoolSpec:
    model: dict[str, Any] = {"endpoint": "http://m:1/v1", "name": "m"}
    if rate is not None:
        model["rateLimit"] = rate
    return agentpool.AgentPoolSpec.model_validate(
        {
            "model": model,
            "worker": {"concurrency": 4},
            "scaling": {"minReplicas": 0, "maxReplicas": 50, **scaling_spec},
        }
    )


@pytest.mark.parametrize(
    ("rate", "service", "want"),
    [
        (None, 2.0, None),
        ({"tokensPerMinute": 10_000}, 2.0, None),  # tokens per call unknown: no ceiling
        ({"requestsPerMinute": 600}, 2.0, 5),  # 10/s x 2 s = 20 in flight = 5 x 4
        ({"requestsPerMinute": 600}, 2.1, 6),  # 21 in flight: a sixth replica is busy too
        ({"requestsPerMinute": 6}, 1.0, 1),  # at least one replica
    ],
)
def test_the_ceiling_is_the_calls_the_limit_keeps_in_flight(
    rate: dict[str, int] | None, service: float, want: int | None
) -> None:
    assert ratecap.ceiling(_spec(rate), service) == want


def _decide(spec: agentpool.AgentPoolSpec, backlog: int) -> scaling.Decision:
    observed = scaling.Observed(
        backlog=backlog,
        in_flight=0,
        arrivals=arrivals.Arrivals.none(),
        completion_rate=0.0,
        service_seconds=2.0,
        latency_p95_seconds=None,
        current_replicas=1,
        metrics_ok=True,
    )
    return scaling.scale_decision(observed, spec, scaling.History.empty(), T0)


def test_a_rate_limited_pool_scales_up_no_further_than_the_limit_can_use() -> None:
    free = _decide(_spec(None), backlog=400)
    assert free.replicas > 5
    held = _decide(_spec({"requestsPerMinute": 600}), backlog=400)
    assert held.replicas == 5
    assert held.limited is Reason.RATE_LIMITED
    assert "rate limit" in held.message
    # minReplicas still stands above the ceiling.
    floor = _decide(_spec({"requestsPerMinute": 600}, minReplicas=8), backlog=400)
    assert floor.replicas == 8

"""The most replicas a pool's model rate limit can keep busy.

Calls at `requestsPerMinute` that each take the measured step time keep that many calls
in flight at once (Little's law); replicas beyond the ones that many calls need would
only wait for the limit. So the autoscaler scales up no further, and says why
(ScalingLimited: RateLimited). A tokens-only limit sets no ceiling: how many tokens a
call uses is not known before it is made.
"""

from __future__ import annotations

import math

from trimtab.api.v1alpha1.agentpool import AgentPoolSpec


def ceiling(spec: AgentPoolSpec, service_seconds: float) -> int | None:
    """Replicas the rate limit can keep busy, or None without a request limit."""
    limit = spec.model.rate_limit
    if limit is None or limit.requests_per_minute is None:
        return None
    in_flight = limit.requests_per_minute / 60 * max(service_seconds, 0.0)
    return max(1, math.ceil(in_flight / spec.worker.concurrency))

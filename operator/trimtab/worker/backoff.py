"""How long a failed step waits before its next attempt: exponential with jitter.

Full-range jitter around the exponential delay spreads the retries of many runs that
failed together (a model endpoint that blipped) instead of sending them back in one
wave; a server's Retry-After is a floor, never shortened by jitter, and capped at
`maxRetryAfterSeconds` so a server cannot park a step for days.
"""

from __future__ import annotations

import math
import random

from trimtab.api.v1alpha1 import agentworkflow as awf


def delay_seconds(
    backoff: awf.Backoff,
    failed_attempt: int,
    *,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """The wait after attempt number `failed_attempt` (1-based) failed."""
    base = min(
        backoff.max_seconds, backoff.initial_seconds * backoff.factor ** (failed_attempt - 1)
    )
    spread = base * backoff.jitter
    delay = base + rng.uniform(-spread, spread)
    if retry_after is not None and math.isfinite(retry_after):
        delay = max(delay, min(retry_after, backoff.max_retry_after_seconds))
    return max(0.0, delay)

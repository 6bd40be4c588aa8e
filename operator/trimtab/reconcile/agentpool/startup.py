"""How long a pool takes to add capacity: from the scaler asking for more replicas to
those replicas being Ready, measured on the operator's own clock.

The policy sizes headroom, looks ahead and lets its latency signal settle by this time,
so a pool on a slow image or a cold node pool is treated differently from one whose
pods start in a second. Each scale-up is an `Ask`; it is answered when the Deployment
reports as many ready replicas as it asked for, and dropped when a later decision no
longer wants them. Pure: the caller keeps the `Startup` value and passes it back.
"""

from __future__ import annotations

import dataclasses

SAMPLES_KEPT = 20
# Until a pool's first scale-up is measured: a typical pod start on a warm node.
ASSUMED_SECONDS = 15.0
# A high quantile, not the mean: headroom must cover the slow starts too.
QUANTILE = 0.9


@dataclasses.dataclass(frozen=True)
class Ask:
    at: float  # when the scaler asked (s)
    replicas: int  # the count it asked for


@dataclasses.dataclass(frozen=True)
class Startup:
    """Open asks and the last measured start-up times (seconds), newest last."""

    asks: tuple[Ask, ...] = ()
    samples: tuple[float, ...] = ()

    def seconds(self) -> float | None:
        """The QUANTILE of recent start-up times; None before the first is measured."""
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(QUANTILE * len(ordered)))]


def track(state: Startup, *, now: float, current: int, desired: int, ready: int) -> Startup:
    """Record a scale-up from `current` to `desired`, answer the asks `ready` replicas
    satisfy, and drop those `desired` no longer wants."""
    asks = state.asks
    if desired > current:
        asks = (*asks, Ask(now, desired))
    answered = [a for a in asks if a.replicas <= ready]
    open_asks = tuple(a for a in asks if a.replicas > ready and a.replicas <= desired)
    samples = (*state.samples, *(now - a.at for a in answered))[-SAMPLES_KEPT:]
    return Startup(asks=open_asks, samples=samples)

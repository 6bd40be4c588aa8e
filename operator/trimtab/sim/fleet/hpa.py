"""The Kubernetes HorizontalPodAutoscaler's arithmetic, as documented and as
pkg/controller/podautoscaler computes it, for the simulator's peers (KEDA hands its
metrics to an HPA; an HPA on CPU is the common default).

Every `sync_seconds` (the controller manager's --horizontal-pod-autoscaler-sync-period,
15 s): a raw recommendation from the metrics, skipped inside the tolerance (10 %);
stabilized over the behaviour's windows (up: the window's minimum, down: its maximum;
300 s down by default); then rate-limited by the behaviour's policies over their
periods (default up: the larger of +4 pods or +100 % per 15 s; down: -100 % per 15 s),
and bounded by minReplicas and maxReplicas. The HPA never scales from or to zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

# Policy kinds of autoscaling/v2 HPAScalingPolicy.
PODS, PERCENT = "Pods", "Percent"


@dataclasses.dataclass(frozen=True)
class Policy:
    kind: str  # PODS or PERCENT
    value: int
    period_seconds: float


@dataclasses.dataclass(frozen=True)
class Behavior:
    sync_seconds: float = 15.0
    tolerance: float = 0.1
    up_window: float = 0.0
    down_window: float = 300.0
    up_policies: tuple[Policy, ...] = (Policy(PODS, 4, 15.0), Policy(PERCENT, 100, 15.0))
    down_policies: tuple[Policy, ...] = (Policy(PERCENT, 100, 15.0),)
    min_replicas: int = 1
    max_replicas: int = 10


def external_average(total: float, target: float, current: int, tolerance: float) -> int:
    """Replicas for an External metric with an AverageValue target: the total over the
    target, unless the usage ratio is within the tolerance of 1."""
    if current == 0:
        return math.ceil(total / target)
    ratio = total / (target * current)
    return current if abs(1.0 - ratio) <= tolerance else math.ceil(total / target)


def utilization(
    usage: Sequence[float], unready: int, target: float, current: int, tolerance: float
) -> int:
    """Replicas for a Resource metric with a Utilization target (usage as a share of
    requests, per ready pod). Scaling up counts unready pods at 0 %, as the HPA does,
    and holds when that reverses the direction or lands within the tolerance."""
    if not usage:
        return current
    ratio = sum(usage) / len(usage) / target
    if abs(1.0 - ratio) <= tolerance:
        return current
    if ratio > 1.0 and unready:
        pods = len(usage) + unready
        again = sum(usage) / pods / target
        if abs(1.0 - again) <= tolerance or again < 1.0:
            return current
        return math.ceil(again * pods)
    return math.ceil(ratio * len(usage))


class Hpa:
    """One HPA's memory: recommendations and scale events within the windows."""

    def __init__(self, behavior: Behavior) -> None:
        self.b = behavior
        self.recommendations: list[tuple[float, int]] = []
        self.events: list[tuple[float, int]] = []  # (time, change)
        self.next_sync = 0.0

    def due(self, now: float) -> bool:
        if now + 1e-9 < self.next_sync:
            return False
        self.next_sync = now + self.b.sync_seconds
        return True

    def step(self, raw: int, current: int, now: float) -> int:
        """The replicas after one sync with raw recommendation `raw`."""
        keep = max(self.b.up_window, self.b.down_window)
        self.recommendations = [(t, r) for t, r in self.recommendations if t > now - keep]
        up = min([r for t, r in self.recommendations if t > now - self.b.up_window] + [raw])
        down = max([r for t, r in self.recommendations if t > now - self.b.down_window] + [raw])
        self.recommendations.append((now, raw))
        stabilized = min(max(current, up), down)
        limited = self._rate_limited(stabilized, current, now)
        final = min(max(limited, self.b.min_replicas), self.b.max_replicas)
        if final != current:
            self.events.append((now, final - current))
        return final

    def _rate_limited(self, wanted: int, current: int, now: float) -> int:
        if wanted > current:
            limits = [self._limit(p, current, now, up=True) for p in self.b.up_policies]
            return min(wanted, max(limits))
        if wanted < current:
            limits = [self._limit(p, current, now, up=False) for p in self.b.down_policies]
            return max(wanted, min(limits))
        return wanted

    def _limit(self, policy: Policy, current: int, now: float, *, up: bool) -> int:
        changed = sum(
            c for t, c in self.events if t > now - policy.period_seconds and (c > 0) == up
        )
        start = current - changed  # the replicas at the start of the policy's period
        if policy.kind == PODS:
            return start + policy.value if up else start - policy.value
        if up:
            return math.ceil(start * (1 + policy.value / 100))
        return math.ceil(start * (1 - policy.value / 100))

"""The predictive floor's memory: a pool's arrivals per bucket over its last cycles, and
the rate they predict for a moment ahead.

A pool's load often repeats: a daily shape, a batch job every ten minutes. Sized from
what the same phase of the last cycles saw, the pool is ready before the load arrives
instead of a start-up time after it. The prediction only ever raises the reactive
decision (trimtab.reconcile.agentpool.scaling), so a wrong forecast costs replicas,
never latency. Each cycle contributes the busiest bucket near the phase (one bucket
either side, since recurring load drifts); the cycles are averaged, so one odd day
does not set a week's floor.

Pure: `Seasonal` holds bucket counts in a dict keyed by absolute bucket number
(floor(time / bucket)), trimmed to the lookback; the operator fills it from the
arrivals it records in Redis and from each tick's new arrivals.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

NEIGHBOURS = 1  # buckets either side of the phase that count as the same moment


@dataclasses.dataclass(frozen=True)
class Cycle:
    period_seconds: int
    bucket_seconds: int
    lookback: int  # past cycles that count

    @property
    def span_buckets(self) -> int:
        return self.lookback * self.period_seconds // self.bucket_seconds + 2 * NEIGHBOURS + 1


class Seasonal:
    """Arrival counts per bucket over the last `cycle.lookback` cycles."""

    def __init__(self, cycle: Cycle) -> None:
        self.cycle = cycle
        self.counts: dict[int, int] = {}
        self.first_bucket: int | None = None  # the oldest bucket with any history

    def add(self, at: float, count: int) -> None:
        """Count `count` arrivals at time `at` (seconds since the epoch)."""
        bucket = math.floor(at / self.cycle.bucket_seconds)
        if self.first_bucket is None or bucket < self.first_bucket:
            self.first_bucket = bucket
        if count:
            self.counts[bucket] = self.counts.get(bucket, 0) + count
        self._trim(bucket)

    def load(self, seconds: Mapping[int, int], *, since: float) -> None:
        """Add recorded per-second counts; history is known to start at `since`."""
        for second, count in seconds.items():
            self.add(float(second), count)
        self.add(since, 0)

    def _trim(self, newest: int) -> None:
        oldest = newest - self.cycle.span_buckets
        if len(self.counts) > self.cycle.span_buckets:
            self.counts = {b: c for b, c in self.counts.items() if b >= oldest}
        if self.first_bucket is not None and self.first_bucket < oldest:
            self.first_bucket = oldest

    def predicted_rate(self, start: float, end: float) -> float | None:
        """The highest rate (messages/s) the past cycles predict for any moment from
        `start` to `end`, so capacity asked for now covers the whole start-up time and
        is not released while the load it was for still runs; None until a whole cycle
        of history lies behind `start`."""
        c = self.cycle
        first = math.floor(start / c.bucket_seconds)
        last = max(first, math.floor(end / c.bucket_seconds))
        found = [self._typical(b) for b in range(first, last + 1)]
        known = [r for r in found if r is not None]
        return max(known) / c.bucket_seconds if known else None

    def _typical(self, target: int) -> float | None:
        """The mean over the lookback's cycles of each one's busiest bucket near the
        phase of `target`; None without any such cycle in the history."""
        per_cycle = self.cycle.period_seconds // self.cycle.bucket_seconds
        past = [target - k * per_cycle for k in range(1, self.cycle.lookback + 1)]
        known = [b for b in past if self.first_bucket is not None and b >= self.first_bucket]
        if not known:
            return None
        return sum(self._busiest(b) for b in known) / len(known)

    def _busiest(self, bucket: int) -> int:
        return max(
            self.counts.get(b, 0) for b in range(bucket - NEIGHBOURS, bucket + NEIGHBOURS + 1)
        )


def seconds_needed(cycle: Cycle) -> float:
    """How far back the recorded arrivals must be read to fill the lookback."""
    return float(cycle.lookback * cycle.period_seconds + (NEIGHBOURS + 1) * cycle.bucket_seconds)

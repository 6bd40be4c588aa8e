"""A mergeable latency sketch: p95 over a window, computed from many workers.

Each worker keeps one sketch per time bucket and stores its bytes in Redis; the operator
merges the sketches of every worker over the window and reads the quantile it scales on.
Averaging per-worker p95s would be wrong, and exact samples would not fit, so this is a
DDSketch-style log-bucketed histogram: every answer is within a relative error `alpha`
of a true quantile, and merging is adding bucket counts, exact whatever the order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_ALPHA = 0.01
# Sub-microsecond latencies are measurement noise; one bucket keeps them from
# growing the index range toward minus infinity.
MIN_VALUE = 1e-6


class LatencySketch:
    """Counts of latencies (seconds) in buckets (gamma^(i-1), gamma^i], plus a zero bucket."""

    def __init__(self, alpha: float = DEFAULT_ALPHA) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = alpha
        self._gamma = (1.0 + alpha) / (1.0 - alpha)
        self._log_gamma = math.log(self._gamma)
        self.zero = 0
        self.buckets: dict[int, int] = {}
        self.sum = 0.0
        self._max = 0.0

    def add(self, seconds: float, count: int = 1) -> None:
        """Record `count` observations of `seconds`."""
        if not math.isfinite(seconds):
            raise ValueError(f"latency must be finite, got {seconds}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        if count == 0:
            return
        # A negative latency is clock skew between hosts, not a real measurement.
        seconds = max(seconds, 0.0)
        if seconds <= MIN_VALUE:
            self.zero += count
        else:
            index = math.ceil(math.log(seconds) / self._log_gamma)
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.sum += seconds * count
        self._max = max(self._max, seconds)

    def merge(self, other: LatencySketch) -> None:
        """Add every observation of `other` to this sketch."""
        if other.alpha != self.alpha:
            raise ValueError(f"cannot merge sketches with alpha {self.alpha} and {other.alpha}")
        self.zero += other.zero
        for index, count in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + count
        self.sum += other.sum
        self._max = max(self._max, other._max)

    @classmethod
    def merged(cls, sketches: Iterable[LatencySketch]) -> LatencySketch:
        """One new sketch holding every observation of `sketches` (empty if there are none)."""
        result: LatencySketch | None = None
        for sketch in sketches:
            if result is None:
                result = cls(sketch.alpha)
            result.merge(sketch)
        return result if result is not None else cls()

    @property
    def count(self) -> int:
        return self.zero + sum(self.buckets.values())

    @property
    def mean(self) -> float | None:
        count = self.count
        return self.sum / count if count else None

    @property
    def max(self) -> float | None:
        return self._max if self.count else None

    def quantile(self, q: float) -> float | None:
        """The q-quantile (0 <= q <= 1) within relative error alpha; None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q}")
        count = self.count
        if count == 0:
            return None
        # The value at 0-based rank floor(q * (count - 1)), as DDSketch defines it.
        rank = q * (count - 1)
        seen = self.zero
        if seen > rank:
            return 0.0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                # The bucket's midpoint in relative terms; never above the largest value seen.
                return min(2.0 * self._gamma**index / (self._gamma + 1.0), self._max)
        return self._max

    def to_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "zero": self.zero,
            "buckets": {str(index): count for index, count in sorted(self.buckets.items())},
            "sum": self.sum,
            "max": self._max,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencySketch:
        try:
            sketch = cls(float(data["alpha"]))
            sketch.zero = _count(data["zero"])
            sketch.buckets = {int(k): _count(v) for k, v in data["buckets"].items()}
            sketch.sum = float(data["sum"])
            sketch._max = float(data["max"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a latency sketch: {exc!r}") from exc
        return sketch

    def to_bytes(self) -> bytes:
        """Compact, deterministic JSON: equal sketches give equal bytes in Redis."""
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LatencySketch:
        try:
            decoded = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a latency sketch: {exc}") from exc
        if not isinstance(decoded, dict):
            raise ValueError("not a latency sketch: expected a JSON object")
        return cls.from_dict(decoded)

    def __repr__(self) -> str:
        return f"LatencySketch(alpha={self.alpha}, count={self.count}, max={self.max})"


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"not a latency sketch: bad count {value!r}")
    return value

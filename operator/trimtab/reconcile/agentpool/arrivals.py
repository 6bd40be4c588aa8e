"""A pool's arrivals as the autoscaler sees them: counts over a short, a smoothing and a
long window, from successive readings of the stream's entries-added counter.

The operator and the scaling simulator both feed `ArrivalWindow` one reading per tick,
so the policy sees the same figures whether a real stream or a model produced them.
Memory per pool is a fixed ring of per-second counts (RING_SECONDS) and one running
long-run rate, so thousands of pools cost a few megabytes.

Windows, and why each:
- short (BURST_WINDOW_SECONDS, 5 s): a burst shows here within seconds; it is judged
  against the long-run rate with a Poisson test, so noise does not look like a burst;
- smoothing (SMOOTH_WINDOW_SECONDS, 30 s): the level the pool is sized for, steady
  enough that scale-down does not chase per-second noise;
- trend: the rate of the last TREND_WINDOW_SECONDS against the one before, to size
  for the load a replica started now will meet when it is ready;
- long (an exponentially weighted rate with LONG_TAU_SECONDS): the level a burst
  stands out from.
"""

from __future__ import annotations

import array
import dataclasses
import math

BURST_WINDOW_SECONDS = 5
SMOOTH_WINDOW_SECONDS = 30
TREND_WINDOW_SECONDS = 5
LONG_TAU_SECONDS = 300.0
RING_SECONDS = 64  # holds the smoothing window and two trend windows, with spare


@dataclasses.dataclass(frozen=True)
class Arrivals:
    """Arrival figures at one tick. Rates are messages per second; `covered` is how many
    seconds of history stand behind them (short right after the pool is first seen)."""

    last_rate: float  # over the last tick (about a second): the first message shows at once
    short_count: int  # messages in the last BURST_WINDOW_SECONDS (or `covered`, if less)
    short_seconds: float  # the length of that window, in seconds
    smooth_rate: float  # over the last SMOOTH_WINDOW_SECONDS (or `covered`)
    trend: float  # change of the rate, messages/s per second, over the last trend windows
    trend_sigma: float  # its Poisson standard deviation: a trend below ~2 sigma is noise
    long_rate: float  # exponentially weighted over ~LONG_TAU_SECONDS
    covered: float  # seconds of history behind these figures

    @classmethod
    def none(cls) -> Arrivals:
        return cls(0.0, 0, float(BURST_WINDOW_SECONDS), 0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def steady(cls, rate: float) -> Arrivals:
        """A pool that has seen `rate` for a long time: for tests and what-if reports."""
        short = round(rate * BURST_WINDOW_SECONDS)
        sigma = math.sqrt(2 * rate / TREND_WINDOW_SECONDS) / TREND_WINDOW_SECONDS
        horizon = LONG_TAU_SECONDS * 10
        return cls(rate, short, float(BURST_WINDOW_SECONDS), rate, 0.0, sigma, rate, horizon)

    @property
    def any(self) -> bool:
        return self.last_rate > 0 or self.short_count > 0

    def sane(self) -> Arrivals:
        """These figures with anything negative, infinite or NaN read as nothing, so a
        broken reading cannot crash or blow up a decision."""
        rate = [_finite(x) for x in (self.last_rate, self.smooth_rate, self.long_rate)]
        trend = self.trend if math.isfinite(self.trend) else 0.0
        sigma = _finite(self.trend_sigma)
        seconds = self.short_seconds if self.short_seconds >= 1 else 1.0
        count = min(max(self.short_count, 0), _CAP)
        return Arrivals(rate[0], count, seconds, rate[1], trend, sigma, rate[2], self.covered)


_CAP = 10**9  # far above any real arrival figure


def _finite(x: float) -> float:
    return min(x, _CAP) if math.isfinite(x) and x > 0 else 0.0


class ArrivalWindow:
    """Per-second arrival counts of one pool, from its cumulative entries-added counter."""

    def __init__(self) -> None:
        self._ring = array.array("L", bytes(RING_SECONDS * array.array("L").itemsize))
        self._second: int | None = None  # the newest second the ring holds
        self._first: float | None = None  # when the first reading came
        self._last: tuple[float, int] | None = None  # (time, added) of the last reading
        self._long = 0.0

    @property
    def last_total(self) -> int | None:
        """The counter's value at the last reading, None before the first."""
        return None if self._last is None else self._last[1]

    def observe(self, now: float, added_total: int) -> Arrivals:
        """Take one reading of the counter and return the figures as of `now`."""
        last, self._last = self._last, (now, added_total)
        if self._first is None:
            self._first = now
        # A counter that went back is a stream created afresh: count nothing across it.
        delta = 0 if last is None or added_total < last[1] else added_total - last[1]
        elapsed = 0.0 if last is None else max(0.0, now - last[0])
        self._advance(math.floor(now))
        self._ring[math.floor(now) % RING_SECONDS] += delta
        self._update_long(delta, elapsed)
        return self._figures(now, delta, elapsed)

    def _advance(self, second: int) -> None:
        """Zero the ring's slots for the seconds between the last reading and this one."""
        if self._second is not None and second <= self._second:
            return
        start = second - RING_SECONDS + 1 if self._second is None else self._second + 1
        for s in range(max(start, second - RING_SECONDS + 1), second + 1):
            self._ring[s % RING_SECONDS] = 0
        self._second = second

    def _update_long(self, delta: int, elapsed: float) -> None:
        if elapsed <= 0:
            return
        weight = 1.0 - math.exp(-elapsed / LONG_TAU_SECONDS)
        self._long += weight * (delta / elapsed - self._long)

    def _count(self, seconds: int, *, skip: int = 0) -> int:
        """Messages in the `seconds` whole seconds ending `skip` seconds before now."""
        newest = self._second or 0
        return sum(self._ring[(newest - skip - i) % RING_SECONDS] for i in range(seconds))

    def _figures(self, now: float, delta: int, elapsed: float) -> Arrivals:
        covered = now - (self._first or now)
        # Seconds of history each window can claim: the current second counts as one.
        have = max(1, min(RING_SECONDS, math.floor(covered) + 1))
        short_s = min(BURST_WINDOW_SECONDS, have)
        smooth_s = min(SMOOTH_WINDOW_SECONDS, have)
        trend, sigma = self._trend(have)
        return Arrivals(
            last_rate=delta / elapsed if elapsed > 0 else 0.0,
            short_count=self._count(short_s),
            short_seconds=float(short_s),
            smooth_rate=self._count(smooth_s) / smooth_s,
            trend=trend,
            trend_sigma=sigma,
            long_rate=self._long,
            covered=covered,
        )

    def _trend(self, have: int) -> tuple[float, float]:
        """Slope between the last two trend windows, and its Poisson standard deviation;
        nothing until both windows are covered."""
        w = TREND_WINDOW_SECONDS
        if have < 2 * w:
            return 0.0, 0.0
        recent, before = self._count(w), self._count(w, skip=w)
        return (recent - before) / (w * w), math.sqrt(recent + before + 1) / (w * w)

"""Arrival traces for the scaling simulator: recorded ones from a CSV, and named
synthetic shapes with parameters, the same arrivals for the same seed.

A trace is arrival times in seconds from its start. Synthetic shapes are Poisson
processes whose rate follows the shape, sampled by thinning at the shape's peak rate,
so each phase gets exactly its rate. Named as `NAME` or `NAME:key=value,key=value`:

    bursty   mean, peak (x mean), period, burst (s at peak), rise (s), jitter, duration
             one burst in each period, placed at its middle +- jitter x period (0.5 by
             default: anywhere; 0.02: recurring like a cron job), rising linearly
    cold     rate, idle (s with nothing), duration: a step from zero
    diurnal  peak, trough (x peak), period, duration: a cosine day
    ramp     start, end (rates), duration: a straight line
    steady   rate, duration
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import io
import math
import random
from collections.abc import Callable, Mapping

RateFn = Callable[[float], float]


class TraceError(ValueError):
    """A trace that cannot be read or a shape that cannot be built; says what and where."""


@dataclasses.dataclass(frozen=True)
class Trace:
    name: str
    arrivals: tuple[float, ...]  # seconds from the start, ascending
    duration: float  # seconds; at least the last arrival

    @property
    def mean_rate(self) -> float:
        return len(self.arrivals) / self.duration if self.duration else 0.0

    def peak_rate(self, window: float = 10.0) -> float:
        """The highest arrival rate over any `window` seconds."""
        best, lo = 0, 0
        for hi, t in enumerate(self.arrivals):
            while self.arrivals[lo] < t - window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best / window


@dataclasses.dataclass(frozen=True)
class Shape:
    """A synthetic load: a rate function, its peak, and its length."""

    name: str
    rate: RateFn
    peak: float
    duration: float


def sample(shape: Shape, seed: int) -> Trace:
    """Arrivals of a Poisson process following `shape.rate`, by thinning."""
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while shape.peak > 0:
        t += rng.expovariate(shape.peak)
        if t >= shape.duration:
            break
        if rng.random() * shape.peak < shape.rate(t):
            out.append(t)
    return Trace(shape.name, tuple(out), shape.duration)


def _bursty(p: Mapping[str, float], seed: int) -> Shape:
    mean, ratio, period = p.get("mean", 5.0), p.get("peak", 10.0), p.get("period", 900.0)
    burst, rise, duration = p.get("burst", 30.0), p.get("rise", 15.0), p.get("duration", 3600.0)
    jitter = min(p.get("jitter", 0.5), 0.5)
    peak = mean * ratio
    # Time at peak per burst, counting the rise and the fall as half each.
    share = (burst + rise) / period
    if not 0 < share < 1 / ratio:
        raise TraceError(
            f"bursty: {burst:g} s bursts (+{rise:g} s rise) every {period:g} s "
            f"cannot average {mean:g}/s with a peak of {ratio:g}x"
        )
    base = mean * (1 - share * ratio) / (1 - share)
    rng = random.Random(seed ^ 0x5EED)
    starts = [
        (k + 0.5 + rng.uniform(-jitter, jitter) * 0.9) * period
        for k in range(math.ceil(duration / period))
    ]

    def rate(t: float) -> float:
        # Bursts may overlap when drawn close together: the nearest two decide.
        i = bisect.bisect_right(starts, t)
        near = starts[max(0, i - 2) : i]
        return base + max((_pulse(t - s, rise, burst) for s in near), default=0.0) * (peak - base)

    name = f"bursty {ratio:g}:1, mean {mean:g}/s, {burst:g} s bursts every ~{period:g} s"
    return Shape(name, rate, peak, duration)


def _pulse(t: float, rise: float, hold: float) -> float:
    """0 to 1 over `rise`, 1 for `hold`, back to 0 over `rise`."""
    if t < 0 or t > 2 * rise + hold:
        return 0.0
    if t < rise:
        return t / rise
    return 1.0 if t <= rise + hold else (2 * rise + hold - t) / rise


def _cold(p: Mapping[str, float], seed: int) -> Shape:
    rate, idle, duration = p.get("rate", 10.0), p.get("idle", 120.0), p.get("duration", 600.0)
    return Shape(
        f"cold start: {rate:g}/s after {idle:g} s idle",
        lambda t: rate if t >= idle else 0.0,
        rate,
        duration,
    )


def _diurnal(p: Mapping[str, float], seed: int) -> Shape:
    peak, trough = p.get("peak", 20.0), p.get("trough", 0.1)
    period, duration = p.get("period", 7200.0), p.get("duration", 7200.0)
    low = peak * trough

    def rate(t: float) -> float:
        return low + (peak - low) * (1 - math.cos(2 * math.pi * t / period)) / 2

    return Shape(f"diurnal {trough * peak:g}-{peak:g}/s over {period:g} s", rate, peak, duration)


def _ramp(p: Mapping[str, float], seed: int) -> Shape:
    start, end, duration = p.get("start", 2.0), p.get("end", 20.0), p.get("duration", 1800.0)
    return Shape(
        f"ramp {start:g} to {end:g}/s over {duration:g} s",
        lambda t: start + (end - start) * t / duration,
        max(start, end),
        duration,
    )


def _steady(p: Mapping[str, float], seed: int) -> Shape:
    rate, duration = p.get("rate", 10.0), p.get("duration", 600.0)
    return Shape(f"steady {rate:g}/s", lambda t: rate, rate, duration)


SHAPES: dict[str, tuple[Callable[[Mapping[str, float], int], Shape], frozenset[str]]] = {
    "bursty": (
        _bursty,
        frozenset({"mean", "peak", "period", "burst", "rise", "jitter", "duration"}),
    ),
    "cold": (_cold, frozenset({"rate", "idle", "duration"})),
    "diurnal": (_diurnal, frozenset({"peak", "trough", "period", "duration"})),
    "ramp": (_ramp, frozenset({"start", "end", "duration"})),
    "steady": (_steady, frozenset({"rate", "duration"})),
}


def shape(spec: str, seed: int) -> Shape:
    """The synthetic shape `NAME[:key=value,...]` (its bursts placed by `seed`)."""
    name, _, params = spec.partition(":")
    if name not in SHAPES:
        raise TraceError(f"unknown shape {name!r}; known: {', '.join(sorted(SHAPES))}")
    build, allowed = SHAPES[name]
    return build(_params(params, allowed, shape=name), seed)


def named(spec: str, seed: int) -> Trace:
    """A synthetic trace from `NAME[:key=value,...]`."""
    return sample(shape(spec, seed), seed)


def _params(text: str, allowed: frozenset[str], *, shape: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for pair in filter(None, text.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or key not in allowed:
            raise TraceError(
                f"{shape}: want key=value with key in {', '.join(sorted(allowed))}, got {pair!r}"
            )
        try:
            values[key] = float(value)
        except ValueError:
            raise TraceError(f"{shape}: {key}={value!r} is not a number") from None
        if not math.isfinite(values[key]) or values[key] < 0:
            raise TraceError(f"{shape}: {key} must be a finite number >= 0")
    return values


def from_csv(text: str, *, name: str) -> Trace:
    """Arrival times from the first column of a CSV (seconds, relative or since the
    epoch; a header line is skipped), shifted to start at 0 and sorted."""
    times: list[float] = []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        try:
            times.append(float(row[0]))
        except ValueError:
            if number == 1:
                continue  # a header
            raise TraceError(f"{name}:{number}: {row[0]!r} is not a time in seconds") from None
    if not times:
        raise TraceError(f"{name}: no arrival times found")
    times.sort()
    start = times[0]
    shifted = tuple(t - start for t in times)
    return Trace(name, shifted, max(shifted[-1], 1.0))


def from_counts(counts: Mapping[int, int], *, name: str) -> Trace:
    """A trace from arrivals per second (as a pool records them), each second's spread
    evenly across it, shifted to start at 0."""
    if not counts:
        raise TraceError(f"{name}: no arrivals recorded")
    start, end = min(counts), max(counts)
    times = tuple(
        second - start + (i + 0.5) / count
        for second, count in sorted(counts.items())
        for i in range(count)
    )
    return Trace(name, times, float(end - start + 1))


def to_csv(trace: Trace) -> str:
    return "arrival_seconds\n" + "".join(f"{t:.3f}\n" for t in trace.arrivals)

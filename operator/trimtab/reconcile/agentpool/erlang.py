"""Queueing arithmetic for sizing a pool against a latency target (M/M/c, Erlang C).

With `a` Erlangs offered (arrivals/s x seconds per step) to `c` slots, a step waits
with probability C(c, a), and longer than t with C(c, a) x exp(-(c - a) t / service).
`slots_for_wait` is the fewest slots that keep P(wait > budget) within `tail`: a pool
whose latency target leaves room for some queueing runs close to full, one with a
tight target keeps spare slots, which square-root staffing with a fixed factor cannot
tell apart. Exact up to EXACT_LIMIT Erlangs; above it the Halfin-Whitt approximation
(c = a + beta sqrt(a)), which is accurate exactly where the exact sum gets expensive.
"""

from __future__ import annotations

import math

EXACT_LIMIT = 200.0
_MAX_BETA = 8.0


def erlang_c(slots: int, load: float) -> float:
    """P(wait > 0) with `slots` servers and `load` Erlangs; 1 when overloaded."""
    if load <= 0:
        return 0.0
    if slots <= load:
        return 1.0
    b = 1.0  # Erlang B by its stable recursion
    for k in range(1, slots + 1):
        b = load * b / (k + load * b)
    return slots * b / (slots - load * (1 - b))


def slots_for_wait(load: float, *, service: float, budget: float, tail: float) -> float:
    """The fewest slots (fractional above EXACT_LIMIT) with P(wait > budget) <= tail."""
    if load <= 0:
        return 0.0
    if load <= EXACT_LIMIT:
        return float(_exact(load, service=service, budget=budget, tail=tail))
    return load + _beta(load, service=service, budget=budget, tail=tail) * math.sqrt(load)


def _exact(load: float, *, service: float, budget: float, tail: float) -> int:
    """The Erlang B recursion carried upward one slot at a time, testing each count."""
    b, c = 1.0, 0
    while True:
        c += 1
        b = load * b / (c + load * b)
        if c > load:
            waits = c * b / (c - load * (1 - b))
            if waits * math.exp(-(c - load) * budget / service) <= tail:
                return c


def _beta(load: float, *, service: float, budget: float, tail: float) -> float:
    """Bisection on Halfin-Whitt's P(wait) = 1 / (1 + beta Phi(beta) / phi(beta)), times
    the exponential tail of the wait beyond `budget`."""

    def excess(beta: float) -> float:
        phi = math.exp(-beta * beta / 2) / math.sqrt(2 * math.pi)
        big_phi = 0.5 * (1 + math.erf(beta / math.sqrt(2)))
        p_wait = 1 / (1 + beta * big_phi / phi) if beta > 0 else 1.0
        return p_wait * math.exp(-beta * math.sqrt(load) * budget / service) - tail

    low, high = 0.0, _MAX_BETA
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if excess(mid) > 0 else (low, mid)
    return high

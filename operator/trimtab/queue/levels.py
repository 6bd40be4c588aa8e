"""How a pool's workers share their free slots among its priority levels.

Each level (wire.Priority) has its own stream, so a step of an interactive run never
waits behind a batch backlog in one FIFO. Serving the highest level first, always, would
starve the lower ones while high work keeps arriving; instead slots go by weighted
turns: in every cycle of `sum(WEIGHTS)` slots filled, each level has as many turns as
its weight. A read of n free slots gives each slot the next turn, takes each level's
slots from its stream, and fills slots left over from the levels highest first.
With every level backlogged, High gets 4 of 7 slots, Normal 2 and Low 1; a level with
nothing waiting gives its turns to the others, so an idle High costs Low nothing.
Pure: the worker keeps the turn, trimtab.queue.intake reads by the shares given.
"""

from __future__ import annotations

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import wire

# A run's priority as the API spells it, and as its task messages carry it.
FROM_API: dict[awf.Priority, wire.Priority] = {
    "High": wire.Priority.HIGH,
    "Normal": wire.Priority.NORMAL,
    "Low": wire.Priority.LOW,
}
WEIGHTS: dict[wire.Priority, int] = {
    wire.Priority.HIGH: 4,
    wire.Priority.NORMAL: 2,
    wire.Priority.LOW: 1,
}


def _first_choices() -> tuple[wire.Priority, ...]:
    """One cycle of first choices, each level as often as its weight and spread out
    (smooth weighted round robin, as nginx balances upstreams): H N H L H N H."""
    current = dict.fromkeys(WEIGHTS, 0)
    total = sum(WEIGHTS.values())
    cycle = []
    for _ in range(total):
        for level, weight in WEIGHTS.items():
            current[level] += weight
        chosen = max(WEIGHTS, key=lambda level: current[level])  # ties: the higher level
        current[chosen] -= total
        cycle.append(chosen)
    return tuple(cycle)


CYCLE = _first_choices()


def shares(turn: int, count: int) -> dict[wire.Priority, int]:
    """How many of `count` free slots each level gets first, the slots taking the turns
    `turn`, `turn + 1`, ... of the cycle; slots a level leaves unused go to the others,
    highest first (take.lua). A worker advances `turn` by the entries it took."""
    given = dict.fromkeys(wire.Priority, 0)
    for slot in range(count):
        given[CYCLE[(turn + slot) % len(CYCLE)]] += 1
    return given

"""Holding a model step's worst case against its run's budget and its AgentBudget
windows (reserve.lua).

A run's `maxTokensPerRun` and `maxCostPerRun` hold under concurrency only if the check
and the claim are one atomic step: parallel steps that each read the run's spend and
found room would together overrun it. So before calling the model, an attempt holds its
worst case in the run hash; the holds of the steps under way count as spent for every
other step; and the script that ends the attempt gives the hold back as it records the
real spend (release_hold in _common.lua). A step whose worst case does not fit is told
how much was spent and how much others hold, and does not call. The same hold is taken
on every AgentBudget window that covers the run (trimtab.queue.agentbudgets), so many
runs together stay within a namespace's budget as one run's steps stay within its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from trimtab.queue import agentbudgets, keys, scripts, wire
from trimtab.queue.intake import Delivery
from trimtab.reconcile.agentbudget import windows as windows_mod


@dataclasses.dataclass(frozen=True)
class WorstCase:
    """What one call may spend at most: the prompt plus the whole completion allowance."""

    tokens: int
    cost: float


@dataclasses.dataclass(frozen=True)
class Limits:
    """The run's limits (None: no limit of that kind)."""

    tokens: int | None
    cost: float | None

    @property
    def any(self) -> bool:
        return self.tokens is not None or self.cost is not None


@dataclasses.dataclass(frozen=True)
class Hold:
    """reserve.lua's answer: RESERVED, DUPLICATE (another delivery owns the step), or
    OVER_BUDGET with the kind of limit (tokens or cost), the spend of it, what the
    other calls under way hold of it, and whose limit it is: the run's (window None) or
    an AgentBudget window's."""

    outcome: wire.Reply
    kind: wire.LimitKind = wire.LimitKind.TOKENS
    spent: float = 0.0
    held: float = 0.0
    window: windows_mod.Window | None = None


async def reserve(
    lua: scripts.Scripts,
    delivery: Delivery,
    worst: WorstCase,
    limits: Limits,
    windows: Sequence[windows_mod.Window] = (),
    *,
    now: float,
) -> Hold:
    """Hold `worst` against the run's `limits` and every window (at `now`, epoch
    seconds) for this (started) delivery."""
    task = delivery.task
    args: list[str | int | float] = [
        task.step,
        task.attempt,
        delivery.fence or "",
        worst.tokens,
        worst.cost,
        _limit(limits.tokens),
        _limit(limits.cost),
    ]
    for index, w in enumerate(windows):
        args += [_limit(w.tokens), _limit(w.cost), w.ttl_seconds(now), index]
    run_key = keys.run(task.namespace, task.run_id)
    reply = await lua.call(
        "reserve", [run_key, *(agentbudgets.window_key(w) for w in windows)], args
    )
    outcome = wire.Reply(reply[0])
    if outcome is not wire.Reply.OVER_BUDGET:
        return Hold(outcome)
    label = str(reply[4])
    return Hold(
        outcome,
        kind=wire.LimitKind(reply[1]),
        spent=float(reply[2]),
        held=float(reply[3]),
        window=windows[int(label)] if label else None,
    )


def _limit(value: float | None) -> str | float:
    return "" if value is None else value


async def book(lua: scripts.Scripts, delivery: Delivery, *, tokens: int, cost: float) -> bool:
    """Count what this (started) delivery's call spent although the attempt failed (its
    output was refused); False when the attempt is no longer the delivery's."""
    task = delivery.task
    reply = await lua.call(
        "book",
        [keys.run(task.namespace, task.run_id), keys.workflow_stats(task.namespace, task.workflow)],
        [task.step, task.attempt, delivery.fence or "", tokens, repr(float(cost))],
    )
    return wire.Reply(reply[0]) is wire.Reply.BOOKED

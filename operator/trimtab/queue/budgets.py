"""Holding a model step's worst case against its run's budget (reserve.lua).

A run's `maxTokensPerRun` and `maxCostPerRun` hold under concurrency only if the check
and the claim are one atomic step: parallel steps that each read the run's spend and
found room would together overrun it. So before calling the model, an attempt holds its
worst case in the run hash; the holds of the steps under way count as spent for every
other step; and the script that ends the attempt gives the hold back as it records the
real spend (release_hold in _common.lua). A step whose worst case does not fit is told
how much was spent and how much others hold, and does not call.
"""

from __future__ import annotations

import dataclasses

from trimtab.queue import keys, scripts, wire
from trimtab.queue.tasks import Delivery


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


@dataclasses.dataclass(frozen=True)
class Hold:
    """reserve.lua's answer: RESERVED, DUPLICATE (another delivery owns the step), or
    OVER_BUDGET with the kind of limit ('tokens' or 'cost'), the run's spend of it, and
    what the other steps under way hold of it."""

    outcome: wire.Reply
    kind: str = ""
    spent: float = 0.0
    held: float = 0.0


async def reserve(
    lua: scripts.Scripts, delivery: Delivery, worst: WorstCase, limits: Limits
) -> Hold:
    """Hold `worst` against the run's `limits` for this (started) delivery."""
    task = delivery.task
    reply = await lua.call(
        "reserve",
        [keys.run(task.namespace, task.run_id)],
        [
            task.step,
            task.attempt,
            delivery.fence or "",
            worst.tokens,
            worst.cost,
            "" if limits.tokens is None else limits.tokens,
            "" if limits.cost is None else limits.cost,
        ],
    )
    outcome = wire.Reply(reply[0])
    if outcome is not wire.Reply.OVER_BUDGET:
        return Hold(outcome)
    return Hold(outcome, kind=str(reply[1]), spent=float(reply[2]), held=float(reply[3]))

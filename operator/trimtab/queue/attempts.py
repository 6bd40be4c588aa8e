"""A step's attempt log: one entry per attempt that ended, appended by the script that
ended it (log_attempt in lua/_common.lua) under the step's StepField.ATTEMPTS.

The step's own fields keep only its latest attempt; the log keeps where each one ran
(pool, worker, capacity type), when, what it spent and how it ended, which the history
archives one row each. This module is the log's codec on the Python side; its keys
are trimtab.queue.wire.AttemptField.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from trimtab.queue import wire


@dataclasses.dataclass(frozen=True)
class AttemptView:
    """One ended attempt. `tokens` and `cost` are the attempt's own: the step's totals
    when it ended, less the totals when the attempt before it ended."""

    attempt: int
    outcome: wire.AttemptOutcome
    pool: str | None
    worker: str | None
    capacity: str | None
    started_ms: float | None
    ended_ms: float
    tokens: int
    cost: float
    error: str | None


def parse_log(raw: str | None) -> tuple[AttemptView, ...]:
    """The attempts of a step's log, oldest first; none when it has no log."""
    if not raw:
        return ()
    entries: list[dict[str, Any]] = json.loads(raw)
    out: list[AttemptView] = []
    tokens_before, cost_before = 0, 0.0
    f = wire.AttemptField
    for e in entries:
        tokens, cost = int(e.get(f.TOKENS, 0)), float(e.get(f.COST, 0))
        out.append(
            AttemptView(
                attempt=int(e[f.ATTEMPT]),
                outcome=wire.AttemptOutcome(e[f.OUTCOME]),
                pool=e.get(f.POOL) or None,
                worker=e.get(f.WORKER) or None,
                capacity=e.get(f.CAPACITY) or None,
                started_ms=float(e[f.STARTED_MS]) if e.get(f.STARTED_MS) else None,
                ended_ms=float(e[f.ENDED_MS]),
                tokens=max(0, tokens - tokens_before),
                cost=max(0.0, cost - cost_before),
                error=e.get(f.ERROR) or None,
            )
        )
        tokens_before, cost_before = tokens, cost
    return tuple(out)

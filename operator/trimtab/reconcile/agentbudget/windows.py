"""AgentBudget windows: the calendar windows a budget's limits count in, which of them a
call must be held on, and what a window's figures mean.

Pure, for the workers (which windows to hold a call on), the SDK (whether a new run
is refused) and the operator (status); trimtab.queue.agentbudgets reads and writes the
figures. A call's spend is booked in the window it was held in, so a call that ends
after its window turned still settles where it was counted.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import json
from collections.abc import Mapping

HOUR = 3600
DAY = 24 * HOUR


@dataclasses.dataclass(frozen=True)
class Limit:
    """One period's limits (None: no limit of that kind)."""

    period: str  # agentbudget.Period
    tokens: int | None
    cost: float | None


@dataclasses.dataclass(frozen=True)
class Definition:
    """A published budget: the workflows it covers (None: the whole namespace)."""

    workflows: frozenset[str] | None
    limits: tuple[Limit, ...]

    def covers(self, workflow: str) -> bool:
        return self.workflows is None or workflow in self.workflows

    def to_json(self) -> str:
        return json.dumps(
            {
                "workflows": None if self.workflows is None else sorted(self.workflows),
                "limits": [dataclasses.asdict(limit) for limit in self.limits],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Definition:
        doc = json.loads(text)
        listed = doc.get("workflows")
        return cls(
            workflows=None if listed is None else frozenset(listed),
            limits=tuple(Limit(**limit) for limit in doc["limits"]),
        )


@dataclasses.dataclass(frozen=True)
class Window:
    """One limit's current window of one budget, and its Redis key."""

    namespace: str
    budget: str
    period: str
    start: int  # epoch seconds, UTC
    end: int
    tokens: int | None
    cost: float | None

    def ttl_seconds(self, now: float) -> int:
        """Kept for one more period after it ends, so status can still show it."""
        return max(1, int(self.end - now) + (self.end - self.start))

    def label(self) -> str:
        return f"AgentBudget {self.budget} ({self.period.lower()})"


@dataclasses.dataclass(frozen=True)
class Spend:
    """What a window has spent (calls that ended) and holds (calls under way), and the
    worst case of the last call its spend left no room for, if any."""

    window: Window
    tokens: int
    cost: float
    held_tokens: int
    held_cost: float
    refused: float | None = None

    def spent_out(self) -> str | None:
        """Why new runs are refused (a limit is reached, or a call was refused for lack
        of room whatever settles), or None."""
        w = self.window
        if w.tokens is not None and self.tokens >= w.tokens:
            return f"{w.label()} has used {self.tokens} of its {w.tokens} tokens"
        if w.cost is not None and self.cost >= w.cost:
            return f"{w.label()} has spent {self.cost:.6f} of its {w.cost:g}"
        if self.refused is not None:
            used = (
                f"{self.tokens} of its {w.tokens} tokens"
                if w.tokens is not None
                else (f"{self.cost:.6f} of its {w.cost:g}")
            )
            return f"{w.label()} has used {used}, too little left for a call ({self.refused:g})"
        return None


def window_bounds(period: str, now: float) -> tuple[int, int]:
    """The calendar window (UTC) holding `now`: its first second and the next one's."""
    if period == "Hour":
        start = int(now // HOUR * HOUR)
        return start, start + HOUR
    if period == "Day":
        start = int(now // DAY * DAY)
        return start, start + DAY
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    first = datetime.datetime(moment.year, moment.month, 1, tzinfo=datetime.UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    start = int(first.timestamp())
    return start, start + days * DAY


def windows(namespace: str, name: str, definition: Definition, now: float) -> list[Window]:
    """The budget's windows that hold `now`, one per limit."""
    found = []
    for limit in definition.limits:
        start, end = window_bounds(limit.period, now)
        found.append(Window(namespace, name, limit.period, start, end, limit.tokens, limit.cost))
    return found


def covering(
    namespace: str, workflow: str, definitions: Mapping[str, Definition], now: float
) -> list[Window]:
    """Every window a call of `workflow` must also be held on, in a stable order."""
    return [
        w
        for name, definition in sorted(definitions.items())
        if definition.covers(workflow)
        for w in windows(namespace, name, definition, now)
    ]

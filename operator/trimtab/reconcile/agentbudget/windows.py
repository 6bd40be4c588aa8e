"""AgentBudget windows: the calendar windows a budget's limits count in, which of them a
call must be held on, and what a window's figures mean.

Pure, for the workers (which windows to hold a call on), the SDK (whether a new run
is refused) and the operator (status); trimtab.queue.agentbudgets reads and writes the
figures. A call's spend is booked in the window it was held in, so a call that ends
after its window turned still settles where it was counted, while that window is kept
(one period after it ends: a review left longer than that books nowhere).
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime
import json
from collections.abc import Mapping

HOUR = 3600
DAY = 24 * HOUR
# The periods (agentbudget.Period) of one length; a Month's is its calendar month's.
FIXED = {"Hour": HOUR, "Day": DAY}


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
    worst case of the last call its spend left no room for, of each kind, if any."""

    window: Window
    tokens: int
    cost: float
    held_tokens: int
    held_cost: float
    refused_tokens: int | None = None
    refused_cost: float | None = None

    def spent_out(self) -> str | None:
        """Why new runs are refused, or None: a limit is reached, or a call that would
        fit the empty window was refused for lack of room, and would be still (the
        limit may have been raised since)."""
        w = self.window
        if w.tokens is not None and self.tokens >= w.tokens:
            return f"{w.label()} has used {self.tokens} of its {w.tokens} tokens"
        if w.cost is not None and self.cost >= w.cost:
            return f"{w.label()} has spent {self.cost:.6f} of its {w.cost:g}"
        tokens_left, cost_left = self.left()
        if self.refused_tokens is not None and tokens_left < self.refused_tokens:
            return (
                f"{w.label()} has used {self.tokens} of its {w.tokens} tokens, too few "
                f"left for a call of {self.refused_tokens}"
            )
        if self.refused_cost is not None and cost_left < self.refused_cost:
            return (
                f"{w.label()} has spent {self.cost:.6f} of its {w.cost:g}, too little "
                f"left for a call of {self.refused_cost:.6f}"
            )
        return None

    def left(self) -> tuple[float, float]:
        """What the limits leave of each kind (infinite without a limit of that kind)."""
        w, unlimited = self.window, float("inf")
        return (
            unlimited if w.tokens is None else w.tokens - self.tokens,
            unlimited if w.cost is None else w.cost - self.cost,
        )

    def refusal(self) -> str | None:
        """The one-line refusal of a new run, naming when the window turns, or None."""
        why = self.spent_out()
        if why is None:
            return None
        turns = datetime.datetime.fromtimestamp(self.window.end, datetime.UTC)
        return f"{why}; the window turns at {turns.strftime(RFC3339)}"


RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def window_bounds(period: str, now: float) -> tuple[int, int]:
    """The calendar window (UTC) holding `now`: its first second and the next one's."""
    if period in FIXED:
        length = FIXED[period]
        start = int(now // length * length)
        return start, start + length
    if period != "Month":
        raise ValueError(f"unknown budget period {period!r}")
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

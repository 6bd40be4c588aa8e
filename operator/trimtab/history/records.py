"""What the history keeps of a run and its steps: plain values, built by the operator
from the run's record in Redis (trimtab.handlers.ended_runs) and written by
trimtab.history.store."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any


@dataclasses.dataclass(frozen=True)
class ArchivedAttempt:
    """One attempt of a step: its own tokens and cost, and the capacity type (Spot,
    OnDemand, Mixed) of the worker that ran it, when the worker knew it."""

    attempt: int
    outcome: str
    pool: str | None
    model: str | None
    tier: str | None
    capacity: str | None
    worker: str | None
    started_at: datetime.datetime | None
    ended_at: datetime.datetime
    tokens: int
    cost: float
    error: str | None
    error_type: str | None


@dataclasses.dataclass(frozen=True)
class ArchivedStep:
    step: str
    state: str
    attempts: int
    pool: str | None
    model: str | None
    tier: str | None
    queued_at: datetime.datetime | None
    started_at: datetime.datetime | None
    ended_at: datetime.datetime | None
    tokens: int
    cost: float
    error: str | None
    error_type: str | None
    attempt_rows: tuple[ArchivedAttempt, ...] = ()


@dataclasses.dataclass(frozen=True)
class ArchivedRun:
    namespace: str
    run_id: str
    workflow: str
    generation: int
    status: str
    priority: str
    created_at: datetime.datetime
    ended_at: datetime.datetime
    tokens: int
    cost: float
    error: str | None
    session: str | None
    idempotency_key: str | None
    trace_id: str
    steps: tuple[ArchivedStep, ...] = ()
    # Kept only when the workflow's spec.history says so, until io_expires_at.
    inputs: Any = None
    outputs: dict[str, Any] | None = None
    io_expires_at: datetime.datetime | None = None

    @property
    def duration_seconds(self) -> float:
        return (self.ended_at - self.created_at).total_seconds()


def at(ms: float | None) -> datetime.datetime | None:
    """An epoch-milliseconds time as a UTC timestamp."""
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)


@dataclasses.dataclass(frozen=True)
class CostRow:
    """One group of a cost report: its key (a workflow, pool, model or day), and what
    the runs or steps in it spent."""

    key: str
    runs: int
    tokens: int
    cost: float

"""The task message: what a pool's stream carries for one step attempt of one run.

Kept flat and small (a handful of short fields) because every step of every run
passes through XADD, XREADGROUP and XACK; the payload (inputs, outputs) stays in the
run hash and is read once by the worker that runs the step.

This module is the message's only codec: every path that puts a task on a stream
(submit, complete, retry and its promotion, escalate, resume) sends the scripts the list
`Task.encode()` built, and the scripts add it as it is (or, for a release or a reclaim,
move the entry untouched), so no field can be dropped on one of the paths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trimtab.queue import wire


class MessageError(ValueError):
    """A stream entry is not a task message."""


@dataclasses.dataclass(frozen=True)
class Task:
    """One attempt of one step of one run."""

    namespace: str
    run_id: str
    step: str
    attempt: int
    workflow: str
    generation: int
    enqueued_ms: float  # epoch milliseconds, microsecond precision
    # The attempt before the current retry budget began: 0, or the attempt at which the
    # step moved to its fallback pool or was retried from the dead-letter queue.
    budget_from: int = 0
    # Its run's priority: which of each pool's streams its steps go on (keys.pool_stream).
    priority: wire.Priority = wire.Priority.NORMAL
    # Not the step but its compensation, once its run failed (undo.lua ends it).
    compensation: bool = False

    @property
    def attempts_in_budget(self) -> int:
        return self.attempt - self.budget_from

    def encode(self) -> list[str]:
        """The entry's field/value pairs, flat, as XADD (and the scripts) take them."""
        return [x for pair in self.fields().items() for x in pair]

    def fields(self) -> dict[str, str]:
        extra = {"bud": str(self.budget_from)} if self.budget_from else {}
        if self.priority is not wire.Priority.NORMAL:
            extra["pri"] = self.priority.value
        if self.compensation:
            extra["undo"] = "1"
        return {
            "ns": self.namespace,
            "run": self.run_id,
            "step": self.step,
            "att": str(self.attempt),
            "wf": self.workflow,
            "gen": str(self.generation),
            "enq": f"{self.enqueued_ms:.3f}",
            **extra,
        }


def decode(fields: Mapping[Any, bytes | str]) -> Task:
    """The task in a stream entry's fields; MessageError names what is missing or wrong."""
    f = {text(k): text(v) for k, v in fields.items()}
    priority = _priority(f)
    try:
        return Task(
            namespace=f["ns"],
            run_id=f["run"],
            step=f["step"],
            attempt=int(f["att"]),
            workflow=f["wf"],
            generation=int(f["gen"]),
            enqueued_ms=float(f["enq"]),
            budget_from=int(f.get("bud", 0)),
            priority=priority,
            compensation=f.get("undo") == "1",
        )
    except KeyError as exc:
        raise MessageError(f"task message lacks field {exc.args[0]!r}: {f}") from exc
    except ValueError as exc:
        raise MessageError(f"task message has a malformed number: {f}") from exc


def _priority(f: dict[str, str]) -> wire.Priority:
    try:
        return wire.Priority(f.get("pri", wire.Priority.NORMAL))
    except ValueError:
        raise MessageError(f"task message has an unknown priority: {f}") from None


def text(value: bytes | str) -> str:
    """A Redis reply as text, whichever way the client decodes replies."""
    return value.decode() if isinstance(value, bytes) else value

"""Status conditions with the semantics Kubernetes tools expect.

`lastTransitionTime` changes only when `status` changes (a new reason or message on the
same status keeps the time), `observedGeneration` is always the generation decided on,
and conditions are recomputed whole on every reconcile, level-based, from spec and
observed state. Conditions are the API's own `Condition` model, so what is written is
what the CRD declares; `transitions` turns what changed into Events, one per move.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from trimtab.api.v1alpha1 import base
from trimtab.reasons import ConditionType, Reason


@dataclasses.dataclass(frozen=True)
class Desired:
    """A condition as decided now, before merging with what status already says."""

    type: ConditionType
    status: bool | None  # None: Unknown
    reason: Reason
    message: str = ""

    @property
    def status_text(self) -> base.ConditionStatus:
        if self.status is None:
            return "Unknown"
        return "True" if self.status else "False"


# The longest condition message written: room for several problems, short enough to read.
MAX_MESSAGE = 1024


def joined(parts: Iterable[str]) -> str:
    """`parts` as one condition message, cut to MAX_MESSAGE."""
    text = "; ".join(parts)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def format_time(now: datetime.datetime) -> str:
    """A Kubernetes timestamp (RFC 3339, whole seconds, UTC)."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(stamp: str | None) -> float | None:
    """Epoch seconds of a Kubernetes timestamp, or None when absent."""
    if not stamp:
        return None
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def find(current: Iterable[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any]:
    """The condition of type `kind` in a status's list, or {} when there is none."""
    return next((c for c in current or [] if c.get("type") == kind), {})


def is_true(current: Iterable[Mapping[str, Any]] | None, kind: str) -> bool:
    return find(current, kind).get("status") == "True"


def condition_of(current: Sequence[base.Condition], kind: ConditionType) -> base.Condition | None:
    """The condition of type `kind` in a status model's list, if there is one."""
    return next((c for c in current if c.type == kind.value), None)


def merge(
    current: Sequence[base.Condition],
    desired: Iterable[Desired],
    *,
    generation: int,
    now: datetime.datetime,
) -> list[base.Condition]:
    """The conditions to write: `desired`, keeping each unchanged status's transition time."""
    previous = {c.type: c for c in current}
    out = []
    for d in desired:
        old = previous.get(d.type.value)
        same_status = old is not None and old.status == d.status_text
        out.append(
            base.Condition(
                type=d.type.value,
                status=d.status_text,
                reason=d.reason.value,
                message=d.message,
                last_transition_time=old.last_transition_time if same_status and old else now,
                observed_generation=generation,
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the object whose condition moved."""

    warning: bool
    reason: str
    message: str

    @property
    def type(self) -> str:
        return "Warning" if self.warning else "Normal"


# Conditions whose False is trouble an operator of the cluster should see as a Warning;
# a False ScalingLimited or SpotFallback is the healthy state.
_WARN_WHEN_FALSE = frozenset(
    {
        ConditionType.READY,
        ConditionType.METRICS_AVAILABLE,
        ConditionType.SPEC_VALID,
        ConditionType.POOLS_READY,
    }
)


# Conditions whose True is the trouble: a budget near or at its limit.
_WARN_WHEN_TRUE = frozenset({ConditionType.NEAR_LIMIT, ConditionType.EXHAUSTED})


# Each condition's status when there is nothing to say about it (None: either, as a pool
# at zero is as normal as one scaling): an object's first status announces these
# together, and each other condition on its own.
_AT_EASE: dict[ConditionType, bool | None] = {
    ConditionType.READY: True,
    ConditionType.SCALING_ACTIVE: None,
    ConditionType.SCALING_LIMITED: False,
    ConditionType.METRICS_AVAILABLE: True,
    ConditionType.SPOT_FALLBACK: False,
    ConditionType.SPEC_VALID: True,
    ConditionType.POOLS_READY: True,
    ConditionType.NEAR_LIMIT: False,
    ConditionType.EXHAUSTED: False,
}


def transitions(
    current: Sequence[base.Condition],
    merged: Sequence[base.Condition],
    *,
    status_only: Collection[ConditionType] = (),
) -> list[Event]:
    """One Event per merged condition that is new or whose status or reason changed; for
    the types in `status_only`, whose reason follows every decision, only a new status
    counts. An object's first status (no conditions held yet) announces the conditions at
    ease (_AT_EASE) in one Event, and each other one on its own: at a thousand new
    objects, an Event per healthy condition was most of a cold start's writes."""
    previous = {c.type: c for c in current}
    out: list[Event] = []
    settled: list[Event] = []
    for c in merged:
        old = previous.get(c.type)
        reason_moved = old is not None and old.reason != c.reason and c.type not in status_only
        if old is not None and old.status == c.status and not reason_moved:
            continue
        event = Event(_warns(c), c.reason, f"{c.type}={c.status}: {c.message}")
        ease = _AT_EASE.get(ConditionType(c.type), c.status == "True")
        at_ease = ease is None or ease == (c.status == "True")
        (settled if not current and at_ease else out).append(event)
    if settled:
        joined = "; ".join(e.message for e in settled)
        out.insert(0, Event(False, settled[0].reason, joined))
    return out


def _warns(c: base.Condition) -> bool:
    return (c.status == "False" and c.type in _WARN_WHEN_FALSE) or (
        c.status == "True" and c.type in _WARN_WHEN_TRUE
    )

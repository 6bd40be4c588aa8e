"""Status conditions with the semantics Kubernetes tools expect.

`lastTransitionTime` changes only when `status` changes (a new reason or message on the
same status keeps the time), `observedGeneration` is always the generation decided on,
and conditions are recomputed whole on every reconcile, level-based, from spec and
observed state. `transitions` lists what changed, for events.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trimtab.reasons import ConditionType, Reason


@dataclasses.dataclass(frozen=True)
class Desired:
    """A condition as decided now, before merging with what status already says."""

    type: ConditionType
    status: bool | None  # None: Unknown
    reason: Reason
    message: str = ""

    @property
    def status_text(self) -> str:
        return "Unknown" if self.status is None else str(self.status)


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


def merge(
    current: Sequence[Mapping[str, Any]],
    desired: Iterable[Desired],
    *,
    generation: int,
    now: datetime.datetime,
) -> list[dict[str, Any]]:
    """The conditions to write: `desired`, keeping each unchanged status's transition time."""
    previous = {c.get("type"): c for c in current}
    out = []
    for d in desired:
        old = previous.get(d.type.value)
        same_status = old is not None and old.get("status") == d.status_text
        since = old["lastTransitionTime"] if same_status and old else format_time(now)
        out.append(
            {
                "type": d.type.value,
                "status": d.status_text,
                "reason": d.reason.value,
                "message": d.message,
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return out


def transitions(
    current: Sequence[Mapping[str, Any]], merged: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """The merged conditions whose status or reason differs from before (event-worthy)."""
    previous = {c.get("type"): c for c in current}
    return [
        c
        for c in merged
        if (old := previous.get(c["type"])) is None
        or old.get("status") != c["status"]
        or old.get("reason") != c["reason"]
    ]

"""A run's place in a trace, which every process that handles the run can work out
alone: the run's span has an id derived from the run's name, in the trace of the
caller that submitted it (its `traceparent`, kept with the run) or, with no caller's
trace, a trace whose id is derived likewise.

Derived ids are why nothing but the caller's traceparent has to cross Redis: the
worker that runs a step after a reclaim, and the operator that records the run's span
once the run has ended, name the same parent without asking anyone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re

# W3C Trace Context, version 00: version-traceid-parentid-flags, lowercase hex.
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
SAMPLED = 0x01


@dataclasses.dataclass(frozen=True)
class Parent:
    """A span context as a traceparent header carries it."""

    trace_id: int
    span_id: int
    sampled: bool

    def header(self) -> str:
        flags = SAMPLED if self.sampled else 0
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{flags:02x}"


def parse_traceparent(text: str | None) -> Parent | None:
    """The span context a `traceparent` value names; None for anything else (a bad
    header starts a new trace, as the W3C recommendation says, rather than failing)."""
    if not text:
        return None
    found = _TRACEPARENT.match(text.strip())
    if found is None:
        return None
    trace_id, span_id = int(found[1], 16), int(found[2], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return Parent(trace_id, span_id, bool(int(found[3], 16) & SAMPLED))


@dataclasses.dataclass(frozen=True)
class RunTrace:
    """Where a run's span sits: its trace, its own span id, and its parent (the
    caller's span) when it continues a caller's trace. `sampled` is the caller's
    decision; None when the run starts its trace, and each process's sampler decides
    (by the trace id alone, so every process decides alike)."""

    trace_id: int
    span_id: int
    parent_span_id: int | None = None
    sampled: bool | None = None


def _digest(namespace: str, run_id: str) -> bytes:
    return hashlib.sha256(f"trimtab-run:{namespace}/{run_id}".encode()).digest()


def run_trace(namespace: str, run_id: str, caller: str | None = None) -> RunTrace:
    """The run's trace identity, from its name and the traceparent its submitter kept
    with it (if any)."""
    digest = _digest(namespace, run_id)
    span_id = int.from_bytes(digest[16:24], "big") or 1
    parent = parse_traceparent(caller)
    if parent is not None:
        return RunTrace(parent.trace_id, span_id, parent.span_id, parent.sampled)
    return RunTrace(int.from_bytes(digest[:16], "big") or 1, span_id)

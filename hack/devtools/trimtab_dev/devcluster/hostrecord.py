"""The record of every change a cluster's `up` made to the host, kept in its state dir.

A change is written here *before* it is made, so after a crash halfway through `up`
the record still names it, and `down` undoes exactly what the record lists (each undo
tolerates a change that never happened). An entry leaves the record once undone.
The undo order comes from the kind of change, not from the order they were made:
processes die first, then mounts go, then links, cgroups and directories.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import pathlib


class Kind(enum.IntEnum):
    """What was changed; the value is the undo order (lowest first)."""

    SHIMS = 1  # containerd-shim processes of a containerd socket (target) may outlive it
    CGROUP_PROCS = 2  # processes left in a cgroup subtree (target: path below each root)
    MOUNTS = 3  # every mount under a directory (target)
    NETNS = 4  # a network namespace bind-mounted on a file (target)
    ROUTE = 5  # a host route: target destination, detail device
    LINK = 6  # a host network interface (target), a bridge or a veth end
    CGROUP = 7  # a cgroup subtree (target: path below each hierarchy's root)
    DIR = 8  # a directory outside the state dir that did not exist before (target)


@dataclasses.dataclass(frozen=True, order=True)
class Change:
    kind: Kind
    target: str
    detail: str = ""


def load(path: pathlib.Path) -> list[Change]:
    """The changes recorded in `path`, in the order they were made."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [Change(Kind[e["kind"]], e["target"], e.get("detail", "")) for e in raw]


def _save(path: pathlib.Path, changes: list[Change]) -> None:
    if not changes:
        path.unlink(missing_ok=True)
        return
    doc = [{"kind": c.kind.name, "target": c.target, "detail": c.detail} for c in changes]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)  # a crash never leaves half a record


def add(path: pathlib.Path, change: Change) -> None:
    """Record `change` (once) before making it."""
    changes = load(path)
    if change not in changes:
        path.parent.mkdir(parents=True, exist_ok=True)
        _save(path, [*changes, change])


def remove(path: pathlib.Path, change: Change) -> None:
    _save(path, [c for c in load(path) if c != change])


def undo_order(changes: list[Change]) -> list[Change]:
    """By kind; within a kind, the latest first (a veth before the bridge it joined)."""
    latest_first = list(reversed(changes))
    return sorted(latest_first, key=lambda c: c.kind)

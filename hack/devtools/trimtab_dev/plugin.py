"""The development tools' entry into the `trimtab` CLI (entry point trimtab.commands)."""

from __future__ import annotations

from typing import Any

from trimtab_dev import cluster_cmd, demo_cmd


def register(groups: Any) -> None:
    """Add `trimtab cluster` and `trimtab demo` to the CLI's command groups."""
    cluster_cmd.register(groups)
    demo_cmd.register(groups)

"""Trimtab's development tools, kept out of the product distribution: the local
cluster (`trimtab cluster`, trimtab_dev.devcluster) and the demo (`trimtab demo`,
trimtab_dev.demo). Installed from a checkout (`make install` installs it editable
beside the product), it adds its commands to the `trimtab` CLI through the
`trimtab.commands` entry point; the product's wheel and image never carry it.
"""

from __future__ import annotations

from typing import Any

from trimtab_dev import cluster_cmd, demo_cmd


def register(groups: Any) -> None:
    """Add `trimtab cluster` and `trimtab demo` to the CLI's command groups."""
    cluster_cmd.register(groups)
    demo_cmd.register(groups)

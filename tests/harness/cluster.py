"""The session's Kubernetes cluster, started through `trimtab cluster up`.

The fixture uses the same command a developer types, so the tests exercise it; a
cluster that is already up is reused and left running, one the fixture started is
stopped at the end unless TRIMTAB_KEEP_CLUSTER=1.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

from trimtab_dev.devcluster import cluster, layout

CLUSTER_NAME = os.environ.get("TRIMTAB_TEST_CLUSTER", layout.DEFAULT_NAME)


def _trimtab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trimtab", "cluster", "--name", CLUSTER_NAME, *args],
        capture_output=True,
        text=True,
        check=False,
    )


@contextlib.contextmanager
def session_cluster() -> Iterator[layout.Layout]:
    lay = layout.layout_for(CLUSTER_NAME)
    was_up = lay.kubeconfig.exists() and cluster.is_up(lay)
    if not was_up:
        result = _trimtab("up")
        if result.returncode != 0:
            raise RuntimeError(f"trimtab cluster up failed:\n{result.stdout}\n{result.stderr}")
        lay = layout.layout_for(CLUSTER_NAME)  # now with the real nodes `up` recorded
    try:
        yield lay
    finally:
        if not was_up and os.environ.get("TRIMTAB_KEEP_CLUSTER") != "1":
            _trimtab("down")


def kubectl(
    lay: layout.Layout, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The pinned kubectl, as the cluster's admin."""
    from trimtab_dev.devcluster import binaries  # noqa: PLC0415 - resolved once the cluster is up

    return cluster.kubectl(lay, binaries.ensure_built(), *args, stdin=stdin)

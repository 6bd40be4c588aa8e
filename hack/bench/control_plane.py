#!/usr/bin/env python3
"""Bring-up time of the local control plane from cached binaries, and each process's RSS.

Restarts the `bench` cluster (its own state dir and ports, so a running dev cluster is
untouched) a few times: cold state (fresh etcd, new PKI) once, then warm restarts.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import time

from trimtab_dev.devcluster import cluster, layout

# Below 32768: the kernel hands out ports above that to outgoing connections.
PORTS = layout.Ports(
    etcd_client=24790,
    etcd_peer=24800,
    apiserver=27443,
    controller_manager=21257,
    scheduler=21259,
    kwok=21247,
)
WARM_RUNS = 3


def main() -> None:
    base = layout.layout_for("bench")
    lay = dataclasses.replace(base, ports=PORTS)
    cluster.down(lay)
    if lay.root.exists():
        shutil.rmtree(lay.root)
    fresh = cluster.up(lay)
    print(f"bring-up, fresh state (PKI + empty etcd): {fresh.seconds:5.1f} s")
    warm = []
    for _ in range(WARM_RUNS):
        cluster.down(lay)
        warm.append(cluster.up(lay).seconds)
    print(
        f"bring-up, existing state, {WARM_RUNS} runs:  median {statistics.median(warm):5.1f} s,"
        f" max {max(warm):5.1f} s"
    )
    t0 = time.monotonic()
    again = cluster.up(lay)
    print(
        f"`up` when already up:                 {time.monotonic() - t0:5.1f} s "
        f"(started: {again.started or 'nothing'})"
    )
    time.sleep(20)  # let controllers settle before reading idle memory
    print("\nidle RSS after 20 s:")
    total = 0
    for row in cluster.status(lay):
        total += row.rss_bytes
        print(f"  {row.name:<25} {row.rss_bytes / 2**20:7.1f} MiB")
    print(f"  {'total':<25} {total / 2**20:7.1f} MiB")
    cluster.down(lay)


if __name__ == "__main__":
    main()

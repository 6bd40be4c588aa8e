"""`trimtab cluster up|down|status|env|load-image|workers`: the local cluster."""

from __future__ import annotations

import argparse
import logging
import pathlib
import shutil
import signal
import sys
from typing import Any

from trimtab.kube import client, objects
from trimtab_dev.devcluster import cluster, layout, realnode, supervisor


def register(groups: Any) -> None:
    parser = groups.add_parser(
        "cluster",
        help="a local Kubernetes: real control plane, kwok's simulated nodes, real nodes",
    )
    parser.add_argument("--name", default=layout.DEFAULT_NAME, help="cluster name (state dir)")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    up = sub.add_parser("up", help="start the cluster (builds pinned binaries on first use)")
    up.add_argument("--spot-nodes", type=int, default=2, help="simulated spot nodes")
    up.add_argument("--on-demand-nodes", type=int, default=1, help="simulated on-demand nodes")
    up.add_argument(
        "--real-nodes",
        type=int,
        metavar="N",
        help="real nodes: containerd + kubelet, needs root; 0 for simulated nodes only "
        f"(default: what the cluster ran last, {cluster.DEFAULT_REAL_NODES} for a new one)",
    )
    up.add_argument(
        "--image",
        action="append",
        type=pathlib.Path,
        default=[],
        metavar="ARCHIVE",
        help="an image archive to import into the real nodes (repeatable)",
    )
    up.set_defaults(func=_up)

    down = sub.add_parser("down", help="stop the processes the cluster started")
    down.add_argument("--purge", action="store_true", help="also delete its state (etcd, PKI)")
    down.set_defaults(func=_down)

    sub.add_parser("status", help="report each process, its health and memory").set_defaults(
        func=_status
    )
    sub.add_parser(
        "env", help="print the KUBECONFIG export (and the host address pods reach)"
    ).set_defaults(func=_env)
    load = sub.add_parser(
        "load-image", help="import a docker-archive or OCI tar into every real node"
    )
    load.add_argument("archive", type=pathlib.Path, metavar="ARCHIVE")
    load.set_defaults(func=_load_image)
    workers = sub.add_parser(
        "workers",
        help="run a local worker process for every Running worker pod (kwok runs no containers)",
    )
    workers.add_argument("-n", "--namespace", help="only this namespace (default: all)")
    workers.set_defaults(func=_workers)


def _up(args: argparse.Namespace) -> int:
    lay = layout.layout_for(args.name)
    report = cluster.up(
        lay,
        spot=args.spot_nodes,
        on_demand=args.on_demand_nodes,
        real_nodes=args.real_nodes,
        images=tuple(args.image),
    )
    started = ", ".join(report.started) if report.started else "nothing (already up)"
    print(f"cluster {lay.name} is up in {report.seconds:.1f} s; started: {started}")
    print(f"export KUBECONFIG={report.kubeconfig}")
    if report.host_address:
        print(f"export TRIMTAB_HOST_ADDRESS={report.host_address}")
    return 0


def _down(args: argparse.Namespace) -> int:
    lay = layout.layout_for(args.name)
    report = cluster.down(lay)
    print(f"stopped: {', '.join(report.stopped) if report.stopped else 'nothing was running'}")
    if report.problems:
        print("host changes not undone (still recorded; run down again):", file=sys.stderr)
        print("\n".join(f"  {p}" for p in report.problems), file=sys.stderr)
        return 1
    if args.purge and lay.root.exists():
        shutil.rmtree(lay.root)
        print(f"removed {lay.root}")
    return 0


def _status(args: argparse.Namespace) -> int:
    lay = layout.layout_for(args.name)
    rows = cluster.status(lay)
    print(f"{'COMPONENT':<36} {'PID':>8} {'HEALTHY':>8} {'RSS MiB':>8}")
    for row in rows:
        pid = str(row.pid) if row.pid else "-"
        print(f"{row.name:<36} {pid:>8} {row.healthy!s:>8} {row.rss_bytes / 2**20:>8.1f}")
    return 0 if all(r.healthy for r in rows) else 3


def _env(args: argparse.Namespace) -> int:
    lay = layout.layout_for(args.name)
    if not lay.kubeconfig.exists():
        print(
            f"cluster {lay.name} has no kubeconfig yet: run `trimtab cluster up`", file=sys.stderr
        )
        return 1
    print(f"export KUBECONFIG={lay.kubeconfig}")
    if lay.host_address:
        # Pods on real nodes reach the host here (and nowhere else): bind host services to it.
        print(f"export TRIMTAB_HOST_ADDRESS={lay.host_address}")
    return 0


def _load_image(args: argparse.Namespace) -> int:
    lay = layout.layout_for(args.name)
    if not lay.real_nodes:
        print(f"cluster {lay.name} has no real nodes to load images into", file=sys.stderr)
        return 1
    for ref in realnode.load_images(lay, [args.archive]):
        print(f"loaded {ref}")
    return 0


def _workers(args: argparse.Namespace) -> int:
    """Follow worker pods until SIGINT or SIGTERM, then stop every worker started."""
    lay = layout.layout_for(args.name)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    store = objects.ObjectStore(client.connect(str(lay.kubeconfig)))
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    print(f"worker logs: {lay.logs / 'workers'}", flush=True)
    supervisor.Supervisor(store, lay.logs / "workers", args.namespace).run(lambda: bool(stopping))
    return 0

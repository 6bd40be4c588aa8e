"""`trimtab operator run`: the kopf operator reconciling AgentPools and AgentWorkflows."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import uuid
from typing import Any

from trimtab import config


def register(groups: Any) -> None:
    parser = groups.add_parser("operator", help="the Kubernetes operator")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="reconcile AgentPools and AgentWorkflows until stopped")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch this namespace (repeatable); default: all namespaces",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch the cluster")
    run.add_argument(
        "--redis-url", default=os.environ.get("TRIMTAB_REDIS_URL", config.DEFAULT_REDIS_URL)
    )
    run.add_argument(
        "--worker-image",
        default=os.environ.get("TRIMTAB_WORKER_IMAGE", config.DEFAULT_WORKER_IMAGE),
    )
    run.add_argument("--metrics-port", type=int, default=8080, help="Prometheus port (0: off)")
    run.add_argument("--health-port", type=int, default=8081, help="liveness probe port")
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: for a single replica without a standby",
    )
    run.add_argument(
        "--peering",
        default="trimtab",
        help="kopf peering name without --standalone; it pauses for a higher-priority "
        "operator but elects no leader: for replicas, use --leader-elect",
    )
    run.add_argument(
        "--leader-elect",
        action="store_true",
        help="run only while holding a Lease, so of several replicas one reconciles",
    )
    run.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="namespace of the Lease (default: $POD_NAMESPACE)",
    )
    run.add_argument("--leader-election-name", default="trimtab", help="name of the Lease")
    run.add_argument(
        "--log-format",
        choices=["json", "plain"],
        default="json",
        help="json (one object per line, for log pipelines) or plain",
    )
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import kopf  # noqa: PLC0415 - only the operator command pays for kopf's import

    import trimtab.handlers  # noqa: F401, PLC0415 - registers the handlers

    os.environ.update(
        {
            "TRIMTAB_REDIS_URL": args.redis_url,
            "TRIMTAB_WORKER_IMAGE": args.worker_image,
            "TRIMTAB_METRICS_PORT": str(args.metrics_port),
            "TRIMTAB_SCAN_CLUSTER": "0" if args.namespace else "1",
        }
    )
    logging.getLogger().handlers.clear()  # kopf installs its own (JSON) handler
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN
    )
    options: dict[str, Any] = {
        "clusterwide": not args.namespace,
        "namespaces": args.namespace,
        "liveness_endpoint": f"http://0.0.0.0:{args.health_port}/healthz",
    }
    if args.leader_elect:
        return _run_elected(args, options)
    kopf.run(
        standalone=args.standalone,
        # Any peering name, even beside standalone=True, makes kopf wait for peering CRDs.
        peering_name=None if args.standalone else args.peering,
        **options,
    )
    return 0


def _run_elected(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """The operator under leader election: standalone kopf, started and stopped by the
    Lease (trimtab.handlers.leadership) instead of kopf peering."""
    import kopf  # noqa: PLC0415

    from trimtab.handlers import leadership  # noqa: PLC0415
    from trimtab.kube import client, lease, objects  # noqa: PLC0415

    # The pod (hostname) and process, made unique by a random part as client-go does.
    me = f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    store = objects.ObjectStore(client.connect())
    lock = lease.LeaseLock(store, args.leader_election_namespace, args.leader_election_name, me)

    async def run_operator(stop: asyncio.Event) -> None:
        await kopf.operator(standalone=True, stop_flag=stop, **options)

    return asyncio.run(leadership.lead(lock, run_operator, health_port=args.health_port))

"""`trimtab operator run`: the kopf operator reconciling AgentPools and AgentWorkflows."""

from __future__ import annotations

import argparse
import logging
import os
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
    run.add_argument("--peering", default="trimtab", help="kopf peering name for standbys")
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
    kopf.run(
        standalone=args.standalone,
        # Any peering name, even beside standalone=True, makes kopf wait for peering CRDs.
        peering_name=None if args.standalone else args.peering,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )
    return 0

"""`trimtab operator run`: the kopf operator reconciling AgentPools and AgentWorkflows."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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
    run.add_argument(
        "--allowed-image",
        action="append",
        default=[],
        metavar="REPOSITORY",
        help="an image repository or registry pools may run (repeatable; default: any, "
        "or $TRIMTAB_ALLOWED_IMAGES, comma-separated)",
    )
    run.add_argument(
        "--allowed-endpoint",
        action="append",
        default=[],
        metavar="URL",
        help="a base URL pools may send their model calls and API keys to (repeatable; "
        "default: any, or $TRIMTAB_ALLOWED_ENDPOINTS, comma-separated)",
    )
    run.add_argument(
        "--allowed-tool-url",
        action="append",
        default=[],
        metavar="URL",
        help="a base URL tool steps may call, with their headers' Secrets (repeatable; "
        "default: any, or $TRIMTAB_ALLOWED_TOOL_URLS, comma-separated)",
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

    cfg = _config(args)
    if problem := cfg.worker_redis.problem():
        raise ValueError(problem)
    logging.getLogger().handlers.clear()  # kopf installs its own (JSON) handler
    kopf.configure(
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN
    )
    # kopf logs every handler's success on every watch event at INFO: one line per object
    # per event, which at thousands of objects was much of a start-up's CPU. Its warnings
    # and errors (a handler that failed or will retry) still come through.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    options: dict[str, Any] = {
        "clusterwide": not args.namespace,
        "namespaces": args.namespace,
        "liveness_endpoint": f"http://0.0.0.0:{args.health_port}/healthz",
    }
    if args.leader_elect:
        return _run_elected(args, cfg, options)
    kopf.run(
        standalone=args.standalone,
        # Any peering name, even beside standalone=True, makes kopf wait for peering CRDs.
        peering_name=None if args.standalone else args.peering,
        memo=lifecycle_memo(cfg),
        **options,
    )
    return 0


def _config(args: argparse.Namespace) -> config.OperatorConfig:
    """The flags over the environment the operator's Deployment sets."""
    env = config.from_env()
    return dataclasses.replace(
        env,
        redis_url=args.redis_url,
        worker_image=args.worker_image,
        metrics_port=args.metrics_port,
        scan_cluster=not args.namespace,
        allowed_images=tuple(args.allowed_image) or env.allowed_images,
        allowed_endpoints=tuple(args.allowed_endpoint) or env.allowed_endpoints,
        allowed_tool_urls=tuple(args.allowed_tool_url) or env.allowed_tool_urls,
    )


def lifecycle_memo(cfg: config.OperatorConfig) -> Any:
    """A fresh kopf memo carrying the config to the start-up handler
    (trimtab.handlers.lifecycle), which builds the shared clients from it."""
    import kopf  # noqa: PLC0415

    return kopf.Memo(cfg=cfg)


def _run_elected(
    args: argparse.Namespace, cfg: config.OperatorConfig, options: dict[str, Any]
) -> int:
    """The operator under leader election: standalone kopf, started and stopped by the
    Lease (trimtab.handlers.leadership) instead of kopf peering."""
    import kopf  # noqa: PLC0415

    from trimtab.handlers import leadership  # noqa: PLC0415
    from trimtab.kube import client, lease, objects  # noqa: PLC0415

    # The pod (hostname) and process, made unique by a random part as client-go does.
    me = f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    store = objects.ObjectStore(client.connect(request_seconds=lease.REQUEST_SECONDS))
    lock = lease.LeaseLock(store, args.leader_election_namespace, args.leader_election_name, me)

    async def run_operator(stop: asyncio.Event) -> None:
        # A fresh memo each term: nothing of a lost term's clients carries over.
        await kopf.operator(standalone=True, stop_flag=stop, memo=lifecycle_memo(cfg), **options)

    return asyncio.run(leadership.lead(lock, run_operator, health_port=args.health_port))

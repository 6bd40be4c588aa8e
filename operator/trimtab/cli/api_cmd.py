"""`trimtab api serve`: the HTTP API server (trimtab.server) on uvicorn."""

from __future__ import annotations

import argparse
import os
from typing import Any

from trimtab.cli import common, history_cmd


def register(groups: Any) -> None:
    group = groups.add_parser("api", help="the HTTP API server")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve the API (and its OpenAPI document at /docs)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--kubeconfig", help="default: in-cluster, then $KUBECONFIG")
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="DEVELOPMENT ONLY: no tokens checked, every call allowed",
    )
    serve.add_argument("--requests-per-second", type=float, default=50.0, help="per caller")
    serve.add_argument("--burst", type=int, default=200, help="per caller")
    common.add_redis_url(serve)
    history_cmd.add_history_url(serve)
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import prometheus_client  # noqa: PLC0415 - the server's stack, loaded when it serves
    import uvicorn  # noqa: PLC0415

    from trimtab.server import app  # noqa: PLC0415

    settings = app.ServerSettings(
        redis_url=args.redis_url,
        auth=not args.no_auth,
        kubeconfig=args.kubeconfig,
        requests_per_second=args.requests_per_second,
        burst=args.burst,
        history_url=args.history_url,
        history_password=os.environ.get("TRIMTAB_HISTORY_PASSWORD"),
    )
    asgi = app.asgi(settings, prometheus_client.CollectorRegistry())
    uvicorn.run(
        asgi, host=args.host, port=args.port, loop="uvloop", http="httptools",
        access_log=False, log_level="info", timeout_graceful_shutdown=5,
    )  # fmt: skip
    return 0

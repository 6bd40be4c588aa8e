"""`trimtab simulate serve`: the inference simulator as a standalone process, and
`trimtab simulate scaling` (trimtab.cli.simulate_scaling): a pool's autoscaler replayed
against an arrival trace.

The demo and benchmarks point workers at the inference simulator instead of a
GPU-backed model server; it runs until Ctrl-C or SIGTERM, so process supervisors can
stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from trimtab.cli import simulate_scaling
from trimtab.sim import profiles, server


def register(groups: Any) -> None:
    parser = groups.add_parser(
        "simulate",
        help="an OpenAI-compatible inference simulator, and the scaling simulator",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="serve chat completions and tool endpoints over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    serve.add_argument("--config", metavar="FILE", help="YAML or JSON simulator config")
    serve.add_argument("--seed", type=int, help="random seed (overrides the config's)")
    serve.set_defaults(func=_serve)
    simulate_scaling.register(sub)


def _serve(args: argparse.Namespace) -> int:
    config = profiles.load(args.config) if args.config else profiles.SimConfig()
    if args.seed is not None:
        config = config.model_copy(update={"seed": args.seed})
    asyncio.run(_serve_until_terminated(config, host=args.host, port=args.port))
    return 0


async def _serve_until_terminated(config: profiles.SimConfig, *, host: str, port: int) -> None:
    task = asyncio.ensure_future(server.serve(config, host=host, port=port, on_listening=_announce))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        this = asyncio.current_task()
        # Ctrl-C cancels this task too: re-raise so asyncio.run reports KeyboardInterrupt;
        # SIGTERM cancelled only the server, which is a normal stop.
        if this is not None and this.cancelling():
            raise


def _announce(url: str) -> None:
    print(f"inference simulator listening on {url}", flush=True)

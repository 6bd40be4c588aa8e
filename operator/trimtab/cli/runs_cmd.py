"""`trimtab runs list` and `trimtab runs cancel`: the runs of a namespace, and stopping
one (`trimtab runs get`, beside them, is trimtab.cli.runtime's)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
from typing import Any

from trimtab.cli import common, history_cmd
from trimtab.queue import runindex, wire
from trimtab.sdk import client as sdk_client


def register(runs_sub: Any) -> None:
    """Adds `list` and `cancel` to the `runs` group's subcommands."""
    listing = runs_sub.add_parser("list", help="a namespace's runs, newest first")
    listing.add_argument("-n", "--namespace", default="default")
    listing.add_argument("--workflow", help="only this workflow's runs")
    listing.add_argument(
        "--status", action="append", choices=[s.value for s in wire.RunStatus], default=[]
    )
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor", help="the next page, as the previous one printed it")
    listing.add_argument("-o", "--output", choices=["table", "json"], default="table")
    listing.add_argument(
        "--history", action="store_true",
        help="from the history database: every archived run, not only those Redis keeps",
    )  # fmt: skip
    listing.add_argument("--since", help="with --history: created since (90m, 24h, 7d, ISO)")
    common.add_redis_url(listing)
    history_cmd.add_history_url(listing)
    listing.set_defaults(func=_list)
    cancel = runs_sub.add_parser("cancel", help="stop a run: it ends cancelled")
    cancel.add_argument("run", help="NAMESPACE/RUN_ID")
    common.add_redis_url(cancel)
    cancel.set_defaults(func=_cancel)


def _list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        raise ValueError(f"--limit is 1 to 1000, got {args.limit}")
    if args.history:
        return history_cmd.list_archived(args)
    where = runindex.RunFilter(
        workflow=args.workflow, statuses=frozenset(wire.RunStatus(s) for s in args.status)
    )

    async def go() -> runindex.RunPage:
        client = sdk_client.Client(args.redis_url)
        try:
            return await client.list_runs(
                args.namespace, where=where, cursor=args.cursor, limit=args.limit
            )
        finally:
            await client.aclose()

    page = asyncio.run(go())
    if args.output == "json":
        runs = [vars(r) for r in page.runs]
        print(json.dumps({"runs": runs, "next_cursor": page.next_cursor}, indent=2))
        return 0
    print(f"{'RUN':<26}{'WORKFLOW':<24}{'STATUS':<11}{'CREATED':<21}{'TOKENS':>8}{'COST':>11}")
    for r in page.runs:
        print(
            f"{r.run_id:<26}{r.workflow:<24}{r.status:<11}{_when(r.created_ms):<21}"
            f"{r.tokens:>8}{r.cost:>11.6f}"
        )
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")
    return 0


def _when(ms: float) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _cancel(args: argparse.Namespace) -> int:
    async def go() -> None:
        client = sdk_client.Client(args.redis_url)
        try:
            await client.cancel(args.run)
        finally:
            await client.aclose()

    asyncio.run(go())
    print(f"run {args.run} cancelled")
    return 0

"""`trimtab history migrate`, `trimtab runs list --history` and `trimtab cost report`:
the history database's schema, and the runs and spend it holds (trimtab.history)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import re
from typing import Any

from trimtab.history import store

_SPAN = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def ago(text: str, now: datetime.datetime) -> datetime.datetime:
    """`now` less a span such as 90m, 24h or 7d, or an ISO 8601 time as given."""
    found = _SPAN.match(text.strip())
    if found:
        return now - datetime.timedelta(**{_UNITS[found[2]]: int(found[1])})
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not a span (90m, 24h, 7d) or an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def add_history_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--history-url",
        default=os.environ.get("TRIMTAB_HISTORY_URL"),
        help="the history database, postgresql://USER@HOST:PORT/DB (default: "
        "$TRIMTAB_HISTORY_URL; the password from $TRIMTAB_HISTORY_PASSWORD)",
    )


def register(groups: Any) -> None:
    history = groups.add_parser("history", help="the run history database")
    sub = history.add_subparsers(dest="command", metavar="COMMAND", required=True)
    migrate = sub.add_parser("migrate", help="apply the schema's migrations not yet applied")
    add_history_url(migrate)
    migrate.set_defaults(func=_migrate)
    cost = groups.add_parser("cost", help="what runs spent, from the history")
    cost_sub = cost.add_subparsers(dest="command", metavar="COMMAND", required=True)
    report = cost_sub.add_parser("report", help="spend grouped by workflow, pool, model or day")
    report.add_argument("--by", choices=[b.value for b in store.CostBy], default="workflow")
    report.add_argument("-n", "--namespace", help="one namespace (default: all)")
    report.add_argument("--since", default="7d", help="90m, 24h, 7d or an ISO time")
    report.add_argument("--until", help="likewise (default: now)")
    report.add_argument("-o", "--output", choices=["table", "json"], default="table")
    add_history_url(report)
    report.set_defaults(func=_report)


async def _connected(args: argparse.Namespace) -> store.Connection:
    if not args.history_url:
        raise ValueError("no history database: pass --history-url or set TRIMTAB_HISTORY_URL")
    return await store.connect(args.history_url, os.environ.get("TRIMTAB_HISTORY_PASSWORD"))


def _migrate(args: argparse.Namespace) -> int:
    async def go() -> list[int]:
        conn = await _connected(args)
        try:
            return await store.migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    print(f"applied {applied}" if applied else "the schema is current")
    return 0


def _report(args: argparse.Namespace) -> int:
    now = datetime.datetime.now(datetime.UTC)
    since, until = ago(args.since, now), ago(args.until, now) if args.until else now

    async def go() -> list[Any]:
        conn = await _connected(args)
        try:
            return await store.cost_report(
                conn, store.CostBy(args.by), since=since, until=until, namespace=args.namespace
            )
        finally:
            await conn.close()

    rows = asyncio.run(go())
    if args.output == "json":
        print(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
        return 0
    print(f"{args.by.upper():<40}{'RUNS':>8}{'TOKENS':>12}{'COST':>14}")
    for r in rows:
        print(f"{r.key:<40}{r.runs:>8}{r.tokens:>12}{r.cost:>14.6f}")
    print(f"{'total':<40}{sum(r.runs for r in rows):>8}{sum(r.tokens for r in rows):>12}"
          f"{sum(r.cost for r in rows):>14.6f}")  # fmt: skip
    return 0


def list_archived(args: argparse.Namespace) -> int:
    """`trimtab runs list --history`: the archived runs, newest first."""
    now = datetime.datetime.now(datetime.UTC)
    status = args.status[0] if len(args.status) == 1 else None
    if len(args.status) > 1:
        raise ValueError("--history takes one --status")

    async def go() -> list[Any]:
        conn = await _connected(args)
        try:
            return await store.list_runs(
                conn, args.namespace, workflow=args.workflow, status=status,
                since=ago(args.since, now) if args.since else None, limit=args.limit,
            )  # fmt: skip
        finally:
            await conn.close()

    found = asyncio.run(go())
    if args.output == "json":
        print(json.dumps([_jsonable(r) for r in found], indent=2))
        return 0
    print(f"{'RUN':<26}{'WORKFLOW':<24}{'STATUS':<11}{'CREATED':<21}{'SECONDS':>9}{'COST':>11}")
    for r in found:
        created = r.created_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{r.run_id:<26}{r.workflow:<24}{r.status:<11}{created:<21}"
              f"{r.duration_seconds:>9.2f}{r.cost:>11.6f}")  # fmt: skip
    return 0


def _jsonable(run: Any) -> dict[str, Any]:
    out = {k: v for k, v in dataclasses.asdict(run).items() if k != "steps"}
    return {k: v.isoformat() if isinstance(v, datetime.datetime) else v for k, v in out.items()}

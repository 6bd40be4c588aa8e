"""`trimtab review ...` and `trimtab dlq ...`: resolve steps waiting for a person and
steps that gave up. Entries are `NAMESPACE/ID`, as `list` prints them."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from trimtab.cli import common
from trimtab.queue import wire
from trimtab.sdk import client as sdk_client
from trimtab.sdk import operations

T = TypeVar("T")


def register(groups: Any) -> None:
    review = groups.add_parser("review", help="steps waiting for human review")
    rsub = review.add_subparsers(dest="action", metavar="ACTION", required=True)
    _listing(rsub, "list", "entries waiting for review, oldest first", _review_list)
    _entry(rsub, "show", "one entry: run, step, reason and the output in question", _review_show)
    _entry(rsub, "approve", "accept the output as is; the run continues", _approve)
    rej = _entry(rsub, "reject", "fail the step and its run", _reject)
    rej.add_argument("--reason", default=operations.REJECTED)
    edit = _entry(rsub, "edit", "replace the output (checked against the schema); continue", _edit)
    edit.add_argument("--output", required=True, metavar="JSON|@FILE", help="the new output")

    dlq = groups.add_parser("dlq", help="dead-lettered steps")
    dsub = dlq.add_subparsers(dest="action", metavar="ACTION", required=True)
    _listing(dsub, "list", "dead-lettered steps, oldest first", _dlq_list)
    _entry(dsub, "show", "one entry and why it gave up", _dlq_show)
    _entry(dsub, "retry", "resume the run from this step, with a fresh retry budget", _dlq_retry)
    purge = dsub.add_parser("purge", help="delete entries: the given ones, or --all")
    purge.add_argument("-n", "--namespace", required=True)
    purge.add_argument("ids", nargs="*", help="entry ids (without the namespace)")
    purge.add_argument("--all", action="store_true", help="every entry of the namespace")
    common.add_redis_url(purge)
    purge.set_defaults(func=_dlq_purge)


def _listing(sub: Any, name: str, help_: str, func: Callable[..., int]) -> None:
    parser = sub.add_parser(name, help=help_)
    parser.add_argument("-n", "--namespace", required=True)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table")
    common.add_redis_url(parser)
    parser.set_defaults(func=func)


def _entry(sub: Any, name: str, help_: str, func: Callable[..., int]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_)
    parser.add_argument("entry", help="NAMESPACE/ID")
    common.add_redis_url(parser)
    parser.set_defaults(func=func)
    return parser


def _call(url: str, call: Callable[[sdk_client.Client], Awaitable[T]]) -> T:
    async def go() -> T:
        client = sdk_client.Client(url)
        try:
            return await call(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _when(ms: float | None) -> str:
    if not ms:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _print_entries(
    output: str, items: Sequence[Any], columns: Sequence[tuple[str, int, Callable[[Any], str]]]
) -> int:
    """JSON, or a table: an ENTRY column (NAMESPACE/ID) then `columns`, then REASON."""
    if output == "json":
        print(json.dumps([dataclasses.asdict(i) for i in items], indent=2))
        return 0
    print(f"{'ENTRY':<40}" + "".join(f"{title:<{width}}" for title, width, _ in columns) + "REASON")
    for i in items:
        cells = "".join(f"{cell(i):<{width}}" for _, width, cell in columns)
        print(f"{i.namespace + '/' + i.id:<40}{cells}{i.reason[:60]}")
    return 0


def _review_list(args: argparse.Namespace) -> int:
    items = _call(args.redis_url, lambda c: c.reviews(args.namespace, args.limit))
    return _print_entries(
        args.output,
        items,
        [
            ("RUN", 26, lambda i: i.run_id),
            ("STEP", 20, lambda i: i.step),
            ("SINCE", 22, lambda i: _when(i.at_ms)),
        ],
    )


def _review_show(args: argparse.Namespace) -> int:
    details = _call(args.redis_url, lambda c: c.review_details(args.entry))
    print(json.dumps(details, indent=2))
    return 0


RESOLVED = frozenset({wire.Reply.OK, wire.Reply.REJECTED, wire.Reply.RESUMED})
# Why an operation changed nothing, in words; the reply's own word is printed first.
WHY = {
    wire.Reply.DUPLICATE: "the step had moved on already",
    wire.Reply.GONE: "the run has expired",
    wire.Reply.STALE: "the step was handled already",
    wire.Reply.TERMINAL: "the run has failed (another step died): retry its dead letters "
    "first, then review again",
    wire.Reply.NOT_DEAD: "the step is no longer dead-lettered",
    wire.Reply.OTHERS_DEAD: "the run has other dead steps without a dead-letter entry "
    "(purged), so it cannot resume",
    wire.Reply.MALFORMED: "the entry is a message that never was a step",
    wire.Reply.TIMED_OUT: "the run reached its deadline: submit it again",
    wire.Reply.COMPENSATED: "the run's completed steps were compensated (undone): submit it again",
    wire.Reply.CONFLICT: "the run kept changing while it was resumed: try again",
}


def _resolved(what: str, outcome: wire.Reply, steps: tuple[str, ...] = ()) -> int:
    if outcome in RESOLVED:
        print(f"{what}: {outcome.value}" + (f" ({', '.join(steps)})" if steps else ""))
        return 0
    named = f" [{', '.join(steps)}]" if steps else ""
    print(f"{what}: {outcome.value}: {WHY.get(outcome, 'nothing changed')}{named}")
    return 2


def _approve(args: argparse.Namespace) -> int:
    return _resolved(args.entry, _call(args.redis_url, lambda c: c.approve(args.entry)))


def _edit(args: argparse.Namespace) -> int:
    output = operations.parse_output(args.output)
    outcome = _call(args.redis_url, lambda c: c.edit(args.entry, output))
    return _resolved(args.entry, outcome)


def _reject(args: argparse.Namespace) -> int:
    outcome = _call(args.redis_url, lambda c: c.reject(args.entry, args.reason))
    return _resolved(args.entry, outcome)


def _dlq_list(args: argparse.Namespace) -> int:
    items = _call(args.redis_url, lambda c: c.dead_letters(args.namespace, args.limit))
    return _print_entries(
        args.output,
        items,
        [
            ("RUN", 26, lambda i: i.run_id or "-"),
            ("STEP", 20, lambda i: i.step or "-"),
            ("POOL", 20, lambda i: i.pool),
        ],
    )


def _dlq_show(args: argparse.Namespace) -> int:
    entry = _call(args.redis_url, lambda c: c.dead_letter(args.entry))
    print(json.dumps(dataclasses.asdict(entry), indent=2))
    return 0


def _dlq_retry(args: argparse.Namespace) -> int:
    resumed = _call(args.redis_url, lambda c: c.retry_dead_letter(args.entry))
    return _resolved(args.entry, resumed.outcome, resumed.steps)


def _dlq_purge(args: argparse.Namespace) -> int:
    if not args.all and not args.ids:
        raise ValueError("name the entries to purge, or pass --all")
    ids = None if args.all else list(args.ids)
    count = _call(args.redis_url, lambda c: c.purge_dead_letters(args.namespace, ids))
    print(f"purged {count} entries from {args.namespace}")
    return 0

"""`trimtab sessions`: read and forget the conversation a session's runs remember."""

from __future__ import annotations

import argparse
import json
from typing import Any

from trimtab.cli import common
from trimtab.queue import sessions
from trimtab.sdk import sync as sdk_sync


def register(groups: Any) -> None:
    group = groups.add_parser("sessions", help="the conversations runs remember")
    sub = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    get = sub.add_parser("get", help="a session's turns, oldest first")
    get.add_argument("session", help="NAMESPACE/SESSION")
    get.add_argument("-o", "--output", choices=["text", "json"], default="text")
    common.add_redis_url(get)
    get.set_defaults(func=_get)
    delete = sub.add_parser("delete", help="forget a session")
    delete.add_argument("session", help="NAMESPACE/SESSION")
    common.add_redis_url(delete)
    delete.set_defaults(func=_delete)


def _ref(text: str) -> tuple[str, str]:
    namespace, sep, session = text.partition("/")
    if not sep or not namespace:
        raise ValueError(f"a session is NAMESPACE/SESSION, got {text!r}")
    return namespace, sessions.check_session(session)


def _get(args: argparse.Namespace) -> int:
    namespace, session = _ref(args.session)
    found = sdk_sync.SyncClient(args.redis_url).session(namespace, session)
    if args.output == "json":
        print(json.dumps(found, indent=2))
        return 0
    if not found:
        print(f"session {args.session}: no turns (new, expired or deleted)")
        return 0
    print(f"session {args.session}: {len(found)} message(s)")
    for message in found:
        print(f"  {message.get('role', '?'):<10}{message.get('content') or ''}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    namespace, session = _ref(args.session)
    gone = sdk_sync.SyncClient(args.redis_url).delete_session(namespace, session)
    print(f"session {args.session} " + ("deleted" if gone else "did not exist"))
    return 0

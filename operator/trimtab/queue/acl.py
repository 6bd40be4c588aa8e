"""Redis ACL users that confine one Kubernetes namespace's clients to its own keys.

Every key Trimtab writes for a namespace starts with `tt:{namespace}:` (trimtab.queue.keys),
so one Redis user per namespace, allowed only that key pattern, isolates namespaces that
share a Redis: with the shared password any client can read or change every namespace's
runs, with a namespace user it cannot even name another namespace's keys. The scripts
run as the calling user and Redis checks every key they touch, so the rules hold inside
Lua too.

The rules are an allow-list of command categories minus whatever reaches beyond keys:
`@dangerous` and `@admin` (FLUSHALL, CONFIG, KEYS, CLIENT KILL...), SCAN and RANDOMKEY
(which list other namespaces' key names), and flushing or killing the shared script
cache. INFO stays (admission control reads `INFO memory` inside the submit script), and
SELECT, so a URL may name its database.

The chart renders the same rules for its bundled Redis (hack/generate.py writes
charts/trimtab/templates/_redis_acl.tpl from `rules`), and `trimtab redis grant` applies
them to any Redis at run time.
"""

from __future__ import annotations

import re

from redis import asyncio as aioredis

from trimtab.queue import keys

USER_PREFIX = "tt-"
# A Kubernetes namespace name (RFC 1123 label): no glob character can reach the pattern.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_ALLOWED = ("@read", "@write", "@scripting", "@transaction", "@connection")
_DENIED = (
    "@dangerous",
    "@admin",
    "scan",
    "randomkey",
    "script|flush",
    "script|kill",
    "script|debug",
    "function",
    # Broadcast tracking pushes invalidations for every changed key, unchecked by ACL:
    # other namespaces' key names (run ids, workflows, pools).
    "client|tracking",
)


class BadNamespaceError(ValueError):
    """Not a Kubernetes namespace name."""


def user(namespace: str) -> str:
    """The Redis user of `namespace`'s workers and clients."""
    return USER_PREFIX + _checked(namespace)


def key_pattern(namespace: str) -> str:
    """The glob of every key of `namespace`."""
    return f"{keys.namespace_prefix(_checked(namespace))}*"


def rules(namespace: str) -> list[str]:
    """The ACL rules of `namespace`'s user, after `reset` and before its password."""
    return [
        "resetchannels",
        f"~{key_pattern(namespace)}",
        "-@all",
        *(f"+{c}" for c in _ALLOWED),
        *(f"-{c}" for c in _DENIED),
        "+info",
        "+select",  # a URL's database number (redis://host/1)
    ]


async def grant(client: aioredis.Redis, namespace: str, password: str) -> str:
    """Create or replace `namespace`'s user with `password`; returns the user's name.
    Idempotent: the same call again leaves the same user."""
    if not password:
        raise ValueError("a namespace user needs a password")
    name = user(namespace)
    # The raw command keeps `rules` the one list of rules, chart and run time alike;
    # redis-py's acl_setuser would take them apart into its own keyword arguments.
    await client.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", name, "reset", "on", f">{password}", *rules(namespace)
    )
    return name


def _checked(namespace: str) -> str:
    if not _NAMESPACE.fullmatch(namespace):
        raise BadNamespaceError(f"{namespace!r} is not a Kubernetes namespace name")
    return namespace

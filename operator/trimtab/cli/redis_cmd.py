"""`trimtab redis grant`: a namespace's own Redis user, for an admin's external Redis.

The chart gives the bundled Redis its namespace users itself; a managed or external Redis
gets them here. The command creates (or replaces) the user with the shared rules of
trimtab.queue.acl and prints the Secret the namespace's workers read it from, for
`kubectl apply -f -`: the password travels from here to the cluster and nowhere else.
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import secrets
import sys
from typing import Any

import yaml

from trimtab.cli import common
from trimtab.queue import acl
from trimtab.reconcile.agentpool import redis_access
from trimtab.sdk import client as sdk_client

DEFAULT_SECRET = "trimtab-redis-user"  # noqa: S105 - a Secret's name


def register(groups: Any) -> None:
    parser = groups.add_parser("redis", help="Redis administration")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    grant = commands.add_parser(
        "grant",
        help="create a namespace's own Redis user, confined to its keys, and print its Secret",
    )
    grant.add_argument("namespace", help="the Kubernetes namespace")
    grant.add_argument(
        "--password-file",
        type=pathlib.Path,
        help="the user's password (default: a new random one)",
    )
    grant.add_argument(
        "--secret",
        default=DEFAULT_SECRET,
        help="name of the Secret to print: the operator's worker password Secret "
        f"(chart: redis.auth.workerSecret; default {DEFAULT_SECRET})",
    )
    grant.add_argument(
        "--key", default="password", help="key of the password (chart: redis.auth.secretKey)"
    )
    common.add_redis_url(grant)
    grant.set_defaults(func=_grant)


def _password(path: pathlib.Path | None) -> str:
    if path is None:
        return secrets.token_urlsafe(24)
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ValueError(f"cannot read --password-file {path}: {exc.strerror}") from None
    if not text:
        raise ValueError(f"--password-file {path} is empty")
    return text


def secret_manifest(namespace: str, name: str, key: str, user: str, password: str) -> str:
    """The Secret a namespace's workers log in with, as YAML."""
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {redis_access.USERNAME_KEY: user, key: password},
    }
    return yaml.safe_dump(doc, sort_keys=False)


def _grant(args: argparse.Namespace) -> int:
    acl.user(args.namespace)  # a bad name fails before anything is read or changed
    password = _password(args.password_file)

    async def go() -> str:
        client = sdk_client.Client(args.redis_url)
        try:
            return await acl.grant(client.redis, args.namespace, password)
        finally:
            await client.aclose()

    user = asyncio.run(go())
    sys.stdout.write(secret_manifest(args.namespace, args.secret, args.key, user, password))
    print(
        f"trimtab: Redis user {user} may now touch only {acl.key_pattern(args.namespace)}; "
        "apply the Secret above to its namespace. Redis keeps users made at run time only "
        "in memory: save them (ACL SAVE with an aclfile, or your service's user settings).",
        file=sys.stderr,
    )
    return 0

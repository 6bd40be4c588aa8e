"""Redis clients for the runtime: text for streams and runs, binary for state.

Every client (operator, workers, SDK, CLI) connects here, so authentication and TLS are
settled in one place. A `rediss://` URL turns TLS on; the user, the password and the CA
bundle come from the environment (TRIMTAB_REDIS_USERNAME, TRIMTAB_REDIS_PASSWORD,
TRIMTAB_REDIS_CA_FILE), where a pod gets them from a Secret, so they never appear in a
URL, a flag or an object the operator writes. Without a user, Redis's `default` user
applies; a namespace's own user (trimtab.queue.acl) reaches only that namespace's keys.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions

Redis = aioredis.Redis  # the client type, for callers outside trimtab.queue
# Redis is down, restarting or loading its AOF: callers wait and try again.
# Redis at maxmemory with noeviction refuses plain writes (the scripts run allow-oom).
FULL = (redis_exceptions.OutOfMemoryError,)
UNAVAILABLE = (
    redis_exceptions.ConnectionError,
    redis_exceptions.TimeoutError,
    redis_exceptions.BusyLoadingError,
)


USERNAME_ENV = "TRIMTAB_REDIS_USERNAME"
PASSWORD_ENV = "TRIMTAB_REDIS_PASSWORD"  # noqa: S105 - a variable name
CA_FILE_ENV = "TRIMTAB_REDIS_CA_FILE"
TLS_SCHEME = "rediss"


@dataclasses.dataclass(frozen=True)
class Auth:
    """What a client presents besides the URL: a user and password, and for TLS the CA
    bundle that signed the server's certificate (none: the system's trusted CAs)."""

    password: str | None = None
    ca_file: str | None = None
    username: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Auth:
        env = os.environ if env is None else env
        return cls(
            password=env.get(PASSWORD_ENV) or None,
            ca_file=env.get(CA_FILE_ENV) or None,
            username=env.get(USERNAME_ENV) or None,
        )

    def pool_options(self, url: str) -> dict[str, Any]:
        """Connection pool options for `url`. A user or password written in the URL wins, as
        redis-py applies URL options last; a CA bundle is an error without TLS, since it
        would otherwise be silently ignored and the user believe the link verified."""
        tls = urllib.parse.urlsplit(url).scheme == TLS_SCHEME
        if self.ca_file and not tls:
            raise ValueError(f"{CA_FILE_ENV} is set but the Redis URL is not {TLS_SCHEME}://")
        options: dict[str, Any] = {}
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if tls:
            options["ssl_cert_reqs"] = "required"
            if self.ca_file:
                options["ssl_ca_certs"] = self.ca_file
        return options


def connect(url: str, *, max_connections: int = 64, auth: Auth | None = None) -> aioredis.Redis:
    """A pooled client that returns str: every queue key holds text (JSON, ids, numbers).

    The pool blocks when all its connections are busy, so a burst of concurrent callers
    (thousands of submits gathered at once) waits its turn instead of failing.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=max_connections,
        timeout=30,
        socket_keepalive=True,
        health_check_interval=30,
        **(auth or Auth.from_env()).pool_options(url),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it


def connect_binary(
    url: str, *, max_connections: int = 16, auth: Auth | None = None
) -> aioredis.Redis:
    """A pooled client that returns bytes, for compressed conversation state."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        decode_responses=False,
        max_connections=max_connections,
        timeout=30,
        socket_keepalive=True,
        **(auth or Auth.from_env()).pool_options(url),
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool and closes it

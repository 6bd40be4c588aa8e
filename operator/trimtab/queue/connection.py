"""Redis clients for the runtime: text for streams and runs, binary for state.

Every client (operator, workers, SDK, CLI) connects here, so authentication and TLS are
settled in one place. A `rediss://` URL turns TLS on; the user, the password and the CA
bundle come from the environment (TRIMTAB_REDIS_USERNAME, TRIMTAB_REDIS_PASSWORD,
TRIMTAB_REDIS_CA_FILE), where a pod gets them from a Secret, so they never appear in a
URL, a flag or an object the operator writes. Without a user, Redis's `default` user
applies; a namespace's own user (trimtab.queue.acl) reaches only that namespace's keys.
A `redis+sentinel://` URL finds the primary through Sentinel, and `?wait_replicas=N`
makes scripts wait for replicas (trimtab.queue.topology says how and why).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any, cast

from redis import asyncio as aioredis
from redis import exceptions as redis_exceptions
from redis.asyncio import cluster as aiocluster
from redis.asyncio import sentinel as aiosentinel

from trimtab.queue import topology

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
        tls = topology.parse(url).tls
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


class Client(aioredis.Redis):
    """A client that knows how durable its scripts' writes must be (trimtab.queue.
    scripts waits for that many replicas after each one)."""

    durability = topology.Durability()


class _BlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (connections to whichever node is primary now) that waits for a
    free connection as the plain pool does, instead of failing at max_connections."""


def connect(url: str, *, max_connections: int = 64, auth: Auth | None = None) -> aioredis.Redis:
    """A pooled client that returns str: every queue key holds text (JSON, ids, numbers).

    The pool blocks when all its connections are busy, so a burst of concurrent callers
    (thousands of submits gathered at once) waits its turn instead of failing.
    """
    return _client(url, auth, decode_responses=True, max_connections=max_connections,
                   health_check_interval=30)  # fmt: skip


def connect_binary(
    url: str, *, max_connections: int = 16, auth: Auth | None = None
) -> aioredis.Redis:
    """A pooled client that returns bytes, for compressed conversation state."""
    return _client(url, auth, decode_responses=False, max_connections=max_connections)


def _client(url: str, auth: Auth | None, **options: Any) -> aioredis.Redis:
    target = topology.parse(url)
    if target.cluster is not None:
        auth_options = (auth or Auth.from_env()).pool_options(url)
        found = _cluster_client(target.cluster, auth_options, options)
        found.durability = target.durability  # type: ignore[attr-defined]
        return found
    options.update(timeout=30, socket_keepalive=True)
    options.update((auth or Auth.from_env()).pool_options(url))
    if target.sentinel is None:
        pool = aioredis.BlockingConnectionPool.from_url(target.url, **options)
    else:
        pool = _sentinel_pool(target.sentinel, options)
    client = Client(connection_pool=pool)
    client.auto_close_connection_pool = True  # it owns the pool and closes it (from_pool)
    client.durability = target.durability
    return client


def _cluster_client(
    where: topology.ClusterTarget, auth: dict[str, Any], options: dict[str, Any]
) -> aioredis.Redis:
    """A Redis Cluster client. It serves the commands the queue sends (each script's
    keys in one slot, trimtab.queue.keys), so callers keep the plain client's type;
    tests/integration/test_redis_cluster.py runs the runtime on a real cluster."""
    if where.username:
        auth["username"] = where.username
    if where.password:
        auth["password"] = where.password
    if where.tls:
        auth["ssl"] = True
    options.pop("health_check_interval", None)
    found = aiocluster.RedisCluster(
        startup_nodes=[aiocluster.ClusterNode(host, port) for host, port in where.nodes],
        # Workers block on XREADGROUP for longer than the cluster client's default 5 s.
        socket_timeout=None,
        socket_keepalive=True,
        **auth,
        **options,
    )
    return cast(aioredis.Redis, found)


def _sentinel_pool(where: topology.SentinelTarget, options: dict[str, Any]) -> Any:
    """A pool whose connections go to the service's primary, asking the sentinels
    where it is on each new connection and after a node says it is read-only."""
    tls = {k: v for k, v in options.items() if k.startswith("ssl_")}
    asked: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 5, **tls}
    if tls:
        asked["ssl"] = True
    if password := os.environ.get(topology.SENTINEL_PASSWORD_ENV):
        asked["password"] = password
    if where.username:
        options["username"] = where.username
    if where.password:
        options["password"] = where.password
    sentinels = list(where.sentinels)
    manager = aiosentinel.Sentinel(sentinels, sentinel_kwargs=asked)  # type: ignore[no-untyped-call]
    return _BlockingSentinelPool(where.service, manager, ssl=where.tls, db=where.db, **options)  # type: ignore[no-untyped-call]

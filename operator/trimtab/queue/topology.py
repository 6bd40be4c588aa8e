"""Where the data plane's Redis is and how durable a write must be before it counts:
the part of a Redis URL that redis-py's own `from_url` does not know.

Three additions to the `redis://` and `rediss://` URLs every client takes:

- **Sentinel**: `redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]` (and
  `rediss+sentinel://` for TLS to the sentinels and the nodes alike). Clients ask the
  sentinels for SERVICE's primary and ask again whenever it changes, so a failover
  is a few failed calls, which every caller already retries, not an outage. A
  password in the URL is the data nodes'; sentinels that require one of their own
  read it from TRIMTAB_REDIS_SENTINEL_PASSWORD.
- **Redis Cluster**: `redis+cluster://HOST:PORT[,HOST:PORT...]` (`rediss+cluster://` for
  TLS): any of the cluster's nodes, from which the client learns the rest and follows
  slots as they move. Every key of one namespace is in one slot (trimtab.queue.keys),
  so each script runs on one shard, atomically, as on a single Redis.
- **Durability**: `?wait_replicas=N&wait_timeout_ms=T` on any of these URLs makes every
  script that changes state wait (Redis `WAIT`, on the same connection, in the same
  round trip) until N replicas have it, so a write a caller was told about survives
  the primary's loss. Without it, replication is asynchronous: a failover may lose
  the last writes before it, which for a step means doing it again (its
  acknowledgement is lost with it, so it is redelivered), and for a submit means the
  run is gone although its id was returned. Pair it with `appendfsync everysec` (or
  `always`) on every node, so a node that restarts keeps what it acknowledged.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Mapping

SENTINEL_SCHEMES = {"redis+sentinel": False, "rediss+sentinel": True}  # scheme: TLS
CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
SENTINEL_PASSWORD_ENV = "TRIMTAB_REDIS_SENTINEL_PASSWORD"  # noqa: S105 - a variable name
WAIT_REPLICAS, WAIT_TIMEOUT_MS = "wait_replicas", "wait_timeout_ms"
DEFAULT_WAIT_TIMEOUT_MS = 1000


class TopologyError(ValueError):
    """A Redis URL this client cannot use; the message says why in one line."""


@dataclasses.dataclass(frozen=True)
class Durability:
    """How many replicas must have a script's writes before it returns (0: none)."""

    replicas: int = 0
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS


@dataclasses.dataclass(frozen=True)
class SentinelTarget:
    """A primary found through sentinels."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    tls: bool
    username: str | None
    password: str | None


@dataclasses.dataclass(frozen=True)
class ClusterTarget:
    """A Redis Cluster, by some of its nodes."""

    nodes: tuple[tuple[str, int], ...]
    tls: bool
    username: str | None
    password: str | None


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed URL: `url` for redis-py (without Trimtab's own options), or `sentinel`,
    or `cluster`; and the durability its writes need."""

    url: str
    sentinel: SentinelTarget | None
    durability: Durability
    cluster: ClusterTarget | None = None

    @property
    def tls(self) -> bool:
        if self.sentinel is not None:
            return self.sentinel.tls
        if self.cluster is not None:
            return self.cluster.tls
        return urllib.parse.urlsplit(self.url).scheme == "rediss"


def parse(url: str) -> Target:
    """The URL's target and durability; TopologyError for one that cannot work."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    durability = _durability(dict(query))
    rest = urllib.parse.urlencode([(k, v) for k, v in query if k not in _OURS])
    if parts.scheme in SENTINEL_SCHEMES:
        if rest:
            raise TopologyError(f"a sentinel URL takes only {sorted(_OURS)} options: {rest}")
        return Target(url, _sentinel(parts), durability)
    if parts.scheme in CLUSTER_SCHEMES:
        return Target(url, None, durability, _cluster(parts, rest))
    if parts.scheme not in ("redis", "rediss", "unix"):
        known = ", ".join(["redis", "rediss", "unix", *SENTINEL_SCHEMES, *CLUSTER_SCHEMES])
        raise TopologyError(f"Redis URL scheme {parts.scheme!r}: use one of {known}")
    return Target(parts._replace(query=rest).geturl(), None, durability)


_OURS = frozenset({WAIT_REPLICAS, WAIT_TIMEOUT_MS})


def _durability(query: Mapping[str, str]) -> Durability:
    try:
        replicas = int(query.get(WAIT_REPLICAS, "0"))
        timeout = int(query.get(WAIT_TIMEOUT_MS, str(DEFAULT_WAIT_TIMEOUT_MS)))
    except ValueError as exc:
        raise TopologyError(f"{WAIT_REPLICAS} and {WAIT_TIMEOUT_MS} are integers") from exc
    if replicas < 0 or timeout <= 0:
        raise TopologyError(f"{WAIT_REPLICAS} must be >= 0 and {WAIT_TIMEOUT_MS} > 0")
    return Durability(replicas, timeout)


def _sentinel(parts: urllib.parse.SplitResult) -> SentinelTarget:
    where = parts.netloc.rpartition("@")[2]
    hosts = tuple(_host(h) for h in where.split(",") if h)
    path = [p for p in parts.path.split("/") if p]
    if not hosts or not path or len(path) > 2:
        raise TopologyError(
            f"a sentinel URL is {parts.scheme}://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]"
        )
    if len(path) == 2 and not path[1].isdigit():
        raise TopologyError(f"database {path[1]!r} is not a number")
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return SentinelTarget(
        sentinels=hosts,
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        tls=SENTINEL_SCHEMES[parts.scheme],
        username=user,
        password=password,
    )


def _cluster(parts: urllib.parse.SplitResult, rest: str) -> ClusterTarget:
    if rest:
        raise TopologyError(f"a cluster URL takes no options but {sorted(_OURS)}: {rest}")
    if parts.path.strip("/") not in ("", "0"):
        raise TopologyError("Redis Cluster has one database, 0: drop the URL's path")
    where = parts.netloc.rpartition("@")[2]
    nodes = tuple(_host(h, "cluster node") for h in where.split(",") if h)
    if not nodes:
        raise TopologyError(f"a cluster URL is {parts.scheme}://HOST:PORT[,HOST:PORT...]")
    return ClusterTarget(
        nodes=nodes,
        tls=CLUSTER_SCHEMES[parts.scheme],
        username=urllib.parse.unquote(parts.username) if parts.username else None,
        password=urllib.parse.unquote(parts.password) if parts.password else None,
    )


def _host(text: str, what: str = "sentinel") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise TopologyError(f"{what} {text!r} needs HOST:PORT")
    return host.strip("[]"), int(port)

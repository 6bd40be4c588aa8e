"""A primary, its replicas and three sentinels watching them: real redis-server
processes (sentinels are `redis-server --sentinel`), each on a free loopback port in
its own directory, with AOF on (`appendfsync everysec`), as a production setup runs.

Sentinels here decide fast (a node is down after 1 s without an answer, a failover
may restart after 3 s), so a test sees a failover in seconds; production settings are
slower, and the same code paths apply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import redis

from tests.harness.redis_server import Node, free_port, stop_all, wait_ping, wait_until_all

SERVICE = "trimtab"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


@dataclasses.dataclass
class SentinelSet:
    """The running processes; `url` is what clients are given."""

    nodes: list[Node]
    sentinels: list[Node]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int:
        """The port the sentinels name as the primary now."""
        found = redis.Redis(port=self.sentinels[0].port).sentinel_get_master_addr_by_name(SERVICE)
        return int(found[1])

    def kill_primary(self) -> Node:
        """SIGKILL the primary, as a lost node looks; returns it."""
        port = self.primary_port()
        (node,) = [n for n in self.nodes if n.port == port]
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)
        return node

    def wait_for_new_primary(self, old: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                port = self.primary_port()
                if port != old and redis.Redis(port=port).info("replication")["role"] == "master":
                    return port
            time.sleep(0.1)
        raise TimeoutError(f"no replica was promoted within {timeout} s")


def _binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server not found: run hack/install-deps.sh")
    return found


def _data_node(workdir: pathlib.Path, primary: int | None) -> Node:
    port = free_port()
    home = workdir / f"node-{port}"
    home.mkdir()
    args = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(home), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes"]
    args += ["--repl-diskless-sync-delay", "0"]  # a replica syncs at once, not after 5 s
    if primary is not None:
        args += ["--replicaof", "127.0.0.1", str(primary)]
    proc = subprocess.Popen([_binary(), *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    node = Node(port, proc)
    wait_ping(node.url, proc)
    return node


def _sentinel(workdir: pathlib.Path, primary: int, quorum: int) -> Node:
    port = free_port()
    conf = workdir / f"sentinel-{port}.conf"  # a sentinel rewrites its own config file
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary} {quorum}\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n"
    )
    proc = subprocess.Popen(
        [_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    node = Node(port, proc)
    wait_ping(f"redis://127.0.0.1:{port}", proc)
    return node


def _wait_replicas_in_sync(replicas: list[Node]) -> None:
    wait_until_all(
        replicas,
        lambda r: r.info("replication").get("master_link_status") == "up",
        "the replicas did not sync with the primary",
    )


@contextlib.contextmanager
def running_sentinels(workdir: pathlib.Path, *, replicas: int = 2) -> Iterator[SentinelSet]:
    """A primary with `replicas` replicas and three sentinels (quorum 2); all stopped
    after."""
    started: list[Node] = []
    try:
        primary = _data_node(workdir, None)
        started.append(primary)
        for _ in range(replicas):
            started.append(_data_node(workdir, primary.port))
        _wait_replicas_in_sync(started[1:])
        sentinels = [_sentinel(workdir, primary.port, quorum=2) for _ in range(3)]
        started.extend(sentinels)
        yield SentinelSet(nodes=started[: replicas + 1], sentinels=sentinels)
    finally:
        stop_all(started)

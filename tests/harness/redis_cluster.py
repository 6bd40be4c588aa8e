"""A real Redis Cluster: six redis-server processes on free loopback ports (three
primaries, one replica each), joined with `redis-cli --cluster create`, AOF on.

`cluster-node-timeout` is 1 s so a killed primary's replica takes over within seconds;
production clusters use longer timeouts and the same failover.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import redis
from redis.crc import key_slot

from tests.harness.redis_server import Node, free_port, stop_all, wait_ping, wait_until_all

NODE_TIMEOUT_MS = 1000


@dataclasses.dataclass
class Cluster:
    nodes: list[Node]
    workdir: pathlib.Path

    @property
    def url(self) -> str:
        live = [n for n in self.nodes if n.proc.poll() is None]
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in live)

    def _client(self) -> redis.RedisCluster:
        live = next(n for n in self.nodes if n.proc.poll() is None)
        return redis.RedisCluster(host="127.0.0.1", port=live.port)

    def primary_port_of(self, tag: str) -> int:
        """The port of the primary serving the slot of hash tag `tag`."""
        client = self._client()
        try:
            node = client.get_node_from_key(f"{{{tag}}}")
            return int(node.port)
        finally:
            client.close()

    def primaries(self) -> list[int]:
        client = self._client()
        try:
            return sorted(int(n.port) for n in client.get_primaries())
        finally:
            client.close()

    def kill(self, port: int) -> None:
        (node,) = [n for n in self.nodes if n.port == port]
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(timeout=10)

    def restart(self, port: int) -> None:
        """Start a killed node again: it rejoins as a replica of whoever took over."""
        (i,) = [k for k, n in enumerate(self.nodes) if n.port == port]
        self.nodes[i] = _node(self.workdir, port)

    def wait_for_replica_of(self, port: int, timeout: float = 30.0) -> None:
        """Until the primary on `port` has a replica in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                info = redis.Redis(port=port).info("replication")
                if any(
                    isinstance(v, dict) and v.get("state") == "online"
                    for k, v in info.items()
                    if k.startswith("slave")
                ):
                    return
            time.sleep(0.1)
        raise TimeoutError(f"the primary on {port} has no replica in sync after {timeout} s")

    def wait_for_failover(self, tag: str, old: int, timeout: float = 30.0) -> int:
        """The new primary of `tag`'s slot, once a replica took over from `old`."""
        slot = key_slot(f"{{{tag}}}".encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.proc.poll() is not None:
                    continue
                with contextlib.suppress(redis.RedisError):
                    r = redis.Redis(port=node.port)
                    if r.cluster("info").get("cluster_state") != "ok":
                        continue
                    for start, end, primary, *_ in r.cluster("slots"):
                        if start <= slot <= end and int(primary[1]) != old:
                            return int(primary[1])
            time.sleep(0.2)
        raise TimeoutError(f"no replica took over slot {slot} within {timeout} s")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run hack/install-deps.sh")
    return found


def _cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free and valid too."""
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with contextlib.suppress(OSError), socket.socket() as bus:
            bus.bind(("127.0.0.1", port + 10000))
            return port
    raise RuntimeError("no free port pair for a cluster node")


def _node(workdir: pathlib.Path, port: int | None = None) -> Node:
    """A node on `port` (a fresh one when None), its data and nodes.conf in its own
    folder, so a node started again on its port rejoins the cluster it knew."""
    port = port or _cluster_port()
    home = workdir / f"cluster-{port}"
    home.mkdir(exist_ok=True)
    args = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(home), "--save", ""]
    args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "yes"]
    args += ["--appendfsync", "everysec", "--repl-diskless-sync-delay", "0"]
    proc = subprocess.Popen(
        [_binary("redis-server"), *args], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    wait_ping(f"redis://127.0.0.1:{port}", proc)
    return Node(port, proc)


def _wait_ok(nodes: list[Node]) -> None:
    wait_until_all(
        nodes,
        lambda r: r.cluster("info").get("cluster_state") == "ok",
        "the cluster did not reach cluster_state:ok",
    )


@contextlib.contextmanager
def running_cluster(workdir: pathlib.Path) -> Iterator[Cluster]:
    """Three primaries with a replica each; stopped and removed after."""
    nodes: list[Node] = []
    try:
        nodes = [_node(workdir) for _ in range(6)]
        create = [_binary("redis-cli"), "--cluster", "create"]
        create += [f"127.0.0.1:{n.port}" for n in nodes]
        create += ["--cluster-replicas", "1", "--cluster-yes"]
        subprocess.run(create, check=True, capture_output=True, timeout=60)
        _wait_ok(nodes)
        found = Cluster(nodes, workdir)
        yield found
        nodes = found.nodes  # as restarted
    finally:
        stop_all(nodes)

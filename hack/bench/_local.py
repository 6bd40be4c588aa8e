"""Real services for the benchmarks, on loopback: redis-server, the inference simulator
and worker processes. Everything started here is stopped when the context exits."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import redis

from trimtab.api import crdgen
from trimtab.kube import client, objects
from trimtab_dev.devcluster import cluster, commands, layout

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up")


@contextlib.contextmanager
def services(sim_config: dict[str, Any]) -> Iterator[tuple[str, str, pathlib.Path]]:
    """(redis URL, simulator base URL ending in /v1, a scratch directory)."""
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-") as tmp, contextlib.ExitStack() as st:
        work = pathlib.Path(tmp)
        rport, sport = free_port(), free_port()
        rds = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(rport),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ],
            stdout=subprocess.DEVNULL,
        )
        st.callback(commands.stop, rds)
        url = f"redis://127.0.0.1:{rport}/0"
        wait_for(lambda: redis.Redis.from_url(url).ping(), "redis-server")
        (work / "sim.json").write_text(json.dumps(sim_config))
        sim = subprocess.Popen(
            commands.simulator_argv(sport, work / "sim.json"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        st.callback(commands.stop, sim)
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{sport}/healthz").status_code == 200, "sim")
        yield url, f"http://127.0.0.1:{sport}/v1", work


@contextlib.contextmanager
def workers(
    redis_url: str,
    work: pathlib.Path,
    *,
    pool: dict[str, Any],
    count: int = 1,
    env: dict[str, str] | None = None,
) -> Iterator[list[int]]:
    """`count` worker processes serving the AgentPool manifest `pool`, with `env` added
    to this process's environment; yields their pids."""
    manifest = work / f"pool-{pool['metadata']['name']}.json"
    manifest.write_text(json.dumps(pool))
    pids: list[int] = []
    with contextlib.ExitStack() as st:
        for i in range(count):
            log = st.enter_context(open(work / f"worker-{i}.log", "wb"))
            proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "trimtab",
                    "worker",
                    "run",
                    "-f",
                    str(manifest),
                    "--redis-url",
                    redis_url,
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
            st.callback(commands.stop, proc)
            pids.append(proc.pid)
        time.sleep(1.5)  # imports and consumer-group setup, kept out of the measurements
        yield pids


def cpu_seconds(pids: list[int]) -> float:
    """CPU (user + system) the processes `pids` have used so far."""
    total = 0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def pool_manifest(
    namespace: str, name: str, endpoint: str, *, model: str = "sim-small", concurrency: int = 16
) -> dict[str, Any]:
    return {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "model": {"endpoint": endpoint, "name": model},
            "worker": {"concurrency": concurrency},
        },
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def start_operator(
    namespace: str,
    redis_url: str,
    kubeconfig: str,
    log: pathlib.Path,
    *,
    leader_elect: bool = False,
) -> subprocess.Popen[bytes]:
    """`trimtab operator run` for one namespace, as users run it; output to `log`. With
    `leader_elect`, it contends for the Lease `trimtab` in that namespace."""
    argv = commands.operator_argv(namespace, redis_url, health_port=free_port())
    if leader_elect:
        argv += ["--leader-elect", "--leader-election-namespace", namespace]
    with open(log, "ab") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=out, env={**os.environ, "KUBECONFIG": kubeconfig}
        )


def stop(proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    commands.stop(proc, timeout)


def bench_cluster(namespace: str) -> tuple[layout.Layout, objects.ObjectStore]:
    """The local control plane (started if needed) with the CRDs and a fresh namespace."""
    lay = layout.layout_for()
    cluster.up(lay)
    store = objects.ObjectStore(client.connect(str(lay.kubeconfig)))
    for crd in crdgen.all_crds():
        store.apply(crd)
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return lay, store

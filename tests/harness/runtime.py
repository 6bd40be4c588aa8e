"""The runtime's real parts for tests: the inference simulator as its own process,
workers in-process (fast, inspectable) or as processes (to SIGKILL), pool specs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import yaml

from tests.harness import redis_server
from trimtab import metrics
from trimtab.api.v1alpha1 import agentpool
from trimtab.queue import connection
from trimtab.telemetry import tracing as traces
from trimtab.worker import loop, settings
from trimtab.worker import main as worker_main
from trimtab_dev.devcluster import commands


@contextlib.contextmanager
def running_sim(
    workdir: pathlib.Path, config: dict[str, Any], *, host: str = "127.0.0.1"
) -> Iterator[str]:
    """`trimtab simulate serve` on a free port of `host` (loopback unless told: a real
    node's pods reach the host's bridge address only); yields its base URL (…/v1)."""
    port = redis_server.free_port()
    cfg = workdir / f"sim-{port}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    log = open(workdir / f"sim-{port}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*commands.simulator_argv(port, cfg), "--host", host],
        stdout=log,
        stderr=log,
    )
    try:
        _wait_http(f"http://{host}:{port}/healthz", proc)
        yield f"http://{host}:{port}/v1"
    finally:
        commands.stop(proc, timeout=10)  # killed if a request it still serves holds it up
        log.close()


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a Python start-up on a loaded machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"simulator exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer")


def pool_spec(
    endpoint: str, *, model: str = "sim-small", **overrides: Any
) -> agentpool.AgentPoolSpec:
    doc: dict[str, Any] = {
        "model": {
            "endpoint": endpoint,
            "name": model,
            "timeoutSeconds": 10,
            "pricing": {"inputPer1k": 0.001, "outputPer1k": 0.002},
        }
    }
    for path, value in overrides.items():
        node = doc
        *parents, leaf = path.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return agentpool.AgentPoolSpec.model_validate(doc)


def worker_settings(
    namespace: str, pool: str, spec: agentpool.AgentPoolSpec, redis_url: str
) -> settings.WorkerSettings:
    return settings.WorkerSettings(
        namespace=namespace,
        pool=pool,
        spec=spec,
        redis_url=redis_url,
        consumer=settings.consumer_name(),
    )


@contextlib.asynccontextmanager
async def in_process_worker(
    cfg: settings.WorkerSettings,
    *,
    grace_seconds: float = 5.0,
    tracing: traces.Tracing | None = None,
) -> AsyncIterator[loop.Worker]:
    """A worker running as a task of the test's event loop, with a metrics registry of
    its own (`worker.metrics`); drained on exit."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - a registry per worker

    client = connection.connect(cfg.redis_url)
    recorded = metrics.build(CollectorRegistry())
    clients = worker_main.build_clients(cfg, tracing, recorded)
    worker = loop.Worker(cfg, client=client, clients=clients, metrics=recorded)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace_seconds=grace_seconds))
    try:
        yield worker
    finally:
        stop.set()
        await task
        await clients.model.aclose()
        await clients.tools.aclose()
        await client.aclose()


def write_pool_manifest(
    path: pathlib.Path, namespace: str, name: str, spec: agentpool.AgentPoolSpec
) -> pathlib.Path:
    doc = {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec.to_wire(),
    }
    path.write_text(json.dumps(doc))
    return path


@contextlib.contextmanager
def worker_process(
    manifest: pathlib.Path,
    redis_url: str,
    log: pathlib.Path,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`trimtab worker run -f manifest` as its own process, with `env` added to ours."""
    out = open(log, "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trimtab",
            "worker",
            "run",
            "-f",
            str(manifest),
            "--redis-url",
            redis_url,
        ],
        stdout=out,
        stderr=out,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()


def sim_requests(sim: str, model: str | None = None) -> int:
    """Model requests the simulator at `sim` (its /v1 URL) has answered: for `model`, or
    for every model."""
    stats = httpx.get(sim.removesuffix("/v1") + "/stats").json()
    models = stats["models"]
    found = [models.get(model, {})] if model is not None else list(models.values())
    return sum(int(m.get("requests", 0)) for m in found)

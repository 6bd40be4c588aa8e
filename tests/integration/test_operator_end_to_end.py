"""A workflow runs end to end through real worker processes while the operator scales
their pool: the operator follows the queue, the local supervisor follows the pods (as a
kubelet would), and every run completes exactly once."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import operator, runtime
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.reconcile import naming
from trimtab.sdk import client as sdk
from trimtab.sdk import sync as sdk_sync
from trimtab_dev.devcluster import supervisor

pytestmark = pytest.mark.usefixtures("crds")
RUNS = 240
SIM_CONFIG = {
    "seed": 3,
    "default": {"ttft_seconds": 0.05, "per_token_seconds": 0.0, "output_tokens_mean": 20},
}


def _pool(namespace: str, endpoint: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentPool",
        "metadata": {"name": "batch", "namespace": namespace},
        "spec": {
            "model": {"endpoint": endpoint, "name": "sim-small", "timeoutSeconds": 10},
            "worker": {"concurrency": 4},
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 4,
                "idleSecondsToZero": 3,
                "targets": {"messagesPerReplica": 40, "backlogSeconds": 5},
                "stabilization": {"scaleDownSeconds": 2},
            },
            "placement": {"capacity": "Spot"},
        },
    }


def _workflow(namespace: str) -> dict[str, Any]:
    steps = [
        {"name": "part_1", "prompt": "Summarize: {{ inputs.a }}", "maxTokens": 50},
        {"name": "part_2", "prompt": "Summarize: {{ inputs.b }}", "maxTokens": 50},
        {
            "name": "merge",
            "dependsOn": ["part_1", "part_2"],
            "prompt": "Merge: {{ part_1 }} {{ part_2 }}",
            "maxTokens": 50,
        },
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentWorkflow",
        "metadata": {"name": "summarize", "namespace": namespace},
        "spec": {"defaultPool": "batch", "steps": steps},
    }


class _Workers:
    """The supervisor on a thread, recording the most worker processes it ran at once."""

    def __init__(self, kube: objects.ObjectStore, logs: pathlib.Path, namespace: str) -> None:
        self.sup = supervisor.Supervisor(kube, logs, namespace)
        self.stop = threading.Event()
        self.peak = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        def stopping() -> bool:
            self.peak = max(self.peak, len(self.sup.procs))
            return self.stop.is_set()

        self.sup.run(stopping, interval=0.3)


@pytest.fixture
def workers(
    kube: objects.ObjectStore, namespace: str, tmp_path: pathlib.Path
) -> Iterator[_Workers]:
    running = _Workers(kube, tmp_path / "workers", namespace)
    running.thread.start()
    try:
        yield running
    finally:
        running.stop.set()
        running.thread.join(timeout=60)


def _replicas(kube: objects.ObjectStore, namespace: str) -> int:
    dep = kube.get("apps/v1", "Deployment", naming.worker_deployment("batch"), namespace)
    return int(((dep or {}).get("spec") or {}).get("replicas") or 0)


def _published(client: sdk_sync.SyncClient, namespace: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            client.submit(namespace, "summarize", {"a": "warm", "b": "up"})
            return
        except LookupError:
            assert time.monotonic() < deadline, "the operator never published the workflow"
            time.sleep(0.2)


async def _submit_burst(redis_url: str, namespace: str) -> list[str]:
    """RUNS submissions at once, so the backlog builds faster than one worker drains it."""
    client = sdk.Client(redis_url)
    try:
        inputs = [{"a": f"a{i}", "b": f"b{i}"} for i in range(RUNS)]
        return list(
            await asyncio.gather(*(client.submit(namespace, "summarize", x) for x in inputs))
        )
    finally:
        await client.aclose()


def test_runs_complete_through_workers_while_the_operator_scales_their_pool(
    kube: objects.ObjectStore,
    namespace: str,
    redis_url: str,
    tmp_path: pathlib.Path,
    workers: _Workers,
) -> None:
    with (
        runtime.running_sim(tmp_path, SIM_CONFIG) as endpoint,
        operator.trimtab_operator(namespace, redis_url),
    ):
        kube.apply(_pool(namespace, endpoint))
        kube.apply(_workflow(namespace))
        client = sdk_sync.SyncClient(redis_url)
        _published(client, namespace)
        refs = asyncio.run(_submit_burst(redis_url, namespace))
        peak_replicas = 0
        deadline = time.monotonic() + 90
        pending = set(refs)
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} runs never finished"
            peak_replicas = max(peak_replicas, _replicas(kube, namespace))
            pending = {r for r in pending if client.get(r).status not in ("succeeded", "failed")}
            time.sleep(0.3)
        states = [client.get(r) for r in refs]
        assert {s.status for s in states} == {"succeeded"}
        # Each step ran once: no redelivered duplicate, no lost step.
        assert {(name, st.state, st.attempt) for s in states for name, st in s.steps.items()} == {
            ("part_1", "done", 1),
            ("part_2", "done", 1),
            ("merge", "done", 1),
        }
        assert peak_replicas >= 2, "the backlog should have scaled the pool past one replica"
        assert workers.peak >= 2, "the supervisor should have followed the scale-up"
        # Idle: the operator scales the pool to zero and the workers follow.
        deadline = time.monotonic() + 30
        while _replicas(kube, namespace) or workers.sup.procs:
            assert time.monotonic() < deadline, (
                f"replicas {_replicas(kube, namespace)}, processes {len(workers.sup.procs)}"
            )
            time.sleep(0.3)

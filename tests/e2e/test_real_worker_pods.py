"""Worker pods that run for real: a pool placed on the real node runs the project's image
as containers (containerd, not kwok's stand-ins served by the local supervisor), and its
workers complete a workflow's runs through the inference simulator, over the node's pod
network to Redis and the simulator on the host's bridge address, while the operator
scales the pool up with a backlog and back down once it is gone.

Readiness: the worker Deployment's probe is GET /readyz (trimtab.worker.serving), which
answers 200 only while the worker reached Redis within the last few seconds and is not
draining; a worker that cannot reach Redis, or one finishing its steps after a delete,
is not Ready, so the pool's ready count (and the start-up time the autoscaler measures
to Ready) says what really serves.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import pytest
import redis

from tests.harness import realworkers as rw
from tests.harness import redis_server
from trimtab.kube import objects
from trimtab.sdk import sync as sdk_sync
from trimtab_dev.devcluster import layout

pytestmark = pytest.mark.usefixtures("crds", "project_image")
POOL, WORKFLOW, RUNS = "summary", "summarize", 40
SIM = {
    "seed": 5,
    "default": {
        "ttft_seconds": 0.5,
        "per_token_seconds": 0.0,
        "output_tokens_mean": 10,
        "capacity": 64,
    },
}
STEPS = [
    {"name": "part_1", "prompt": "Summarize: {{ inputs.a }}", "maxTokens": 20},
    {"name": "part_2", "prompt": "Summarize: {{ inputs.b }}", "maxTokens": 20},
    {
        "name": "merge",
        "dependsOn": ["part_1", "part_2"],
        "prompt": "Merge: {{ part_1 }} {{ part_2 }}",
        "maxTokens": 20,
    },
]
# Generous: a worker container's Python start-up on a loaded two-core machine, then up
# to one 10 s readiness period.
START_S = 120


def test_a_pool_on_the_real_node_runs_its_runs_in_containers_and_scales_with_the_backlog(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    project_image: str,
    tmp_path: pathlib.Path,
) -> None:
    rds = redis.Redis.from_url(host_redis_url)
    scaling = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "targets": {"messagesPerReplica": 8, "backlogSeconds": 5},
        "stabilization": {"scaleDownSeconds": 2},
    }
    with rw.system(cluster, namespace, host_redis_url, tmp_path, sim=SIM) as endpoint:
        pool = rw.pool_doc(namespace, POOL, endpoint, worker={"concurrency": 2}, scaling=scaling)
        kube.apply(pool)
        kube.apply(rw.workflow_doc(namespace, WORKFLOW, POOL, STEPS))
        first = rw.eventually(
            lambda: [p for p in rw.serving(kube, namespace, POOL) if rw.ready(p)],
            what=lambda: f"no Ready worker pod: {rw.pods(kube, namespace, POOL)}",
            timeout=START_S,
        )[0]
        assert first["spec"]["containers"][0]["image"] == project_image
        client = sdk_sync.SyncClient(host_redis_url)
        warm = rw.submit_when_published(client, namespace, WORKFLOW, {"a": "warm", "b": "up"})
        assert client.result(warm, timeout=60).status == "succeeded"

        inputs = [{"a": f"a{i}", "b": f"b{i}"} for i in range(RUNS)]
        refs = rw.submit_all(host_redis_url, namespace, WORKFLOW, inputs)
        seen: dict[str, dict[str, Any]] = {}  # pods whose container ran, by name
        peak = 0

        def all_ended() -> bool:
            nonlocal peak
            peak = max(peak, rw.replicas(kube, namespace, POOL))
            seen.update({p["metadata"]["name"]: p for p in rw.serving(kube, namespace, POOL)})
            return all(client.get(r).status in ("succeeded", "failed") for r in refs)

        rw.eventually(all_ended, what="the backlog's runs did not all end", timeout=240)
        assert {client.get(r).status for r in refs} == {"succeeded"}
        for ref in refs:
            assert sorted(rw.completions(rds, ref)) == ["merge", "part_1", "part_2"], ref
        # Several replicas came up as containers on the real node, and each of those
        # that claimed steps is one of them (a consumer is named after its pod).
        claimers = {rw.pod_of(s["worker"]) for r in refs for s in rw.steps(rds, r).values()}
        assert peak >= 2, "the backlog should have scaled the pool past one replica"
        assert len(claimers) >= 2, claimers
        assert claimers <= set(seen), (claimers, set(seen))
        assert {rw.worker_status(p)["image"] for p in seen.values()} == {project_image}

        # The backlog gone, the pool steps back to its one replica, the others' pods go.
        rw.eventually(
            lambda: (
                rw.replicas(kube, namespace, POOL) == 1 and len(rw.pods(kube, namespace, POOL)) == 1
            ),
            what=lambda: (
                f"replicas {rw.replicas(kube, namespace, POOL)}, "
                f"pods {[p['metadata']['name'] for p in rw.pods(kube, namespace, POOL)]}"
            ),
            timeout=120,
        )


def _never_ready(kube: objects.ObjectStore, namespace: str, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready = [p["metadata"]["name"] for p in rw.pods(kube, namespace, POOL) if rw.ready(p)]
        assert not ready, f"Ready: {ready}"
        time.sleep(0.5)


def test_a_worker_that_cannot_reach_redis_is_not_ready(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    assert cluster.host_address is not None
    nowhere = f"redis://{cluster.host_address}:{redis_server.free_port()}/0"  # nothing listens
    system = rw.system(
        cluster, namespace, host_redis_url, tmp_path, sim=SIM, worker_redis_url=nowhere
    )
    with system as endpoint:
        kube.apply(rw.pool_doc(namespace, POOL, endpoint, scaling={"minReplicas": 1}))
        rw.eventually(
            lambda: rw.serving(kube, namespace, POOL),
            what="no worker container started",
            timeout=START_S,
        )
        # Three readiness periods: a probe that checked Redis would have said no each time.
        _never_ready(kube, namespace, seconds=30)


def test_a_draining_worker_is_not_ready(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    slow = {"seed": 5, "default": {"ttft_seconds": 40.0, "per_token_seconds": 0.0}}
    with rw.system(cluster, namespace, host_redis_url, tmp_path, sim=slow) as endpoint:
        # The step outlasts the drain, which waits for it up to the grace period less 5 s.
        worker = {"concurrency": 1, "terminationGracePeriodSeconds": 45}
        spec = {"worker": worker, "scaling": {"minReplicas": 1}}
        kube.apply(rw.pool_doc(namespace, POOL, endpoint, **spec))
        kube.apply(rw.workflow_doc(namespace, WORKFLOW, POOL, STEPS[:1]))
        pod = rw.eventually(
            lambda: [p for p in rw.serving(kube, namespace, POOL) if rw.ready(p)],
            what="no Ready worker pod",
            timeout=START_S,
        )[0]
        rw.submit_when_published(
            sdk_sync.SyncClient(host_redis_url), namespace, WORKFLOW, {"a": "x"}
        )
        rds = redis.Redis.from_url(host_redis_url)
        rw.eventually(
            lambda: any(rw.consumers(rds, namespace, POOL).values()),
            what="the worker never claimed the step",
            timeout=60,
        )
        kube.delete("v1", "Pod", pod["metadata"]["name"], namespace)  # SIGTERM: it drains
        rw.eventually(
            lambda: (
                (kube.get("v1", "Pod", pod["metadata"]["name"], namespace) or {})
                .get("metadata", {})
                .get("deletionTimestamp")
            ),
            what="the pod was not marked for deletion",
            timeout=30,
        )
        # The kubelet sees it within two failed probes (2 s apart), while the pod still
        # drains (its step holds it up to 40 s); then it stays so until the pod is gone.
        name = pod["metadata"]["name"]

        def draining_and_unready() -> bool:
            current = kube.get("v1", "Pod", name, namespace)
            if current is None:
                raise RuntimeError("the pod stopped before its probes ran: the test is void")
            return not rw.ready(current)

        rw.eventually(
            draining_and_unready,
            what="a draining worker still reports Ready after its probes had time to see it",
            timeout=15,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (current := kube.get("v1", "Pod", name, namespace)):
            assert not rw.ready(current), "a draining worker reported Ready again"
            time.sleep(0.5)

"""Faults in worker pods that run for real on the real node, while they hold steps: every
run still ends, and each step is completed exactly once.

- The worker container's main process is SIGKILLed from the host (a crash: no drain, no
  release). The kubelet restarts the container in the same pod (restartCount goes up),
  and the steps it held are reclaimed once idle past the visibility timeout.
- A worker pod is deleted with a 1 s grace period: SIGTERM, then SIGKILL long before
  its drain (the pod spec's grace less 5 s) could end. The Deployment replaces the pod,
  and the steps it held are reclaimed likewise.

That a fault hit work in flight shows in the run records: some step was delivered more
than once (`s:<step>:dlv`, counted as each delivery starts), yet every step's completion
was recorded once (complete.lua's step_done event, written in the same atomic step as
the output). The pool is Manual at two replicas, so only the fault moves pods.
"""

from __future__ import annotations

import os
import pathlib
import signal
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.harness import cluster as cluster_harness
from tests.harness import realworkers as rw
from trimtab.kube import objects
from trimtab.queue import keys, wire
from trimtab.sdk import sync as sdk_sync
from trimtab_dev.devcluster import layout

pytestmark = pytest.mark.usefixtures("crds", "project_image")
POOL, WORKFLOW, RUNS, REPLICAS = "flaky", "chain", 12, 2
# Steps far longer than a deletion's grace: the kubelet stops a container no sooner than
# 2 s after it asks (its minimum grace), and the fault comes right after the first claims.
SIM = {"seed": 9, "default": {"ttft_seconds": 8.0, "per_token_seconds": 0.0, "capacity": 64}}
STEPS = [
    {"name": "a", "prompt": "First: {{ inputs.i }}", "maxTokens": 20},
    {"name": "b", "dependsOn": ["a"], "prompt": "Then: {{ a }}", "maxTokens": 20},
]
Fault = Callable[[layout.Layout, dict[str, Any]], None]


def _kill_main_process(lay: layout.Layout, pod: dict[str, Any]) -> None:
    os.kill(rw.host_pid(lay, pod), signal.SIGKILL)


def _delete_pod(lay: layout.Layout, pod: dict[str, Any]) -> None:
    name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
    args = ("delete", "pod", name, "-n", namespace, "--grace-period=1", "--wait=false")
    done = cluster_harness.kubectl(lay, *args)
    assert done.returncode == 0, done.stderr


def _holding(
    kube: objects.ObjectStore, rds: redis.Redis, namespace: str, refs: list[str]
) -> dict[str, Any]:
    """A serving pod whose worker has started at least two steps that are running now.
    Read from the run records, not the group's pending count: that also counts entries
    read but not yet started, and a fault that hits only those redelivers nothing."""

    def find() -> dict[str, Any] | None:
        pods = {p["metadata"]["name"]: p for p in rw.serving(kube, namespace, POOL)}
        running: dict[str, int] = {}
        for ref in refs:
            for step in rw.steps(rds, ref).values():
                if step.get(wire.StepField.STATE) == wire.StepState.RUNNING:
                    worker = step.get(wire.StepField.WORKER, "")
                    running[worker] = running.get(worker, 0) + 1
        return next(
            (pods[rw.pod_of(c)] for c, n in running.items() if n >= 2 and rw.pod_of(c) in pods),
            None,
        )

    return rw.eventually(find, what="no worker ran two steps", timeout=60)


def _run_through_fault(
    kube: objects.ObjectStore,
    lay: layout.Layout,
    namespace: str,
    redis_url: str,
    workdir: pathlib.Path,
    fault: Fault,
) -> tuple[dict[str, Any], list[str]]:
    """Runs submitted to a two-replica pool, `fault` done to one of its pods while that
    pod's worker holds steps, the runs waited for; returns the pod as it was and the runs."""
    rds = redis.Redis.from_url(redis_url)
    spec = {
        "worker": {"concurrency": 3},
        "queue": {"visibilityTimeoutSeconds": 5},
        "scaling": {"mode": "Manual"},
        "replicas": REPLICAS,
    }
    with rw.system(lay, namespace, redis_url, workdir, sim=SIM) as endpoint:
        kube.apply(rw.pool_doc(namespace, POOL, endpoint, **spec))
        kube.apply(rw.workflow_doc(namespace, WORKFLOW, POOL, STEPS))
        rw.eventually(
            lambda: len(rw.serving(kube, namespace, POOL)) == REPLICAS,
            what=lambda: f"pods: {rw.pods(kube, namespace, POOL)}",
            timeout=120,
        )
        client = sdk_sync.SyncClient(redis_url)
        refs = [rw.submit_when_published(client, namespace, WORKFLOW, {"i": -1})]
        refs += rw.submit_all(redis_url, namespace, WORKFLOW, [{"i": i} for i in range(RUNS)])
        victim = _holding(kube, rds, namespace, refs)
        fault(lay, victim)
        rw.wait_ended(client, refs, timeout=180)
        assert {client.get(r).status for r in refs} == {"succeeded"}
        for ref in refs:
            assert rw.completions(rds, ref) == ["a", "b"], ref
        # Started deliveries: counted apart when cut off with the worker's others (cut).
        deliveries = [
            int(s.get(wire.StepField.DELIVERIES, 0)) + int(s.get(wire.StepField.INTERRUPTED, 0))
            for r in refs
            for s in rw.steps(rds, r).values()
        ]
        assert max(deliveries) >= 2, "no step was redelivered: the fault hit nothing in flight"
        assert rds.xlen(keys.dead_letter(namespace)) == 0
    return victim, refs


def test_a_killed_worker_process_is_restarted_and_its_steps_complete_once(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    victim, _ = _run_through_fault(
        kube, cluster, namespace, host_redis_url, tmp_path, _kill_main_process
    )
    name = victim["metadata"]["name"]

    def restarted() -> dict[str, Any] | None:
        pod = kube.get("v1", "Pod", name, namespace)
        assert pod is not None, "the kubelet restarts the container in place, not the pod"
        return pod if rw.restarts(pod) > rw.restarts(victim) and rw.running(pod) else None

    after = rw.eventually(restarted, what="the container was not restarted", timeout=60)
    assert rw.worker_status(after)["lastState"]["terminated"]["exitCode"] == 128 + signal.SIGKILL
    assert rw.container_id(after) != rw.container_id(victim)


def test_a_worker_pod_deleted_mid_step_is_replaced_and_its_steps_complete_once(
    kube: objects.ObjectStore,
    cluster: layout.Layout,
    namespace: str,
    host_redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    victim, _ = _run_through_fault(kube, cluster, namespace, host_redis_url, tmp_path, _delete_pod)
    name = victim["metadata"]["name"]

    def replaced() -> bool:
        names = {p["metadata"]["name"] for p in rw.serving(kube, namespace, POOL)}
        return kube.get("v1", "Pod", name, namespace) is None and len(names - {name}) == REPLICAS

    rw.eventually(replaced, what="the deleted pod was not replaced", timeout=120)

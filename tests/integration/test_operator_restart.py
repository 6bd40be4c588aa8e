"""The operator killed at any moment and started again converges: every pool ends with
exactly its Deployment, Service and PDB, nothing is duplicated or orphaned, and the
converged state costs the next operator no writes."""

from __future__ import annotations

import pathlib
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.harness import operator
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.reconcile import naming

pytestmark = pytest.mark.usefixtures("crds")
POOLS = 24
OWNED = (("apps/v1", "Deployment"), ("v1", "Service"), ("policy/v1", "PodDisruptionBudget"))


def _pool(namespace: str, index: int) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentPool",
        "metadata": {"name": f"p{index:02d}", "namespace": namespace},
        "spec": {
            "model": {"endpoint": "http://sim.local:8080/v1", "name": "sim-small"},
            "scaling": {"minReplicas": 1, "maxReplicas": 2},
            "placement": {"capacity": "OnDemand"},
        },
    }


def _owned(kube: objects.ObjectStore, namespace: str) -> dict[str, list[dict[str, Any]]]:
    """Every object of the kinds the operator creates, by kind, in the namespace."""
    return {
        kind: kube.list(api, kind, namespace=namespace, label_selector=naming.POOL_LABEL)
        for api, kind in OWNED
    }


def _converged(kube: objects.ObjectStore, namespace: str) -> bool:
    found = _owned(kube, namespace)
    replica_sets = kube.list("apps/v1", "ReplicaSet", namespace=namespace)
    return (
        all(len(items) == POOLS for items in found.values())
        and all((d.get("spec") or {}).get("replicas") == 1 for d in found["Deployment"])
        and len(replica_sets) >= POOLS
    )


def _wait(proc: subprocess.Popen[bytes], log: pathlib.Path, until: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"operator exit {proc.poll()}; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_killed_mid_reconcile_then_restarted_converges_without_duplicates(
    kube: objects.ObjectStore, namespace: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    pools = {f"p{i:02d}": kube.apply(_pool(namespace, i)) for i in range(POOLS)}
    log = tmp_path / "operator.log"
    first = operator.start_operator_process(namespace, redis_url, log)

    def some_applied() -> bool:
        count = len(kube.list("apps/v1", "Deployment", namespace=namespace))
        return count > 0

    _wait(first, log, some_applied, timeout=60)
    first.send_signal(signal.SIGKILL)  # mid-reconcile: no cleanup, no graceful exit
    first.wait()

    second = operator.start_operator_process(namespace, redis_url, log)
    try:
        _wait(second, log, lambda: _converged(kube, namespace), timeout=90)
    finally:
        _stop(second)
    found = _owned(kube, namespace)
    for kind, items in found.items():
        names = sorted(i["metadata"]["name"] for i in items)
        assert len(names) == len(set(names)) == POOLS, (kind, names)
        for item in items:
            pool = item["metadata"]["labels"][naming.POOL_LABEL]
            owners = item["metadata"]["ownerReferences"]
            assert [o["uid"] for o in owners] == [pools[pool]["metadata"]["uid"]], (kind, pool)
    # One ReplicaSet per Deployment: no restart re-rendered a different pod template.
    time.sleep(2)  # let the controller-manager act on any late template change
    replica_sets = kube.list("apps/v1", "ReplicaSet", namespace=namespace)
    assert len(replica_sets) == POOLS, [r["metadata"]["name"] for r in replica_sets]

    # A third operator over the converged state writes nothing to the pools' objects.
    versions = {
        (kind, i["metadata"]["name"]): i["metadata"]["resourceVersion"]
        for kind, items in found.items()
        for i in items
        if kind != "Deployment"  # Deployments' status moves with the controller-manager
    }
    specs = {d["metadata"]["name"]: d["metadata"]["generation"] for d in found["Deployment"]}
    third = operator.start_operator_process(namespace, redis_url, log)
    try:
        time.sleep(8)  # startup, resume of every pool, and several scaling passes
        assert third.poll() is None, log.read_text()[-3000:]
    finally:
        _stop(third)
    after = _owned(kube, namespace)
    assert {
        (kind, i["metadata"]["name"]): i["metadata"]["resourceVersion"]
        for kind, items in after.items()
        for i in items
        if kind != "Deployment"
    } == versions
    assert {
        d["metadata"]["name"]: d["metadata"]["generation"] for d in after["Deployment"]
    } == specs

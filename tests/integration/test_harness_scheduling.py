"""The local control plane schedules real pods onto kwok's simulated nodes, keeps
those nodes Ready, and really deletes deleted pods (no kubelet is needed)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from trimtab.kube import objects
from trimtab_dev.devcluster import nodes


def _deployment(namespace: str, name: str, replicas: int, **pod_spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [{"name": "main", "image": "registry.local/app:1"}],
                    **pod_spec,
                },
            },
        },
    }


def _running_pods(kube: objects.ObjectStore, namespace: str, app: str) -> list[dict[str, Any]]:
    pods = kube.list("v1", "Pod", namespace=namespace, label_selector=f"app={app}")
    return [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]


def _wait_running(
    kube: objects.ObjectStore, namespace: str, app: str, count: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = _running_pods(kube, namespace, app)
        if len(pods) == count:
            return pods
        time.sleep(0.2)
    raise TimeoutError(f"{count} Running pods of {app} not seen")


def _capacity_of(kube: objects.ObjectStore, node_name: str) -> str:
    node = kube.get("v1", "Node", node_name)
    assert node is not None
    return str(node["metadata"]["labels"][nodes.CAPACITY_LABEL])


def test_deployment_pods_run_on_on_demand_nodes(kube: objects.ObjectStore, namespace: str) -> None:
    kube.apply(_deployment(namespace, "web", 3))
    pods = _wait_running(kube, namespace, "web", 3)
    assert {_capacity_of(kube, p["spec"]["nodeName"]) for p in pods} == {"on-demand"}
    assert all(p["status"].get("podIP") for p in pods)


def test_spot_tolerating_pods_land_on_spot_nodes(kube: objects.ObjectStore, namespace: str) -> None:
    spot_only = {
        "nodeSelector": {nodes.CAPACITY_LABEL: "spot"},
        "tolerations": [
            {
                "key": nodes.SPOT_TAINT_KEY,
                "operator": "Equal",
                "value": "true",
                "effect": "NoSchedule",
            }
        ],
    }
    kube.apply(_deployment(namespace, "batch", 4, **spot_only))
    pods = _wait_running(kube, namespace, "batch", 4)
    assert {_capacity_of(kube, p["spec"]["nodeName"]) for p in pods} == {"spot"}


def test_deleted_pods_disappear_and_are_replaced(kube: objects.ObjectStore, namespace: str) -> None:
    kube.apply(_deployment(namespace, "api", 2))
    before = {p["metadata"]["name"] for p in _wait_running(kube, namespace, "api", 2)}
    for name in before:
        kube.delete("v1", "Pod", name, namespace)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = {
            p["metadata"]["name"]
            for p in kube.list("v1", "Pod", namespace=namespace, label_selector="app=api")
        }
        if not names & before and len(_running_pods(kube, namespace, "api")) == 2:
            return
        time.sleep(0.2)
    pytest.fail(f"deleted pods still present or not replaced: {names}")


def _renew_times(kube: objects.ObjectStore) -> dict[str, str]:
    leases = kube.list("coordination.k8s.io/v1", "Lease", namespace="kube-node-lease")
    return {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}


def test_simulated_nodes_renew_leases_and_stay_ready(kube: objects.ObjectStore) -> None:
    fleet = {n["metadata"]["name"] for n in kube.list("v1", "Node")}
    assert len(fleet) >= 3
    first = _renew_times(kube)
    assert set(first) >= fleet
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        now = _renew_times(kube)
        if all(now[n] != first[n] for n in fleet):
            break
        time.sleep(1)
    else:
        pytest.fail(f"leases not renewed within 30 s: {first} -> {now}")
    for node in kube.list("v1", "Node"):
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], node["metadata"]["name"]

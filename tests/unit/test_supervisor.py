"""The local worker supervisor's pure parts: which pods get a process, and with what."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from trimtab_dev.devcluster import supervisor


def _pod(
    uid: str, phase: str = "Running", deleting: bool = False, **container: Any
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "uid": uid,
        "name": f"pool-worker-{uid}",
        "namespace": "ns",
        "labels": {"trimtab.io/pool": "pool"},
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {
        "containers": [
            {
                "name": "worker",
                "command": ["trimtab"],
                "args": ["worker", "run", "--pool", "ns/pool", "--metrics-port", "9090"],
                **container,
            }
        ]
    }
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def _no_secrets(ns: str, name: str, key: str) -> str | None:
    return None


@pytest.mark.parametrize(
    ("pod", "serving"),
    [
        (_pod("a"), True),
        (_pod("a", phase="Pending"), False),
        (_pod("a", phase="Succeeded"), False),
        (_pod("a", deleting=True), False),
    ],
    ids=["running", "pending", "finished", "terminating"],
)
def test_only_running_pods_not_being_deleted_are_served(pod: dict[str, Any], serving: bool) -> None:
    assert supervisor.is_serving(pod) is serving


def _worker(uid: str) -> supervisor.WorkerPod:
    return supervisor.worker_pod(_pod(uid), _no_secrets)


@pytest.mark.parametrize(
    ("pods", "running", "start", "stop"),
    [
        (["a", "b"], set(), ["a", "b"], []),
        (["a", "b"], {"a", "b"}, [], []),
        (["b"], {"a", "b"}, [], ["a"]),
        (["c"], {"a"}, ["c"], ["a"]),
        ([], {"a", "b"}, [], ["a", "b"]),
    ],
    ids=["scale-up-from-zero", "steady", "scale-down", "replaced-pod", "scale-to-zero"],
)
def test_plan_matches_processes_to_pods(
    pods: list[str], running: set[str], start: list[str], stop: list[str]
) -> None:
    decided = supervisor.plan([_worker(u) for u in pods], running)
    assert [p.uid for p in decided.start] == start
    assert list(decided.stop) == stop


def test_pod_command_runs_this_python_and_frees_the_metrics_port() -> None:
    worker = _worker("a")
    assert worker.argv[:3] == (sys.executable, "-m", "trimtab")
    assert worker.argv[3:] == ("worker", "run", "--pool", "ns/pool", "--metrics-port", "0")
    assert ("HOSTNAME", "pool-worker-a") in worker.env
    assert worker.pool == "pool"


def test_env_resolves_values_secrets_and_the_pod_name() -> None:
    env = [
        {"name": "PLAIN", "value": "x"},
        {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "model", "key": "token"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "POOL",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['trimtab.io/pool']"}},
        },
        {"name": "NONE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['absent']"}}},
    ]
    secrets = {("ns", "model", "token"): "s3cret"}
    worker = supervisor.worker_pod(
        _pod("a", env=env), lambda ns, name, key: secrets.get((ns, name, key))
    )
    assert dict(worker.env) == {
        "PLAIN": "x",
        "KEY": "s3cret",
        "POD": "pool-worker-a",
        "POOL": "pool",
        "NONE": "",
        "HOSTNAME": "pool-worker-a",
    }


def test_a_missing_secret_is_an_error_like_the_kubelets() -> None:
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "token"}}}]
    with pytest.raises(LookupError, match="secret gone/token not found"):
        supervisor.worker_pod(_pod("a", env=env), _no_secrets)


def test_an_optional_missing_secret_is_empty() -> None:
    ref = {"name": "gone", "key": "token", "optional": True}
    env = [{"name": "KEY", "valueFrom": {"secretKeyRef": ref}}]
    worker = supervisor.worker_pod(_pod("a", env=env), _no_secrets)
    assert dict(worker.env)["KEY"] == ""


def test_only_kwoks_nodes_need_a_process() -> None:
    """Pods on a real node run under its kubelet: a local process would double them."""
    nodes = [
        {"metadata": {"name": "kwok-spot-0", "annotations": {"kwok.x-k8s.io/node": "fake"}}},
        {"metadata": {"name": "real-on-demand-0", "annotations": {"node.alpha": "x"}}},
        {"metadata": {"name": "bare"}},
    ]
    assert supervisor.simulated(nodes) == {"kwok-spot-0"}

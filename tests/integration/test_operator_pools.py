"""The AgentPool controller on the real control plane with kwok spot and on-demand nodes
and a real Redis: objects, placement, autoscaling on queue depth, manual scaling."""

from __future__ import annotations

import contextlib
import json
import pathlib
import time
from typing import Any

import prometheus_client
import pytest
import redis

from tests.harness import operator, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import keys, messages
from trimtab.reconcile import naming
from trimtab_dev.devcluster import nodes

pytestmark = pytest.mark.usefixtures("crds")


def _deployment(
    kube: objects.ObjectStore, namespace: str, pool: str, until: Any, timeout: float = 30
) -> dict[str, Any]:
    return kube.wait_for(
        "apps/v1",
        "Deployment",
        naming.worker_deployment(pool),
        namespace=namespace,
        until=until,
        timeout=timeout,
    )


def _running_on(kube: objects.ObjectStore, namespace: str, pool: str) -> list[str]:
    pods = kube.list("v1", "Pod", namespace=namespace, label_selector=f"{naming.POOL_LABEL}={pool}")
    running = [
        p
        for p in pods
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]
    capacities = []
    for pod in running:
        node = kube.get("v1", "Node", pod["spec"]["nodeName"])
        assert node is not None
        capacities.append(node["metadata"]["labels"][nodes.CAPACITY_LABEL])
    return capacities


def _exists(_: dict[str, Any]) -> bool:
    return True


def _reconcile_count() -> float:
    labels = {"kind": "AgentPool"}
    name = "trimtab_reconcile_duration_seconds_count"
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_pool_objects_are_created_with_placement_and_security(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    pool = samples.pool_doc(
        namespace,
        "small",
        placement={"capacity": "Spot", "provider": "auto"},
        scaling={"minReplicas": 2, "maxReplicas": 4},
    )
    reconciles = _reconcile_count()
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(pool)
        dep = _deployment(kube, namespace, "small", lambda d: d["spec"].get("replicas") == 2)
        # The Deployment, Service and PDB are applied one after another in one
        # reconcile, so the later two may land a moment after the Deployment.
        service, pdb = naming.metrics_service("small"), naming.disruption_budget("small")
        kube.wait_for("v1", "Service", service, namespace=namespace, until=_exists)
        kube.wait_for("policy/v1", "PodDisruptionBudget", pdb, namespace=namespace, until=_exists)
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        worker = pod["containers"][0]
        assert worker["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert worker["securityContext"]["readOnlyRootFilesystem"] is True
        assert any(t.get("key") == nodes.SPOT_TAINT_KEY for t in pod["tolerations"])
        owners = dep["metadata"]["ownerReferences"]
        assert owners[0]["kind"] == "AgentPool"
        deadline = time.monotonic() + 30
        while _running_on(kube, namespace, "small") != ["spot", "spot"]:
            assert time.monotonic() < deadline, _running_on(kube, namespace, "small")
            time.sleep(0.5)
        status = kube.wait_for(
            API_VERSION,
            "AgentPool",
            "small",
            namespace=namespace,
            until=lambda p: (p.get("status") or {}).get("readyReplicas") == 2,
        )
        assert status["status"]["replicaSummary"] == "2/2"
        assert _reconcile_count() > reconciles  # the operator (in this process) timed it


def _enqueue(url: str, namespace: str, pool: str, count: int) -> None:
    client = redis.Redis.from_url(url, decode_responses=True)
    stream = keys.pool_stream(namespace, pool)
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    task = messages.Task(
        namespace=namespace,
        run_id="r",
        step="s",
        attempt=1,
        workflow="w",
        generation=1,
        enqueued_ms=0.0,
    )
    with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            pipe.xadd(stream, task.fields())
        pipe.execute()


def test_backlog_scales_a_spot_pool_up_and_idle_scales_it_to_zero(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    pool = samples.pool_doc(
        namespace,
        "batch",
        placement={"capacity": "Spot"},
        scaling={
            "minReplicas": 0,
            # 1,000 messages in one second also read as a burst of 200/s: the bound, not
            # messagesPerReplica, decides the size.
            "maxReplicas": 5,
            "idleSecondsToZero": 3,
            "targets": {"messagesPerReplica": 200, "backlogSeconds": 600},
            "stabilization": {"scaleDownSeconds": 2},
        },
    )
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(pool)
        created = _deployment(kube, namespace, "batch", lambda d: d["spec"].get("replicas") == 0)
        # Created at zero, not at the API's default of 1 then scaled down: no pod ran.
        assert created["metadata"]["generation"] == 1
        _enqueue(redis_url, namespace, "batch", 1000)
        _deployment(kube, namespace, "batch", lambda d: d["spec"].get("replicas") == 5)
        deadline = time.monotonic() + 30
        while _running_on(kube, namespace, "batch") != ["spot"] * 5:
            assert time.monotonic() < deadline, _running_on(kube, namespace, "batch")
            time.sleep(0.5)
        redis.Redis.from_url(redis_url).delete(keys.pool_stream(namespace, "batch"))
        _deployment(kube, namespace, "batch", lambda d: d["spec"].get("replicas") == 0)
        # The Events follow the Deployment's change in the same pass, a moment later.
        deadline = time.monotonic() + 10
        while not {"Idle"} <= (reasons := _event_reasons(kube, namespace, "batch")):
            assert time.monotonic() < deadline, reasons
            time.sleep(0.2)
    assert {"ScaledUp", "WokeFromZero"} & reasons, reasons


def _event_reasons(kube: objects.ObjectStore, namespace: str, pool: str) -> set[str]:
    return {
        e["reason"]
        for e in kube.list("v1", "Event", namespace=namespace)
        if e["involvedObject"]["name"] == pool
    }


def test_manual_pool_follows_kubectl_scale(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    pool = samples.pool_doc(namespace, "tools", replicas=1, scaling={"mode": "Manual"})
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(pool)
        _deployment(kube, namespace, "tools", lambda d: d["spec"].get("replicas") == 1)
        kube.patch(
            API_VERSION,
            "AgentPool",
            "tools",
            {"spec": {"replicas": 3}},
            namespace=namespace,
            subresource="scale",
        )
        _deployment(kube, namespace, "tools", lambda d: d["spec"].get("replicas") == 3)


def _cordon(kube: objects.ObjectStore, capacity: str, *, unschedulable: bool) -> None:
    for node in kube.list("v1", "Node"):
        if node["metadata"]["labels"].get(nodes.CAPACITY_LABEL) == capacity:
            kube.patch(
                "v1", "Node", node["metadata"]["name"], {"spec": {"unschedulable": unschedulable}}
            )


def _fallback(pool: dict[str, Any] | None) -> dict[str, Any]:
    conds = ((pool or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "SpotFallback"), {})


def _wait_pods(kube: objects.ObjectStore, namespace: str, pool: str, want: list[str]) -> None:
    deadline = time.monotonic() + 60
    while sorted(_running_on(kube, namespace, pool)) != want:
        assert time.monotonic() < deadline, _running_on(kube, namespace, pool)
        time.sleep(0.5)


def test_spot_pool_falls_back_to_on_demand_and_returns(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    pool = samples.pool_doc(
        namespace,
        "spotty",
        placement={"capacity": "Spot", "fallbackAfterSeconds": 2},
        scaling={"minReplicas": 2, "maxReplicas": 2},
    )
    _cordon(kube, "spot", unschedulable=True)
    try:
        with operator.trimtab_operator(namespace, redis_url):
            kube.apply(pool)
            fell_back = kube.wait_for(
                API_VERSION,
                "AgentPool",
                "spotty",
                namespace=namespace,
                until=lambda p: _fallback(p).get("status") == "True",
                timeout=60,
            )
            assert _fallback(fell_back)["reason"] == "SpotUnschedulable"
            assert "unschedulable" in _fallback(fell_back)["message"]
            _wait_pods(kube, namespace, "spotty", ["on-demand", "on-demand"])
            _cordon(kube, "spot", unschedulable=False)
            back = kube.wait_for(
                API_VERSION,
                "AgentPool",
                "spotty",
                namespace=namespace,
                until=lambda p: _fallback(p).get("status") == "False",
                timeout=60,
            )
            assert _fallback(back)["reason"] == "OnSpot"
            _wait_pods(kube, namespace, "spotty", ["spot", "spot"])
        # Each move of the condition was announced, the way there and the way back.
        # The first status announces every condition in one Event, the moves one each.
        moves = [
            e["message"]
            for e in kube.list("v1", "Event", namespace=namespace)
            if e["involvedObject"]["name"] == "spotty" and "SpotFallback=" in e["message"]
        ]
        assert any(m.startswith("SpotFallback=True: ") for m in moves), moves
        assert sum("SpotFallback=False: " in m for m in moves) >= 2, moves  # first, back
    finally:
        _cordon(kube, "spot", unschedulable=False)


def test_objects_carry_no_finalizer_so_deletion_never_hangs(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(
            samples.pool_doc(namespace, "brief", scaling={"minReplicas": 1, "maxReplicas": 1})
        )
        _deployment(kube, namespace, "brief", lambda d: d["spec"].get("replicas") == 1)
    stored = kube.get(API_VERSION, "AgentPool", "brief", namespace)
    assert stored is not None
    assert not stored["metadata"].get("finalizers")
    kube.delete(API_VERSION, "AgentPool", "brief", namespace)  # the operator is gone now
    kube.wait_for(
        "v1",
        "Namespace",
        namespace,
        until=lambda _: kube.get(API_VERSION, "AgentPool", "brief", namespace) is None,
        timeout=30,
    )


def test_trimtab_operator_run_command_reconciles(
    kube: objects.ObjectStore, namespace: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    """The command users run (not the in-process harness) really reconciles."""
    kube.apply(samples.pool_doc(namespace, "cli", scaling={"minReplicas": 1, "maxReplicas": 1}))
    log = tmp_path / "operator.log"
    proc = operator.start_operator_process(namespace, redis_url, log)
    try:
        try:
            _deployment(kube, namespace, "cli", lambda d: d["spec"].get("replicas") == 1)
        except TimeoutError:
            pytest.fail(f"operator log:\n{log.read_text()[-3000:]}")
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any("trimtab operator started" in entry["message"] for entry in lines)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_pool_status_reports_its_model_endpoints_breaker(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    breaker_key = keys.pool_breaker(namespace, "guarded", "model")
    client = redis.Redis.from_url(redis_url, decode_responses=True)

    def reported(state: str) -> dict[str, Any]:
        return kube.wait_for(
            API_VERSION,
            "AgentPool",
            "guarded",
            namespace=namespace,
            until=lambda p: (p.get("status") or {}).get("breaker") == state,
            timeout=20,
        )

    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(
            samples.pool_doc(namespace, "guarded", scaling={"minReplicas": 1, "maxReplicas": 1})
        )
        reported("Closed")
        client.hset(breaker_key, mapping={"state": "open", "opened_ms": time.time() * 1000})
        reported("Open")  # as the workers' shared breaker records it
        client.delete(breaker_key)
        reported("Closed")


def test_a_pool_at_zero_wakes_for_work_queued_before_the_operator_started(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    """No worker ever ran, so the stream has no consumer group; the message that
    arrived while no operator watched still wakes the pool."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    task = messages.Task(
        namespace=namespace, run_id="r", step="s", attempt=1, workflow="w", generation=1,
        enqueued_ms=0.0,
    )  # fmt: skip
    client.xadd(keys.pool_stream(namespace, "late"), task.fields())
    kube.apply(samples.pool_doc(namespace, "late", scaling={"minReplicas": 0, "maxReplicas": 2}))
    with operator.trimtab_operator(namespace, redis_url):
        _deployment(kube, namespace, "late", lambda d: d["spec"].get("replicas") == 1)


def _spec_valid(pool: dict[str, Any] | None) -> dict[str, Any]:
    conds = ((pool or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == "SpecValid"), {})


def test_a_pool_outside_the_admins_policy_or_the_profile_is_refused_and_never_built(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    miner = samples.pool_doc(namespace, "miner", worker={"image": "evil.example/miner:1"})
    root = samples.pool_doc(
        namespace,
        "rooted",
        worker={
            "extraContainers": [
                {"name": "side", "image": "ghcr.io/trimtab/side:1",
                 "securityContext": {"privileged": True}}
            ]
        },
    )  # fmt: skip
    allowed = {"TRIMTAB_ALLOWED_IMAGES": "ghcr.io/trimtab"}
    with operator.trimtab_operator(namespace, redis_url, env=allowed):
        kube.apply(miner)
        kube.apply(root)
        for name, why in (("miner", "evil.example/miner:1"), ("rooted", "privileged")):
            refused = kube.wait_for(
                API_VERSION,
                "AgentPool",
                name,
                namespace=namespace,
                until=lambda p: _spec_valid(p).get("status") == "False",
                timeout=60,
            )
            assert why in _spec_valid(refused)["message"]
            ready = next(c for c in refused["status"]["conditions"] if c["type"] == "Ready")
            assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
            deployment = naming.worker_deployment(name)
            assert kube.get("apps/v1", "Deployment", deployment, namespace) is None
        # The Warning Events follow the status in the same pass, a moment later.
        deadline = time.monotonic() + 10
        while not {"miner", "rooted"} <= (warned := _warned(kube, namespace, "InvalidSpec")):
            assert time.monotonic() < deadline, warned
            time.sleep(0.2)


def _warned(kube: objects.ObjectStore, namespace: str, reason: str) -> set[str]:
    return {
        e["involvedObject"]["name"]
        for e in kube.list("v1", "Event", namespace=namespace)
        if e["reason"] == reason and e["type"] == "Warning"
    }

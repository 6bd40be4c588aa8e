"""The autoscaler on the real control plane with a real Redis: a bursty arrival trace
scales a pool at once to the burst's size, the decision's reason shows in status and
events, start-up is measured from the pool's own scale-up, the arrivals are recorded,
and `trimtab simulate scaling --from-pool` replays them."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from typing import Any

import pytest
import redis
import yaml

from tests.harness import operator, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import keys, messages
from trimtab.reconcile import naming

pytestmark = pytest.mark.usefixtures("crds")


def _task(namespace: str) -> dict[str, str]:
    return messages.Task(
        namespace=namespace, run_id="r", step="s", attempt=1, workflow="w", generation=1,
        enqueued_ms=time.time() * 1000,
    ).fields()  # fmt: skip


def _arrive(client: redis.Redis, stream: str, fields: dict[str, str], *, rate: float,
            seconds: float) -> int:  # fmt: skip
    """XADD at `rate` per second for `seconds`, in ten batches a second."""
    sent, start = 0, time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(rate * elapsed) - sent
        for _ in range(due):
            client.xadd(stream, fields)
        sent += max(due, 0)
        time.sleep(0.1)
    return sent


def _replicas(kube: objects.ObjectStore, namespace: str, pool: str) -> int:
    dep = kube.get("apps/v1", "Deployment", naming.worker_deployment(pool), namespace)
    return int(((dep or {}).get("spec") or {}).get("replicas") or 0)


def _wait(check: Any, timeout: float, what: str, detail: Any = None) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


def _messages(kube: objects.ObjectStore, namespace: str, pool: str, reason: str) -> list[str]:
    """The messages of the pool's Events with this reason, oldest first."""
    return [
        e["message"]
        for e in kube.list("v1", "Event", namespace=namespace)
        if e["involvedObject"]["name"] == pool and e["reason"] == reason
    ]


def _scaling_message(kube: objects.ObjectStore, namespace: str, pool: str) -> str:
    found = kube.get(API_VERSION, "AgentPool", pool, namespace) or {}
    for condition in (found.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "ScalingActive":
            return str(condition.get("message"))
    return "no ScalingActive condition"


def test_a_burst_scales_a_pool_to_its_size_with_the_reason_in_status_and_events(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    pool = samples.pool_doc(
        namespace,
        "bursty",
        worker={"concurrency": 4},
        scaling={
            "minReplicas": 1,
            "maxReplicas": 30,
            "standby": 1,
            # The backlog is left to grow (no workers here): only the arrivals size it.
            "targets": {"backlogSeconds": 3600},
            "stabilization": {"scaleDownSeconds": 5},
        },
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = keys.pool_stream(namespace, "bursty")
    with contextlib.suppress(redis.ResponseError):
        client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    fields = _task(namespace)
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(pool)
        # Idle, the need is 0: the one standby replica is also the minimum.
        _wait(lambda: _replicas(kube, namespace, "bursty") == 1, 30, "the standby replica")
        sent = _arrive(client, stream, fields, rate=1.0, seconds=8.0)
        assert _replicas(kube, namespace, "bursty") <= 3  # a trickle needs no more
        burst_start = time.monotonic()
        sent += _arrive(client, stream, fields, rate=40.0, seconds=4.0)
        # 40/s at the assumed 1 s per step: 40 + 1.5 sqrt(40) slots = 12 replicas + 1.
        reached = _wait(lambda: _replicas(kube, namespace, "bursty") >= 10, 10, "the burst")
        assert reached - burst_start < 5.0  # within seconds of the burst, not creeping
        # A later pass may scale up again for the same arrivals, read as a backlog or a
        # smoothed rate by then: the status holds the last scale-up, the Events each one.
        status = kube.wait_for(
            API_VERSION, "AgentPool", "bursty", namespace=namespace,
            until=lambda p: ((p.get("status") or {}).get("desiredReplicas") or 0) >= 10,
            timeout=15,
        )["status"]  # fmt: skip
        assert status["lastScaleReason"].startswith("ScaledUp: scaled up from")
        _wait(
            lambda: any("burst of" in m for m in _messages(kube, namespace, "bursty", "ScaledUp")),
            15,
            "a ScaledUp Event naming the burst",
            lambda: _messages(kube, namespace, "bursty", "ScaledUp"),
        )
        kube.wait_for(
            API_VERSION, "AgentPool", "bursty", namespace=namespace,
            until=lambda p: (p.get("status") or {}).get("startupSeconds") is not None,
            timeout=30,
        )  # fmt: skip
        # The trickle, then nothing: the smoothed rate decays and the pool steps down.
        _wait(
            lambda: _replicas(kube, namespace, "bursty") <= 2,
            90,
            "the scale-down",
            lambda: _scaling_message(kube, namespace, "bursty"),
        )
        # The Event follows the Deployment's change in the same pass, a moment later.
        _wait(lambda: _messages(kube, namespace, "bursty", "ScaledDown"), 10, "ScaledDown")
    recorded = _recorded_total(client, namespace, "bursty")
    assert recorded == sent  # every arrival the operator saw is in the pool's record
    replay = subprocess.run(
        [sys.executable, "-m", "trimtab", "simulate", "scaling", "-f", "-",
         "--from-pool", f"{namespace}/bursty", "--since", "10m", "--redis-url", redis_url],
        input=_manifest(pool), capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert f"{sent} arrivals" in replay.stdout
    assert "KEDA default" in replay.stdout


def _recorded_total(client: redis.Redis, namespace: str, pool: str) -> int:
    prefix = keys.pool_arrivals(namespace, pool, 0).rsplit(":", 1)[0]
    total = 0
    for key in client.scan_iter(f"{prefix}:*"):
        total += sum(int(v) for v in client.hvals(key))
    return total


def _manifest(pool: dict[str, Any]) -> str:
    return yaml.safe_dump(pool)

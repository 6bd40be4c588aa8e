#!/usr/bin/env python3
"""How fast the autoscaler reacts, on the real local control plane with a real operator.

1. Spikes: a pool at 1 replica (100 messages per replica) gets 300 messages; measured
   from the XADD that completes the spike to the Deployment's replicas patched to 3,
   50 times (the queue is emptied and the pool settles back to 1 between spikes).
2. From zero: a pool at 0 replicas gets one message; measured to the replicas patch
   and to the first pod scheduled onto a (kwok) node.
Target: p95 <= 2 s. For scale: KEDA polls every 30 s by default and the HPA it drives
syncs every 15 s. Prints figures; asserts nothing.
"""

from __future__ import annotations

import contextlib
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator

import _local
import redis
import yaml

from trimtab.kube import objects
from trimtab.queue import keys, messages
from trimtab.reconcile import naming

NS = f"bench-scale-{uuid.uuid4().hex[:6]}"  # fresh: a previous run's may still terminate
SPIKES, FROM_ZERO = 50, 10


def _pool(name: str, minimum: int) -> dict[str, object]:
    return {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": {"endpoint": "http://sim.local:8080/v1", "name": "m"},
            "scaling": {
                "minReplicas": minimum,
                "maxReplicas": 10,
                "idleSecondsToZero": 0,
                "targets": {"messagesPerReplica": 100, "backlogSeconds": 600},
                "stabilization": {"scaleDownSeconds": 1},
            },
        },
    }


def _wait(check: Callable[[], bool], timeout: float = 60) -> float:
    """Poll every 5 ms; returns the perf_counter time `check` first held."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if check():
            return time.perf_counter()
        time.sleep(0.005)
    raise TimeoutError("condition not reached")


def _replicas(store: objects.ObjectStore, pool: str) -> int | None:
    dep = store.get("apps/v1", "Deployment", naming.worker_deployment(pool), NS)
    return None if dep is None else dep["spec"].get("replicas")


def _scheduled(store: objects.ObjectStore, pool: str) -> bool:
    pods = store.list("v1", "Pod", namespace=NS, label_selector=f"{naming.POOL_LABEL}={pool}")
    return any(p["spec"].get("nodeName") for p in pods)


def _enqueue(rds: redis.Redis, pool: str, count: int) -> None:
    task = messages.Task(
        namespace=NS, run_id="r", step="s", attempt=1, workflow="w", generation=1, enqueued_ms=0.0
    )
    with rds.pipeline(transaction=False) as pipe:
        for _ in range(count):
            pipe.xadd(keys.pool_stream(NS, pool), task.fields())
        pipe.execute()


def _empty(rds: redis.Redis, pool: str) -> None:
    stream = keys.pool_stream(NS, pool)
    rds.delete(stream)
    rds.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)


@contextlib.contextmanager
def _operator(redis_url: str, kubeconfig: str, log: pathlib.Path) -> Iterator[None]:
    proc = _local.start_operator(NS, redis_url, kubeconfig, log)
    try:
        yield
    finally:
        _local.stop(proc)


def _report(label: str, samples: list[float]) -> None:
    ms = [s * 1000 for s in samples]
    print(
        f"  {label:<34} n={len(ms):3d}  p50={_local.percentile(ms, 50):7.1f} ms  "
        f"p95={_local.percentile(ms, 95):7.1f} ms  p99={_local.percentile(ms, 99):7.1f} ms"
    )


def spikes(store: objects.ObjectStore, rds: redis.Redis) -> list[float]:
    store.apply(_pool("spiky", 1))
    _empty(rds, "spiky")
    _wait(lambda: _replicas(store, "spiky") == 1)
    samples = []
    for _ in range(SPIKES):
        _enqueue(rds, "spiky", 300)
        t0 = time.perf_counter()
        samples.append(_wait(lambda: (_replicas(store, "spiky") or 0) >= 3) - t0)
        _empty(rds, "spiky")
        try:
            _wait(lambda: _replicas(store, "spiky") == 1)
        except TimeoutError:
            pool = store.get("trimtab.io/v1alpha1", "AgentPool", "spiky", NS) or {}
            print(yaml.safe_dump((pool.get("status") or {}).get("conditions")))
            raise
    return samples


def from_zero(store: objects.ObjectStore, rds: redis.Redis) -> tuple[list[float], list[float]]:
    store.apply(_pool("sleepy", 0))
    _empty(rds, "sleepy")
    patched, scheduled = [], []
    for _ in range(FROM_ZERO):
        _wait(
            lambda: (
                _replicas(store, "sleepy") == 0
                and not store.list(
                    "v1", "Pod", namespace=NS, label_selector=f"{naming.POOL_LABEL}=sleepy"
                )
            )
        )
        _enqueue(rds, "sleepy", 1)
        t0 = time.perf_counter()
        patched.append(_wait(lambda: (_replicas(store, "sleepy") or 0) >= 1) - t0)
        scheduled.append(_wait(lambda: _scheduled(store, "sleepy")) - t0)
        _empty(rds, "sleepy")
    return patched, scheduled


def main() -> None:
    lay, store = _local.bench_cluster(NS)
    try:
        with _local.services({"seed": 1}) as (redis_url, _, work):
            rds = redis.Redis.from_url(redis_url)
            with _operator(redis_url, str(lay.kubeconfig), work / "operator.log"):
                time.sleep(3)  # operator start-up, kept out of the measurements
                spike = spikes(store, rds)
                patched, scheduled = from_zero(store, rds)
        print("Autoscaler reaction time (operator scale loop: 1 s; KEDA polls every 30 s):")
        _report("spike -> replicas patched", spike)
        _report("from zero -> replicas patched", patched)
        _report("from zero -> first pod scheduled", scheduled)
        print("  target: p95 <= 2 s")
    finally:
        store.delete("v1", "Namespace", NS)


if __name__ == "__main__":
    main()

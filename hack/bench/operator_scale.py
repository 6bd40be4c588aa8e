#!/usr/bin/env python3
"""One operator over many pools and workflows, on the real local control plane.

Creates N AgentPools (0 replicas at rest) and N AgentWorkflows (each bound to one pool),
then starts `trimtab operator run` and measures:
1. cold start: from the operator's launch to every pool's Deployment, Service and PDB
   applied and every workflow validated, published and reported (status written);
2. idle: the operator's RSS and CPU, and the apiserver's write calls per minute on the
   resources the operator writes (from the apiserver's own request counters, which
   count every client: run it on an otherwise idle cluster; the controller-manager's
   status writes are left out);
3. reaction time with all N pools loaded: a run submitted to an idle pool's workflow
   (through the SDK) to the pool's Deployment asking for a replica, over 20 pools.
N defaults to 1,000 (TRIMTAB_BENCH_OBJECTS). Prints figures; asserts nothing.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import subprocess
import time
import uuid
from collections import Counter
from typing import Any

import _local
from prometheus_client.parser import text_string_to_metric_families

from trimtab.kube import objects
from trimtab.reconcile import naming
from trimtab.sdk import sync

N = int(os.environ.get("TRIMTAB_BENCH_OBJECTS", "1000"))
NS = f"bench-many-{uuid.uuid4().hex[:6]}"
API = "trimtab.io/v1alpha1"
OPERATOR_RESOURCES = {
    "agentpools",
    "agentworkflows",
    "agentbudgets",
    "deployments",
    "services",
    "poddisruptionbudgets",
    "events",
}
# Written by kube-controller-manager, not the operator.
CONTROLLER_WRITES = {("deployments", "status"), ("poddisruptionbudgets", "status")}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE"}
IDLE_SECONDS = 60
# Listing every object twice a second is itself load at ten thousand: poll less often
# there, and give the start-up longer before calling it stuck.
POLL_SECONDS = max(0.5, N / 2000)
SETTLE_LIMIT_SECONDS = max(600.0, N * 0.3)
REACTIONS = 20


def _pool(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentPool",
        "metadata": {"name": f"pool-{i:05d}", "namespace": NS},
        "spec": {
            "model": {"endpoint": "http://sim.local:8080/v1", "name": "m"},
            "scaling": {
                "minReplicas": 0,
                "maxReplicas": 3,
                "idleSecondsToZero": 0,
                "targets": {"messagesPerReplica": 100, "backlogSeconds": 600},
            },
        },
    }


def _workflow(i: int) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "AgentWorkflow",
        "metadata": {"name": f"wf-{i:05d}", "namespace": NS},
        "spec": {
            "defaultPool": f"pool-{i:05d}",
            "steps": [
                {"name": "a", "prompt": "{{ inputs.q }}"},
                {"name": "b", "prompt": "{{ inputs.q }}"},
                {"name": "c", "dependsOn": ["a", "b"], "prompt": "{{ a }} {{ b }}"},
            ],
        },
    }


def _create_all(store: objects.ObjectStore) -> float:
    docs = [_pool(i) for i in range(N)] + [_workflow(i) for i in range(N)]
    store.apply(docs[0])
    store.apply(docs[N])  # discovery warmed before the threads share the client
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(store.apply, docs[1:N] + docs[N + 1 :]))
    return time.perf_counter() - t0


def _write_counts(store: objects.ObjectStore) -> Counter[tuple[str, str, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(store.raw("/metrics")):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == "apiserver_request_total"
                and labels.get("verb") in WRITE_VERBS
                and labels.get("resource") in OPERATOR_RESOURCES
                and (labels.get("resource"), labels.get("subresource")) not in CONTROLLER_WRITES
            ):
                key = (labels["resource"], labels.get("subresource", ""), labels["verb"])
                counts[key] += int(sample.value)
    return counts


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _converged(store: objects.ObjectStore) -> tuple[int, int, int]:
    """(Deployments, PDBs, workflows reported at their generation with the plan published)."""
    deployments = len(store.list("apps/v1", "Deployment", namespace=NS))
    pdbs = len(store.list("policy/v1", "PodDisruptionBudget", namespace=NS))
    reported = sum(
        1
        for wf in store.list(API, "AgentWorkflow", namespace=NS)
        if (wf.get("status") or {}).get("observedGeneration") == wf["metadata"]["generation"]
    )
    return deployments, pdbs, reported


def _replicas(store: objects.ObjectStore, pool: str) -> int:
    dep = store.get("apps/v1", "Deployment", naming.worker_deployment(pool), NS) or {}
    return int((dep.get("spec") or {}).get("replicas") or 0)


def _reactions(store: objects.ObjectStore, sdk: sync.SyncClient) -> list[float]:
    """A run of an idle pool's workflow submitted through the SDK (its roots enqueued on
    the pool by the submit script) until the pool's Deployment asks for a replica."""
    samples = []
    for i in range(REACTIONS):
        n = (i * 37) % N
        pool = f"pool-{n:05d}"
        t0 = time.perf_counter()
        sdk.submit(NS, f"wf-{n:05d}", {"q": "wake"})
        while _replicas(store, pool) < 1:
            if time.perf_counter() - t0 > 60:
                raise TimeoutError(f"{pool} never scaled from zero")
            time.sleep(0.01)
        samples.append(time.perf_counter() - t0)
    return samples


def _cold_start(
    store: objects.ObjectStore, proc: subprocess.Popen[bytes], log: pathlib.Path
) -> dict[str, float]:
    t0, marks = time.perf_counter(), dict[str, float]()
    while len(marks) < 3:
        if proc.poll() is not None:
            raise RuntimeError(f"operator exited: {log.read_text()[-2000:]}")
        deployments, pdbs, reported = _converged(store)
        now = time.perf_counter() - t0
        if deployments == N:
            marks.setdefault("deployments", now)
        if pdbs == N:
            marks.setdefault("pool objects (last PDB)", now)
        if reported == N:
            marks.setdefault("workflows reported", now)
        time.sleep(POLL_SECONDS)
    return marks


def _settle(store: objects.ObjectStore, t_launch: float, quiet: float = 20.0) -> float:
    """Wait until the operator's own writes (pools, workflows, events) stop for `quiet`
    seconds; returns when, from launch. Start-up transitions are not idle traffic."""

    def ours() -> int:
        return sum(
            v
            for (res, _, _), v in _write_counts(store).items()
            if res in {"agentpools", "agentworkflows", "events"}
        )

    last, since = ours(), time.perf_counter()
    while time.perf_counter() - since < quiet:
        if time.perf_counter() - t_launch > SETTLE_LIMIT_SECONDS:
            raise TimeoutError("start-up writes never settled")
        time.sleep(2)
        now = ours()
        if now != last:
            last, since = now, time.perf_counter()
    return since - t_launch


def _since(
    before: Counter[tuple[str, str, str]], after: Counter[tuple[str, str, str]]
) -> Counter[tuple[str, str, str]]:
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] > before.get(k, 0)})


def _idle(
    store: objects.ObjectStore, pid: int
) -> tuple[Counter[tuple[str, str, str]], float, float]:
    before, cpu0, t0 = _write_counts(store), _cpu_seconds(pid), time.perf_counter()
    time.sleep(IDLE_SECONDS)
    after, cpu1, elapsed = _write_counts(store), _cpu_seconds(pid), time.perf_counter() - t0
    return _since(before, after), (cpu1 - cpu0) / elapsed * 100, _rss_mib(pid)


def main() -> None:
    lay, store = _local.bench_cluster(NS)
    try:
        with _local.services({"seed": 1}) as (redis_url, _, work):
            created = _create_all(store)
            print(f"{N} AgentPools + {N} AgentWorkflows created in {created:.1f} s (16 threads)")
            log = work / "operator.log"
            proc = _local.start_operator(NS, redis_url, str(lay.kubeconfig), log)
            t_launch, launched = time.perf_counter(), _write_counts(store)
            try:
                marks = _cold_start(store, proc, log)
                marks["start-up writes settled"] = _settle(store, t_launch)
                start_up = _since(launched, _write_counts(store))
                writes, cpu, rss = _idle(store, proc.pid)
                reactions = _reactions(store, sync.SyncClient(redis_url))
            finally:
                _local.stop(proc)
                kept = pathlib.Path(os.environ.get("TRIMTAB_BENCH_LOG", "/tmp/operator-scale.log"))
                kept.write_bytes(log.read_bytes())
        _print(marks, start_up, writes, cpu, rss, reactions)
    finally:
        store.delete("v1", "Namespace", NS)


def _print(
    marks: dict[str, float],
    start_up: Counter[tuple[str, str, str]],
    writes: Counter[tuple[str, str, str]],
    cpu: float,
    rss: float,
    reactions: list[float],
) -> None:
    print(f"Cold start of one operator over {N} pools and {N} workflows (from launch):")
    for label, seconds in marks.items():
        print(f"  all {label:<28} {seconds:7.1f} s")
    print(f"  apiserver writes from launch until settled: {sum(start_up.values())}")
    _print_writes(start_up)
    print(f"Idle, measured over {IDLE_SECONDS} s once start-up writes settled:")
    print(f"  operator RSS                     {rss:7.1f} MiB")
    print(f"  operator CPU                     {cpu:7.1f} % of one core")
    total = sum(writes.values())
    print(f"  apiserver writes on operator resources: {total} in {IDLE_SECONDS} s")
    _print_writes(writes)
    ms = [s * 1000 for s in reactions]
    print(f"Reaction with {N} pools loaded, a run submitted to an idle pool -> replicas patched:")
    print(
        f"  n={len(ms)}  p50={_local.percentile(ms, 50):.0f} ms  "
        f"p95={_local.percentile(ms, 95):.0f} ms  max={max(ms):.0f} ms  (target p95 <= 2 s)"
    )


def _print_writes(writes: Counter[tuple[str, str, str]]) -> None:
    for (resource, sub, verb), count in sorted(writes.items()):
        print(f"    {verb:<6} {resource}{'/' + sub if sub else ''}: {count}")


if __name__ == "__main__":
    main()

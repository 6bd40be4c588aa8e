#!/usr/bin/env python3
"""Operator failover under leader election, on the real local control plane.

Two `trimtab operator run --leader-elect` processes contend for one Lease. Each trial
stops the leader, then creates a new AgentPool and times two things from the stop:
the standby holding the Lease, and the new pool's Deployment applied (so the
standby is really reconciling). Killed leaders (SIGKILL) cannot release the Lease, so
the standby waits out its 15 s duration; stopped ones (SIGTERM) release it. The stopped
process is started again as the next standby. Prints figures; asserts nothing.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from typing import Any

import _local

from trimtab.kube import lease, objects
from trimtab.reconcile import naming

TRIALS = 4
NS = f"bench-failover-{uuid.uuid4().hex[:6]}"


def _holder(store: objects.ObjectStore) -> str:
    found = store.get(lease.API_VERSION, lease.KIND, "trimtab", NS)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def _until(check: Any, timeout: float = 90) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("no failover within 90 s")
        time.sleep(0.05)
    return time.monotonic()


def _trial(
    store: objects.ObjectStore, procs: list[subprocess.Popen[bytes]], sig: int, n: int
) -> tuple[float, float, int]:
    """Stop the leader with `sig`; returns (lease taken, pool applied) seconds and the
    index of the stopped process."""
    before = _holder(store)
    leader_pid = int(before.split("_")[-2])  # identities are host_pid_random
    leader = next(i for i, p in enumerate(procs) if p.pid == leader_pid)
    stopped_at = time.monotonic()
    procs[leader].send_signal(sig)
    name = f"p{n}-{sig}"
    store.apply(_local.pool_manifest(NS, name, "http://sim.local/v1"))
    took = _until(lambda: _holder(store) not in ("", before)) - stopped_at
    dep = naming.worker_deployment(name)
    applied = _until(lambda: store.get("apps/v1", "Deployment", dep, NS) is not None) - stopped_at
    procs[leader].wait(timeout=60)
    return took, applied, leader


def main() -> None:
    lay, store = _local.bench_cluster(NS)
    with _local.services({"default": {}}) as (redis_url, _, work):
        logs = [work / "op-0.log", work / "op-1.log"]
        kubeconfig = str(lay.kubeconfig)

        def start(i: int) -> subprocess.Popen[bytes]:
            return _local.start_operator(NS, redis_url, kubeconfig, logs[i], leader_elect=True)

        procs = [start(0)]
        _until(lambda: bool(_holder(store)))
        procs.append(start(1))
        time.sleep(3)
        results: dict[str, list[tuple[float, float]]] = {"SIGKILL": [], "SIGTERM": []}
        try:
            for n in range(TRIALS):
                for sig in (signal.SIGKILL, signal.SIGTERM):
                    took, applied, stopped = _trial(store, procs, sig, n)
                    results[signal.Signals(sig).name].append((took, applied))
                    procs[stopped] = start(stopped)  # back as the standby
                    time.sleep(3)
        finally:
            for proc in procs:
                _local.stop(proc)
            store.delete("v1", "Namespace", NS)
    print(f"Leader failover between two operators, {TRIALS} trials per stop signal:")
    for name, rows in results.items():
        took = sorted(r[0] for r in rows)
        applied = sorted(r[1] for r in rows)
        print(
            f"  leader {name:7}  lease taken  min {took[0]:5.1f} s  max {took[-1]:5.1f} s"
            f"   new pool applied  min {applied[0]:5.1f} s  max {applied[-1]:5.1f} s"
        )


if __name__ == "__main__":
    main()

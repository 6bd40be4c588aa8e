#!/usr/bin/env python3
"""How fast a pool on a real node turns a spike into a new worker's first step.

The pool's workers run the project's image as containers on the real node
(`real-on-demand-0`), against a real Redis and the inference simulator on the host's
bridge address, with a real operator (`trimtab operator run`). The pool idles at one
replica (two steps at once, 1.5 s per step), may grow to two, and wants one replica
per 4 queued messages, with no headroom (so it steps back as soon as a spike is gone).
Each of 20 spikes (--spikes) submits 20 one-step runs at once, a backlog one replica
would take 15 s to drain, and is timed from the XADD that completes it (the last
submission's return) to:

  (a) the Deployment's replicas patched to 2 (the operator's 1 s loop);
  (b) the new pod scheduled (bound to the node);
  (c) its worker container running, and the pod Ready (/readyz, probed every 2 s);
  (d) the new replica's first step started: the earliest `s:<step>:start_ms` among the
      spike's steps whose `worker` (the consumer, named after its pod) is the new pod's,
      written by start.lua as the delivery starts, on this machine's clock.

(a)-(c) are seen by polling the API every 20 ms. After each spike the runs finish, the
pool steps back to one replica and the new pod is gone before the next. Prints
figures; asserts nothing. Needs root (a real node) and builds the image if needed.

    .venv/bin/python hack/bench/real_node_reaction.py [--cluster NAME] [--spikes N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import _local
import httpx
import redis

from trimtab.api import crdgen
from trimtab.kube import client, objects
from trimtab.queue import keys
from trimtab.reconcile import conditions, naming
from trimtab.sdk import Client
from trimtab_dev.devcluster import cluster, commands, layout, realnodes

ROOT = pathlib.Path(__file__).resolve().parents[2]
NS = f"bench-realnode-{uuid.uuid4().hex[:6]}"
POOL, WORKFLOW, SPIKE_RUNS = "spiky", "one", 20
NODE = realnodes.real_nodes(1)[0]
STAGES = ("replicas patched", "pod scheduled", "container running", "pod Ready", "first step")
GAPS = (
    ("replicas patched", "pod scheduled"),
    ("pod scheduled", "container running"),
    ("container running", "first step"),
    ("container running", "pod Ready"),
)


def _pool(endpoint: str) -> dict[str, Any]:
    return {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentPool",
        "metadata": {"name": POOL, "namespace": NS},
        "spec": {
            "model": {"endpoint": endpoint, "name": "sim-small", "timeoutSeconds": 10},
            "worker": {
                "concurrency": 2,
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
            },
            "scaling": {
                "minReplicas": 1,
                "maxReplicas": 2,
                "targets": {"messagesPerReplica": 4, "backlogSeconds": 2, "headroom": 0},
                "stabilization": {"scaleDownSeconds": 1},
            },
            "placement": {**realnodes.placement(NODE), "spreadAcrossZones": False},
        },
    }


def _workflow() -> dict[str, Any]:
    step = {"name": "answer", "prompt": "Answer: {{ inputs.q }}", "maxTokens": 20}
    return {
        "apiVersion": "trimtab.io/v1alpha1",
        "kind": "AgentWorkflow",
        "metadata": {"name": WORKFLOW, "namespace": NS},
        "spec": {"defaultPool": POOL, "steps": [step]},
    }


def _wait(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(objects.ApiError, LookupError, redis.RedisError, httpx.HTTPError):
            found = check()
            if found:
                return found
        time.sleep(0.1)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def _cluster(name: str) -> tuple[layout.Layout, objects.ObjectStore]:
    """The cluster with a real node, the image built and imported, the CRDs, our namespace."""
    archive = subprocess.run(
        [str(ROOT / "hack" / "build-image.sh")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    cluster.up(layout.layout_for(name), images=(pathlib.Path(archive),))
    lay = layout.layout_for(name)  # now with the real nodes `up` recorded
    if lay.host_address is None:
        raise SystemExit(f"cluster {name} runs no real node: trimtab cluster up --real-nodes 1")
    store = objects.ObjectStore(client.connect(str(lay.kubeconfig)))
    for crd in crdgen.all_crds():
        store.apply(crd)
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    return lay, store


@contextlib.contextmanager
def _services(address: str) -> Iterator[tuple[str, str, pathlib.Path]]:
    """redis-server and the simulator on loopback and the host's bridge address, where
    pods reach them: (Redis URL, simulator base URL, a scratch directory)."""
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-") as tmp, contextlib.ExitStack() as st:
        work, rport, sport = pathlib.Path(tmp), _local.free_port(), _local.free_port()
        bind = ["--bind", "127.0.0.1", address, "--protected-mode", "no"]
        rds = subprocess.Popen(
            ["redis-server", *bind, "--port", str(rport), "--save", "", "--dir", tmp],
            stdout=subprocess.DEVNULL,
        )
        st.callback(commands.stop, rds)
        url = f"redis://{address}:{rport}/0"
        _wait(lambda: redis.Redis.from_url(url).ping(), "redis-server", 30)
        sim = {"seed": 1, "default": {"ttft_seconds": 1.5, "per_token_seconds": 0.0}}
        (work / "sim.json").write_text(json.dumps(sim))
        argv = [*commands.simulator_argv(sport, work / "sim.json"), "--host", address]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        st.callback(commands.stop, proc)
        health = f"http://{address}:{sport}/healthz"
        _wait(lambda: httpx.get(health).status_code == 200, "the simulator", 60)
        yield url, f"http://{address}:{sport}/v1", work


def _pods(store: objects.ObjectStore) -> list[dict[str, Any]]:
    return store.list("v1", "Pod", namespace=NS, label_selector=f"{naming.POOL_LABEL}={POOL}")


def _replicas(store: objects.ObjectStore) -> int:
    dep = store.get("apps/v1", "Deployment", naming.worker_deployment(POOL), NS) or {}
    return int((dep.get("spec") or {}).get("replicas") or 0)


def _running(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any("running" in (s.get("state") or {}) for s in statuses)


def _ready(pod: dict[str, Any]) -> bool:
    return conditions.is_true((pod.get("status") or {}).get("conditions"), "Ready")


async def _spike(redis_url: str) -> list[str]:
    sdk = Client(redis_url)
    try:
        runs = (sdk.submit(NS, WORKFLOW, {"q": f"q{i}"}) for i in range(SPIKE_RUNS))
        return list(await asyncio.gather(*runs))
    finally:
        await sdk.aclose()


def _first_step_ms(rds: redis.Redis, refs: list[str], pod: str) -> float | None:
    """Epoch ms at which the new pod's worker started its first step of the spike."""
    starts = []
    for ref in refs:
        record = rds.hgetall(keys.run(NS, ref.split("/", 1)[1]))
        worker = record.get(b"s:answer:worker", b"").decode()
        if worker.rsplit("-", 1)[0] == pod:
            starts.append(float(record[b"s:answer:start_ms"]))
    return min(starts, default=None)


def _observe(
    store: objects.ObjectStore, before: set[str], t0: float
) -> tuple[dict[str, float], str]:
    """Seconds from t0 to stages (a)-(c) of the one new pod, polled every 20 ms."""
    seen: dict[str, float] = {}
    new = ""
    deadline = t0 + 120
    while len(seen) < 4 and time.perf_counter() < deadline:
        now = time.perf_counter() - t0
        if "replicas patched" not in seen and _replicas(store) >= 2:
            seen["replicas patched"] = now
        fresh = [p for p in _pods(store) if p["metadata"]["name"] not in before]
        if fresh:
            pod, new = fresh[0], fresh[0]["metadata"]["name"]
            checks = {
                "pod scheduled": bool(pod["spec"].get("nodeName")),
                "container running": _running(pod),
                "pod Ready": _ready(pod),
            }
            for stage, reached in checks.items():
                if reached and stage not in seen:
                    seen[stage] = now
        time.sleep(0.02)
    return seen, new


def _settle(store: objects.ObjectStore, rds: redis.Redis, refs: list[str]) -> None:
    """The spike's runs finished, the pool back at one replica, the other pod gone."""

    def done() -> bool:
        statuses = [rds.hget(keys.run(NS, r.split("/", 1)[1]), "status") for r in refs]
        return all(s in (b"succeeded", b"failed") for s in statuses)

    _wait(done, "the spike's runs", 180)
    _wait(lambda: _replicas(store) == 1 and len(_pods(store)) == 1, "back to one pod", 180)


def _one_pod_serving(store: objects.ObjectStore) -> str:
    pods = _wait(lambda: [p for p in _pods(store) if _running(p) and _ready(p)], "a first pod")
    return str(pods[0]["metadata"]["name"])


def spikes(store: objects.ObjectStore, redis_url: str, count: int) -> list[dict[str, float]]:
    rds = redis.Redis.from_url(redis_url)
    samples = []
    for _ in range(count):
        before = {_one_pod_serving(store)}
        refs = asyncio.run(_spike(redis_url))
        t0, t0_ms = time.perf_counter(), time.time() * 1000
        seen, pod = _observe(store, before, t0)
        _settle(store, rds, refs)
        first = _first_step_ms(rds, refs, pod) if pod else None
        if first is not None:
            seen["first step"] = (first - t0_ms) / 1000
        samples.append(seen)
    return samples


def _warm(redis_url: str) -> None:
    """Wait for the workflow's publication, then run it once (the first pod serves)."""

    async def go() -> None:
        sdk = Client(redis_url)
        try:
            ref = await sdk.submit(NS, WORKFLOW, {"q": "warm"})
            await sdk.result(ref, timeout=120)
        finally:
            await sdk.aclose()

    _wait(lambda: asyncio.run(go()) or True, "the workflow published and run once", 120)


def _report(samples: list[dict[str, float]], count: int) -> None:
    print(f"Real-node pool reaction, {count} spikes of {SPIKE_RUNS} runs, 1 -> 2 replicas")
    print("(from the XADD that completes the spike; operator scale loop: every 1 s)")
    for stage in STAGES:
        ms = [s[stage] * 1000 for s in samples if stage in s]
        if not ms:
            print(f"  {stage:<20} n=  0")
            continue
        print(
            f"  {stage:<20} n={len(ms):3d}  p50={_local.percentile(ms, 50):8.1f} ms  "
            f"p95={_local.percentile(ms, 95):8.1f} ms  max={max(ms):8.1f} ms"
        )
    print("  between stages (p50):")
    for a, b in GAPS:
        gaps = [(s[b] - s[a]) * 1000 for s in samples if a in s and b in s]
        if gaps:
            print(f"    {a} -> {b}: {_local.percentile(gaps, 50):8.1f} ms (n={len(gaps)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default=layout.DEFAULT_NAME, help="local cluster name")
    parser.add_argument("--spikes", type=int, default=20)
    args = parser.parse_args()
    lay, store = _cluster(args.cluster)
    assert lay.host_address is not None
    try:
        with contextlib.ExitStack() as stack:
            redis_url, endpoint, work = stack.enter_context(_services(lay.host_address))
            stack.enter_context(_operator(redis_url, str(lay.kubeconfig), work / "operator.log"))
            store.apply(_pool(endpoint))
            store.apply(_workflow())
            _warm(redis_url)
            samples = spikes(store, redis_url, args.spikes)
            pool = store.get("trimtab.io/v1alpha1", "AgentPool", POOL, NS) or {}
        _report(samples, args.spikes)
        measured = (pool.get("status") or {}).get("startupSeconds")
        print(
            f"  the operator's measured start-up (ask to Ready, status.startupSeconds): {measured}"
        )
    finally:
        store.delete("v1", "Namespace", NS)


@contextlib.contextmanager
def _operator(redis_url: str, kubeconfig: str, log: pathlib.Path) -> Iterator[None]:
    """`trimtab operator run`, its worker pods given the same Redis URL (the host's address)."""
    os.environ["TRIMTAB_WORKER_REDIS_URL"] = redis_url
    proc = _local.start_operator(NS, redis_url, kubeconfig, log)
    try:
        yield
    finally:
        _local.stop(proc)


if __name__ == "__main__":
    main()

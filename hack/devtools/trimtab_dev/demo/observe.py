"""Sampling the running system once a second, from the same places a user would look:
the pools' Deployments and statuses in Kubernetes, their queues in Redis, and the
workflows' run statistics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import load, workflows
from trimtab.reconcile import naming
from trimtab.sdk import Client
from trimtab_dev.demo import timeline as tl
from trimtab_dev.devcluster import realnodes

WORKFLOWS = ("customer-support", "batch-summarize", "support-agent")


class Observer:
    def __init__(self, store: objects.ObjectStore, client: Client, namespace: str) -> None:
        self.store, self.client, self.namespace = store, client, namespace
        self.reader = load.LoadReader(client.redis)

    def _kube(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        pools = self.store.list(API_VERSION, "AgentPool", namespace=self.namespace)
        deps = self.store.list("apps/v1", "Deployment", namespace=self.namespace)
        by_pool = {d["metadata"]["labels"].get(naming.POOL_LABEL, ""): d for d in deps}
        return pools, by_pool

    def _real_pods(self) -> dict[str, int]:
        """Running worker pods on real nodes, by pool."""
        real = {
            n["metadata"]["name"]
            for n in self.store.list("v1", "Node", label_selector=f"{realnodes.REAL_NODE_LABEL}")
        }
        pods = self.store.list(
            "v1", "Pod", namespace=self.namespace, label_selector=naming.POOL_LABEL
        )
        counts: dict[str, int] = {}
        for pod in pods:
            running = (pod.get("status") or {}).get("phase") == "Running"
            if running and (pod.get("spec") or {}).get("nodeName") in real:
                pool = pod["metadata"]["labels"][naming.POOL_LABEL]
                counts[pool] = counts.get(pool, 0) + 1
        return counts

    async def pools(self, t: float) -> list[tl.PoolSample]:
        pools, deployments = await asyncio.to_thread(self._kube)
        real = await asyncio.to_thread(self._real_pods)
        names = [p["metadata"]["name"] for p in pools]
        loads = await self.reader.read_all([(self.namespace, n) for n in names], now=time.time())
        out = []
        for pool in pools:
            name, status = pool["metadata"]["name"], pool.get("status") or {}
            dep = deployments.get(name) or {}
            queue = loads[(self.namespace, name)]
            out.append(
                tl.PoolSample(
                    t=t,
                    pool=name,
                    capacity=str(status.get("capacity") or "OnDemand"),
                    desired=int((dep.get("spec") or {}).get("replicas") or 0),
                    ready=int((dep.get("status") or {}).get("readyReplicas") or 0),
                    queue_depth=queue.backlog,
                    in_flight=queue.in_flight,
                    p95_seconds=queue.p95_seconds,
                    breaker=queue.breaker,
                    service_seconds=queue.service_seconds,
                    real_pods=real.get(name, 0),
                )
            )
        return sorted(out, key=lambda s: s.pool)

    async def recorded(self, since: float) -> tuple[dict[str, dict[int, int]], dict[str, Any]]:
        """Each pool's recorded arrivals since `since` (epoch seconds), and its spec."""
        pools, _ = await asyncio.to_thread(self._kube)
        arrivals, specs = {}, {}
        for pool in pools:
            name = pool["metadata"]["name"]
            specs[name] = dict(pool.get("spec") or {})
            arrivals[name] = await self.client.recorded_arrivals(
                self.namespace, name, since=since, until=time.time()
            )
        return arrivals, specs

    async def runs(self, t: float, submitted: int) -> tl.RunsSample:
        totals = [
            await workflows.run_stats(self.client.redis, self.namespace, w, now=time.time())
            for w in WORKFLOWS
        ]
        return tl.RunsSample(
            t=t,
            submitted=submitted,
            succeeded=sum(s.succeeded for s in totals),
            failed=sum(s.failed for s in totals),
            review=sum(s.in_review for s in totals),
            tokens=sum(s.tokens for s in totals),
            cost=sum(s.cost for s in totals),
        )

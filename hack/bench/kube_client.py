#!/usr/bin/env python3
"""Which Kubernetes client should trimtab.kube use? Patch latency and idle memory.

1. Deployment scale patch latency against the local cluster, clients interleaved
   round by round so machine noise hits each alike: the official `kubernetes` client
   (typed API and the dynamic client trimtab.kube uses, both sync), and the async
   `kubernetes_asyncio` and `lightkube` clients.
2. Idle RSS of a kopf operator process watching Deployments, with each client
   imported and connected the way the operator would use it.
Prints percentiles and ratios to the official client; asserts nothing.
Needs a running cluster (`trimtab cluster up`) and `pip install -e .[bench]`.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable

from kubernetes import client as k8s
from kubernetes_asyncio import client as k8s_async
from kubernetes_asyncio import config as k8s_async_config
from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from trimtab.kube import client, objects
from trimtab_dev.devcluster import layout

ROUNDS = 200
NAMESPACE = "bench-kube-client"
KUBECONFIG = str(layout.layout_for().kubeconfig)
os.environ["KUBECONFIG"] = KUBECONFIG

Patch = Callable[[int], Awaitable[None]]


def _deployment() -> dict[str, object]:
    labels = {"app": "bench"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bench", "namespace": NAMESPACE},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "m", "image": "x"}]},
            },
        },
    }


async def _patchers() -> tuple[dict[str, Patch], list[Callable[[], Awaitable[None]]]]:
    api = client.connect(KUBECONFIG)
    apps = k8s.AppsV1Api(api)
    store = objects.ObjectStore(api)
    await k8s_async_config.load_kube_config(config_file=KUBECONFIG)
    async_api = k8s_async.ApiClient()
    apps_async = k8s_async.AppsV1Api(async_api)
    light = AsyncClient()

    async def official_typed(n: int) -> None:
        await asyncio.to_thread(
            apps.patch_namespaced_deployment, "bench", NAMESPACE, {"spec": {"replicas": n % 3}}
        )

    async def official_dynamic(n: int) -> None:
        await asyncio.to_thread(
            store.patch,
            "apps/v1",
            "Deployment",
            "bench",
            {"spec": {"replicas": n % 3}},
            namespace=NAMESPACE,
        )

    async def kubernetes_asyncio(n: int) -> None:
        await apps_async.patch_namespaced_deployment(
            "bench", NAMESPACE, {"spec": {"replicas": n % 3}}
        )

    async def lightkube(n: int) -> None:
        await light.patch(
            Deployment,
            "bench",
            {"spec": {"replicas": n % 3}},
            namespace=NAMESPACE,
            patch_type=PatchType.MERGE,
        )

    patchers = {
        "kubernetes (typed, thread)": official_typed,
        "kubernetes (dynamic, thread)": official_dynamic,
        "kubernetes_asyncio": kubernetes_asyncio,
        "lightkube (async)": lightkube,
    }
    return patchers, [async_api.close, light.close]


def _pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1]


async def patch_latency() -> None:
    patchers, closers = await _patchers()
    samples: dict[str, list[float]] = {name: [] for name in patchers}
    for n in range(ROUNDS + 10):
        for name, patch in patchers.items():
            t0 = time.perf_counter()
            await patch(n)
            if n >= 10:  # the first rounds warm connections and discovery caches
                samples[name].append((time.perf_counter() - t0) * 1000)
    for close in closers:
        await close()
    base = statistics.median(samples["kubernetes (typed, thread)"])
    print(f"Deployment merge-patch latency, {ROUNDS} rounds, clients interleaved:")
    print(f"  {'client':<30}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'p50 ratio':>11}")
    for name, s in samples.items():
        print(
            f"  {name:<30}{statistics.median(s):8.2f}{_pct(s, 95):8.2f}{_pct(s, 99):8.2f}"
            f"{statistics.median(s) / base:11.2f}"
        )


OPERATOR = """
import kopf
{setup}

@kopf.on.event("apps", "v1", "deployments")
def seen(**_):
    pass
"""

SETUPS = {
    "kopf + kubernetes": "import kubernetes\nkubernetes.config.load_kube_config()",
    "kopf + kubernetes_asyncio": "import kubernetes_asyncio",
    "kopf + lightkube": "import lightkube\nlightkube.AsyncClient()",
}


def _idle_rss(setup: str, workdir: pathlib.Path) -> float:
    handlers = workdir / "handlers.py"
    handlers.write_text(textwrap.dedent(OPERATOR.format(setup=setup)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kopf", "run", "--standalone", "-n", NAMESPACE, str(handlers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(15)
        status = pathlib.Path(f"/proc/{proc.pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kb / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def operator_rss() -> None:
    print("\nIdle RSS of a kopf operator watching Deployments (after 15 s):")
    with tempfile.TemporaryDirectory() as tmp:
        for name, setup in SETUPS.items():
            print(f"  {name:<30}{_idle_rss(setup, pathlib.Path(tmp)):7.1f} MiB")


def main() -> None:
    store = objects.ObjectStore(client.connect(KUBECONFIG))
    store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    store.apply(_deployment())
    try:
        asyncio.run(patch_latency())
        operator_rss()
    finally:
        store.delete("v1", "Namespace", NAMESPACE)


if __name__ == "__main__":
    main()

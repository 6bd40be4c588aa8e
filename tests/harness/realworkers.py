"""A pool's worker pods running for real on a real node, as the e2e tests look at them:
the simulator and the operator wired for them, the pool placed there, its pods and their
containers, a container's process on the host (to kill it), and what Redis records of
each run (who started each step, how often it was delivered, how often it completed)."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import redis

from tests.harness import operator, runtime, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import keys
from trimtab.reconcile import conditions, naming
from trimtab.sdk import client as sdk
from trimtab.sdk import sync as sdk_sync
from trimtab_dev.devcluster import host, layout, realnodes
from trimtab_dev.devcluster import runtime as node_runtime

NODE = realnodes.real_nodes(1)[0]  # real-on-demand-0, which every cluster with one runs
# Small requests: the real node's allocatable is the machine's two CPUs.
RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}}
T = TypeVar("T")


def eventually(
    check: Callable[[], T | None], *, what: Callable[[], str] | str, timeout: float
) -> T:
    """Poll `check` every 0.2 s until it returns something truthy, and return that;
    on timeout fail with `what` (a callable is asked then, for the state it ended in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise TimeoutError(f"after {timeout:.0f} s: {what() if callable(what) else what}")


@contextlib.contextmanager
def system(
    lay: layout.Layout,
    namespace: str,
    redis_url: str,
    workdir: pathlib.Path,
    *,
    sim: dict[str, Any],
    worker_redis_url: str | None = None,
    operator_env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The simulator (config `sim`) on the host's bridge address, where pods reach it,
    and the operator in-process (with `operator_env` added), whose worker pods get
    `worker_redis_url` (default: `redis_url`, which should then be at the host's
    address too); yields the simulator's base URL."""
    assert lay.host_address is not None, f"cluster {lay.name} runs no real node"
    env = {"TRIMTAB_WORKER_REDIS_URL": worker_redis_url or redis_url, **(operator_env or {})}
    with (
        runtime.running_sim(workdir, sim, host=lay.host_address) as endpoint,
        operator.trimtab_operator(namespace, redis_url, env=env),
    ):
        yield endpoint


def submit_when_published(
    client: sdk_sync.SyncClient, namespace: str, workflow: str, inputs: dict[str, Any]
) -> str:
    """A run, submitted as soon as the operator has published the workflow."""

    def submit() -> str | None:
        with contextlib.suppress(LookupError):
            return client.submit(namespace, workflow, inputs)
        return None

    return eventually(submit, what=f"the operator never published {workflow}", timeout=60)


def submit_all(
    redis_url: str, namespace: str, workflow: str, inputs: list[dict[str, Any]]
) -> list[str]:
    """One run per inputs, submitted at once, so a backlog builds faster than it drains."""

    async def go() -> list[str]:
        client = sdk.Client(redis_url)
        try:
            runs = (client.submit(namespace, workflow, x) for x in inputs)
            return list(await asyncio.gather(*runs))
        finally:
            await client.aclose()

    return asyncio.run(go())


def wait_ended(client: sdk_sync.SyncClient, refs: list[str], *, timeout: float) -> None:
    def ended() -> bool:
        return all(client.get(r).status in ("succeeded", "failed") for r in refs)

    eventually(ended, what="some runs never ended", timeout=timeout)


def pool_doc(namespace: str, name: str, endpoint: str, **spec: Any) -> dict[str, Any]:
    """An AgentPool on the simulator at `endpoint`, placed on the real node only (its
    label and hostname selected, its taint tolerated), with small resource requests.
    `spec` adds or replaces top-level spec fields; `worker` is merged."""
    where = realnodes.placement(NODE)
    placement = {**where, "spreadAcrossZones": False}
    worker = {"resources": RESOURCES, **spec.pop("worker", {})}
    model = {"endpoint": endpoint, "name": "sim-small", "timeoutSeconds": 10}
    return samples.pool_doc(
        namespace, name, model=model, placement=placement, worker=worker, **spec
    )


def workflow_doc(
    namespace: str, name: str, pool: str, steps: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentWorkflow",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"defaultPool": pool, "steps": steps},
    }


def pods(store: objects.ObjectStore, namespace: str, pool: str) -> list[dict[str, Any]]:
    return store.list(
        "v1", "Pod", namespace=namespace, label_selector=f"{naming.POOL_LABEL}={pool}"
    )


def worker_status(pod: dict[str, Any]) -> dict[str, Any]:
    """The worker container's status (empty before the kubelet reports one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return next((s for s in statuses if s["name"] == "worker"), {})


def container_id(pod: dict[str, Any]) -> str:
    return str(worker_status(pod).get("containerID") or "")


def restarts(pod: dict[str, Any]) -> int:
    return int(worker_status(pod).get("restartCount") or 0)


def running(pod: dict[str, Any]) -> bool:
    """Its worker container runs (started by containerd), and the pod is not stopping."""
    state = worker_status(pod).get("state") or {}
    return "running" in state and not pod["metadata"].get("deletionTimestamp")


def ready(pod: dict[str, Any]) -> bool:
    return conditions.is_true((pod.get("status") or {}).get("conditions"), "Ready")


def on_real_node(pod: dict[str, Any]) -> bool:
    """Scheduled onto the real node and run there by containerd (not a kwok stand-in)."""
    return pod["spec"].get("nodeName") == NODE.name and container_id(pod).startswith(
        "containerd://"
    )


def serving(store: objects.ObjectStore, namespace: str, pool: str) -> list[dict[str, Any]]:
    """The pool's pods whose worker container runs, each on the real node."""
    found = [p for p in pods(store, namespace, pool) if running(p)]
    assert all(on_real_node(p) for p in found), [p["spec"].get("nodeName") for p in found]
    return found


def replicas(store: objects.ObjectStore, namespace: str, pool: str) -> int:
    dep = store.get("apps/v1", "Deployment", naming.worker_deployment(pool), namespace)
    return int(((dep or {}).get("spec") or {}).get("replicas") or 0)


def host_pid(lay: layout.Layout, pod: dict[str, Any]) -> int:
    """The host PID of the pod's worker process (its container's init), from containerd."""
    cid = container_id(pod).removeprefix("containerd://")
    sock = lay.node(NODE.name).containerd_sock
    argv = [host.tools().ctr, f"--address={sock}", f"--namespace={node_runtime.NAMESPACE}"]
    listed = subprocess.run([*argv, "tasks", "list"], capture_output=True, text=True, check=True)
    for line in listed.stdout.splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == cid:
            return int(pid)
    raise LookupError(f"no task {cid} on {NODE.name}: {listed.stdout}")


def consumers(rds: redis.Redis, namespace: str, pool: str) -> dict[str, int]:
    """The pool's consumers (one per worker process: `<pod name>-<suffix>`) and the
    steps each holds unacknowledged."""
    stream = keys.pool_stream(namespace, pool)
    try:
        found = rds.xinfo_consumers(stream, keys.GROUP)
    except redis.ResponseError:  # no stream or group yet
        return {}
    return {_text(c["name"]): int(c["pending"]) for c in found}


def pod_of(consumer: str) -> str:
    return consumer.rsplit("-", 1)[0]


def steps(rds: redis.Redis, ref: str) -> dict[str, dict[str, str]]:
    """A run's per-step record (`s:<step>:<attr>` fields): state, worker (the consumer
    that started its last delivery), dlv and cut (deliveries started, counted alone or
    cut off with their worker's others), ..."""
    namespace, run_id = ref.split("/", 1)
    out: dict[str, dict[str, str]] = {}
    for field, value in rds.hgetall(keys.run(namespace, run_id)).items():
        parts = _text(field).split(":")
        if len(parts) == 3 and parts[0] == "s":
            out.setdefault(parts[1], {})[parts[2]] = _text(value)
    return out


def completions(rds: redis.Redis, ref: str) -> list[str]:
    """The steps of a run in the order their completions were recorded, once per
    completion (complete.lua writes a step_done event in the same atomic step)."""
    namespace, run_id = ref.split("/", 1)
    events: Any = rds.xrange(keys.run_events(namespace, run_id))  # (id, fields) pairs
    fields = [{_text(k): _text(v) for k, v in f.items()} for _, f in events]
    return [f["step"] for f in fields if f.get("type") == "step_done"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

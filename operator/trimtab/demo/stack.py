"""Everything the demo runs, started in order and stopped in reverse: the local control
plane (left up if it already was, or with --keep), a redis-server and the inference
simulator on loopback, the CRDs and the samples, the operator, and the supervisor that
runs a worker process for every Running worker pod.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import yaml

from trimtab.api import crdgen
from trimtab.devcluster import cluster, commands, layout, supervisor
from trimtab.kube import client, objects

log = logging.getLogger(__name__)
SAMPLES = ("agentpool-support-small", "agentpool-support-large", "agentpool-batch-summarize")
WORKFLOWS = ("agentworkflow-customer-support", "agentworkflow-batch-summarize")
SIM_MODELS = {
    # A small model: fast and cheap; a large one: slower, pricier; both a little faulty.
    "sim-small": {
        "ttft_seconds": 0.15,
        "per_token_seconds": 0.004,
        "capacity": 8,
        "output_tokens_mean": 80,
        "rate_500": 0.01,
        "rate_malformed": 0.01,
        "timeout_hang_seconds": 5.0,
    },
    "sim-large": {
        "ttft_seconds": 0.4,
        "per_token_seconds": 0.008,
        "capacity": 6,
        "output_tokens_mean": 120,
        "rate_500": 0.01,
        "rate_malformed": 0.005,
        "timeout_hang_seconds": 5.0,
    },
}


@dataclasses.dataclass
class Stack:
    namespace: str
    redis_url: str
    sim_url: str
    store: objects.ObjectStore
    kubeconfig: pathlib.Path
    workers: supervisor.Supervisor
    workdir: pathlib.Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _process(argv: list[str], log_file: pathlib.Path, **kw: Any) -> subprocess.Popen[bytes]:
    with open(log_file, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)


def _redis(stack: contextlib.ExitStack, work: pathlib.Path) -> str:
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server not found: run `make install` (hack/install-deps.sh)")
    port = free_port()
    args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(work)]
    stack.callback(commands.stop, _process(args, work / "redis.log"))
    url = f"redis://127.0.0.1:{port}/0"
    _wait(lambda: _port_open(port), "redis-server")
    return url


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _simulator(stack: contextlib.ExitStack, work: pathlib.Path, seed: int) -> str:
    port = free_port()
    config = work / "sim.yaml"
    config.write_text(yaml.safe_dump({"seed": seed, "models": SIM_MODELS}))
    argv = commands.simulator_argv(port, config)
    stack.callback(commands.stop, _process(argv, work / "simulator.log"))
    _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, "simulator")
    return f"http://127.0.0.1:{port}/v1"


def _operator(stack: contextlib.ExitStack, st: Stack) -> None:
    argv = commands.operator_argv(st.namespace, st.redis_url, health_port=free_port())
    env = {**os.environ, "KUBECONFIG": str(st.kubeconfig)}
    stack.callback(commands.stop, _process(argv, st.workdir / "operator.log", env=env), 60)


def _workers(stack: contextlib.ExitStack, st: Stack) -> None:
    stopping = threading.Event()
    thread = threading.Thread(target=st.workers.run, args=(stopping.is_set,), daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        thread.join(timeout=90)

    stack.callback(stop)


def _secret_refs(doc: dict[str, Any]) -> list[dict[str, str]]:
    if doc["kind"] == "AgentPool":
        ref = doc["spec"]["model"].get("apiKeySecretRef")
        return [ref] if ref else []
    return [
        h["valueFromSecret"]
        for step in doc["spec"]["steps"]
        for h in (step.get("tool") or {}).get("headers", [])
        if "valueFromSecret" in h
    ]


def sample_secrets(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Secrets the samples name (pools' API keys, tool steps' headers), holding
    values the simulator accepts (it checks none), as a user would create them."""
    refs = {
        (d["metadata"]["namespace"], r["name"], r["key"]) for d in docs for r in _secret_refs(d)
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns},
            "stringData": {key: "local-simulator"},
        }
        for ns, name, key in sorted(refs)
    ]


def samples(
    root: pathlib.Path, namespace: str, sim_url: str, tuning: dict[str, Any]
) -> list[dict[str, Any]]:
    """The checked-in samples, pointed at the local simulator and tuned for a short demo
    (scale-down windows in seconds, not minutes)."""
    docs = []
    for name in (*SAMPLES, *WORKFLOWS):
        doc = copy.deepcopy(
            yaml.safe_load((root / "manifests" / "samples" / f"{name}.yaml").read_text())
        )
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "AgentPool":
            doc["spec"]["model"]["endpoint"] = sim_url
            scaling = doc["spec"].setdefault("scaling", {})
            scaling.setdefault("stabilization", {}).update(tuning["stabilization"])
            scaling["idleSecondsToZero"] = tuning["idleSecondsToZero"]
            placement = doc["spec"].setdefault("placement", {})
            placement["provider"] = "auto"  # the local nodes carry trimtab's own labels
        else:
            for step in doc["spec"]["steps"]:
                if step.get("kind") == "tool":
                    step["tool"]["url"] = f"{sim_url.removesuffix('/v1')}/tools/{step['name']}"
        docs.append(doc)
    return docs


@contextlib.contextmanager
def running(
    root: pathlib.Path,
    namespace: str,
    workdir: pathlib.Path,
    *,
    seed: int,
    tuning: dict[str, Any],
    keep: bool,
    say: Callable[[str], None],
) -> Iterator[Stack]:
    lay = layout.layout_for()
    with contextlib.ExitStack() as stack:
        was_up = cluster.is_up(lay)
        say(
            "local control plane: "
            + ("up already" if was_up else "starting (its very first start builds it, about 5 min)")
        )
        report = cluster.up(lay)
        if not was_up and not keep:
            stack.callback(cluster.down, lay)
        store = objects.ObjectStore(client.connect(str(report.kubeconfig)))
        redis_url = _redis(stack, workdir)
        sim_url = _simulator(stack, workdir, seed)
        say(f"redis {redis_url}, simulator {sim_url}")
        for crd in crdgen.all_crds():
            store.apply(crd)
        store.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        if not keep:
            stack.callback(store.delete, "v1", "Namespace", namespace)
        st = Stack(
            namespace,
            redis_url,
            sim_url,
            store,
            report.kubeconfig,
            supervisor.Supervisor(store, workdir / "workers", namespace),
            workdir,
        )
        _operator(stack, st)
        _workers(stack, st)
        docs = samples(root, namespace, sim_url, tuning)
        # Workflows before pools: each pool's first Deployment then carries the Secrets
        # its workflows' tool steps read, instead of rolling its pods to add them.
        docs.sort(key=lambda d: d["kind"] != "AgentWorkflow")
        for doc in [*sample_secrets(docs), *docs]:
            store.apply(doc)
        say(f"applied the samples to namespace {namespace}; operator and workers running")
        yield st

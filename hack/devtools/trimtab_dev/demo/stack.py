"""Everything the demo runs, started in order and stopped in reverse: the local control
plane (left up if it already was, or with --keep) with its real node and the project's
image, a redis-server, the inference simulator, Jaeger (which the operator and every
worker send run traces to) and PostgreSQL (the run history), the CRDs and the samples,
the operator, and the supervisor that runs a worker process for every worker pod placed
on a simulated node.

The support pools' workers run as real pods on the real node (replicas capped to what
two cores hold); the batch pool stays on kwok's simulated spot nodes, where placement
is all there is to see. Pods reach the host at the cluster's host address, so Redis
listens there beside loopback and the simulator listens there. A cluster without real
nodes (`trimtab cluster up --real-nodes 0`) runs every pool on kwok, as before.
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
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import yaml

from trimtab.api import crdgen
from trimtab.kube import client, objects
from trimtab_dev import jaeger as jaeger_mod
from trimtab_dev import postgres
from trimtab_dev.devcluster import (
    binaries,
    cluster,
    commands,
    layout,
    realnode,
    realnodes,
    supervisor,
)
from trimtab_dev.llama import server as llama

log = logging.getLogger(__name__)
SAMPLES = ("agentpool-support-small", "agentpool-support-large", "agentpool-batch-summarize")
# Pools whose workers run as real pods, and their replica caps: worker pods request
# 100m each and the real node has two cores, shared with everything else the demo runs.
ON_REAL_NODE = {"support-small": 8, "support-large": 4}
WORKFLOWS = (
    "agentworkflow-customer-support",
    "agentworkflow-batch-summarize",
    "agentworkflow-support-agent",
)
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
    worker_redis_url: str  # as worker pods reach it: the host address with real nodes
    real_node: realnodes.RealNode | None  # where the support pools run, if any
    api_url: str = ""  # the HTTP API server and its console
    jaeger: jaeger_mod.Jaeger | None = None  # where the operator and workers send traces
    history_url: str = ""  # the PostgreSQL the operator archives ended runs to


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


def _redis(stack: contextlib.ExitStack, work: pathlib.Path, host: str | None) -> int:
    """A redis-server on loopback and, with real nodes, the host address; its port."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server not found: run `make install` (hack/install-deps.sh)")
    port = free_port()
    bind = ["127.0.0.1", host] if host else ["127.0.0.1"]
    # Only loopback and the cluster's own unrouted bridge: pods must reach it there.
    guard = ["--protected-mode", "no"] if host else []
    args = [server, "--bind", *bind, "--port", str(port), "--save", "", "--dir", str(work)]
    stack.callback(commands.stop, _process([*args, *guard], work / "redis.log"))
    _wait(lambda: _port_open(port), "redis-server")
    return port


def _port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


def _simulator(stack: contextlib.ExitStack, work: pathlib.Path, seed: int, host: str) -> str:
    """The simulator on `host` (the host address pods reach, or loopback)."""
    port = free_port()
    config = work / "sim.yaml"
    config.write_text(yaml.safe_dump({"seed": seed, "models": SIM_MODELS}))
    argv = [*commands.simulator_argv(port, config), "--host", host]
    stack.callback(commands.stop, _process(argv, work / "simulator.log"))
    _wait(lambda: httpx.get(f"http://{host}:{port}/healthz").status_code == 200, "simulator")
    return f"http://{host}:{port}/v1"


def _operator(stack: contextlib.ExitStack, st: Stack) -> None:
    argv = commands.operator_argv(st.namespace, st.redis_url, health_port=free_port())
    env = {
        **os.environ,
        "KUBECONFIG": str(st.kubeconfig),
        "TRIMTAB_WORKER_REDIS_URL": st.worker_redis_url,
    }
    if st.history_url:
        env["TRIMTAB_HISTORY_URL"] = st.history_url
    if st.jaeger is not None:  # passed on to every worker, pods included
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = st.jaeger.otlp_endpoint
        env["OTEL_BSP_SCHEDULE_DELAY"] = "500"  # spans in Jaeger within a second
    stack.callback(commands.stop, _process(argv, st.workdir / "operator.log", env=env), 60)


def _api(stack: contextlib.ExitStack, st: Stack) -> str:
    """`trimtab api serve` on loopback, without auth: the demo is a development setup
    on this machine only (in a cluster the chart runs it with tokens and RBAC)."""
    port = free_port()
    argv = [sys.executable, "-m", "trimtab", "api", "serve", "--no-auth", "--port", str(port),
            "--redis-url", st.redis_url, "--kubeconfig", str(st.kubeconfig)]  # fmt: skip
    stack.callback(commands.stop, _process(argv, st.workdir / "api.log"), 15)
    url = f"http://127.0.0.1:{port}"
    _wait(lambda: httpx.get(f"{url}/healthz").status_code == 200, "API server")
    return url


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


def _on_real_node(doc: dict[str, Any], node: realnodes.RealNode | None) -> None:
    """Place a support pool's workers on the real node, within what it holds."""
    cap = ON_REAL_NODE.get(doc["metadata"]["name"])
    if node is None or cap is None:
        return
    scaling, placement = doc["spec"]["scaling"], doc["spec"]["placement"]
    scaling["maxReplicas"] = min(scaling.get("maxReplicas", cap), cap)
    where = realnodes.placement(node)
    placement["nodeSelector"] = {**placement.get("nodeSelector", {}), **where["nodeSelector"]}
    placement["tolerations"] = [*placement.get("tolerations", []), *where["tolerations"]]


def samples(
    root: pathlib.Path,
    namespace: str,
    sim_url: str,
    tuning: dict[str, Any],
    real_node: realnodes.RealNode | None = None,
    model_url: str | None = None,
) -> list[dict[str, Any]]:
    """The checked-in samples, pointed at the local simulator (their models at
    `model_url` when given), tuned for a short demo (scale-down windows in seconds, not
    minutes), the support pools on the real node."""
    docs = []
    for name in (*SAMPLES, *WORKFLOWS):
        doc = copy.deepcopy(
            yaml.safe_load((root / "manifests" / "samples" / f"{name}.yaml").read_text())
        )
        doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "AgentPool":
            doc["spec"]["model"]["endpoint"] = model_url or sim_url
            scaling = doc["spec"].setdefault("scaling", {})
            scaling.setdefault("stabilization", {}).update(tuning["stabilization"])
            scaling["idleSecondsToZero"] = tuning["idleSecondsToZero"]
            placement = doc["spec"].setdefault("placement", {})
            placement["provider"] = "auto"  # the local nodes carry trimtab's own labels
            _on_real_node(doc, real_node)
        else:
            tools = f"{sim_url.removesuffix('/v1')}/tools"
            for step in doc["spec"]["steps"]:
                if step.get("kind") == "tool":
                    step["tool"]["url"] = f"{tools}/{step['name']}"
            for tool in doc["spec"].get("tools", []):
                tool["call"] = _simulated_call(tools, tool)
        docs.append(doc)
    return docs


def _simulated_call(tools: str, tool: dict[str, Any]) -> dict[str, Any]:
    """An agent tool's call sent to the simulator's tool endpoint instead, its required
    arguments as the JSON body."""
    required = tool.get("parameters", {}).get("required", [])
    body = "{" + ", ".join(f'"{k}": {{{{ args.{k} }}}}' for k in required) + "}"
    return {"url": f"{tools}/{tool['name']}", "method": "POST", "body": body}


def _real_node(
    lay: layout.Layout, host: str | None, say: Callable[[str], None]
) -> realnodes.RealNode | None:
    """The cluster's first real node with the project's image loaded, or None."""
    if host is None:
        return None
    say("building the project's image (first time only, a few minutes) for the real node")
    realnode.load_images(layout.layout_for(lay.name), [binaries.project_image()])
    return realnodes.real_nodes(1)[0]


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
    model_server: str = "simulator",
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
        node = _real_node(lay, report.host_address, say)
        store = objects.ObjectStore(client.connect(str(report.kubeconfig)))
        host = report.host_address
        port = _redis(stack, workdir, host)
        redis_url = f"redis://127.0.0.1:{port}/0"
        sim_url = _simulator(stack, workdir, seed, host or "127.0.0.1")
        say(f"redis {redis_url}, simulator {sim_url}")
        model_url = None
        if model_server == "llama-cpp":
            say("llama.cpp's llama-server: building it (first time only, ~10 min) and starting")
            served = llama.running_llama_server(host=host or "127.0.0.1", slots=4)
            model_url = stack.enter_context(served)
            say(f"the sample pools call llama-server at {model_url}")
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
            f"redis://{host or '127.0.0.1'}:{port}/0",
            node,
        )
        say("Jaeger: building it (first time only, ~4 min) and starting")
        st.jaeger = stack.enter_context(jaeger_mod.running_jaeger(host or "127.0.0.1"))
        say(f"traces go to Jaeger, queried at {st.jaeger.query_url}/api/traces")
        st.history_url = stack.enter_context(postgres.running_postgres()).url
        say(f"ended runs are archived to PostgreSQL at {st.history_url}")
        _operator(stack, st)
        _workers(stack, st)
        st.api_url = _api(stack, st)
        say(f"console at {st.api_url}/console/{namespace}/runs (the API's document: "
            f"{st.api_url}/docs)")  # fmt: skip
        docs = samples(root, namespace, sim_url, tuning, node, model_url)
        # Workflows before pools: each pool's first Deployment then carries the Secrets
        # its workflows' tool steps read, instead of rolling its pods to add them.
        docs.sort(key=lambda d: d["kind"] != "AgentWorkflow")
        for doc in [*sample_secrets(docs), *docs]:
            store.apply(doc)
        say(f"applied the samples to namespace {namespace}; operator and workers running")
        yield st

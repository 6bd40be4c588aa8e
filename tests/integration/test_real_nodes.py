"""Real nodes: containerd + kubelet + kube-proxy beside kwok, on a cluster of their own.

The module brings up `rn-it` with two real nodes (on-demand and spot), runs real pods on
them through the API, and ends by taking it down and checking that the host carries no
trace of it. The tests run in file order; the last one tears the cluster down.
"""

from __future__ import annotations

import ipaddress
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import realnode as rn
from tests.harness import redis_server
from trimtab.kube import client, objects
from trimtab.reconcile import conditions
from trimtab_dev.devcluster import binaries, cluster, health, layout, realnodes

ON_DEMAND, SPOT = realnodes.real_nodes(2)


@pytest.fixture(scope="module")
def lay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[layout.Layout]:
    with rn.real_cluster() as lay:
        archive = rn.busybox_archive(tmp_path_factory.mktemp("img") / "busybox.tar")
        loaded = rn.trimtab(lay.name, "load-image", str(archive))
        assert loaded.returncode == 0, loaded.stderr
        assert f"loaded {rn.BUSYBOX}" in loaded.stdout
        yield lay


@pytest.fixture(scope="module")
def store(lay: layout.Layout) -> objects.ObjectStore:
    return objects.ObjectStore(client.connect(str(lay.kubeconfig)))


def _kubectl(lay: layout.Layout, *args: str) -> str:
    result = cluster.kubectl(lay, binaries.ensure_built(), *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _run(store: objects.ObjectStore, manifest: dict[str, Any], phase: str) -> dict[str, Any]:
    store.apply(manifest)
    name = manifest["metadata"]["name"]
    return store.wait_for(
        "v1",
        "Pod",
        name,
        namespace="default",
        until=lambda p: (p.get("status") or {}).get("phase") == phase,
        timeout=60,
    )


@pytest.mark.parametrize("node", [ON_DEMAND, SPOT], ids=lambda n: n.name)
def test_real_node_registers_ready_labelled_tainted_with_a_pod_cidr(
    store: objects.ObjectStore, lay: layout.Layout, node: realnodes.RealNode
) -> None:
    obj = store.get("v1", "Node", node.name)
    assert obj is not None
    assert conditions.is_true(obj["status"]["conditions"], "Ready")
    labels, annotations = obj["metadata"]["labels"], obj["metadata"].get("annotations") or {}
    assert {k: labels.get(k) for k in node.labels} == node.labels
    assert "kwok.x-k8s.io/node" not in annotations
    # The node lifecycle controller's own node.kubernetes.io/not-ready taint trails Ready.
    taints = {
        (t["key"], t["effect"])
        for t in obj["spec"].get("taints") or []
        if not t["key"].startswith("node.kubernetes.io/")
    }
    assert taints == {(t["key"], t["effect"]) for t in node.taints}
    cidr = ipaddress.IPv4Network(obj["spec"]["podCIDR"])
    assert cidr.subnet_of(ipaddress.IPv4Network(lay.network.cluster_cidr))
    assert obj["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert {"type": "InternalIP", "address": node.address(lay.network)} in obj["status"][
        "addresses"
    ]


def test_status_lists_every_node_process_healthy(lay: layout.Layout) -> None:
    result = rn.trimtab(lay.name, "status")
    assert result.returncode == 0, result.stdout
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    for node in (ON_DEMAND, SPOT):
        for process in ("containerd", "kubelet", "kube-proxy"):
            row = rows[f"{process}.{node.name}"]
            assert row[2] == "True", row
            assert float(row[3]) > 0, row


def test_a_pod_runs_and_kubectl_logs_and_exec_reach_it(
    store: objects.ObjectStore, lay: layout.Layout
) -> None:
    script = "echo hello-from-$(hostname); exec sleep 3600"
    pod = _run(store, rn.pod("hello", ON_DEMAND, script), "Running")
    node = store.get("v1", "Node", ON_DEMAND.name) or {}
    assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(
        node["spec"]["podCIDR"]
    )
    assert pod["spec"]["nodeName"] == ON_DEMAND.name
    health.wait_until(
        lambda: "hello-from-hello" in _kubectl(lay, "logs", "hello"), what="the log", timeout=30
    )
    assert _kubectl(lay, "exec", "hello", "--", "cat", "/proc/1/cmdline").startswith("sleep")


def test_pods_reach_the_apiserver_and_host_services_but_not_the_outside(
    store: objects.ObjectStore, lay: layout.Layout, tmp_path: pathlib.Path
) -> None:
    host_address = lay.host_address
    assert host_address is not None
    args = ("--bind", "127.0.0.1", host_address, "--protected-mode", "no")
    with redis_server.running_redis(tmp_path, args=args) as url:
        port = url.rsplit(":", 1)[1].split("/")[0]
        script = (
            # Go's TLS server answers a plain HTTP request with this exact sentence.
            'printf "GET / HTTP/1.0\\r\\n\\r\\n"'
            " | nc -w 3 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT;"
            f'printf "PING\\r\\n" | nc -w 3 {host_address} {port};'
            # The host's resolver, which the host reaches: the host forwards nothing for pods.
            "ns=$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf);"
            "nc -w 2 $ns 53 </dev/null && echo outside-reached || echo outside-unreachable"
        )
        pod = _run(store, rn.pod("reach", SPOT, script, once=True), "Succeeded")
        logs = _kubectl(lay, "logs", "reach")
    assert pod["spec"]["nodeName"] == SPOT.name
    assert "Client sent an HTTP request to an HTTPS server" in logs
    assert "+PONG" in logs
    assert "outside-unreachable" in logs


def test_a_service_reaches_a_pod_on_the_other_node_through_kube_proxy(
    store: objects.ObjectStore, lay: layout.Layout
) -> None:
    web = (
        "mkdir /www && echo served-by-$(hostname) > /www/index.html; exec httpd -f -p 8080 -h /www"
    )
    _run(store, rn.pod("web", SPOT, web, app="web"), "Running")
    store.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
    )
    # The client retries until kube-proxy has programmed the Service's endpoint.
    script = (
        "for i in $(seq 50); do wget -qO- http://$WEB_SERVICE_HOST && exit; sleep 0.2; done; exit 1"
    )
    pod = _run(store, rn.pod("client", ON_DEMAND, script, once=True), "Succeeded")
    assert pod["spec"]["nodeName"] == ON_DEMAND.name
    assert "served-by-web" in _kubectl(lay, "logs", "client")


def test_down_undoes_every_host_change(lay: layout.Layout) -> None:
    before = rn.host_traces(lay)
    for kind in ("links", "mounts", "cgroups", "routes", "record"):
        assert before[kind], f"no {kind} to undo: the test would prove nothing"
    result = rn.trimtab(lay.name, "down")
    assert result.returncode == 0, result.stderr
    after = rn.host_traces(lay)
    assert after == {key: [] for key in after}, after

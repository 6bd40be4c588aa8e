"""The chart's operator run for real: `helm install` into a namespace that enforces the
restricted Pod Security profile, with values that put the operator on the session
cluster's real node, where containerd runs the project's own image as a container.

What test_chart_install.py stands in for on the host happens here in the cluster: the
real PodSecurity admission admits the pod, the kubelet starts and probes it, the operator
reaches the apiserver through the `kubernetes` Service with its ServiceAccount token and
Redis on the host's bridge address, `kubectl logs` reads it through the kubelet, it
reconciles the samples, and the worker Deployment it builds passes the same admission,
its pods running on the real node too. The namespace's admission is checked to refuse a
pod that breaks the profile first, so "admitted" means something.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.harness import chart, samples
from tests.harness import realchart as rc
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import keys
from trimtab.reconcile import naming
from trimtab_dev.devcluster import layout, realnodes

pytestmark = pytest.mark.usefixtures("crds")
RELEASE = "tt"
START_S = 180  # a Python container's start on a loaded two-core machine, and then some
WORKER_POOL = "on-real-node"


@pytest.fixture(scope="module")
def release(
    helm: str,
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    crds: None,
    project_image: str,
    host_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str]]:
    """The chart installed with its defaults but for placement and Redis; yields its
    namespace and the operator Deployment's name."""
    rendered = chart.find(chart.objects(helm), "Deployment", "trimtab")["spec"]["template"]["spec"]
    assert rendered["containers"][0]["image"] == project_image, "not the chart's default image"
    workdir = tmp_path_factory.mktemp("chart-real")
    with (
        rc.restricted_namespace(kube, "chart-real") as namespace,
        rc.installed(
            helm,
            cluster,
            kube,
            release=RELEASE,
            namespace=namespace,
            chart_values=rc.values(namespace, host_redis_url),
            workdir=workdir,
        ) as deployment,
    ):
        yield namespace, deployment


@pytest.fixture(scope="module")
def operator_pod(kube: objects.ObjectStore, release: tuple[str, str]) -> dict[str, Any]:
    """The operator's only pod, once its Deployment reports it ready."""
    namespace, deployment = release
    try:
        kube.wait_for(
            "apps/v1",
            "Deployment",
            deployment,
            namespace=namespace,
            until=lambda d: (d.get("status") or {}).get("readyReplicas") == 1,
            timeout=START_S,
        )
    except TimeoutError:
        pods = rc.operator_pods(kube, namespace, RELEASE)
        pytest.fail(f"the operator pod did not become ready: {[p.get('status') for p in pods]}")
    [pod] = rc.operator_pods(kube, namespace, RELEASE)
    return pod


def test_the_namespace_refuses_a_pod_that_breaks_the_restricted_profile(
    cluster: layout.Layout, release: tuple[str, str]
) -> None:
    """The control for every "admitted" below: the PodSecurity admission is on here."""
    namespace, _ = release
    refused = rc.dry_run_unrestricted_pod(cluster, namespace)
    assert refused.returncode != 0, f"a pod without a security context was admitted: {refused}"
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr


def test_the_operator_pod_runs_the_project_image_as_a_container_on_the_real_node(
    cluster: layout.Layout, project_image: str, operator_pod: dict[str, Any]
) -> None:
    spec = operator_pod["spec"]
    chart.assert_restricted(spec)  # as admitted, not only as rendered
    assert spec["nodeName"] == rc.NODE.name, f"scheduled on {spec['nodeName']}"
    status = rc.container_status(operator_pod, rc.OPERATOR_CONTAINER)
    assert status["containerID"].startswith("containerd://"), status
    assert status["image"] == project_image, status
    on_node = rc.image_id_on_node(cluster, rc.NODE, project_image)
    assert status["imageID"] == on_node, f"runs {status['imageID']}, the node has {on_node}"
    assert "running" in status["state"], status["state"]
    assert status["restartCount"] == 0, status
    assert rc.condition(operator_pod, "Ready") == "True"


def test_the_kubelet_probes_the_operator_and_finds_it_live(
    cluster: layout.Layout, kube: objects.ObjectStore, operator_pod: dict[str, Any]
) -> None:
    """Ready comes from the real kubelet: the chart gives the operator a liveness and a
    readiness probe (GET /healthz on its health port), so the pod is Ready once the
    operator answers, and stays running only while the kubelet's probes pass."""
    [container] = operator_pod["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"

    def counted() -> dict[tuple[str, str], float] | None:
        counts = rc.kubelet_probe_counts(kube, rc.NODE, operator_pod)
        probed = all(counts.get((kind, "successful"), 0) >= 1 for kind in ("Liveness", "Readiness"))
        return counts if probed else None

    counts = rc.eventually(
        counted,
        what=lambda: (
            "no successful liveness and readiness probes counted by the kubelet: "
            f"{rc.kubelet_probe_counts(kube, rc.NODE, operator_pod)}"
        ),
        timeout=60,
    )
    # Readiness may fail while the operator starts (that is what it is for); liveness never.
    assert counts.get(("Liveness", "failed"), 0) == 0, counts
    assert counts.get(("Liveness", "unknown"), 0) == 0, counts
    # ... and the operator's own access log saw the kubelet's prober ask.
    probes = [m for m in _messages(cluster, operator_pod) if "kube-probe/" in m]
    assert any('"GET /healthz ' in m for m in probes), probes


def test_the_operator_talks_to_the_apiserver_through_the_kubernetes_service(
    cluster: layout.Layout, kube: objects.ObjectStore, operator_pod: dict[str, Any]
) -> None:
    """No kubeconfig in the container: the in-cluster config, i.e. the ServiceAccount's
    token and the `kubernetes` Service's address the kubelet put in its environment;
    its open connections go to that address, which kube-proxy forwards."""
    namespace, name = operator_pod["metadata"]["namespace"], operator_pod["metadata"]["name"]
    service = kube.get("v1", "Service", "kubernetes", "default")
    assert service is not None
    service_ip = service["spec"]["clusterIP"]
    seen = rc.inside(cluster, namespace, name)
    assert seen["env"] == {
        "KUBERNETES_SERVICE_HOST": service_ip,
        "KUBERNETES_SERVICE_PORT": "443",
        "KUBECONFIG": None,
    }
    account = operator_pod["spec"]["serviceAccountName"]
    assert account == f"{RELEASE}-trimtab"
    assert seen["token_subject"] == f"system:serviceaccount:{namespace}:{account}"
    assert seen["namespace"] == namespace
    assert seen["uid"] == 65532
    assert f"{service_ip}:443" in seen["peers"], seen["peers"]


def test_kubectl_logs_shows_the_operator_log(
    cluster: layout.Layout, host_redis_url: str, operator_pod: dict[str, Any]
) -> None:
    namespace, name = operator_pod["metadata"]["namespace"], operator_pod["metadata"]["name"]
    lines = rc.log_lines(cluster, namespace, name)
    assert lines, "kubectl logs returned nothing"
    assert lines[0].startswith("{"), f"not the chart's default JSON log format: {lines[0]}"
    assert f"trimtab operator started (redis {host_redis_url})" in rc.messages(lines), lines[:20]


def _messages(lay: layout.Layout, pod: dict[str, Any]) -> list[str]:
    meta = pod["metadata"]
    return rc.messages(rc.log_lines(lay, meta["namespace"], meta["name"]))


def _sample(name: str, namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(dict(samples.valid_docs())[name])
    doc["metadata"]["namespace"] = namespace
    return doc


def _ready(obj: dict[str, Any]) -> bool:
    return rc.condition(obj, "Ready") == "True"


def test_it_reconciles_the_sample_pools_and_workflow_to_ready(
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    host_redis_url: str,
    operator_pod: dict[str, Any],
) -> None:
    """As test_chart_install.py, with the operator in its pod; the samples' worker pods
    go to kwok's nodes (they tolerate no real-node taint)."""
    namespace = operator_pod["metadata"]["namespace"]
    small = _sample("agentpool-support-small", namespace)
    small["spec"]["scaling"]["minReplicas"] = 1
    docs = [small, _sample("agentpool-support-large", namespace)]
    docs.append(_sample("agentworkflow-customer-support", namespace))
    for doc in docs:
        kube.apply(doc)
    for doc in docs:
        try:
            kube.wait_for(
                API_VERSION,
                doc["kind"],
                doc["metadata"]["name"],
                namespace=namespace,
                until=_ready,
                timeout=START_S,
            )
        except TimeoutError as exc:
            pytest.fail(
                f"{exc}\noperator log:\n" + "\n".join(_messages(cluster, operator_pod)[-40:])
            )
    for pool in ("support-small", "support-large"):
        dep = kube.get("apps/v1", "Deployment", naming.worker_deployment(pool), namespace)
        assert dep is not None, f"no worker Deployment for {pool}"
    # It published the compiled workflow to the Redis on the host's address.
    assert redis.Redis.from_url(host_redis_url).exists(
        keys.workflow_current(namespace, "customer-support")
    )
    assert not [m for m in _messages(cluster, operator_pod) if "Forbidden" in m]


def test_its_worker_deployment_is_admitted_and_runs_on_the_real_node(
    kube: objects.ObjectStore, project_image: str, operator_pod: dict[str, Any]
) -> None:
    """The Deployment the operator builds for a pool placed on the real node: its
    ReplicaSet's pod passes the restricted admission (no FailedCreate), and containerd
    runs it there, Ready through the worker's readiness probe (GET /metrics)."""
    namespace = operator_pod["metadata"]["namespace"]
    placement = {**realnodes.placement(rc.NODE), "spreadAcrossZones": False}
    kube.apply(
        samples.pool_doc(
            namespace,
            WORKER_POOL,
            scaling={"minReplicas": 1, "maxReplicas": 1},
            placement=placement,
            worker={"resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
        )
    )
    replica_sets = naming.worker_deployment(WORKER_POOL) + "-"

    def pods() -> list[dict[str, Any]]:
        selector = f"{naming.POOL_LABEL}={WORKER_POOL}"
        return kube.list("v1", "Pod", namespace=namespace, label_selector=selector)

    def refused() -> list[str]:
        return rc.events(
            kube, namespace, kind="ReplicaSet", reason="FailedCreate", name_prefix=replica_sets
        )

    pod = rc.eventually(
        lambda: next((p for p in pods() if _ready(p)), None),
        what=lambda: (
            f"no Ready worker pod; FailedCreate: {refused()}; "
            f"pods: {[p.get('status') for p in pods()]}"
        ),
        timeout=START_S,
    )
    assert refused() == []
    chart.assert_restricted(pod["spec"])
    assert pod["spec"]["nodeName"] == rc.NODE.name
    status = rc.container_status(pod, "worker")
    assert status["containerID"].startswith("containerd://"), status
    assert status["image"] == project_image, status


def test_the_api_server_pod_runs_on_the_real_node_and_reaches_redis(
    kube: objects.ObjectStore, release: tuple[str, str], host_redis_url: str
) -> None:
    """The chart's API server, in the same image and namespace: admitted by the
    restricted profile, placed with the operator, and Ready, which its readiness probe
    (GET /readyz, a Redis PING) grants only once it reaches Redis."""
    namespace, _ = release
    try:
        kube.wait_for(
            "apps/v1",
            "Deployment",
            f"{RELEASE}-trimtab-api",
            namespace=namespace,
            until=lambda d: (d.get("status") or {}).get("readyReplicas") == 1,
            timeout=START_S,
        )
    except TimeoutError:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api"
        pods = kube.list("v1", "Pod", namespace=namespace, label_selector=selector)
        pytest.fail(f"the API server pod did not become ready: {[p.get('status') for p in pods]}")
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=api"
    [pod] = kube.list("v1", "Pod", namespace=namespace, label_selector=selector)
    chart.assert_restricted(pod["spec"])
    assert pod["spec"]["nodeName"] == rc.NODE.name
    assert pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    status = rc.container_status(pod, "api")
    assert status["restartCount"] == 0, status
    clients = redis.Redis.from_url(host_redis_url, decode_responses=True).client_list()
    assert any(c["addr"].startswith(pod["status"]["podIP"] + ":") for c in clients)

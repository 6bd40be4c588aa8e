"""`helm install` with every option on, into a namespace that enforces the restricted
Pod Security profile: the bundled Redis (a generated password, a Redis user of the
watched namespace, append-only file on a bound PersistentVolumeClaim), ServiceMonitor,
PodMonitor and PrometheusRule against the Prometheus Operator's real CRDs, the Grafana
dashboard and the NetworkPolicies.

No container runtime runs images here, so the bundled Redis's own command line (from
the installed StatefulSet) runs as a local redis-server, the operator runs with the
chart's ServiceAccount token and environment, and the local supervisor runs the worker
pods' commands as a kubelet would: a run then completes through the password-protected
Redis end to end, its workers and the app logged in as the namespace's own user."""

from __future__ import annotations

import os
import pathlib
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import yaml

from tests.harness import chart, operator, redis_server, runtime, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import client as kube_client
from trimtab.kube import lease, objects
from trimtab.sdk import sync as sdk_sync
from trimtab_dev.devcluster import layout, supervisor

pytestmark = pytest.mark.usefixtures("crds")
RELEASE = "tt"
USER_SECRET = f"{RELEASE}-trimtab-redis-user"
MONITORING = ("servicemonitors", "podmonitors", "prometheusrules")
SIM = {"seed": 5, "default": {"ttft_seconds": 0.01, "output_tokens_mean": 8}}


def _monitoring_crds(kube: objects.ObjectStore) -> None:
    directory = pathlib.Path(chart.hack_output("fetch-prometheus-crds.sh"))
    for plural in MONITORING:
        crd = yaml.safe_load((directory / f"monitoring.coreos.com_{plural}.yaml").read_text())
        kube.apply(crd)
        kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=lambda c: any(
                x["type"] == "Established" and x["status"] == "True"
                for x in (c.get("status") or {}).get("conditions") or []
            ),
        )


def _volume(kube: objects.ObjectStore, name: str, path: pathlib.Path) -> None:
    """A static PersistentVolume of a class only this test uses, for the Redis claim."""
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": name,
                "hostPath": {"path": str(path)},
            },
        }
    )


@pytest.fixture
def everything(
    helm: str,
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    restricted: str,
    tmp_path: pathlib.Path,
) -> Iterator[tuple[str, int]]:
    """The release with every option on; yields its namespace and the loopback port the
    bundled Redis's command line will be started on (the workers' URL points there)."""
    _monitoring_crds(kube)
    storage_class = f"e2e-{restricted}"[:63]
    _volume(kube, storage_class, tmp_path / "pv")
    chart.adopt_crds(kube, RELEASE, restricted)
    port = redis_server.free_port()
    sets = [
        f"watchNamespaces={{{restricted}}}",
        "replicas=2",
        f"redis.bundled.persistence.storageClass={storage_class}",
        f"redis.workerUrl=redis://127.0.0.1:{port}/0",
        "monitoring.serviceMonitor.enabled=true",
        "monitoring.podMonitor.enabled=true",
        "monitoring.prometheusRule.enabled=true",
        "monitoring.grafanaDashboard.enabled=true",
        "networkPolicy.enabled=true",
    ]
    argv = [helm, "install", RELEASE, str(chart.CHART), "-n", restricted, "--wait=false"]
    argv += ["-f", str(chart.DEV_VALUES), *(x for s in sets for x in ("--set", s))]
    done = chart.run(argv, cluster.kubeconfig)
    assert done.returncode == 0, done.stdout + done.stderr
    try:
        yield restricted, port
    finally:
        chart.run([helm, "uninstall", RELEASE, "-n", restricted], cluster.kubeconfig)
        kube.delete("v1", "PersistentVolume", storage_class)


def _resolved_env(
    kube: objects.ObjectStore, namespace: str, env: list[dict[str, Any]]
) -> dict[str, str]:
    """A container's variables as a kubelet would set them (values and Secret keys)."""
    reader = supervisor.secret_reader(kube)
    return dict(supervisor.resolve_env(namespace, "chart-pod", env, reader))


@pytest.fixture
def bundled_redis(
    kube: objects.ObjectStore, everything: tuple[str, int], tmp_path: pathlib.Path
) -> Iterator[tuple[str, pathlib.Path]]:
    """The installed StatefulSet's redis-server command line, run on loopback: the
    Service name and /data become a local port and directory. Yields its URL (without
    the password) and data directory."""
    namespace, port = everything
    sts = kube.get("apps/v1", "StatefulSet", f"{RELEASE}-trimtab-redis", namespace)
    assert sts is not None
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = _resolved_env(kube, namespace, container.get("env", []))
    args = [chart.expand(a, env) for a in container["args"]]
    data = tmp_path / "redis-data"
    data.mkdir()
    args[args.index("--port") + 1] = str(port)
    args[args.index("--dir") + 1] = str(data)
    proc = subprocess.Popen(
        [*container["command"], *args, "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        redis_server.wait_ping(url, proc, password=env["REDIS_PASSWORD"])
        yield url, data
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _names(kube: objects.ObjectStore, api: str, kind: str, namespace: str) -> set[str]:
    return {o["metadata"]["name"] for o in kube.list(api, kind, namespace=namespace)}


def test_every_option_installs_and_is_admitted(
    kube: objects.ObjectStore, everything: tuple[str, int]
) -> None:
    namespace, _ = everything
    # The bundled Redis pod passed the restricted profile, and its claim bound.
    kube.wait_for(
        "apps/v1",
        "StatefulSet",
        f"{RELEASE}-trimtab-redis",
        namespace=namespace,
        until=lambda s: (s.get("status") or {}).get("readyReplicas") == 1,
        timeout=60,
    )
    [claim] = kube.list("v1", "PersistentVolumeClaim", namespace=namespace)
    assert claim["status"]["phase"] == "Bound"
    monitoring = "monitoring.coreos.com/v1"
    assert _names(kube, monitoring, "ServiceMonitor", namespace) == {
        f"{RELEASE}-trimtab",
        f"{RELEASE}-trimtab-api",
    }
    assert _names(kube, monitoring, "PodMonitor", namespace) == {f"{RELEASE}-trimtab-workers"}
    [rule] = kube.list(monitoring, "PrometheusRule", namespace=namespace)
    assert rule["spec"]["groups"]
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "TrimtabBreakerOpen" in alerts
    board = kube.get("v1", "ConfigMap", f"{RELEASE}-trimtab-dashboard", namespace)
    assert board is not None
    assert yaml.safe_load(board["data"]["trimtab.json"])["uid"] == "trimtab-pools"
    policies = _names(kube, "networking.k8s.io/v1", "NetworkPolicy", namespace)
    suffixes = ("default-deny", "operator", "api", "redis", "workers")
    assert policies == {f"{RELEASE}-trimtab-{s}" for s in suffixes}


def _workflow(namespace: str) -> dict[str, Any]:
    step = {"name": "answer", "prompt": "Answer: {{ inputs.q }}", "maxTokens": 20}
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentWorkflow",
        "metadata": {"name": "ask", "namespace": namespace},
        "spec": {"defaultPool": "small", "steps": [step]},
    }


def _wait_ready(kube: objects.ObjectStore, kind: str, name: str, namespace: str) -> None:
    def ready(obj: dict[str, Any]) -> bool:
        conds = (obj.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    kube.wait_for(API_VERSION, kind, name, namespace=namespace, until=ready, timeout=90)


def _namespace_user(kube: objects.ObjectStore, namespace: str, url: str) -> tuple[str, str]:
    """The namespace's Redis user and `url` logged in as it, from the Secret the chart
    wrote there; the workers' Deployment refers to that Secret."""
    worker_dep = kube.get("apps/v1", "Deployment", "small-worker", namespace)
    assert worker_dep is not None
    worker_env = worker_dep["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {
        "name": "TRIMTAB_REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": USER_SECRET, "key": "password"}},
    } in worker_env
    read = supervisor.secret_reader(kube)
    user, password = (read(namespace, USER_SECRET, k) for k in ("username", "password"))
    assert user == f"tt-{namespace}"
    return user, url.replace("redis://", f"redis://{user}:{password}@")


def test_a_run_completes_through_the_password_protected_bundled_redis(
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    everything: tuple[str, int],
    bundled_redis: tuple[str, pathlib.Path],
    tmp_path: pathlib.Path,
) -> None:
    namespace, _ = everything
    url, data = bundled_redis
    with pytest.raises(redis.AuthenticationError):  # requirepass took effect
        redis.Redis.from_url(url).ping()
    read = supervisor.secret_reader(kube)
    password = read(namespace, f"{RELEASE}-trimtab-redis-auth", "password")
    assert password  # generated by the chart
    authed = redis.Redis.from_url(url, password=password, decode_responses=True)
    assert authed.config_get("appendonly") == {"appendonly": "yes"}
    assert authed.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}

    # The operator, with the chart's ServiceAccount token and the chart's environment
    # (its Redis password from the Secret); only the in-cluster Redis address differs.
    deployment = kube.get("apps/v1", "Deployment", f"{RELEASE}-trimtab", namespace)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = _resolved_env(kube, namespace, container["env"])
    assert env["TRIMTAB_REDIS_PASSWORD"] == password
    env["TRIMTAB_REDIS_URL"] = url
    sa = chart.service_account_kubeconfig(
        cluster, namespace, f"{RELEASE}-trimtab", tmp_path / "sa.kubeconfig"
    )
    log = tmp_path / "operator.log"
    proc_env = {**os.environ, **env, "KUBECONFIG": str(sa)}
    sup = supervisor.Supervisor(kube, tmp_path / "workers", namespace)
    stop = threading.Event()
    workers = threading.Thread(target=sup.run, args=(stop.is_set,), kwargs={"interval": 0.3})
    with runtime.running_sim(tmp_path, SIM) as endpoint:
        proc = operator.start_operator_process(namespace, url, log, env=proc_env)
        workers.start()
        try:
            kube.apply(
                samples.pool_doc(
                    namespace,
                    "small",
                    model={"endpoint": endpoint, "name": "sim-small", "timeoutSeconds": 10},
                    scaling={"minReplicas": 1, "maxReplicas": 1},
                )
            )
            kube.apply(_workflow(namespace))
            try:
                _wait_ready(kube, "AgentWorkflow", "ask", namespace)
            except TimeoutError:
                pytest.fail(f"not Ready; operator log:\n{log.read_text()[-4000:]}")
            user, user_url = _namespace_user(kube, namespace, url)
            client = sdk_sync.SyncClient(user_url)  # an app of the namespace, as that user
            run = client.submit(namespace, "ask", {"q": "ping"})
            result = client.result(run, timeout=60)
            assert result.status == "succeeded", result.errors
            logged_in = {c["user"] for c in authed.client_list()}
            assert user in logged_in  # the worker's connections, not only the app's
        finally:
            stop.set()
            workers.join(timeout=60)
            proc.terminate()
            proc.wait(timeout=60)
    # The accepted run reached the append-only file on the data volume.
    assert any(p.stat().st_size for p in (data / "appendonlydir").iterdir())
    assert "Forbidden" not in log.read_text()


def test_the_service_account_may_hold_only_its_own_lease(
    cluster: layout.Layout, everything: tuple[str, int], tmp_path: pathlib.Path
) -> None:
    namespace, _ = everything
    sa = chart.service_account_kubeconfig(
        cluster, namespace, f"{RELEASE}-trimtab", tmp_path / "sa.kubeconfig"
    )
    store = objects.ObjectStore(kube_client.connect(str(sa)))
    now = time.time()
    assert lease.LeaseLock(store, namespace, f"{RELEASE}-trimtab", "a").try_acquire(now)
    assert lease.LeaseLock(store, namespace, f"{RELEASE}-trimtab", "a").try_acquire(now + 1)
    with pytest.raises(objects.ApiError) as denied:  # any other Lease may not even be read
        lease.LeaseLock(store, namespace, "someone-else", "a").try_acquire(now)
    assert denied.value.status == 403

"""`helm install` of the chart on the real local control plane, into a namespace that
enforces the restricted Pod Security profile; the operator then runs with exactly the
chart's permissions (its ServiceAccount's token), and a sample pool and workflow become
Ready. Then `helm upgrade` keeps the custom resources and `helm uninstall` with
crds.keep leaves the CRDs and the user's objects."""

from __future__ import annotations

import copy
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.harness import chart, operator, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab_dev.devcluster import binaries, layout

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trimtab"
CRDS = chart.TRIMTAB_CRDS
pytestmark = pytest.mark.usefixtures("crds")


def _sample(name: str, namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(dict(samples.valid_docs())[name])
    doc["metadata"]["namespace"] = namespace
    return doc


def _condition(obj: dict[str, Any] | None, kind: str) -> str | None:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conds if c["type"] == kind), None)


@pytest.fixture
def installed(
    helm: str, cluster: layout.Layout, kube: objects.ObjectStore, restricted: str
) -> Iterator[str]:
    release = "tt"
    chart.adopt_crds(kube, release, restricted)
    argv = [
        helm,
        "install",
        release,
        str(CHART),
        "-n",
        restricted,
        "--wait=false",
        "--set",
        f"watchNamespaces={{{restricted}}}",
    ]
    done = chart.run(argv, cluster.kubeconfig)
    assert done.returncode == 0, done.stdout + done.stderr
    yield release
    chart.run([helm, "uninstall", release, "-n", restricted], cluster.kubeconfig)


def test_install_runs_the_operator_with_only_the_charts_permissions(
    helm: str,
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    restricted: str,
    installed: str,
    redis_url: str,
    tmp_path: pathlib.Path,
) -> None:
    # The chart's operator pod was admitted by the restricted profile.
    pods = kube.wait_for(
        "apps/v1",
        "Deployment",
        f"{installed}-trimtab",
        namespace=restricted,
        until=lambda d: (d.get("status") or {}).get("readyReplicas") == 1,
        timeout=60,
    )
    assert pods["spec"]["template"]["spec"]["serviceAccountName"] == f"{installed}-trimtab"

    # Its ServiceAccount may not read Secrets, in its namespace or the cluster's.
    sa_config = chart.service_account_kubeconfig(
        cluster, restricted, f"{installed}-trimtab", tmp_path / "sa.kubeconfig"
    )
    kubectl = str(binaries.ensure_built() / "kubectl")
    for scope in (["-A"], ["-n", restricted]):
        denied = chart.run([kubectl, "get", "secrets", *scope], sa_config)
        assert denied.returncode != 0
        assert "forbidden" in denied.stderr.lower()

    # The operator, run with that token (no container runtime here runs the image),
    # reconciles a sample pool and workflow to Ready.
    small = _sample("agentpool-support-small", restricted)
    small["spec"]["scaling"]["minReplicas"] = 1
    large = _sample("agentpool-support-large", restricted)
    workflow = _sample("agentworkflow-customer-support", restricted)
    log = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(sa_config)}
    proc = operator.start_operator_process(restricted, redis_url, log, env=env)
    try:
        for doc in (small, large, workflow):
            kube.apply(doc)
        try:
            kube.wait_for(
                API_VERSION,
                "AgentWorkflow",
                "customer-support",
                namespace=restricted,
                until=lambda o: _condition(o, "Ready") == "True",
                timeout=90,
            )
        except TimeoutError:
            pytest.fail(f"not Ready; operator log:\n{log.read_text()[-4000:]}")
        assert "Forbidden" not in log.read_text()
        # The worker pods passed the namespace's restricted profile too.
        worker_pods = kube.list(
            "v1", "Pod", namespace=restricted, label_selector="trimtab.io/pool=support-small"
        )
        assert worker_pods
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    # An upgrade to changed values keeps the custom resources.
    upgraded = chart.run(
        [
            helm,
            "upgrade",
            installed,
            str(CHART),
            "-n",
            restricted,
            "--reuse-values",
            "--set",
            "logFormat=plain",
        ],
        cluster.kubeconfig,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert kube.get(API_VERSION, "AgentPool", "support-small", restricted) is not None

    # Uninstalling with crds.keep leaves the CRDs and the user's objects.
    removed = chart.run([helm, "uninstall", installed, "-n", restricted], cluster.kubeconfig)
    assert removed.returncode == 0, removed.stderr
    assert "kept due to the resource policy" in removed.stdout + removed.stderr
    for name in CRDS:
        assert kube.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name) is not None
    assert kube.get(API_VERSION, "AgentWorkflow", "customer-support", restricted) is not None
    assert kube.get("apps/v1", "Deployment", f"{installed}-trimtab", restricted) is None


def test_kubectl_apply_k_is_accepted_by_the_api_server(
    cluster: layout.Layout, kube: objects.ObjectStore
) -> None:
    """`kubectl apply -k manifests/install`, checked by the real API server (schemas,
    admission, RBAC references) as a server-side dry run, so the session's CRDs and
    the cluster stay as they are; the namespace is created for real, as -k would."""
    kubectl = str(binaries.ensure_built() / "kubectl")
    created = kube.get("v1", "Namespace", "trimtab-system") is None
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "trimtab-system"}})
    argv = [kubectl, "apply", "-k", str(ROOT / "manifests" / "install")]
    argv += ["--server-side", "--force-conflicts", "--dry-run=server", "-o", "yaml"]
    try:
        done = chart.run(argv, cluster.kubeconfig)
    finally:
        if created:  # leave a namespace someone else made alone
            kube.delete("v1", "Namespace", "trimtab-system")
    assert done.returncode == 0, done.stderr
    applied = yaml.safe_load(done.stdout)["items"]
    kinds = sorted(o["kind"] for o in applied)
    assert kinds == sorted(["Namespace", *(o["kind"] for o in chart.objects(chart.helm_binary()))])
    deployment = next(o for o in applied if o["kind"] == "Deployment")
    assert deployment["metadata"]["namespace"] == "trimtab-system"
    assert kube.get("apps/v1", "Deployment", "trimtab", "trimtab-system") is None  # dry run

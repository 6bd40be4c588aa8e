"""The generated CRDs in a real apiserver: they install, accept every valid sample,
refuse every invalid one with the message the user should see, print the right
columns, and let `kubectl scale` drive a Manual pool."""

from __future__ import annotations

import json
import pathlib
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import exceptions as k8s_exceptions

from tests.harness import cluster as cluster_harness
from tests.harness import samples
from trimtab.api.v1alpha1 import API_VERSION, manifests
from trimtab.kube import objects
from trimtab.reconcile.agentworkflow import validation
from trimtab_dev.devcluster import layout

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVALID = samples.invalid_samples()


@pytest.fixture(scope="module")
def samples_ns(kube: objects.ObjectStore, crds: None) -> Iterator[str]:
    """A namespace holding every valid sample, for the tests that need real pools."""
    name = f"t-samples-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for _, doc in samples.valid_docs():
        kube.apply(_in(doc, name))
    yield name
    kube.delete("v1", "Namespace", name)


def _in(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}


def _pools_in(kube: objects.ObjectStore, namespace: str) -> set[str]:
    return {p["metadata"]["name"] for p in kube.list(API_VERSION, "AgentPool", namespace=namespace)}


def test_valid_samples_are_stored_with_defaults(kube: objects.ObjectStore, samples_ns: str) -> None:
    stored = kube.get(API_VERSION, "AgentPool", "tools-manual", samples_ns)
    assert stored is not None
    assert stored["spec"]["queue"]["maxDeliveries"] == 5  # defaulted by the apiserver
    workflow = kube.get(API_VERSION, "AgentWorkflow", "customer-support", samples_ns)
    assert workflow is not None
    parsed = manifests.parse(workflow)
    assert isinstance(parsed, manifests.AgentWorkflow)
    assert validation.find_problems(parsed.spec, pools=_pools_in(kube, samples_ns)) == []


@pytest.mark.parametrize("sample", INVALID, ids=[s.name for s in INVALID])
def test_invalid_samples_are_refused(
    cluster: layout.Layout,
    kube: objects.ObjectStore,
    samples_ns: str,
    sample: samples.InvalidSample,
) -> None:
    """Applied the way users do (`kubectl apply`); each gets the message in its header."""
    doc = _in(sample.doc, samples_ns)
    result = cluster_harness.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(doc))
    if sample.rejected_by == "apiserver":
        assert result.returncode != 0, result.stdout
        assert sample.expect in result.stderr
        return
    assert result.returncode == 0, result.stderr
    try:
        stored = kube.get(API_VERSION, doc["kind"], doc["metadata"]["name"], samples_ns)
        assert stored is not None
        if doc["kind"] == "AgentPool":  # stored; the operator's parse refuses it
            with pytest.raises(ValueError, match=re.escape(sample.expect)):
                manifests.parse(stored)
            return
        parsed = manifests.parse(stored)
        assert isinstance(parsed, manifests.AgentWorkflow)
        problems = validation.find_problems(parsed.spec, pools=_pools_in(kube, samples_ns))
        assert any(sample.expect in p.message for p in problems), problems
    finally:
        kube.delete(API_VERSION, doc["kind"], doc["metadata"]["name"], samples_ns)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        pytest.param("temperature", 0.2, "field not declared in schema", id="unknown-field"),
        pytest.param("maxTokens", "lots", "expected numeric", id="wrong-type"),
    ],
)
def test_server_side_apply_is_strict(
    kube: objects.ObjectStore, samples_ns: str, field: str, value: Any, message: str
) -> None:
    pool = next(d for _, d in samples.valid_docs() if d["kind"] == "AgentPool")
    doc = _in(pool, samples_ns)
    doc["spec"] = {**doc["spec"], "model": {**doc["spec"]["model"], field: value}}
    with pytest.raises(k8s_exceptions.ApiException) as err:
        kube.apply(doc)
    assert message in json.loads(err.value.body)["message"]


def _table(cluster: layout.Layout, *args: str) -> list[str]:
    result = cluster_harness.kubectl(cluster, "get", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_kubectl_get_shows_printer_columns(cluster: layout.Layout, samples_ns: str) -> None:
    lines = _table(cluster, "apool,awf,abudget", "-n", samples_ns)
    headers = [line.split() for line in lines if line.startswith("NAME")]
    assert ["NAME", "READY", "TIER", "REPLICAS", "QUEUE", "P95", "CAPACITY", "AGE"] in headers
    assert ["NAME", "READY", "STEPS", "RUNS", "P95", "COST", "AGE"] in headers
    assert ["NAME", "READY", "EXHAUSTED", "AGE"] in headers
    assert any(line.startswith("agentpool.trimtab.io/support-small") for line in lines)
    by_category = _table(cluster, "agents", "-n", samples_ns, "-o", "name")
    assert "agentworkflow.trimtab.io/customer-support" in by_category
    assert "agentbudget.trimtab.io/support-daily" in by_category


def test_kubectl_scale_sets_replicas_of_a_manual_pool(
    cluster: layout.Layout, kube: objects.ObjectStore, samples_ns: str
) -> None:
    result = cluster_harness.kubectl(
        cluster, "scale", "agentpool", "tools-manual", "--replicas=3", "-n", samples_ns
    )
    assert result.returncode == 0, result.stderr
    stored = kube.get(API_VERSION, "AgentPool", "tools-manual", samples_ns)
    assert stored is not None
    assert stored["spec"]["replicas"] == 3

"""The harness can install a CRD and run kopf handlers that patch status, both in the
test's own process (KopfRunner) and as a separate operator process."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import operator
from trimtab.kube import objects

HANDLERS = pathlib.Path(__file__).parent / "handlers" / "probe_handlers.py"
CRD_NAME = "probes.harness.trimtab.io"

PROBE_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": CRD_NAME},
    "spec": {
        "group": "harness.trimtab.io",
        "scope": "Namespaced",
        "names": {"plural": "probes", "singular": "probe", "kind": "Probe"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"message": {"type": "string"}},
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="module")
def probe_crd(kube: objects.ObjectStore) -> Iterator[None]:
    kube.apply(PROBE_CRD)
    kube.wait_for(
        "apiextensions.k8s.io/v1", "CustomResourceDefinition", CRD_NAME, until=_established
    )
    return


def _probe(namespace: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "harness.trimtab.io/v1",
        "kind": "Probe",
        "metadata": {"name": "p1", "namespace": namespace},
        "spec": {"message": message},
    }


def _echoed(message: str, generation: int) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        status = obj.get("status") or {}
        return bool(
            status.get("echo") == message and status.get("observedGeneration") == generation
        )

    return check


def _create_then_update(kube: objects.ObjectStore, namespace: str) -> None:
    kube.apply(_probe(namespace, "hello"))
    kube.wait_for(
        "harness.trimtab.io/v1",
        "Probe",
        "p1",
        namespace=namespace,
        until=_echoed("hello", 1),
        timeout=30,
    )
    kube.apply(_probe(namespace, "again"))
    kube.wait_for(
        "harness.trimtab.io/v1",
        "Probe",
        "p1",
        namespace=namespace,
        until=_echoed("again", 2),
        timeout=30,
    )


@pytest.mark.usefixtures("probe_crd")
def test_kopf_runner_in_process_patches_status(kube: objects.ObjectStore, namespace: str) -> None:
    with operator.in_process(HANDLERS, namespace):
        _create_then_update(kube, namespace)


@pytest.mark.usefixtures("probe_crd")
def test_operator_subprocess_patches_status(
    kube: objects.ObjectStore, namespace: str, tmp_path: pathlib.Path
) -> None:
    log = tmp_path / "operator.log"
    with operator.subprocess_operator(HANDLERS, namespace, log) as proc:
        try:
            _create_then_update(kube, namespace)
        except TimeoutError:
            pytest.fail(f"operator log:\n{log.read_text()[-4000:]}")
        assert proc.poll() is None, "the operator process exited early"

"""Fixtures of the chart's e2e tests: the pinned helm and a namespace that enforces the
restricted Pod Security profile."""

from __future__ import annotations

import pytest

from tests.harness import chart
from trimtab.kube import objects


@pytest.fixture(scope="session")
def helm() -> str:
    return chart.helm_binary()


@pytest.fixture
def restricted(kube: objects.ObjectStore, namespace: str) -> str:
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
    )
    return namespace

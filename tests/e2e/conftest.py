"""Fixtures of the e2e tests: the pinned helm, a namespace that enforces the restricted
Pod Security profile, and for pods that run for real on the session cluster's real node,
the project's image imported into it and a Redis those pods reach."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import chart, realnode
from trimtab.kube import objects
from trimtab_dev.devcluster import layout


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


@pytest.fixture(scope="session")
def project_image(cluster: layout.Layout) -> str:
    """The project's image (built once, cached) imported into the real nodes; its reference."""
    if not cluster.real_nodes:
        pytest.skip(f"cluster {cluster.name} runs no real node (up --real-nodes 0)")
    return realnode.project_image(cluster)


@pytest.fixture(scope="session")
def host_redis_url(
    cluster: layout.Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A redis-server on loopback and the host's bridge address; its URL at the latter,
    which the host and the real nodes' pods both reach."""
    if not cluster.real_nodes:
        pytest.skip(f"cluster {cluster.name} runs no real node (up --real-nodes 0)")
    with realnode.host_redis(tmp_path_factory.mktemp("host-redis"), cluster) as url:
        yield url

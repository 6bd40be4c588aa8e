"""Fixtures shared by every tier; servers start only when a test asks for them.

Each test's tier comes from its folder (tests/unit, tests/integration, tests/e2e),
so `pytest -m unit` never starts a server and no test runs untiered.
"""

from __future__ import annotations

import os
import pathlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from trimtab_dev.devcluster import layout  # imports no Kubernetes client: see below

# The kubernetes client reads $KUBECONFIG once, when first imported; kopf running
# in-process (KopfRunner) logs in through it, so the path is set before anything here
# imports the client (tests.harness.cluster does, through trimtab_dev.devcluster.cluster).
os.environ["KUBECONFIG"] = str(
    layout.layout_for(os.environ.get("TRIMTAB_TEST_CLUSTER", layout.DEFAULT_NAME)).kubeconfig
)

import pytest
import redis
import yaml

from tests.harness import cluster as cluster_harness
from tests.harness import redis_server
from trimtab.kube import client, objects
from trimtab.sdk import Client

TIERS = ("unit", "integration", "e2e")
ROOT = pathlib.Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # The folder right under tests/ (tests/integration/cluster is integration).
        parts = pathlib.Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = parts[0] if len(parts) > 1 else ""
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live under tests/{{{','.join(TIERS)}}}")
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def cluster(monkeypatch_session: pytest.MonkeyPatch) -> Iterator[layout.Layout]:
    """The real local control plane, started (or reused) for the whole session."""
    with cluster_harness.session_cluster() as lay:
        monkeypatch_session.setenv("KUBECONFIG", str(lay.kubeconfig))
        yield lay


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="session")
def kube(cluster: layout.Layout) -> objects.ObjectStore:
    """The object store (trimtab.kube) connected to the test cluster as admin."""
    return objects.ObjectStore(client.connect(str(cluster.kubeconfig)))


@pytest.fixture
def namespace(kube: objects.ObjectStore, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    stem = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:6]}"
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete("v1", "Namespace", name)


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free loopback port for the whole session."""
    with redis_server.running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server_url: str) -> str:
    """The session's redis-server, emptied before each test."""
    redis.Redis.from_url(redis_server_url).flushall()
    return redis_server_url


def _established(crd: dict[str, Any]) -> bool:
    conditions = (crd.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)


@pytest.fixture(scope="session")
def crds(kube: objects.ObjectStore) -> None:
    """Trimtab's CRDs, installed from the checked-in crds/ folder."""
    from trimtab.api import crdgen  # noqa: PLC0415

    root = pathlib.Path(__file__).resolve().parents[1]
    for crd in crdgen.all_crds():
        kube.apply(yaml.safe_load((root / crdgen.file_name(crd)).read_text()))
        kube.wait_for(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            crd["metadata"]["name"],
            until=_established,
        )


@pytest.fixture
async def sdk(redis_url: str) -> AsyncIterator[Client]:
    """The SDK client on the test's Redis."""
    client = Client(redis_url)
    yield client
    await client.aclose()

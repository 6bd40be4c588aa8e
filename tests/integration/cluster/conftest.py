"""The runtime's integration tests again, on a real Redis Cluster: this folder's modules
import the tests of tests/integration (and the fixtures they use) and run them with
`redis_url` naming a six-node cluster (tests.harness.redis_cluster) instead of the
session's single redis-server. The tests do not change: the SDK and the workers reach
the cluster through its `redis+cluster://` URL."""

from __future__ import annotations

import pathlib
import tempfile
from collections.abc import Iterator

import pytest
import redis

from tests.harness import redis_cluster


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> Iterator[redis_cluster.Cluster]:
    with (
        tempfile.TemporaryDirectory(prefix="trimtab-cluster-") as tmp,
        redis_cluster.running_cluster(pathlib.Path(tmp)) as found,
    ):
        yield found


@pytest.fixture
def redis_url(redis_cluster_nodes: redis_cluster.Cluster) -> str:
    """The session's cluster, every primary emptied before each test."""
    first = redis_cluster_nodes.nodes[0]
    client = redis.RedisCluster(host="127.0.0.1", port=first.port)
    try:
        client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    finally:
        client.close()
    return redis_cluster_nodes.url

"""Redis URLs beyond redis-py's own: sentinels, and the replicas a write must reach."""

from __future__ import annotations

import pytest

from trimtab.queue import connection, topology

pytestmark = pytest.mark.unit


def test_a_sentinel_url_names_its_sentinels_service_and_database() -> None:
    found = topology.parse("redis+sentinel://:pw@10.0.0.1:26379,[::1]:26380/trimtab/2")
    assert found.sentinel == topology.SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("::1", 26380)),
        service="trimtab", db=2, tls=False, username=None, password="pw",
    )  # fmt: skip
    assert not found.tls
    assert topology.parse("rediss+sentinel://s:1/x").tls
    assert topology.parse("redis+sentinel://s:1/x").sentinel.db == 0  # type: ignore[union-attr]


def test_durability_comes_off_the_url_before_redis_py_sees_it() -> None:
    found = topology.parse("redis://r:6379/0?wait_replicas=1&wait_timeout_ms=250&ssl_foo=x")
    assert found.durability == topology.Durability(1, 250)
    assert found.url == "redis://r:6379/0?ssl_foo=x"
    assert topology.parse("redis://r/0").durability == topology.Durability(0, 1000)
    sentinel = topology.parse("redis+sentinel://s:1/x?wait_replicas=2")
    assert sentinel.durability.replicas == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s:1", "SERVICE"),
        ("redis+sentinel://s/x", "HOST:PORT"),
        ("redis+sentinel://s:1/x/y", "not a number"),
        ("redis+sentinel://s:1/x?socket_timeout=1", "only"),
        ("redis://r/0?wait_replicas=many", "integers"),
        ("redis://r/0?wait_replicas=-1", ">= 0"),
        ("http://r/0", "scheme 'http'"),
    ],
)
def test_a_url_that_cannot_work_is_refused_in_one_line(url: str, message: str) -> None:
    with pytest.raises(topology.TopologyError, match=message) as caught:
        topology.parse(url)
    assert "\n" not in str(caught.value)


async def test_a_client_carries_its_urls_durability() -> None:
    client = connection.connect("redis://127.0.0.1:1/0?wait_replicas=1")
    assert isinstance(client, connection.Client)
    assert client.durability == topology.Durability(1, 1000)
    sentinel = connection.connect("redis+sentinel://127.0.0.1:1/trimtab")
    assert sentinel.connection_pool.service_name == "trimtab"  # type: ignore[attr-defined]
    await client.aclose()
    await sentinel.aclose()

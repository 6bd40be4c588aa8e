"""The redis fixture is a real redis-server on loopback, emptied between tests."""

from __future__ import annotations

import redis


def test_redis_server_is_real_and_on_loopback(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    info = r.info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 7
    assert "127.0.0.1" in redis_url
    # Streams with consumer groups are what the runtime is built on.
    r.xgroup_create("s", "g", id="0", mkstream=True)
    r.xadd("s", {"k": "v"})
    [(_, entries)] = r.xreadgroup("g", "c1", {"s": ">"}, count=1)
    assert entries[0][1] == {b"k": b"v"}
    r.set("leftover", "1")


def test_each_test_starts_with_an_empty_redis(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).dbsize() == 0

"""A pool's stream maintenance and load reading, on a real redis-server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from trimtab.queue import connection, keys, load, messages, scripts, stats, tasks
from trimtab.stats import sketch

NS, POOL = "q", "p"
STREAM = keys.pool_stream(NS, POOL)  # the Normal level's, where these tests put work


@pytest.fixture
async def pool(redis_url: str) -> AsyncIterator[tasks.PoolQueue]:
    client = connection.connect(redis_url)
    queue = tasks.PoolQueue(client, scripts.Scripts(client), namespace=NS, pool=POOL, consumer="c1")
    await queue.intake.ensure_groups()
    yield queue
    await client.aclose()


async def _read_load(
    client: connection.Redis, *, namespace: str, pool: str, now: float, window_seconds: int = 10
) -> load.PoolLoad:
    """One pool's load, read the way the operator reads every pool's at once."""
    reader = load.LoadReader(client, window_seconds=window_seconds)
    return (await reader.read_all([(namespace, pool)], now=now))[(namespace, pool)]


async def _add(queue: tasks.PoolQueue, n: int) -> list[str]:
    task = messages.Task(
        namespace=NS, run_id="r", step="s", attempt=1, workflow="w", generation=1, enqueued_ms=0.0
    )
    return [await queue.client.xadd(STREAM, task.fields()) for _ in range(n)]


async def test_trim_removes_only_what_every_consumer_is_done_with(pool: tasks.PoolQueue) -> None:
    ids = await _add(pool, 6)
    delivered = await pool.intake.read(4, block_ms=100)
    assert [d.msg_id for d in delivered] == ids[:4]
    await pool.client.xack(STREAM, keys.GROUP, ids[0], ids[1], ids[3])  # ids[2] in flight
    assert await pool.intake.trim_acknowledged() == 2
    remaining = [e[0] for e in await pool.client.xrange(STREAM)]
    assert remaining == ids[2:]  # in-flight, acked-after-it, and two never delivered
    await pool.client.xack(STREAM, keys.GROUP, ids[2])
    assert await pool.intake.trim_acknowledged() == 2
    assert [e[0] for e in await pool.client.xrange(STREAM)] == ids[4:]


async def test_trim_of_an_untouched_stream_deletes_nothing(pool: tasks.PoolQueue) -> None:
    await _add(pool, 3)
    assert await pool.intake.trim_acknowledged() == 0
    assert await pool.client.xlen(STREAM) == 3


async def test_load_reads_backlog_in_flight_and_merged_latency(pool: tasks.PoolQueue) -> None:
    await _add(pool, 10)
    await pool.intake.read(3, block_ms=100)
    now = time.time()
    for worker, latencies in (("w1", [0.1] * 20), ("w2", [0.2] * 19 + [2.0])):
        tally = sketch.LatencySketch()
        for value in latencies:
            tally.add(value)
        await stats.record_second(
            pool.client,
            namespace=NS,
            pool=POOL,
            second=int(now) - 1,
            consumer=worker,
            completed=len(latencies),
            busy_seconds=sum(latencies),
            sketch=tally.to_bytes().decode(),
        )
    got = await _read_load(pool.client, namespace=NS, pool=POOL, now=now, window_seconds=10)
    assert (got.backlog, got.in_flight, got.added_total) == (7, 3, 10)
    assert got.completion_rate == pytest.approx(4.0)
    assert got.service_seconds == pytest.approx((2 + 3.8 + 2.0) / 40)
    assert got.p95_seconds == pytest.approx(0.2, rel=0.02)


async def test_load_of_an_unknown_pool_is_empty(pool: tasks.PoolQueue) -> None:
    got = await _read_load(pool.client, namespace=NS, pool="none", now=time.time())
    assert (got.backlog, got.in_flight, got.completion_rate, got.p95_seconds) == (0, 0, 0.0, None)


async def _record(pool: tasks.PoolQueue, name: str, second: int, completed: int) -> None:
    tally = sketch.LatencySketch()
    tally.add(0.1)
    await stats.record_second(
        pool.client,
        namespace=NS,
        pool=name,
        second=second,
        consumer="w",
        completed=completed,
        busy_seconds=0.1 * completed,
        sketch=tally.to_bytes().decode(),
    )


async def test_load_reader_reads_all_pools_and_skips_the_stats_of_long_idle_ones(
    pool: tasks.PoolQueue,
) -> None:
    reader = load.LoadReader(pool.client, window_seconds=10)
    await _add(pool, 5)  # POOL has a backlog; "quiet" has no stream at all
    now = time.time()
    for name in (POOL, "quiet"):
        await _record(pool, name, int(now) - 1, completed=10)
    first = await reader.read_all([(NS, POOL), (NS, "quiet")], now=now)
    assert first[(NS, POOL)].backlog == 5
    # First sight of a pool always reads its window.
    assert first[(NS, "quiet")].completion_rate == pytest.approx(1.0)
    later = now + 12  # past the window with nothing new: "quiet" is idle, POOL still busy
    for name in (POOL, "quiet"):
        await _record(pool, name, int(later) - 1, completed=20)
    second = await reader.read_all([(NS, POOL), (NS, "quiet")], now=later)
    assert second[(NS, POOL)].completion_rate == pytest.approx(2.0)
    assert second[(NS, "quiet")].completion_rate == 0.0  # not read: nothing could be there
    await pool.client.xadd(keys.pool_stream(NS, "quiet"), {"x": "1"})  # an arrival
    third = await reader.read_all([(NS, POOL), (NS, "quiet")], now=later + 0.5)
    assert third[(NS, "quiet")].completion_rate == pytest.approx(2.0)  # read again


async def test_a_stream_without_consumer_group_counts_every_entry_as_backlog(
    pool: tasks.PoolQueue,
) -> None:
    """A pool at zero has never had a worker, so no group: its messages are still
    backlog, or it would never wake from zero."""
    stream = keys.pool_stream(NS, "never-served")
    for _ in range(3):
        await pool.client.xadd(stream, {"x": "1"})
    got = await _read_load(pool.client, namespace=NS, pool="never-served", now=time.time())
    assert (got.backlog, got.in_flight, got.added_total) == (3, 0, 3)


async def test_oldest_backlog_age_is_that_of_the_first_undelivered_entry(
    pool: tasks.PoolQueue,
) -> None:
    old, newer = "1000000000000-0", "1000000030000-0"  # added 30 s apart
    for entry_id in (old, "1000000010000-0", newer):
        await pool.client.xadd(STREAM, {"x": "1"}, id=entry_id)
    now = 1000000060.0
    got = await _read_load(pool.client, namespace=NS, pool=POOL, now=now)
    assert got.oldest_backlog_seconds == pytest.approx(60.0)
    await pool.intake.read(2, block_ms=100)  # delivered entries are in flight, not backlog
    got = await _read_load(pool.client, namespace=NS, pool=POOL, now=now)
    assert got.oldest_backlog_seconds == pytest.approx(30.0)
    await pool.intake.read(1, block_ms=100)
    got = await _read_load(pool.client, namespace=NS, pool=POOL, now=now)
    assert (got.backlog, got.oldest_backlog_seconds) == (0, None)
    # Without a consumer group every entry is backlog, the first one the oldest.
    stream = keys.pool_stream(NS, "fresh")
    await pool.client.xadd(stream, {"x": "1"}, id=old)
    got = await _read_load(pool.client, namespace=NS, pool="fresh", now=now)
    assert got.oldest_backlog_seconds == pytest.approx(60.0)

"""A run that ended stays ended, on a real redis-server: approving a review in a run
another branch failed is refused, a second dead branch does not fail the run twice, and
retrying a dead letter resumes every dead step of its run or none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from trimtab.queue import (
    connection,
    deadletter,
    deadlines,
    intake,
    keys,
    runs,
    scripts,
    tasks,
    wire,
    workflows,
)

pytestmark = pytest.mark.integration

NS, POOL, WF = "terminal", "main", "wf"
NOW = 1_800_000_000_000.0


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[tasks.PoolQueue]:
    client = connection.connect(redis_url)
    lua = scripts.Scripts(client)
    q = tasks.PoolQueue(client, lua, namespace=NS, pool=POOL, consumer="w1")
    await q.intake.ensure_groups()
    yield q
    await client.aclose()


async def _two_branches(
    queue: tasks.PoolQueue, deadline_seconds: int | None = None
) -> dict[str, intake.Delivery]:
    """A run whose roots `a` and `b` are both delivered and started."""
    new = runs.NewRun(
        deadline_seconds=deadline_seconds,
        namespace=NS,
        workflow=WF,
        generation=1,
        steps=["a", "b"],
        run_id="r1",
        inputs={},
        root_pools={"a": POOL, "b": POOL},
        ttl_seconds=600,
        now_ms=NOW,
    )
    await runs.submit(queue.lua, new)
    got = {}
    for delivery in await queue.intake.read(2, block_ms=100):
        started = await queue.start(delivery, now_ms=NOW, max_deliveries=5)
        assert started.outcome is wire.Reply.RUN
        assert started.delivery is not None
        got[delivery.task.step] = started.delivery
    return got


async def _status(queue: tasks.PoolQueue) -> str:
    state = await runs.read(queue.client, NS, "r1")
    assert state is not None
    return str(state.status)


async def _approve(queue: tasks.PoolQueue, delivery: intake.Delivery) -> wire.Reply:
    reviewed = intake.Delivery("0-0", delivery.task, delivery.stream)
    done = await queue.complete(
        reviewed, output="ok", tokens=0, cost=0.0, now_ms=NOW + 3,
        expected_version=None, dependents=[],
    )  # fmt: skip
    return done.outcome


async def test_an_approval_cannot_revive_a_run_another_branch_failed(
    queue: tasks.PoolQueue,
) -> None:
    d = await _two_branches(queue)
    assert await queue.fail(d["a"], reason="boom", now_ms=NOW + 1) is wire.Reply.DEAD
    parked = await queue.park_for_review(
        d["b"], reason="unsure", output="maybe", tokens=0, cost=0.0, now_ms=NOW + 2
    )
    assert isinstance(parked, str)
    assert await _status(queue) == wire.RunStatus.FAILED  # parking does not move it
    assert await _approve(queue, d["b"]) is wire.Reply.TERMINAL
    assert await _status(queue) == wire.RunStatus.FAILED
    # Retrying the dead branch brings the run back, waiting on its review again.
    [entry] = await deadletter.list_entries(queue.client, NS)
    resumed = await deadletter.resume(queue.client, queue.lua, entry, now_ms=NOW + 4)
    assert resumed == deadletter.Resumed(wire.Reply.RESUMED, ("a",))
    assert await _status(queue) == wire.RunStatus.REVIEW
    assert await _approve(queue, d["b"]) is wire.Reply.OK


async def test_two_dead_branches_fail_the_run_once_and_resume_together(
    queue: tasks.PoolQueue,
) -> None:
    d = await _two_branches(queue)
    assert await queue.fail(d["a"], reason="a died", now_ms=NOW + 1) is wire.Reply.DEAD
    # The run had failed already: counted once, by the first.
    assert await queue.fail(d["b"], reason="b died", now_ms=NOW + 1) is wire.Reply.ALSO_DEAD
    stats = await workflows.run_stats(queue.client, NS, WF, now=NOW / 1000)
    assert (stats.failed, stats.dead_lettered) == (1, 1)  # one run failed, once
    done = [e async for e in _events(queue) if e.get("type") == wire.EventType.RUN_DONE]
    assert len(done) == 1
    entries = await deadletter.list_entries(queue.client, NS)
    assert len(entries) == 2
    resumed = await deadletter.resume(queue.client, queue.lua, entries[0], now_ms=NOW + 4)
    assert resumed.outcome is wire.Reply.RESUMED
    assert sorted(resumed.steps) == ["a", "b"]
    assert await _status(queue) == wire.RunStatus.RUNNING
    assert await deadletter.list_entries(queue.client, NS) == []
    again = {d.task.step: d for d in await queue.intake.read(5, block_ms=100)}
    assert sorted(again) == ["a", "b"]
    stats = await workflows.run_stats(queue.client, NS, WF, now=NOW / 1000)
    assert stats.failed == 0
    # Dying again: the run fails (once more, as it ran again) but was dead-lettered once.
    started = {
        step: await queue.start(delivery, now_ms=NOW + 5, max_deliveries=5)
        for step, delivery in again.items()
    }
    for step, attempt in started.items():
        assert attempt.delivery is not None
        await queue.fail(attempt.delivery, reason=f"{step} died again", now_ms=NOW + 6)
    stats = await workflows.run_stats(queue.client, NS, WF, now=NOW / 1000)
    assert (stats.failed, stats.dead_lettered) == (1, 1)


async def test_a_run_with_a_purged_dead_step_is_not_resumed_half_way(
    queue: tasks.PoolQueue,
) -> None:
    d = await _two_branches(queue)
    for step in ("a", "b"):
        await queue.fail(d[step], reason="died", now_ms=NOW + 1)
    entries = {e.step: e for e in await deadletter.list_entries(queue.client, NS)}
    await deadletter.purge(queue.client, NS, [entries["b"].id])
    resumed = await deadletter.resume(queue.client, queue.lua, entries["a"], now_ms=NOW + 4)
    assert resumed == deadletter.Resumed(wire.Reply.OTHERS_DEAD, ("b",))
    assert await _status(queue) == wire.RunStatus.FAILED
    assert [e.step for e in await deadletter.list_entries(queue.client, NS)] == ["a"]


async def _events(queue: tasks.PoolQueue) -> AsyncIterator[dict[str, str]]:
    for _, fields in await queue.client.xrange(keys.run_events(NS, "r1")):
        yield fields
    await asyncio.sleep(0)


async def test_a_stalled_worker_cannot_move_a_step_another_worker_started_since(
    queue: tasks.PoolQueue,
) -> None:
    """Worker A stalls past the visibility timeout; B reclaims and starts the step. A's
    late retry, review, dead letter, completion and release are all refused, and B's
    delivery stays pending (not acknowledged for B) until B completes."""
    a = (await _two_branches(queue))["a"]
    other = tasks.PoolQueue(queue.client, queue.lua, namespace=NS, pool=POOL, consumer="w2")
    reclaimed = {
        d.task.step: d
        for d in await other.intake.reclaim(
            await other.intake.stale(min_idle_ms=0, count=10), min_idle_ms=0
        )
    }
    started = await other.start(reclaimed["a"], now_ms=NOW + 1, max_deliveries=5)
    assert started.outcome is wire.Reply.RUN
    assert started.delivery is not None
    b = started.delivery
    assert b.fence != a.fence
    late = [
        await queue.retry(a, due_ms=NOW + 5, error="late", now_ms=NOW + 2),
        await queue.fail(a, reason="late", now_ms=NOW + 2),
        await queue.escalate(a, pool="spare", reason="late", now_ms=NOW + 2),
    ]
    assert late == [wire.Reply.DUPLICATE] * 3
    assert await queue.park_for_review(
        a, reason="late", output="x", tokens=0, cost=0.0, now_ms=NOW + 2
    ) is wire.Reply.DUPLICATE  # fmt: skip
    done = await queue.complete(
        a, output="a's", tokens=5, cost=0.0, now_ms=NOW + 2, expected_version=None,
        dependents=[],
    )  # fmt: skip
    assert done.outcome is wire.Reply.DUPLICATE
    assert await queue.intake.release([a]) == 0
    # B's heartbeat keeps the message B's, and A's after it does not take it back.
    await other.intake.heartbeat([b])
    await queue.intake.heartbeat([a])
    [entry] = await queue.client.xpending_range(
        keys.pool_stream(NS, POOL), keys.GROUP, b.msg_id, b.msg_id, 1
    )
    assert entry["consumer"] == "w2"
    pending = await queue.client.xpending_range(
        keys.pool_stream(NS, POOL), keys.GROUP, "-", "+", 10
    )
    assert {p["message_id"] for p in pending} >= {b.msg_id}
    assert await queue.client.xlen(keys.review(NS)) == 0
    assert await deadletter.list_entries(queue.client, NS) == []
    assert await _status(queue) == wire.RunStatus.RUNNING
    finished = await other.complete(
        b, output="b's", tokens=1, cost=0.0, now_ms=NOW + 3, expected_version=None,
        dependents=[],
    )  # fmt: skip
    assert finished.outcome is wire.Reply.OK
    state = await runs.read(queue.client, NS, "r1")
    assert state is not None
    assert state.steps["a"].output == "b's"
    assert state.tokens == 1


async def test_a_full_review_stream_parks_nothing(queue: tasks.PoolQueue) -> None:
    d = await _two_branches(queue)
    async with queue.client.pipeline(transaction=False) as pipe:
        for _ in range(wire.REVIEWS_MAX):
            pipe.xadd(keys.review(NS), {"filler": "1"})
        await pipe.execute()
    parked = await queue.park_for_review(
        d["a"], reason="unsure", output="x", tokens=0, cost=0.0, now_ms=NOW + 1
    )
    assert parked is wire.Reply.FULL
    assert await queue.client.xlen(keys.review(NS)) == wire.REVIEWS_MAX
    assert await _status(queue) == wire.RunStatus.RUNNING  # nothing written
    assert await queue.fail(d["a"], reason="full", now_ms=NOW + 2) is wire.Reply.DEAD


async def test_a_run_timed_out_in_review_leaves_no_review_behind(queue: tasks.PoolQueue) -> None:
    d = await _two_branches(queue, deadline_seconds=1)
    parked = await queue.park_for_review(
        d["a"], reason="unsure", output="x", tokens=0, cost=0.0, now_ms=NOW + 1
    )
    assert isinstance(parked, str)
    assert await queue.client.xlen(keys.review(NS)) == 1
    ended = await deadlines.end_overdue(queue.client, queue.lua, NS, now_ms=NOW + 5_000)
    assert ended == ["r1"]
    assert await queue.client.xlen(keys.review(NS)) == 0
    stats = await workflows.run_stats(queue.client, NS, WF, now=NOW / 1000)
    assert (stats.in_review, stats.failed) == (0, 1)
    assert await _status(queue) == wire.RunStatus.FAILED


async def test_a_message_dead_lettered_unprocessed_is_no_dead_step_to_resume(
    queue: tasks.PoolQueue,
) -> None:
    d = await _two_branches(queue)
    await queue.fail(d["a"], reason="died", now_ms=NOW + 1)
    # A forged message naming the same run's live step b, dead-lettered unprocessed.
    await queue.dead_letter_unprocessable(d["b"], "no such generation", now_ms=NOW + 2)
    [entry] = [e for e in await deadletter.list_entries(queue.client, NS) if e.step == "a"]
    resumed = await deadletter.resume(queue.client, queue.lua, entry, now_ms=NOW + 3)
    assert resumed == deadletter.Resumed(wire.Reply.RESUMED, ("a",))


async def test_a_step_finishing_in_a_failed_run_is_recorded_and_enqueues_nothing(
    queue: tasks.PoolQueue,
) -> None:
    d = await _two_branches(queue)
    await queue.client.hset(
        keys.run(NS, "r1"), wire.step_field("c", wire.StepField.STATE), wire.StepState.PENDING
    )
    assert await queue.fail(d["a"], reason="a died", now_ms=NOW + 1) is wire.Reply.DEAD
    before = await queue.client.xlen(d["b"].stream)
    done = await queue.complete(
        d["b"], output={"x": 1}, tokens=7, cost=0.0, now_ms=NOW + 2, expected_version=None,
        dependents=[tasks.Dependent("c", POOL, routed=False, waits_on=())],
    )  # fmt: skip
    assert done.outcome is wire.Reply.OK
    assert done.enqueued == ()
    state = await runs.read(queue.client, NS, "r1")
    assert state is not None
    assert state.steps["b"].state is wire.StepState.DONE  # its tokens were spent: kept
    assert state.tokens == 7
    assert state.steps["c"].state is wire.StepState.CANCELLED  # for resume to queue
    assert await queue.client.xlen(d["b"].stream) == before


async def test_resuming_reads_again_when_a_step_was_cancelled_meanwhile(
    queue: tasks.PoolQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await _two_branches(queue)
    assert await queue.fail(d["a"], reason="a died", now_ms=NOW + 1) is wire.Reply.DEAD
    [entry] = await deadletter.list_entries(queue.client, NS)
    # A worker cancels b between resume's read of the run and its script (the race, put
    # at that instant): the script sees a cancelled step it was not given, and resume
    # reads the run again and queues b too.
    real_read, reads = runs.read, []

    async def read_then_cancel(*args: Any, **kwargs: Any) -> runs.RunState | None:
        state = await real_read(*args, **kwargs)
        reads.append(state)
        if len(reads) == 1:
            field = wire.step_field("b", wire.StepField.STATE)
            await queue.client.hset(keys.run(NS, "r1"), field, wire.StepState.CANCELLED)
        return state

    monkeypatch.setattr(runs, "read", read_then_cancel)
    resumed = await deadletter.resume(queue.client, queue.lua, entry, now_ms=NOW + 2)
    assert resumed.outcome is wire.Reply.RESUMED
    assert sorted(resumed.steps) == ["a", "b"]
    assert len(reads) == 2

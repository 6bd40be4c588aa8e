"""Every path that puts a step's task message back on a stream keeps every field, on a real
redis-server: a retry and its promotion, a move to the fallback pool, a dead letter
resumed, a drain's release, a dead worker's message reclaimed, a dependent enqueued by a
completion; and each puts it on the stream of its run's priority level. Hypothesis draws
the task (names, attempt, retry-budget offset, times, priority)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimtab.queue import connection, deadletter, intake, keys, messages, runs, scripts, tasks, wire

NS, POOL, FALLBACK = "paths", "main", "fallback"
NOW = 1_800_000_000_000.0  # whole milliseconds: the codec keeps three decimals

names = st.text(
    st.characters(codec="utf-8", exclude_characters=":"), min_size=1, max_size=12
).filter(lambda name: name.strip() and name != "after")
drawn_tasks = st.builds(
    lambda run, step, workflow, generation, attempt, spent, priority: messages.Task(
        namespace=NS,
        run_id=run,
        step=step,
        attempt=attempt,
        workflow=workflow,
        generation=generation,
        enqueued_ms=NOW,
        budget_from=max(0, attempt - 1 - spent),
        priority=priority,
    ),
    names,
    names,
    names,
    st.integers(1, 10**6),
    st.integers(1, 50),
    st.integers(0, 5),
    st.sampled_from(wire.Priority),
)

Check = Callable[[tasks.PoolQueue, tasks.PoolQueue, intake.Delivery], Awaitable[None]]


async def _delivered(redis_url: str, task: messages.Task, check: Check) -> None:
    """Put `task`'s run in Redis with the step at `task.attempt`, deliver the message to
    a worker of POOL and start it, then hand both pools' queues to `check`."""
    client = connection.connect(redis_url)
    await client.flushall()
    lua = scripts.Scripts(client)
    main, fallback = (
        tasks.PoolQueue(client, lua, namespace=NS, pool=p, consumer="w1") for p in (POOL, FALLBACK)
    )
    for queue in (main, fallback):
        await queue.intake.ensure_groups()
    new = runs.NewRun(
        namespace=NS,
        workflow=task.workflow,
        generation=task.generation,
        steps=[task.step, "after"],
        run_id=task.run_id,
        inputs={},
        root_pools={},
        ttl_seconds=600,
        now_ms=NOW,
        priority=task.priority,
    )
    await runs.submit(lua, new)
    await client.hset(
        keys.run(NS, task.run_id),
        mapping={
            wire.step_field(task.step, wire.StepField.STATE): wire.StepState.QUEUED,
            wire.step_field(task.step, wire.StepField.ATTEMPT): task.attempt,
        },
    )
    await client.xadd(keys.pool_stream(NS, POOL, task.priority), task.fields())
    [delivery] = await main.intake.read(1, block_ms=100)
    assert delivery.task == task
    started = await main.start(delivery, now_ms=NOW, max_deliveries=5)
    assert started.outcome is wire.Reply.RUN
    assert started.delivery is not None
    try:
        await check(main, fallback, started.delivery)
    finally:
        await client.aclose()


async def _next(queue: tasks.PoolQueue) -> messages.Task:
    """The one task on `queue`'s pool, which must be on its run's level's stream."""
    found = await queue.intake.read(10, block_ms=100)
    assert len(found) == 1, found
    assert found[0].stream == keys.pool_stream(NS, queue.pool, found[0].task.priority)
    return found[0].task


def _run(redis_url: str, task: messages.Task, check: Check) -> None:
    asyncio.run(_delivered(redis_url, task, check))


PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY
@given(task=drawn_tasks, keep_budget=st.booleans(), wait_ms=st.integers(0, 10**7))
def test_a_retry_promoted_from_the_delayed_set_keeps_every_field(
    redis_url: str, task: messages.Task, keep_budget: bool, wait_ms: int
) -> None:
    async def check(main: tasks.PoolQueue, _: tasks.PoolQueue, d: intake.Delivery) -> None:
        due = NOW + wait_ms
        got = await main.retry(d, due_ms=due, error="e", now_ms=NOW, keep_budget=keep_budget)
        assert got is wire.Reply.SCHEDULED
        assert await main.intake.promote_due(now_ms=due) == 1
        expected = dataclasses.replace(
            task,
            attempt=task.attempt + 1,
            budget_from=task.budget_from + int(keep_budget),
            enqueued_ms=due,
        )
        assert await _next(main) == expected

    _run(redis_url, task, check)


@PROPERTY
@given(task=drawn_tasks)
def test_a_move_to_the_fallback_pool_starts_a_fresh_retry_budget(
    redis_url: str, task: messages.Task
) -> None:
    async def check(main: tasks.PoolQueue, fb: tasks.PoolQueue, d: intake.Delivery) -> None:
        got = await main.escalate(d, pool=FALLBACK, reason="r", now_ms=NOW + 5)
        assert got is wire.Reply.ESCALATED
        expected = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.attempt, enqueued_ms=NOW + 5
        )
        assert await _next(fb) == expected

    _run(redis_url, task, check)


@PROPERTY
@given(task=drawn_tasks)
def test_a_resumed_dead_letter_runs_the_next_attempt_with_a_fresh_budget(
    redis_url: str, task: messages.Task
) -> None:
    async def check(main: tasks.PoolQueue, _: tasks.PoolQueue, d: intake.Delivery) -> None:
        assert await main.fail(d, reason="r", now_ms=NOW) is wire.Reply.DEAD
        [entry] = await deadletter.list_entries(main.client, NS)
        assert (entry.run_id, entry.step, entry.attempt) == (task.run_id, task.step, task.attempt)
        got = await deadletter.resume(main.client, main.lua, entry, now_ms=NOW + 7)
        assert got == deadletter.Resumed(wire.Reply.RESUMED, (task.step,))
        expected = dataclasses.replace(
            task, attempt=task.attempt + 1, budget_from=task.attempt, enqueued_ms=NOW + 7
        )
        assert await _next(main) == expected

    _run(redis_url, task, check)


@PROPERTY
@given(task=drawn_tasks)
def test_a_released_or_reclaimed_message_is_the_same_task(
    redis_url: str, task: messages.Task
) -> None:
    async def check(main: tasks.PoolQueue, _: tasks.PoolQueue, d: intake.Delivery) -> None:
        assert await main.intake.release([d]) == 1
        [again] = await main.intake.read(1, block_ms=100)
        assert again.task == task
        other = tasks.PoolQueue(main.client, main.lua, namespace=NS, pool=POOL, consumer="w2")
        [reclaimed] = await other.intake.reclaim(
            await other.intake.stale(min_idle_ms=0, count=10), min_idle_ms=0
        )
        assert (reclaimed.msg_id, reclaimed.task) == (again.msg_id, task)

    _run(redis_url, task, check)


@PROPERTY
@given(task=drawn_tasks)
def test_a_completion_enqueues_the_dependent_as_its_first_attempt(
    redis_url: str, task: messages.Task
) -> None:
    async def check(main: tasks.PoolQueue, fb: tasks.PoolQueue, d: intake.Delivery) -> None:
        dependent = tasks.Dependent(name="after", pool=FALLBACK, routed=False, waits_on=())
        done = await main.complete(
            d,
            output={"ok": True},
            tokens=3,
            cost=0.5,
            now_ms=NOW + 9,
            expected_version=None,
            dependents=[dependent],
        )
        assert (done.outcome, done.enqueued) == (wire.Reply.OK, ("after",))
        expected = dataclasses.replace(
            task, step="after", attempt=1, budget_from=0, enqueued_ms=NOW + 9
        )
        assert await _next(fb) == expected

    _run(redis_url, task, check)

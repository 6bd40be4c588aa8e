"""Compensation (a saga) on a real worker, redis-server and HTTP tool server: when a run
fails, the `compensate` calls of its completed steps run one at a time in reverse order
of completion, over each step's own output, with an Idempotency-Key per step; one that
keeps failing is recorded and the rest still run; a succeeded run undoes nothing; and a
run whose compensations began is not resumed."""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import (
    deadletter,
    deadlines,
    intake,
    keys,
    messages,
    runs,
    scripts,
    tasks,
    wire,
)
from trimtab.sdk import Client
from trimtab.worker import attempt, compensation
from trimtab.worker import main as worker_main

NS = "saga"
FAST_RETRY = {"maxAttempts": 2, "backoff": {"initialSeconds": 0.05, "jitter": 0.0}}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), {"seed": 6}) as url:
        yield url


class Shop:
    """A real HTTP tool server that hands out ids and records every call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []  # (path, Idempotency-Key, body)
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        self.calls.append((request.path, request.headers.get("Idempotency-Key", ""), body))
        if request.path == "/fail":
            return web.json_response({"error": "out of stock"}, status=400)
        if request.path == "/broken-undo":
            return web.json_response({"error": "down"}, status=503)
        if request.path == "/release-slowly":  # longer than the worker's failed-run sweep
            await asyncio.sleep(1.5)
        return web.json_response({"id": f"{request.path.strip('/')}-{next(self._ids)}"})

    def undone(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0].startswith(("/release", "/refund", "/broken"))]

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.undone()]


@pytest.fixture
async def shop() -> AsyncIterator[tuple[Shop, str]]:
    server = Shop()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _tool(name: str, url: str, path: str, *deps: str, undo: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {
        "name": name,
        "kind": "tool",
        "dependsOn": list(deps),
        "tool": {"url": f"{url}{path}", "body": '{"for": "{{ inputs.order }}"}'},
        "retry": FAST_RETRY,
    }
    if undo is not None:
        step["compensate"] = {"url": f"{url}{undo}", "body": f'{{"id": "{{{{ {name}.id }}}}"}}'}
    return step


async def _publish(sdk: Client, name: str, *steps: dict[str, Any]) -> None:
    spec = {"defaultPool": "p", "steps": list(steps)}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(spec))


async def _compensated(sdk: Client, run: str, within: float = 20) -> list[dict[str, str]]:
    """The run's events once its last compensation ended."""
    namespace, run_id = run.split("/", 1)
    deadline = time.monotonic() + within
    found: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        found = [e for _, e in await runs.events(sdk.redis, namespace, run_id, after="0")]
        if any(e["type"] == wire.EventType.RUN_COMPENSATED for e in found):
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{run} never finished compensating: {found}")


def _worker(sim: str, redis_url: str) -> Any:
    return runtime.in_process_worker(
        runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    )


async def _failed_and_undone(
    sdk: Client, sim: str, redis_url: str, workflow: str
) -> tuple[str, list[dict[str, str]]]:
    """Submit a run of `workflow` to a worker, which fails it and undoes it: the run's
    reference and its events."""
    async with _worker(sim, redis_url):
        run = await sdk.submit(NS, workflow, {"order": workflow})
        assert (await sdk.result(run, timeout=20)).status == "failed"
        return run, await _compensated(sdk, run)


async def test_a_failed_run_undoes_its_completed_steps_last_first(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    await _publish(
        sdk,
        "order",
        _tool("reserve", url, "/reserve", undo="/release"),
        _tool("charge", url, "/charge", "reserve", undo="/refund"),
        _tool("ship", url, "/fail", "charge", undo="/never"),  # fails: never completed
    )
    run, events = await _failed_and_undone(sdk, sim, redis_url, "order")
    run_id = run.split("/", 1)[1]
    assert server.undone() == [
        ("/refund", f"{NS}/{run_id}/charge/compensate", {"id": "charge-2"}),
        ("/release", f"{NS}/{run_id}/reserve/compensate", {"id": "reserve-1"}),
    ]
    undone = [(e["step"], e["status"]) for e in events if e["type"] == "step_compensated"]
    assert undone == [("charge", "done"), ("reserve", "done")]
    state = await sdk.get(run)
    assert state.steps["charge"].compensation is wire.Compensation.DONE
    assert state.steps["reserve"].compensation is wire.Compensation.DONE
    assert state.steps["ship"].compensation is None  # it never completed: nothing to undo
    assert state.status is wire.RunStatus.FAILED


async def test_parallel_branches_are_undone_in_reverse_order_of_completion(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    await _publish(
        sdk,
        "fan",
        *(_tool(f"b{i}", url, f"/reserve-{i}", undo=f"/release-{i}") for i in range(4)),
        _tool("last", url, "/fail", "b0", "b1", "b2", "b3"),
    )
    run, _ = await _failed_and_undone(sdk, sim, redis_url, "fan")
    state = await sdk.get(run)
    by_completion = sorted((state.steps[f"b{i}"].ended_ms or 0, f"b{i}") for i in range(4))
    expected = [f"/release-{name[1]}" for _, name in reversed(by_completion)]
    assert [path for path, _, _ in server.undone()] == expected


async def test_a_compensation_that_keeps_failing_is_recorded_and_the_rest_still_run(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    await _publish(
        sdk,
        "stuck",
        _tool("reserve", url, "/reserve", undo="/release"),
        _tool("charge", url, "/charge", "reserve", undo="/broken-undo"),
        _tool("ship", url, "/fail", "charge"),
    )
    run, _ = await _failed_and_undone(sdk, sim, redis_url, "stuck")
    paths = [path for path, _, _ in server.undone()]
    assert paths == ["/broken-undo"] * FAST_RETRY["maxAttempts"] + ["/release"]  # type: ignore[operator]
    state = await sdk.get(run)
    assert state.steps["charge"].compensation is wire.Compensation.FAILED
    assert "503" in (state.steps["charge"].compensation_error or "")
    assert state.steps["reserve"].compensation is wire.Compensation.DONE
    cli = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "trimtab", "runs", "get", run, "--redis-url", redis_url),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await cli.communicate()
    assert cli.returncode == 0
    shown = out.decode()
    assert "compensation of charge: failed: " in shown
    assert "compensation of reserve: done\n" in shown


async def test_a_run_that_succeeds_undoes_nothing(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    await _publish(sdk, "fine", _tool("reserve", url, "/reserve", undo="/release"))
    async with _worker(sim, redis_url):
        run = await sdk.submit(NS, "fine", {"order": "o-4"})
        assert (await sdk.result(run, timeout=20)).status == "succeeded"
    assert server.undone() == []
    assert (await sdk.get(run)).steps["reserve"].compensation is None


async def test_a_compensated_run_is_not_resumed_from_its_dead_letter(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    _, url = shop
    await _publish(
        sdk,
        "final",
        _tool("reserve", url, "/reserve", undo="/release"),
        _tool("ship", url, "/fail", "reserve"),
    )
    run, _ = await _failed_and_undone(sdk, sim, redis_url, "final")
    [entry] = await deadletter.list_entries(sdk.redis, NS)
    resumed = await deadletter.resume(
        sdk.redis, scripts.Scripts(sdk.redis), entry, now_ms=time.time() * 1000
    )
    assert resumed.outcome is wire.Reply.COMPENSATED
    assert (await sdk.get(run)).status is wire.RunStatus.FAILED


async def test_a_slow_compensation_of_a_failed_run_is_not_stopped_as_the_runs_steps_are(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    await _publish(
        sdk,
        "slow",
        _tool("reserve", url, "/reserve", undo="/release-slowly"),
        _tool("ship", url, "/fail", "reserve"),
    )
    run, _ = await _failed_and_undone(sdk, sim, redis_url, "slow")
    assert server.paths() == ["/release-slowly"]  # called once, not cut off and redone
    assert (await sdk.get(run)).steps["reserve"].compensation is wire.Compensation.DONE


async def test_a_run_that_times_out_undoes_what_it_completed(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    server, url = shop
    waits = {**_tool("ship", url, "/ship", "reserve"), "pool": "nobody-serves-this"}
    spec = {
        "defaultPool": "p",
        "deadlineSeconds": 60,
        "steps": [_tool("reserve", url, "/reserve", undo="/release"), waits],
    }
    await sdk.publish(NS, "late", awf.AgentWorkflowSpec.model_validate(spec))
    async with _worker(sim, redis_url):
        run = await sdk.submit(NS, "late", {"order": "o-7"})
        run_id = run.split("/", 1)[1]
        for _ in range(400):  # the first step completes; the second waits for nobody
            if (await sdk.get(run)).steps["reserve"].state is wire.StepState.DONE:
                break
            await asyncio.sleep(0.05)
        lua = scripts.Scripts(sdk.redis)
        ended = await deadlines.end_overdue(sdk.redis, lua, NS, now_ms=time.time() * 1000 + 61_000)
        assert ended == [run_id]
        await _compensated(sdk, run)
    assert server.paths() == ["/release"]


async def test_a_second_end_of_one_compensation_changes_nothing(
    sim: str, redis_url: str, sdk: Client, shop: tuple[Shop, str]
) -> None:
    _, url = shop
    await _publish(
        sdk,
        "twice",
        _tool("reserve", url, "/reserve", undo="/release"),
        _tool("ship", url, "/fail", "reserve"),
    )
    run, before = await _failed_and_undone(sdk, sim, redis_url, "twice")
    run_id = run.split("/", 1)[1]
    queue = tasks.PoolQueue(
        sdk.redis, scripts.Scripts(sdk.redis), namespace=NS, pool="p", consumer="late"
    )
    task = (await sdk.get(run)).steps["reserve"]
    assert task.compensation is wire.Compensation.DONE
    # A redelivery of the same compensation, from a worker that was thought dead.
    again = intake.Delivery(
        "0-0",
        messages.Task(NS, run_id, "reserve", 1, "twice", 1, 0.0, compensation=True),
        keys.pool_stream(NS, "p"),
    )
    outcome = await queue.end_compensation(
        again, wire.Compensation.FAILED, error="late", now_ms=time.time() * 1000
    )
    assert outcome is wire.Reply.DUPLICATE
    assert (await sdk.get(run)).steps["reserve"].compensation is wire.Compensation.DONE
    after = [e for _, e in await runs.events(sdk.redis, NS, run_id, after="0")]
    assert after == before


async def _undo_out(sdk: Client, ttl_left: int | None = None) -> tuple[tasks.PoolQueue, Any]:
    """A run of two roots on the real scripts: `a`, which has a compensation, completes;
    `b` dies, which fails the run and sends a's compensation; `ttl_left` shortens the
    run's time to live first. The queue, and the compensation's delivery."""
    queue = tasks.PoolQueue(
        sdk.redis, scripts.Scripts(sdk.redis), namespace=NS, pool="p", consumer="w"
    )
    await queue.intake.ensure_groups()
    new = runs.NewRun(
        namespace=NS,
        workflow="direct",
        generation=1,
        steps=["a", "b"],
        run_id="r1",
        inputs={},
        root_pools={"a": "p", "b": "p"},
        ttl_seconds=600,
        now_ms=time.time() * 1000,
    )
    await runs.submit(queue.lua, new)
    started = {}
    for delivery in await queue.intake.read(2, block_ms=100):
        got = await queue.start(delivery, now_ms=time.time() * 1000, max_deliveries=5)
        started[delivery.task.step] = got.delivery
    done = await queue.complete(
        started["a"], output={"id": 7}, tokens=0, cost=0.0, now_ms=time.time() * 1000,
        expected_version=None, dependents=[], compensable=True,
    )  # fmt: skip
    assert done.outcome is wire.Reply.OK
    if ttl_left is not None:
        await sdk.redis.expire(keys.run(NS, "r1"), ttl_left)
    assert (
        await queue.fail(started["b"], reason="died", now_ms=time.time() * 1000) is wire.Reply.DEAD
    )
    [undo] = await queue.intake.read(1, block_ms=100)
    assert (undo.task.step, undo.task.compensation) == ("a", True)
    return queue, undo


def _compensations(sim: str, redis_url: str, queue: tasks.PoolQueue, most: int) -> Any:
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    return compensation.Compensations(
        queue, worker_main.build_clients(cfg), attempt.SecretNotes(queue.client, NS),
        random.Random(1), max_deliveries=most,
    )  # fmt: skip


async def test_a_compensation_its_worker_cannot_run_still_ends_and_the_saga_goes_on(
    sim: str, redis_url: str, sdk: Client
) -> None:
    queue, undo = await _undo_out(sdk)
    undoer = _compensations(sim, redis_url, queue, most=5)
    gone = "workflow saga/direct generation 1 is not stored"
    assert await undoer.run(undo, None, gone) is wire.Reply.COMPENSATED
    step = (await sdk.get(f"{NS}/r1")).steps["a"]
    assert (step.compensation, step.compensation_error) == (wire.Compensation.FAILED, gone)
    events = [e["type"] for _, e in await runs.events(sdk.redis, NS, "r1", after="0")]
    assert events[-1] == wire.EventType.RUN_COMPENSATED
    # Delivered again after it ended: dropped before anything is called.
    assert await undoer.run(undo, None, gone) is wire.Reply.DUPLICATE


async def test_a_compensation_delivered_past_max_deliveries_ends_failed(
    sim: str, redis_url: str, sdk: Client
) -> None:
    queue, undo = await _undo_out(sdk)
    for _ in range(2):  # two workers died in it, each after counting its delivery
        assert await queue.start_compensation(undo) is not None
    undoer = _compensations(sim, redis_url, queue, most=2)
    assert await undoer.run(undo, None, "") is wire.Reply.COMPENSATED
    step = (await sdk.get(f"{NS}/r1")).steps["a"]
    assert step.compensation is wire.Compensation.FAILED
    assert step.compensation_error == "delivered 3 times without ending (maxDeliveries)"


async def test_a_run_failing_late_in_its_life_lives_its_whole_ttl_again_to_be_undone(
    sdk: Client,
) -> None:
    await _undo_out(sdk, ttl_left=5)
    for key in (keys.run(NS, "r1"), keys.run_events(NS, "r1")):
        assert await sdk.redis.ttl(key) > 590

"""Cancelling runs and listing them, on a real redis-server with real workers and the
simulator: a cancelled run ends `cancelled` wherever its steps are (running: the call
is abandoned and its result discarded; queued: never started; in review: off the
queue), and the run index pages newest first, filters, and forgets expired runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import keys, runindex, wire, workflows
from trimtab.sdk import Client, operations

pytestmark = pytest.mark.integration

NS = "cancelling"
SIM: dict[str, Any] = {
    "seed": 3,
    "default": {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 5},
    "models": {"slow": {"name": "slow", "ttft_seconds": 30.0, "output_tokens_mean": 5}},
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _publish(sdk: Client, name: str, steps: list[dict[str, Any]], **spec: Any) -> None:
    doc = {"defaultPool": "p", "steps": steps, **spec}
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate(doc))


def _worker(sim: str, redis_url: str, model: str) -> Any:
    spec = runtime.pool_spec(sim, model=model, model__timeoutSeconds=60)
    return runtime.in_process_worker(runtime.worker_settings(NS, "p", spec, redis_url))


async def _until(predicate: Any, *, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_cancelling_a_running_step_abandons_its_call_and_starts_nothing_after_it(
    sim: str, redis_url: str, sdk: Client
) -> None:
    steps = [
        {"name": "a", "prompt": "slow", "timeoutSeconds": 60},
        {"name": "b", "prompt": "after", "dependsOn": ["a"]},
    ]
    await _publish(sdk, "long", steps)
    async with _worker(sim, redis_url, "slow") as worker:
        run = await sdk.submit(NS, "long", {})

        async def running() -> bool:
            return (await sdk.get(run)).steps["a"].state is wire.StepState.RUNNING

        await _until(running)
        await operations.cancel(sdk, run)
        result = await sdk.result(run, timeout=10)

        async def idle() -> bool:
            return not worker._running

        await _until(idle, within=10)  # abandoned: the model answers only after 30 s
    assert result.status is wire.RunStatus.CANCELLED
    state = await sdk.get(run)
    assert state.steps["a"].state is wire.StepState.CANCELLED
    assert state.steps["a"].output is None
    assert state.steps["b"].state is wire.StepState.CANCELLED
    assert state.steps["b"].queued_ms is None  # never queued, never started
    assert state.error is not None
    assert state.error.startswith("cancelled")
    events = [e["type"] for _, e in await sdk.redis.xrange(keys.run_events(NS, run.split("/")[1]))]
    assert events[-2:] == [wire.EventType.RUN_CANCELLED, wire.EventType.RUN_DONE]
    stats = await workflows.run_stats(sdk.redis, NS, "long", now=time.time())
    assert (stats.cancelled, stats.failed) == (1, 0)


async def test_a_queued_step_of_a_cancelled_run_is_dropped_by_the_worker_that_takes_it(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "queued", [{"name": "a", "prompt": "hi"}])
    run = await sdk.submit(NS, "queued", {})
    await operations.cancel(sdk, run)
    async with _worker(sim, redis_url, "sim-small"):
        await asyncio.sleep(1.0)
    state = await sdk.get(run)
    assert state.status is wire.RunStatus.CANCELLED
    assert state.steps["a"].started_ms is None
    pending = await sdk.redis.xpending(keys.pool_stream(NS, "p"), keys.GROUP)
    assert pending["pending"] == 0


async def test_cancelling_an_ended_run_or_an_unknown_one_is_a_clear_error(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "quick", [{"name": "a", "prompt": "hi"}])
    async with _worker(sim, redis_url, "sim-small"):
        run = await sdk.submit(NS, "quick", {})
        assert (await sdk.result(run, timeout=15)).status is wire.RunStatus.SUCCEEDED
    with pytest.raises(operations.RunEndedError, match="ended already \\(succeeded\\)"):
        await operations.cancel(sdk, run)
    assert (await sdk.get(run)).status is wire.RunStatus.SUCCEEDED
    with pytest.raises(LookupError, match="not found"):
        await operations.cancel(sdk, f"{NS}/nosuchrun")


async def test_a_cancelled_runs_dead_letters_cannot_resume_it(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await _publish(sdk, "review-then-cancel", [{"name": "a", "prompt": "hi"}])
    run = await sdk.submit(NS, "review-then-cancel", {})
    await operations.cancel(sdk, run)
    state = await sdk.get(run)
    assert state.status is wire.RunStatus.CANCELLED
    # The cancelled step looks like one a failure cancelled; resuming must still refuse.
    entry = await sdk.redis.xadd(
        keys.dead_letter(NS),
        {"run": state.run_id, "step": "a", "att": "1", "wf": "review-then-cancel", "pool": "p",
         "reason": "x", "at": "1"},
    )  # fmt: skip
    resumed = await operations.retry_dead_letter(sdk, f"{NS}/{entry}")
    assert resumed.outcome is wire.Reply.CANCELLED
    assert (await sdk.get(run)).status is wire.RunStatus.CANCELLED


async def test_runs_list_newest_first_in_pages_filtered_and_without_expired_runs(
    sim: str, redis_url: str, sdk: Client
) -> None:
    ns = "listing"
    for name in ("one", "two"):
        spec = {"defaultPool": "nobody", "steps": [{"name": "a", "prompt": "hi"}]}
        await sdk.publish(ns, name, awf.AgentWorkflowSpec.model_validate(spec))
    made = [await sdk.submit(ns, "one" if i % 3 else "two", {"i": i}) for i in range(12)]
    ids = [r.split("/")[1] for r in made]
    await operations.cancel(sdk, made[4])
    seen: list[str] = []
    cursor = None
    while True:
        page = await sdk.list_runs(ns, cursor=cursor, limit=5)
        seen += [r.run_id for r in page.runs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids[::-1]
    two = await sdk.list_runs(ns, where=runindex.RunFilter(workflow="two"))
    assert [r.run_id for r in two.runs] == [ids[i] for i in (9, 6, 3, 0)]
    assert {r.workflow for r in two.runs} == {"two"}
    cancelled = runindex.RunFilter(statuses=frozenset({wire.RunStatus.CANCELLED}))
    only = await sdk.list_runs(ns, where=cancelled)
    assert [(r.run_id, r.status) for r in only.runs] == [(ids[4], wire.RunStatus.CANCELLED)]
    middle = runindex.RunFilter(
        since_ms=(await sdk.get(made[3])).created_ms, until_ms=(await sdk.get(made[6])).created_ms
    )
    window = await sdk.list_runs(ns, where=middle)
    assert [r.run_id for r in window.runs] == [ids[5], ids[4], ids[3]]
    # An expired run leaves the listing, and the prune removes its entries.
    await sdk.redis.delete(keys.run(ns, ids[0]), keys.run(ns, ids[1]))
    assert await runindex.prune_in(sdk.redis, [(ns, "one"), (ns, "two")]) == 4
    after = await sdk.list_runs(ns, limit=100)
    assert [r.run_id for r in after.runs] == ids[:1:-1]
    with pytest.raises(runindex.BadCursorError):
        await sdk.list_runs(ns, cursor="nonsense")

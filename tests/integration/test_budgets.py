"""A run's budget holds under concurrency, on a real redis-server: steps running in
parallel hold their worst case before calling (reserve.lua), so together they can
never spend past `maxTokensPerRun`. Hypothesis draws interleavings of holds,
completions, retries, failures and redeliveries of parallel steps and checks, after
every operation, that what was spent plus what is held never exceeds the limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import budgets, connection, intake, keys, runs, scripts, tasks, wire
from trimtab.sdk import Client

NS, POOL = "budgets", "p"
SIM: dict[str, Any] = {
    "seed": 2,
    "default": {"ttft_seconds": 0.5, "per_token_seconds": 0.0, "output_tokens_mean": 20},
    # Answers that use nearly all of a 150-token allowance.
    "models": {
        "wordy": {"name": "wordy", "ttft_seconds": 0.5, "output_tokens_mean": 400},
        # Every answer is broken JSON: each attempt's output is refused after the call.
        "broken": {"name": "broken", "ttft_seconds": 0.05, "rate_malformed": 1.0},
    },
}
NOW = 1_800_000_000_000.0


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM) as url:
        yield url


async def _parallel(sim: str, redis_url: str, sdk: Client, model: str) -> runs.RunState:
    """Three steps ready at once, each with a worst case of its prompt (~4 tokens) plus
    maxTokens 150, under maxTokensPerRun 400: two fit at once, the third does not."""
    steps = [{"name": n, "prompt": "Say hi", "maxTokens": 150} for n in ("a", "b", "c")]
    spec = {"defaultPool": POOL, "budget": {"maxTokensPerRun": 400}, "steps": steps}
    await sdk.publish(NS, "parallel", awf.AgentWorkflowSpec.model_validate(spec))
    cfg = runtime.worker_settings(NS, POOL, runtime.pool_spec(sim, model=model), redis_url)
    async with runtime.in_process_worker(cfg):
        result = await sdk.result(await sdk.submit(NS, "parallel", {}), timeout=20)
        await asyncio.sleep(1.0)  # calls still under way finish and are recorded
    state = await sdk.get(result.run)
    assert state.tokens <= 400
    assert sum(s.tokens for s in state.steps.values()) == state.tokens
    held = await sdk.redis.hget(keys.run(NS, result.run.split("/")[1]), wire.RunField.HELD_TOKENS)
    assert int(held or 0) == 0  # every hold was given back
    return state


async def test_a_step_the_spend_leaves_no_room_for_never_calls(
    sim: str, redis_url: str, sdk: Client
) -> None:
    before = runtime.sim_requests(sim)
    state = await _parallel(sim, redis_url, sdk, "wordy")
    # a and b used ~150 each; c's worst case no longer fits: it fails without calling
    # (each of the three seeing 0 spent, as before holds, would have spent ~450).
    assert runtime.sim_requests(sim) - before == 2
    [refused] = [n for n, s in state.steps.items() if s.state is wire.StepState.DEAD]
    assert "may exceed 400" in (state.steps[refused].error or "")
    assert state.status is wire.RunStatus.FAILED


async def test_a_step_held_back_only_by_others_holds_waits_and_runs(
    sim: str, redis_url: str, sdk: Client
) -> None:
    before = runtime.sim_requests(sim)
    state = await _parallel(sim, redis_url, sdk, "sim-small")
    # Short answers: once a and b settle (~25 each), c's worst case fits, so it waited
    # for them rather than failing the run.
    assert state.status is wire.RunStatus.SUCCEEDED
    assert runtime.sim_requests(sim) - before == 3
    events = [e async for e in sdk.events(f"{state.namespace}/{state.run_id}")]
    held = [e for e in events if e.get("type") == "step_retry"]
    assert held
    assert all(e["error"].startswith("budget_held:") for e in held)


async def test_an_attempt_whose_output_is_refused_still_counts_what_its_call_spent(
    sim: str, redis_url: str, sdk: Client
) -> None:
    """Three attempts whose answers are not JSON: each call's tokens count on the run,
    its step and the workflow, although no attempt completed."""
    step = {
        "name": "a", "prompt": "Say hi", "maxTokens": 50, "output": {"schema": {"type": "object"}},
        "retry": {"maxAttempts": 3, "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1}},
    }  # fmt: skip
    spec = {"defaultPool": POOL, "steps": [step]}
    await sdk.publish(NS, "refused", awf.AgentWorkflowSpec.model_validate(spec))
    cfg = runtime.worker_settings(NS, POOL, runtime.pool_spec(sim, model="broken"), redis_url)
    before = runtime.sim_requests(sim, "broken")
    async with runtime.in_process_worker(cfg):
        result = await sdk.result(await sdk.submit(NS, "refused", {}), timeout=20)
    assert result.status is wire.RunStatus.FAILED
    assert runtime.sim_requests(sim, "broken") - before == 3
    state = await sdk.get(result.run)
    # 20 tokens an answer on average and a prompt of a few: three calls' worth.
    assert state.tokens >= 3 * 10
    assert state.steps["a"].tokens == state.tokens
    assert state.cost > 0
    stats: Any = await sdk.redis.hgetall(keys.workflow_stats(NS, "refused"))
    assert int(stats["tokens"]) == state.tokens


async def test_a_pool_that_counts_with_the_bpe_holds_a_dense_prompt_at_its_real_size(
    sim: str, redis_url: str, sdk: Client
) -> None:
    """A Chinese prompt of 96 characters: 24 tokens by the estimate, 104 as it
    tokenizes. Under a tokenBudget of 60, the estimating pool calls; the pool that
    counts with cl100k_base sees the call would not fit and does not."""
    step = {"name": "a", "prompt": "请帮我查一下我上个月的订单为什么还没有发货谢谢。" * 4,
            "maxTokens": 10, "tokenBudget": 60}  # fmt: skip
    await sdk.publish(NS, "dense", awf.AgentWorkflowSpec.model_validate(
        {"defaultPool": POOL, "steps": [step]}
    ))  # fmt: skip
    ended = {}
    for tokenizer in ("Estimate", "Cl100kBase"):
        spec = runtime.pool_spec(sim, model__tokenizer=tokenizer)
        before = runtime.sim_requests(sim)
        async with runtime.in_process_worker(runtime.worker_settings(NS, POOL, spec, redis_url)):
            result = await sdk.result(await sdk.submit(NS, "dense", {}), timeout=20)
        ended[tokenizer] = (result.status, runtime.sim_requests(sim) - before)
    assert ended["Estimate"] == (wire.RunStatus.SUCCEEDED, 1)
    assert ended["Cl100kBase"] == (wire.RunStatus.FAILED, 0)


async def test_a_steps_allowance_defaults_to_its_pools_max_tokens(
    sim: str, redis_url: str, sdk: Client
) -> None:
    """No maxTokens on the step: the pool's model.maxTokens (40) caps the wordy model's
    answer (400 tokens on average) and is the completion allowance the call holds."""
    spec = {"defaultPool": POOL, "steps": [{"name": "a", "prompt": "Say hi"}]}
    await sdk.publish(NS, "capped", awf.AgentWorkflowSpec.model_validate(spec))
    pool = runtime.pool_spec(sim, model="wordy", model__maxTokens=40)
    async with runtime.in_process_worker(runtime.worker_settings(NS, POOL, pool, redis_url)):
        result = await sdk.result(await sdk.submit(NS, "capped", {}), timeout=20)
    assert result.status is wire.RunStatus.SUCCEEDED
    state = await sdk.get(result.run)
    completion = state.tokens - 2  # "Say hi": two tokens of prompt, as the simulator counts
    assert completion == 40


STEPS = ("s0", "s1", "s2", "s3")
LIMIT = 400
# Worst cases of a third to over a half of the limit: two or three holds reach it, so
# most interleavings press against it (small values would never get near).
operations = st.lists(
    st.tuples(
        st.sampled_from(("reserve", "reserve", "complete", "retry", "fail", "redeliver")),
        st.integers(0, len(STEPS) - 1),
        st.integers(LIMIT // 3, LIMIT * 2 // 3),
    ),
    min_size=2,
    max_size=30,
)


async def _interleaving(redis_url: str, ops: list[tuple[str, int, int]]) -> None:
    client = connection.connect(redis_url)
    await client.flushall()
    lua = scripts.Scripts(client)
    queue = tasks.PoolQueue(client, lua, namespace=NS, pool=POOL, consumer="w")
    await queue.intake.ensure_groups()
    new = runs.NewRun(
        namespace=NS,
        workflow="wf",
        generation=1,
        steps=list(STEPS),
        run_id="r",
        inputs={},
        root_pools=dict.fromkeys(STEPS, POOL),
        ttl_seconds=600,
        now_ms=NOW,
    )
    await runs.submit(lua, new)
    delivered = {d.task.step: d for d in await queue.intake.read(len(STEPS), block_ms=100)}
    live: dict[str, intake.Delivery] = {}
    holds: dict[str, int] = {}  # what each step's live delivery was granted
    for step in STEPS:
        started = await queue.start(delivered[step], now_ms=NOW, max_deliveries=100)
        assert started.delivery is not None
        live[step] = started.delivery
    limits = budgets.Limits(tokens=LIMIT, cost=None)
    try:
        for op, index, amount in ops:
            step = STEPS[index]
            d = live[step]
            match op:
                case "reserve":
                    hold = await budgets.reserve(
                        lua, d, budgets.WorstCase(amount, 0.0), limits, now=NOW / 1000
                    )
                    if hold.outcome is wire.Reply.RESERVED:
                        holds[step] = amount
                case "complete" if step in holds:  # a call spends at most its worst case
                    spent = min(amount, holds.pop(step))
                    await queue.complete(
                        d, output={}, tokens=spent, cost=0.0, now_ms=NOW,
                        expected_version=None, dependents=[],
                    )  # fmt: skip
                case "retry":
                    holds.pop(step, None)
                    await queue.retry(d, due_ms=NOW, error="e", now_ms=NOW)
                case "fail":
                    holds.pop(step, None)
                    await queue.fail(d, reason="e", now_ms=NOW)
                case "redeliver":  # its worker died: the same message, started again
                    again = await queue.start(delivered[step], now_ms=NOW, max_deliveries=100)
                    if again.delivery is not None and again.outcome is wire.Reply.RUN:
                        live[step] = again.delivery
                        holds.pop(step, None)  # the dead delivery's hold is given back
            run: Any = await client.hgetall(keys.run(NS, "r"))
            spent_total = int(run.get(wire.RunField.TOKENS) or 0)
            held_total = int(float(run.get(wire.RunField.HELD_TOKENS) or 0))
            step_holds = sum(
                int(float(run.get(wire.step_field(s, wire.StepField.HELD_TOKENS)) or 0))
                for s in STEPS
            )
            assert spent_total + held_total <= LIMIT, (op, step, run)
            assert held_total == step_holds, run
    finally:
        await client.aclose()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_no_interleaving_spends_past_the_budget(
    redis_url: str, ops: list[tuple[str, int, int]]
) -> None:
    asyncio.run(_interleaving(redis_url, ops))


async def test_a_step_parked_for_review_holds_what_it_used_not_its_worst_case(
    redis_url: str,
) -> None:
    client = connection.connect(redis_url)
    try:
        lua = scripts.Scripts(client)
        queue = tasks.PoolQueue(client, lua, namespace=NS, pool=POOL, consumer="w")
        await queue.intake.ensure_groups()
        new = runs.NewRun(
            namespace=NS, workflow="wf", generation=1, steps=["s"], run_id="rv", inputs={},
            root_pools={"s": POOL}, ttl_seconds=600, now_ms=NOW,
        )  # fmt: skip
        await runs.submit(lua, new)
        [delivery] = await queue.intake.read(1, block_ms=100)
        started = await queue.start(delivery, now_ms=NOW, max_deliveries=5)
        assert started.delivery is not None
        limits = budgets.Limits(tokens=LIMIT, cost=None)
        worst = budgets.WorstCase(300, 0.0)
        hold = await budgets.reserve(lua, started.delivery, worst, limits, now=NOW / 1000)
        assert hold.outcome is wire.Reply.RESERVED
        parked = await queue.park_for_review(
            started.delivery, reason="unsure", output={}, tokens=30, cost=0.0, now_ms=NOW
        )
        assert isinstance(parked, str)  # the review entry's id
        held = await client.hget(keys.run(NS, "rv"), wire.RunField.HELD_TOKENS)
        assert int(float(held)) == 30  # what the parked output cost, until a reviewer decides
    finally:
        await client.aclose()

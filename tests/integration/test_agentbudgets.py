"""A namespace's AgentBudget holds under concurrency, on a real redis-server: 50 runs
whose calls each cost a twentieth of the budget, started, held, completed, retried and
redelivered in every order Hypothesis draws, spend exactly the budget (20 runs' worth)
and never more, checked after every operation."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimtab.queue import (
    agentbudgets,
    budgets,
    connection,
    intake,
    keys,
    review,
    runs,
    scripts,
    tasks,
    wire,
)
from trimtab.reconcile.agentbudget import windows

NS, POOL, STEP = "ns-budget", "p", "answer"
RUNS, FITS = 50, 20
WORST = 150  # each call's worst case, and what it spends: 20 of them fill the budget
LIMIT = FITS * WORST
NOW_MS = 1_800_000_000_000.0
NO_RUN_LIMITS = budgets.Limits(tokens=None, cost=None)
DEFINITION = windows.Definition(None, (windows.Limit("Day", LIMIT, None),))

operations = st.lists(
    st.tuples(
        st.sampled_from(("reserve", "reserve", "reserve", "complete", "retry", "redeliver")),
        st.integers(0, RUNS - 1),
    ),
    min_size=10,
    max_size=200,
)


class Runs:
    """50 one-step runs of one workflow, each step started by a worker."""

    def __init__(self, client: connection.Redis) -> None:
        self.client = client
        self.lua = scripts.Scripts(client)
        self.queue = tasks.PoolQueue(client, self.lua, namespace=NS, pool=POOL, consumer="w")
        self.windows = windows.windows(NS, "team", DEFINITION, NOW_MS / 1000)
        self.messages: dict[str, intake.Delivery] = {}
        self.live: dict[str, intake.Delivery] = {}
        self.holding: set[str] = set()
        self.done: set[str] = set()
        self.refused: set[str] = set()

    async def submit_and_start(self) -> None:
        await self.queue.intake.ensure_groups()
        for i in range(RUNS):
            new = runs.NewRun(
                namespace=NS, workflow="support", generation=1, steps=[STEP], run_id=f"r{i}",
                inputs={}, root_pools={STEP: POOL}, ttl_seconds=600, now_ms=NOW_MS,
            )  # fmt: skip
            await runs.submit(self.lua, new)
        for d in await self.queue.intake.read(RUNS, block_ms=100):
            self.messages[d.task.run_id] = d
            await self.start(d.task.run_id)

    async def start(self, run: str) -> bool:
        started = await self.queue.start(self.messages[run], now_ms=NOW_MS, max_deliveries=1000)
        if started.delivery is None or started.outcome is not wire.Reply.RUN:
            return False
        self.live[run] = started.delivery
        self.holding.discard(run)  # a redelivery's start gives the dead worker's hold back
        return True

    async def reserve(self, run: str) -> budgets.Hold:
        worst = budgets.WorstCase(WORST, 0.0)
        hold = await budgets.reserve(
            self.lua, self.live[run], worst, NO_RUN_LIMITS, self.windows, now=NOW_MS / 1000
        )
        if hold.outcome is wire.Reply.RESERVED:
            self.holding.add(run)
        return hold

    async def complete(self, run: str) -> None:
        await self.queue.complete(
            self.live[run], output={}, tokens=WORST, cost=0.0, now_ms=NOW_MS,
            expected_version=None, dependents=[],
        )  # fmt: skip
        self.holding.discard(run)
        self.done.add(run)

    async def retry(self, run: str) -> None:
        """The attempt failed before spending: back to the queue, its hold given back."""
        await self.queue.retry(self.live[run], due_ms=NOW_MS, error="e", now_ms=NOW_MS)
        self.holding.discard(run)
        await self.queue.intake.promote_due(now_ms=NOW_MS)
        for d in await self.queue.intake.read(RUNS, block_ms=10):
            self.messages[d.task.run_id] = d
            await self.start(d.task.run_id)

    async def window(self) -> windows.Spend:
        [spend] = await agentbudgets.spend(self.client, self.windows)
        return spend


async def _apply(r: Runs, op: str, run: str) -> None:
    if run in r.done or run in r.refused:
        return
    match op:
        case "reserve" if run not in r.holding:
            hold = await r.reserve(run)
            spend = await r.window()
            if hold.outcome is wire.Reply.OVER_BUDGET and spend.tokens + WORST > LIMIT:
                r.refused.add(run)  # spent out: the step fails (budget_exhausted)
                await r.queue.fail(r.live[run], reason="budget_exhausted", now_ms=NOW_MS)
        case "complete" if run in r.holding:
            await r.complete(run)
        case "retry":
            await r.retry(run)
        case "redeliver":  # its worker died: the same message, started again
            await r.start(run)


async def _check(r: Runs) -> None:
    spend = await r.window()
    assert spend.tokens + spend.held_tokens <= LIMIT, spend
    assert spend.held_tokens == WORST * len(r.holding), (spend, sorted(r.holding))


async def _interleaving(redis_url: str, ops: list[tuple[str, int]]) -> dict[str, int]:
    client = connection.connect(redis_url)
    await client.flushall()
    r = Runs(client)
    try:
        await r.submit_and_start()
        for op, index in ops:
            await _apply(r, op, f"r{index}")
            await _check(r)
        # Then every run still under way asks until it calls or is refused, as the
        # workers would: a call held back by others' holds waits for them to settle.
        while unfinished := [f"r{i}" for i in range(RUNS) if f"r{i}" not in r.done | r.refused]:
            for run in unfinished:
                await _apply(r, "complete" if run in r.holding else "reserve", run)
                await _check(r)
        spend = await r.window()
        run_tokens: Any = [
            await client.hget(keys.run(NS, f"r{i}"), wire.RunField.TOKENS) for i in range(RUNS)
        ]
        return {
            "spent": spend.tokens,
            "held": spend.held_tokens,
            "completed": len(r.done),
            "refused": len(r.refused),
            "booked_on_runs": sum(int(t or 0) for t in run_tokens),
        }
    finally:
        await client.aclose()


COUNTS: list[dict[str, int]] = []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_fifty_runs_spend_exactly_a_budget_that_fits_twenty_in_any_interleaving(
    redis_url: str, ops: list[tuple[str, int]]
) -> None:
    counts = asyncio.run(_interleaving(redis_url, ops))
    COUNTS.append(counts)
    assert counts == {
        "spent": LIMIT,
        "held": 0,
        "completed": FITS,
        "refused": RUNS - FITS,
        "booked_on_runs": LIMIT,
    }


async def _fresh(redis_url: str) -> tuple[connection.Redis, Runs]:
    client = connection.connect(redis_url)
    await client.flushall()
    r = Runs(client)
    await r.submit_and_start()
    await agentbudgets.publish(client, NS, "team", DEFINITION)  # as the operator does
    return client, r


async def test_a_call_larger_than_the_whole_budget_fails_alone_and_refuses_no_run(
    redis_url: str,
) -> None:
    client, r = await _fresh(redis_url)
    try:
        huge = budgets.WorstCase(LIMIT + 1, 0.0)
        hold = await budgets.reserve(
            r.lua, r.live["r0"], huge, NO_RUN_LIMITS, r.windows, now=NOW_MS / 1000
        )
        assert hold.outcome is wire.Reply.OVER_BUDGET
        assert await agentbudgets.exhausted(client, NS, "support", now=NOW_MS / 1000) is None
        # 19 runs spend 2850 of 3000: a call of 150 would still fit, one of 151 not.
        for i in range(1, 20):
            run = f"r{i}"
            assert (await r.reserve(run)).outcome is wire.Reply.RESERVED
            await r.complete(run)
        bigger = budgets.WorstCase(WORST + 1, 0.0)
        hold = await budgets.reserve(
            r.lua, r.live["r20"], bigger, NO_RUN_LIMITS, r.windows, now=NOW_MS / 1000
        )
        assert hold.outcome is wire.Reply.OVER_BUDGET
        why = await agentbudgets.exhausted(client, NS, "support", now=NOW_MS / 1000)
        assert why is not None
        assert "has used 2850 of its 3000 tokens, too few left for a call of 151" in why
        ttl = await client.ttl(agentbudgets.window_key(r.windows[0]))
        assert ttl > 0  # the window expires, refusals and all
    finally:
        await client.aclose()


async def test_a_rejected_review_books_what_its_call_spent(redis_url: str) -> None:
    client, r = await _fresh(redis_url)
    try:
        assert (await r.reserve("r0")).outcome is wire.Reply.RESERVED
        parked = await r.queue.park_for_review(
            r.live["r0"], reason="unsure", output={}, tokens=30, cost=0.0, now_ms=NOW_MS
        )
        assert isinstance(parked, str)
        item = await review.get(client, NS, parked)
        rejected = await review.reject(r.lua, item, reason="wrong", now_ms=NOW_MS)
        assert rejected is wire.Reply.REJECTED
        spend = await r.window()
        assert (spend.tokens, spend.held_tokens) == (30, 0)
        state = await runs.read(client, NS, "r0")
        assert state is not None
        assert state.tokens == 30
    finally:
        await client.aclose()


async def test_a_cost_limit_holds_calls_by_their_price(redis_url: str) -> None:
    """A daily cost limit of 1.00 and calls worth 0.30 at worst: three fit, the fourth
    is refused on cost although tokens have no limit, and new runs are refused."""
    client, r = await _fresh(redis_url)
    try:
        by_cost = windows.Definition(None, (windows.Limit("Day", None, 1.0),))
        await agentbudgets.publish(client, NS, "team", by_cost)
        r.windows = windows.windows(NS, "team", by_cost, NOW_MS / 1000)
        worst = budgets.WorstCase(WORST, 0.3)
        outcomes: list[tuple[wire.Reply, wire.LimitKind | None]] = []
        for i in range(4):
            hold = await budgets.reserve(
                r.lua, r.live[f"r{i}"], worst, NO_RUN_LIMITS, r.windows, now=NOW_MS / 1000
            )
            refused = hold.outcome is wire.Reply.OVER_BUDGET
            outcomes.append((hold.outcome, hold.kind if refused else None))
            if hold.outcome is wire.Reply.RESERVED:
                await r.queue.complete(
                    r.live[f"r{i}"], output={}, tokens=WORST, cost=0.3, now_ms=NOW_MS,
                    expected_version=None, dependents=[],
                )  # fmt: skip
        assert outcomes[:3] == [(wire.Reply.RESERVED, None)] * 3
        assert outcomes[3] == (wire.Reply.OVER_BUDGET, wire.LimitKind.COST)
        why = await agentbudgets.exhausted(client, NS, "support", now=NOW_MS / 1000)
        assert why is not None
        assert "too little left for a call of 0.300000" in why
    finally:
        await client.aclose()

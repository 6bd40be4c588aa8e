"""AgentBudgets in Redis: the definitions the operator publishes, and what each window
(trimtab.reconcile.agentbudget.windows) has spent and holds.

The operator resolves which workflows a budget covers (by name, by label, or all of the
namespace) and publishes that with the limits, so a worker decides from one hash read
which windows a call must also be held on (trimtab.queue.budgets). A window is a hash
named by its budget, period and first second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from trimtab.queue import keys, messages, wire
from trimtab.reconcile.agentbudget.windows import Definition, Spend, Window, covering


def window_key(w: Window) -> str:
    return keys.budget_window(w.namespace, w.budget, w.period, w.start)


async def publish(
    client: aioredis.Redis, namespace: str, name: str, definition: Definition
) -> None:
    await client.hset(keys.budgets(namespace), name, definition.to_json())


async def withdraw(client: aioredis.Redis, namespace: str, name: str) -> None:
    """Stop enforcing a deleted budget; its windows expire on their own."""
    await client.hdel(keys.budgets(namespace), name)


async def definitions(client: aioredis.Redis, namespace: str) -> dict[str, Definition]:
    raw: dict[Any, Any] = await client.hgetall(keys.budgets(namespace))
    return {
        messages.text(name): Definition.from_json(messages.text(doc)) for name, doc in raw.items()
    }


async def spend(client: aioredis.Redis, found: Sequence[Window]) -> list[Spend]:
    """Each window's figures, in one round trip."""
    fields = [wire.WindowField.TOKENS, wire.WindowField.COST]
    fields += [wire.WindowField.HELD_TOKENS, wire.WindowField.HELD_COST]
    fields += [wire.WindowField.SPENT_OUT_TOKENS, wire.WindowField.SPENT_OUT_COST]
    async with client.pipeline(transaction=False) as pipe:
        for w in found:
            pipe.hmget(window_key(w), fields)
        rows = await pipe.execute()
    return [
        Spend(
            w,
            tokens=int(_number(row[0])),
            cost=_number(row[1]),
            held_tokens=int(_number(row[2])),
            # HINCRBYFLOAT sums of holds given back may leave -1e-17 for nothing held.
            held_cost=max(0.0, _number(row[3])),
            refused_tokens=None if row[4] is None else int(_number(row[4])),
            refused_cost=None if row[5] is None else _number(row[5]),
        )
        for w, row in zip(found, rows, strict=True)
    ]


async def exhausted(
    client: aioredis.Redis,
    namespace: str,
    workflow: str,
    *,
    now: float,
    known: Mapping[str, Definition] | None = None,
) -> str | None:
    """Why a new run of `workflow` is refused (a budget covering it is spent), or None;
    `known` is the namespace's definitions when the caller holds them (read otherwise)."""
    if known is None:
        known = await definitions(client, namespace)
    found = covering(namespace, workflow, known, now)
    refusals = (s.refusal() for s in (await spend(client, found) if found else []))
    return next((r for r in refusals if r is not None), None)


def _number(value: Any) -> float:
    return 0.0 if value is None else float(messages.text(value))

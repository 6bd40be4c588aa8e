"""Completing a step from outside a worker's delivery: a reviewer's approval (with the
output as produced or as edited). The same complete.lua as a worker's completion, with
the same dependents, so the run carries on exactly as if the worker had completed it.
"""

from __future__ import annotations

import time
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import intake, review, runs, scripts, tasks, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod

MAX_CONFLICTS = 20
NO_DELIVERY = "0-0"  # acknowledging it is a no-op: a review holds no stream entry


def dependents(
    wf: compile_mod.CompiledWorkflow, step: str, run: runs.RunView, output: object
) -> list[tasks.Dependent]:
    """Each dependent of `step` with its pool: fixed, routed from the outputs so far, or
    '' when its other dependencies are not done yet (complete.lua then skips it)."""
    outputs = {**run.outputs(), step: output}
    out = []
    for name, waits_on in wf.plan.waits_after(step):
        dep = wf.steps[name]
        context = wf.route_context(name, run.inputs, outputs)
        pool = dep.pool or (wf.choose_pool(name, context) if context is not None else "")
        out.append(tasks.Dependent(name=name, pool=pool, routed=dep.routed, waits_on=waits_on))
    return out


async def approve(
    client: aioredis.Redis,
    lua: scripts.Scripts,
    item: review.ReviewItem,
    output: Any,
    wf: compile_mod.CompiledWorkflow,
) -> wire.Reply:
    """Complete the reviewed step with `output`: OK, DUPLICATE (the step had moved on),
    GONE (the run expired) or TERMINAL (the run failed meanwhile: refused). The review
    entry is removed, except on TERMINAL: should the run's dead steps be retried, the
    step waits for its review again. `wf` is the generation the run was started with."""
    queue = tasks.PoolQueue(
        client, lua, namespace=item.namespace, pool=item.pool, consumer="reviewer"
    )
    outcome = wire.Reply.GONE
    for _ in range(MAX_CONFLICTS):
        state = await runs.read(client, item.namespace, item.run_id)
        if state is None:
            break
        view = state.view()
        deps = dependents(wf, item.step, view, output)
        done = await queue.complete(
            intake.Delivery(NO_DELIVERY, item.task(), queue.stream_for(item.task())),
            output=output,
            tokens=item.tokens,
            cost=item.cost,
            now_ms=round(time.time() * 1000, 3),
            expected_version=view.version if any(d.routed for d in deps) else None,
            dependents=deps,
            compensable=wf.steps[item.step].spec.compensate is not None,
        )
        outcome = done.outcome
        if outcome is not wire.Reply.CONFLICT:
            break
    if outcome is not wire.Reply.TERMINAL:
        await review.remove(client, item.namespace, item.id)
    return outcome

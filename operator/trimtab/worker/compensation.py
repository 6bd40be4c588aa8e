"""A failed run's compensation of one completed step (a saga): the step's `compensate`
tool call over the run's inputs, the step's dependencies' outputs and its own output,
tried `retry.maxAttempts` times with the step's backoff, then ended (undo.lua) as done
or failed, which sends the run's next compensation.

A compensation is at least once like a step: a worker that dies mid-call leaves the
message pending, and another takes it over and calls again, under the same
Idempotency-Key (NAMESPACE/RUN/STEP/compensate) so the tool can tell. A compensation
that never succeeds is recorded on its step and does not hold back the others: an
undo that cannot be done must not keep the rest of the run's effects in place.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import intake, runs, tasks, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import backoff, errors, execute

log = logging.getLogger(__name__)


def idempotency_key(namespace: str, run_id: str, step: str) -> str:
    """The same for every delivery of one step's compensation, and unlike any attempt's
    (trimtab.worker.tools.idempotency_key ends in the attempt's number)."""
    return f"{namespace}/{run_id}/{step}/compensate"


def context(wf: compile_mod.CompiledWorkflow, step: awf.Step, run: runs.RunState) -> dict[str, Any]:
    """What a compensation's templates see: the step's route context and its output."""
    outputs = run.outputs()
    seen = wf.route_context(step.name, run.inputs, outputs) or {"inputs": run.inputs}
    return {**seen, step.name: outputs.get(step.name)}


async def _call(
    step: awf.Step,
    call: awf.ToolCall,
    ctx: dict[str, Any],
    clients: execute.Clients,
    key: str,
    rng: random.Random,
) -> str | None:
    """Try the call; None once it succeeded, else the last try's error."""
    error = ""
    for attempt in range(1, step.retry.max_attempts + 1):
        try:
            await asyncio.wait_for(
                clients.tools.call(call, ctx, idempotency_key=key), step.timeout_seconds
            )
            return None
        except TimeoutError:
            error = f"timed out after {step.timeout_seconds:g} s"
        except errors.StepError as exc:
            error = str(exc)
            if not exc.retryable:
                break
        except Exception as exc:  # a bug or an unreadable reply: the same again, not retried
            error = f"{type(exc).__name__}: {exc}"
            break
        if attempt < step.retry.max_attempts:
            await asyncio.sleep(backoff.delay_seconds(step.retry.backoff, attempt, rng=rng))
    return error


async def compensate(
    delivery: intake.Delivery,
    wf: compile_mod.CompiledWorkflow,
    *,
    queue: tasks.PoolQueue,
    clients: execute.Clients,
    rng: random.Random,
) -> wire.Reply:
    """Run the compensation `delivery` carries and end it; undo.lua's reply."""
    task = delivery.task
    step = wf.steps[task.step].spec
    run = await runs.read(queue.client, task.namespace, task.run_id)
    if run is None or step.compensate is None:
        error: str | None = "its run expired" if run is None else "the step has no compensate"
    else:
        key = idempotency_key(task.namespace, task.run_id, task.step)
        error = await _call(step, step.compensate, context(wf, step, run), clients, key, rng)
    outcome = wire.Compensation.DONE if error is None else wire.Compensation.FAILED
    if error is not None:
        log.warning("%s/%s: compensation failed: %s", task.run_id, task.step, error)
    return await queue.end_compensation(
        delivery, outcome, error=error, now_ms=round(time.time() * 1000, 3)
    )

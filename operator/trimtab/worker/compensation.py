"""A failed run's compensation of one completed step (a saga): the step's `compensate`
tool call over the run's inputs, the step's dependencies' outputs and its own output,
tried `retry.maxAttempts` times with the step's backoff, then ended (undo.lua) as done
or failed, which sends the run's next compensation.

A compensation is at least once like a step: a worker that dies mid-call leaves the
message pending, and another takes it over and calls again, under the same
Idempotency-Key (NAMESPACE/RUN/STEP/compensate) so the tool can tell. Whatever goes
wrong, a compensation ends, failed if it must (its workflow generation is gone, it
has been delivered more than maxDeliveries times, every try failed), and is recorded
on its step: one undo that cannot be done must not keep the rest of the run's effects
in place, and a compensation that never ended would stop the saga for good.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Any

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import intake, runs, tasks, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import attempt, backoff, errors, execute

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


@dataclasses.dataclass
class Compensations:
    """What a worker runs its pool's compensations with."""

    queue: tasks.PoolQueue
    clients: execute.Clients
    secrets: attempt.SecretNotes
    rng: random.Random
    max_deliveries: int

    async def run(
        self, delivery: intake.Delivery, wf: compile_mod.CompiledWorkflow | None, unusable: str
    ) -> wire.Reply:
        """Run the compensation `delivery` carries and end it; `unusable` says why `wf`
        (None, or lacking the step) cannot run it. undo.lua's reply."""
        task = delivery.task
        deliveries = await self.queue.start_compensation(delivery)
        if deliveries is None:
            return wire.Reply.DUPLICATE  # it ended already: acknowledged, not called again
        error = await self._error(delivery, wf, unusable, deliveries)
        if error is not None:
            log.warning("%s/%s: compensation failed: %s", task.run_id, task.step, error)
        outcome = wire.Compensation.DONE if error is None else wire.Compensation.FAILED
        return await self.queue.end_compensation(
            delivery, outcome, error=error, now_ms=round(time.time() * 1000, 3)
        )

    async def _error(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow | None,
        unusable: str,
        deliveries: int,
    ) -> str | None:
        """Why the compensation failed, after calling it if it can be; None: done."""
        task = delivery.task
        if deliveries > self.max_deliveries:
            return f"delivered {deliveries} times without ending (maxDeliveries)"
        if unusable or wf is None:  # the worker says why whenever wf is None
            return unusable
        step = wf.steps[task.step].spec
        run = await runs.read(self.queue.client, task.namespace, task.run_id)
        if run is None or step.compensate is None:
            return "its run expired" if run is None else "the step has no compensate"
        key = idempotency_key(task.namespace, task.run_id, task.step)
        return await self._call(task.workflow, step, step.compensate, context(wf, step, run), key)

    async def _call(
        self, workflow: str, step: awf.Step, call: awf.ToolCall, ctx: dict[str, Any], key: str
    ) -> str | None:
        """Try the call; None once it succeeded, else the last try's error."""
        error = ""
        for n in range(1, step.retry.max_attempts + 1):
            try:
                await asyncio.wait_for(
                    self.clients.tools.call(call, ctx, idempotency_key=key), step.timeout_seconds
                )
                await self.secrets.found(workflow, call)
                return None
            except TimeoutError:
                error = f"timed out after {step.timeout_seconds:g} s"
            except errors.StepError as exc:
                error = str(exc)
                if isinstance(exc, errors.SecretMissingError):
                    await self.secrets.missing(workflow, exc.secret)
                if not exc.retryable:
                    break
            except Exception as exc:  # a bug or an unreadable reply: the same again
                error = f"{type(exc).__name__}: {exc}"
                break
            if n < step.retry.max_attempts:
                await asyncio.sleep(backoff.delay_seconds(step.retry.backoff, n, rng=self.rng))
        return error

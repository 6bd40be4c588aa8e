"""Applying how a step attempt ended (trimtab.worker.ending): the one queue transition
each ending makes (complete with its dependents and routes, retry after the backoff,
move to another pool, park for review, dead-letter), then what it records in metrics
and in the worker's per-second tally, with the attempt's real duration.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from trimtab import metrics as metrics_mod
from trimtab.queue import completion, connection, intake, messages, runs, tasks, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.telemetry import tracing as traces
from trimtab.worker import ending, execute, settings
from trimtab.worker import memory as memory_mod
from trimtab.worker import stats as tally_mod

log = logging.getLogger(__name__)
MAX_COMPLETE_CONFLICTS = 20


def now_ms() -> float:
    """Epoch milliseconds to the microsecond: per-step overheads are below a millisecond."""
    return round(time.time() * 1000, 3)


class Finisher:
    """Ends step attempts for one worker."""

    def __init__(
        self,
        cfg: settings.WorkerSettings,
        *,
        client: connection.Redis,
        queue: tasks.PoolQueue,
        metrics: metrics_mod.Metrics,
        tally: tally_mod.SecondTally,
        memory: memory_mod.SessionMemory,
        tracing: traces.Tracing | None = None,
    ) -> None:
        self.cfg, self.client, self.queue = cfg, client, queue
        self.metrics, self.tally, self.memory = metrics, tally, memory
        self.tracing = tracing or traces.Tracing()  # the attempt's span is current here

    async def apply(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        end: ending.Ending,
        *,
        run: runs.RunView | None = None,
        seconds: float = 0.0,
    ) -> wire.Reply:
        """Make `end` happen and record it; returns the script's reply. A DUPLICATE (the
        delivery was stale: another worker moved the step on) records nothing, so no
        attempt is counted twice."""
        reply = await self._transition(delivery, wf, end, run)
        if not isinstance(end, ending.Completed):
            task = delivery.task
            log.warning("%s/%s attempt %d: %s", task.run_id, task.step, task.attempt, end.reason)
        if end.error is not None:
            self.metrics.step_error(self.cfg.namespace, self.cfg.pool, error=end.error)
        if reply is wire.Reply.DUPLICATE:
            log.info("%s/%s: stale delivery, dropped", delivery.task.run_id, delivery.task.step)
            return reply
        if reply is wire.Reply.CANCELLED:
            log.info(
                "%s/%s: its run has failed; no retry", delivery.task.run_id, delivery.task.step
            )
            return reply
        kept = wf.spec.dead_letter.enabled
        outcome = ending.step_outcome(end)
        # Gave up with nothing kept, or with an output standing in (the run goes on).
        gave_up = isinstance(end, ending.DeadLetter) and (not kept or reply is wire.Reply.OK)
        if gave_up:
            outcome = metrics_mod.StepOutcome.FAILED
        self.metrics.step_finished(
            self.cfg.namespace,
            self.cfg.pool,
            workflow=wf.name,
            step=delivery.task.step,
            outcome=outcome,
            seconds=seconds,
            trace_id=self.tracing.current_trace_id(),
        )
        if isinstance(end, ending.Completed):
            self._record_completed(delivery, end, seconds)
        if reply is wire.Reply.DEAD:  # the run failed with this step (ALSO_DEAD: before it)
            run_outcome = (
                metrics_mod.RunOutcome.DEAD_LETTERED if kept else metrics_mod.RunOutcome.FAILED
            )
            self.metrics.run_finished(delivery.task.namespace, wf.name, outcome=run_outcome)
        return reply

    async def _transition(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        end: ending.Ending,
        run: runs.RunView | None,
    ) -> wire.Reply:
        at, keep = now_ms(), wf.spec.dead_letter.enabled
        match end:
            case ending.Completed():
                assert run is not None, "a completion needs the run it read"
                return await self._complete(delivery, wf, run, end)
            case ending.Retry():
                return await self.queue.retry(
                    delivery,
                    due_ms=end.due_ms,
                    error=end.reason,
                    now_ms=at,
                    keep_budget=end.keep_budget,
                )
            case ending.Escalate():
                return await self.queue.escalate(
                    delivery, pool=end.pool, reason=end.reason, now_ms=at
                )
            case ending.Review():
                parked = await self.queue.park_for_review(
                    delivery,
                    reason=end.reason,
                    output=end.output,
                    tokens=end.result.tokens if end.result else 0,
                    cost=end.result.cost if end.result else 0.0,
                    now_ms=at,
                )
                if parked is wire.Reply.FULL:  # nobody reviews: do not pile up more
                    why = f"{end.reason}; not parked: {wire.REVIEWS_MAX} steps await review"
                    return await self.queue.fail(delivery, reason=why, now_ms=at, keep=keep)
                return parked if isinstance(parked, wire.Reply) else wire.Reply.PARKED
            case ending.DeadLetter():
                return await self._give_up(delivery, wf, run, end)

    async def _give_up(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView | None,
        end: ending.DeadLetter,
    ) -> wire.Reply:
        """Dead-letter the step, or when an output stands in for it (compile.stand_in),
        complete it with that and note why on the step: the run goes on, and shows it."""
        task = delivery.task
        # A run past its deadline ends: nothing stands in to carry it further.
        late = end.error is metrics_mod.ErrorType.DEADLINE_EXCEEDED
        stand_in = None if late else wf.stand_in(task.step)
        if stand_in is None:
            keep = wf.spec.dead_letter.enabled
            return await self.queue.fail(delivery, reason=end.reason, now_ms=now_ms(), keep=keep)
        if run is None:
            fresh = await runs.read(self.client, task.namespace, task.run_id)
            if fresh is None:
                return wire.Reply.DUPLICATE  # the run expired
            run = fresh.view()
        done = ending.Completed(execute.StepResult(output=stand_in.output))
        reply = await self._complete(delivery, wf, run, done)
        if reply is wire.Reply.OK:
            why = f"gave up, run goes on with its stand-in output: {end.reason}"
            await runs.note_step_error(self.client, task.namespace, task.run_id, task.step, why)
        return reply

    def _record_completed(
        self, delivery: intake.Delivery, end: ending.Completed, seconds: float
    ) -> None:
        ns, pool, result = self.cfg.namespace, self.cfg.pool, end.result
        # What the caller felt: from this attempt's enqueue to now, queue wait included.
        self.tally.add(seconds, end_to_end=(now_ms() - delivery.task.enqueued_ms) / 1000)
        self.metrics.tokens_used(
            ns, pool, kind=metrics_mod.TokenKind.PROMPT, tokens=result.prompt_tokens
        )
        self.metrics.tokens_used(
            ns, pool, kind=metrics_mod.TokenKind.COMPLETION, tokens=result.completion_tokens
        )
        self.metrics.cost_total.labels(ns, pool).inc(result.cost)

    async def _complete(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView,
        end: ending.Completed,
    ) -> wire.Reply:
        task, result = delivery.task, end.result
        if any(wf.steps[d].routed for d in wf.steps[task.step].dependents):
            # Routes read the other dependencies' outputs too: the whole run is needed.
            fresh = await runs.read(self.client, task.namespace, task.run_id)
            if fresh is None:
                return wire.Reply.DUPLICATE  # the run expired: nothing left to complete
            run = fresh.view()
        # A run's turns go to its session before the completion that ends it, so whoever
        # waits for the run's end and asks the next question finds them there.
        await self._remember_if_last(task, wf, run, result.output)
        for _ in range(MAX_COMPLETE_CONFLICTS):
            deps = completion.dependents(wf, task.step, run, result.output)
            routed = any(d.routed for d in deps)
            done = await self.queue.complete(
                delivery,
                output=result.output,
                tokens=result.tokens,
                cost=result.cost,
                now_ms=now_ms(),
                expected_version=run.version if routed else None,
                dependents=deps,
                compensable=wf.steps[task.step].spec.compensate is not None,
            )
            if done.outcome is not wire.Reply.CONFLICT:
                if done.remaining == 0:
                    self._run_succeeded(task, wf, run)
                return done.outcome
            fresh = await runs.read(self.client, task.namespace, task.run_id)
            if fresh is None:
                return wire.Reply.DUPLICATE
            run = fresh.view()
        raise RuntimeError(f"completing {task.run_id}/{task.step}: the run kept changing")

    async def _remember_if_last(
        self,
        task: messages.Task,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView,
        output: Any,
    ) -> None:
        """Add the run's turns to its session when its session remembers and this step
        is the last one left: every other step done, so completing it ends the run.
        (A cancel or deadline landing in that instant leaves the turns in; a
        redelivery of this step adds them once, by the run's id.)"""
        if run.session is None or not any(memory_mod.remembers(s) for s in wf.spec.steps):
            return
        if wf.steps[task.step].dependents:  # they run after it: it cannot be the last
            return
        state = await runs.read(self.client, task.namespace, task.run_id)
        if state is None:
            return  # expired already: nothing to take the turns from
        others = [v for name, v in state.steps.items() if name != task.step]
        if any(v.state is not wire.StepState.DONE for v in others):
            return
        outputs = {**state.outputs(), task.step: output}
        turns = memory_mod.run_turns(wf.spec, state.inputs, outputs)
        await self.memory.remember(
            run.session, turns, ttl_seconds=wf.spec.state.ttl_seconds, run_id=task.run_id
        )

    def _run_succeeded(
        self, task: messages.Task, wf: compile_mod.CompiledWorkflow, run: runs.RunView
    ) -> None:
        self.metrics.run_finished(task.namespace, wf.name, outcome=metrics_mod.RunOutcome.SUCCEEDED)
        if run.created_ms:
            self.tally.run_finished(
                task.namespace, wf.name, max(0.0, (now_ms() - run.created_ms) / 1000)
            )

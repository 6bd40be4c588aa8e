"""How a step attempt ends: completed (output stored, dependents enqueued, routes
chosen), retried after its backoff, or given up and dead-lettered; and what each of
those records in metrics and in the worker's per-second tally."""

from __future__ import annotations

import logging
import random
import time

from trimtab import metrics as metrics_mod
from trimtab.queue import completion, connection, runs, tasks, wire
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import backoff, errors, execute, policy, settings
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
        rng: random.Random,
        tally: tally_mod.SecondTally,
    ) -> None:
        self.cfg, self.client, self.queue = cfg, client, queue
        self.metrics, self.rng, self.tally = metrics, rng, tally

    def succeeded(
        self,
        delivery: tasks.Delivery,
        wf: compile_mod.CompiledWorkflow,
        result: execute.StepResult,
        elapsed: float,
        *,
        cached: bool = False,
    ) -> None:
        ns, pool = self.cfg.namespace, self.cfg.pool
        # What the caller felt: from this attempt's enqueue to now, queue wait included.
        self.tally.add(elapsed, end_to_end=(now_ms() - delivery.task.enqueued_ms) / 1000)
        self.metrics.step_finished(
            ns,
            pool,
            workflow=wf.name,
            step=delivery.task.step,
            outcome=metrics_mod.StepOutcome.CACHED if cached else metrics_mod.StepOutcome.SUCCEEDED,
            seconds=elapsed,
        )
        self.metrics.tokens_used(
            ns, pool, kind=metrics_mod.TokenKind.PROMPT, tokens=result.prompt_tokens
        )
        self.metrics.tokens_used(
            ns, pool, kind=metrics_mod.TokenKind.COMPLETION, tokens=result.completion_tokens
        )
        self.metrics.cost_total.labels(ns, pool).inc(result.cost)

    async def complete(
        self,
        delivery: tasks.Delivery,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView,
        result: execute.StepResult,
    ) -> None:
        task = delivery.task
        if any(wf.steps[d].routed for d in wf.steps[task.step].dependents):
            # Routes read the other dependencies' outputs too: the whole run is needed.
            fresh = await runs.read(self.client, task.namespace, task.run_id)
            if fresh is None:
                return
            run = fresh.view()
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
            )
            if done.outcome is not wire.Reply.CONFLICT:
                if done.remaining == 0:
                    self.metrics.run_finished(
                        task.namespace, wf.name, outcome=metrics_mod.RunOutcome.SUCCEEDED
                    )
                    if run.created_ms:
                        self.tally.run_finished(
                            task.namespace, wf.name, max(0.0, (now_ms() - run.created_ms) / 1000)
                        )
                return
            fresh = await runs.read(self.client, task.namespace, task.run_id)
            if fresh is None:
                return
            run = fresh.view()
        raise RuntimeError(f"completing {task.run_id}/{task.step}: the run kept changing")

    async def failed(
        self,
        delivery: tasks.Delivery,
        wf: compile_mod.CompiledWorkflow,
        exc: errors.StepError,
        *,
        error_type: str,
    ) -> None:
        task = delivery.task
        spec = wf.steps[task.step].spec
        log.warning("%s/%s attempt %d failed: %s", task.run_id, task.step, task.attempt, exc)
        self.count_error(error_type)
        decided = policy.after_failure(
            retryable=exc.retryable,
            portable=exc.portable,
            attempts_in_budget=task.attempts_in_budget,
            retry=spec.retry,
            fallback=spec.fallback,
            pool=self.cfg.pool,
        )
        error = f"{error_type}: {exc}"
        if decided.action is policy.Action.RETRY:
            delay = backoff.delay_seconds(
                spec.retry.backoff,
                task.attempts_in_budget,
                rng=self.rng,
                retry_after=exc.retry_after,
            )
            await self.queue.retry(
                delivery, due_ms=now_ms() + delay * 1000, error=error, now_ms=now_ms()
            )
            outcome = metrics_mod.StepOutcome.RETRIED
        elif decided.action is policy.Action.ESCALATE:
            assert decided.pool is not None
            await self.queue.escalate(
                delivery,
                pool=decided.pool,
                reason=f"{error}; moved to pool {decided.pool}",
                now_ms=now_ms(),
            )
            outcome = metrics_mod.StepOutcome.RETRIED
        elif decided.action is policy.Action.REVIEW:
            rejected = getattr(exc, "output", None)
            await self.review(delivery, reason=error, output=rejected)
            outcome = metrics_mod.StepOutcome.REVIEW
        else:
            await self.give_up(
                delivery,
                wf,
                f"{error} (attempt {task.attempts_in_budget} of {spec.retry.max_attempts})",
            )
            outcome = metrics_mod.StepOutcome.DEAD_LETTERED
        self.metrics.step_finished(
            self.cfg.namespace,
            self.cfg.pool,
            workflow=wf.name,
            step=task.step,
            outcome=outcome,
            seconds=0.0,
        )

    async def breaker_open(
        self, delivery: tasks.Delivery, wf: compile_mod.CompiledWorkflow, *, retry_at_ms: float
    ) -> None:
        """The endpoint's breaker is open: move to the fallback pool if the step has one,
        otherwise wait (without holding a worker slot) until the breaker lets a call
        through. Neither counts against the step's retries."""
        task = delivery.task
        fallback = wf.steps[task.step].spec.fallback
        reason = f"breaker_open: the endpoint of pool {self.cfg.pool} is failing"
        self.count_error(metrics_mod.ErrorType.BREAKER_OPEN)
        if fallback is not None and fallback.pool and fallback.pool != self.cfg.pool:
            await self.queue.escalate(delivery, pool=fallback.pool, reason=reason, now_ms=now_ms())
            return
        due = max(retry_at_ms, now_ms())
        await self.queue.retry(
            delivery, due_ms=due, error=reason, now_ms=now_ms(), keep_budget=True
        )

    def count_error(self, error_type: str) -> None:
        known = error_type in metrics_mod.ErrorType.__members__.values()
        kind = metrics_mod.ErrorType(error_type) if known else metrics_mod.ErrorType.OTHER
        self.metrics.step_error(self.cfg.namespace, self.cfg.pool, error=kind)

    async def budget_exhausted(
        self, delivery: tasks.Delivery, wf: compile_mod.CompiledWorkflow, reason: str
    ) -> None:
        """The step may not start within its budgets: degrade, review or fail."""
        task = delivery.task
        decided = policy.on_budget_exhausted(wf.spec.budget, self.cfg.pool)
        why = f"budget_exhausted: {reason}"
        self.count_error(metrics_mod.ErrorType.BUDGET_EXHAUSTED)
        if decided.action is policy.Action.ESCALATE:
            assert decided.pool is not None
            why += f"; degraded to pool {decided.pool}"
            await self.queue.escalate(delivery, pool=decided.pool, reason=why, now_ms=now_ms())
        elif decided.action is policy.Action.REVIEW:
            await self.review(delivery, reason=why, output=None)
        else:
            await self.give_up(delivery, wf, why)
        self.metrics.step_finished(
            self.cfg.namespace,
            self.cfg.pool,
            workflow=wf.name,
            step=task.step,
            outcome=metrics_mod.StepOutcome.BUDGET_EXCEEDED,
            seconds=0.0,
        )

    async def review(
        self,
        delivery: tasks.Delivery,
        *,
        reason: str,
        output: object,
        result: execute.StepResult | None = None,
    ) -> None:
        """Park the step for a person: the output in question (if any) and why."""
        await self.queue.park_for_review(
            delivery,
            reason=reason,
            output=output,
            tokens=result.tokens if result else 0,
            cost=result.cost if result else 0.0,
            now_ms=now_ms(),
        )

    async def give_up(
        self, delivery: tasks.Delivery, wf: compile_mod.CompiledWorkflow, reason: str
    ) -> None:
        if await self.queue.fail(delivery, reason=reason, now_ms=now_ms()) is wire.Reply.DEAD:
            self.metrics.run_finished(
                delivery.task.namespace, wf.name, outcome=metrics_mod.RunOutcome.FAILED
            )

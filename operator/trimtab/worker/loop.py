"""The worker: claims its pool's steps, runs up to `concurrency` at once, completes them.

One claim loop takes every step this worker runs, so it never holds more than its
concurrency: a free slot goes first to a step a dead worker left idle past the
visibility timeout (found by a background scan), then to new work, so redelivery never
waits behind the backlog. Background tasks beside it keep delivery at least once:
finding those stale steps, promoting retries whose backoff is due, heartbeating steps
still running here so nobody reclaims them, stopping the steps of runs that failed
meanwhile (no tokens spent on results nobody uses), forgetting dead consumers, and
publishing per-second load statistics for the autoscaler. On stop, the worker drains: no new
claims, in-flight steps get the grace period to finish, the rest are released for
immediate redelivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from trimtab import metrics as metrics_mod
from trimtab.queue import connection, intake, runs, scripts, tasks, wire, workflows
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.telemetry import ids
from trimtab.worker import (
    attempt,
    compensation,
    ending,
    execute,
    finish,
    memory,
    policy,
    serving,
    settings,
    spans,
    tokens,
)
from trimtab.worker import stats as tally

log = logging.getLogger(__name__)


now_ms = finish.now_ms


class Worker:
    """One worker process's runtime for one pool."""

    def __init__(
        self,
        cfg: settings.WorkerSettings,
        *,
        client: connection.Redis,
        clients: execute.Clients,
        metrics: metrics_mod.Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.cfg, self.client, self.clients, self.metrics = cfg, client, clients, metrics
        self.lua = scripts.Scripts(client)
        self.queue = tasks.PoolQueue(
            client, self.lua, namespace=cfg.namespace, pool=cfg.pool, consumer=cfg.consumer,
            capacity=cfg.capacity,
        )  # fmt: skip
        self.concurrency = cfg.spec.worker.concurrency
        self.visibility_s = cfg.spec.queue.visibility_timeout_seconds
        self.rng = rng or random.Random()
        self._running: dict[asyncio.Task[None], intake.Delivery] = {}
        self._stale: list[intake.Stale] = []  # idle entries to reclaim first (_find_stale)
        self._turn = 0  # reads so far, in slots: whose turn among the levels (levels.shares)
        self._workflows = workflows.Compiled(self.client)
        self._tally = tally.SecondTally()
        self.readiness = serving.Readiness()  # what the pod's readiness probe reports
        self.memory = memory.SessionMemory(
            cfg.redis_url, cfg.namespace, tokens.counter(cfg.spec.model.tokenizer)
        )
        self.finisher = finish.Finisher(
            cfg, client=client, queue=self.queue, metrics=metrics, tally=self._tally,
            memory=self.memory, tracing=clients.tracing,
        )  # fmt: skip
        self.attempts = attempt.Attempts(
            cfg, client=client, lua=self.lua, clients=clients, metrics=metrics, rng=self.rng,
            memory=self.memory,
        )  # fmt: skip
        self.compensations = compensation.Compensations(
            self.queue, clients, self.attempts.secrets, self.rng, cfg.spec.queue.max_deliveries
        )

    @property
    def in_flight(self) -> int:
        return len(self._running)

    async def run(self, stop: asyncio.Event, *, grace_seconds: float) -> None:
        await self._ensure_group(stop)
        loops = [
            self._every(0.2, self._promote),
            self._every(1.0, self._publish_stats),
            self._every(max(0.5, self.visibility_s / 4), self._find_stale),
            self._every(max(0.5, self.visibility_s / 3), self._heartbeat),
            self._every(10.0, self.queue.intake.trim_acknowledged),
            self._every(60.0, self._forget_dead_consumers),
            self._every(1.0, self._stop_given_up_runs),
        ]
        background = [asyncio.create_task(loop(stop)) for loop in loops]
        try:
            await self._claim_loop(stop)
            self.readiness.draining = True
            await self._drain(grace_seconds)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            # Stopping while Redis is away or full: the last second's figures are lost.
            with contextlib.suppress(*connection.UNAVAILABLE, *connection.FULL):
                await self._publish_stats()
            await self.memory.aclose()

    async def _ensure_group(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.queue.intake.ensure_groups()
                self.readiness.reached_redis()
                return
            except connection.UNAVAILABLE as exc:
                log.warning("Redis unavailable (%s); waiting", exc)
                await asyncio.sleep(0.5)

    def _every(
        self, seconds: float, action: Callable[[], Awaitable[object]]
    ) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
        async def loop(stop: asyncio.Event) -> None:
            while not stop.is_set():
                try:
                    await action()
                except Exception:  # a failed housekeeping pass must not stop the worker
                    log.exception("%s failed; trying again", getattr(action, "__name__", action))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=seconds)

        return loop

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            free = self.concurrency - self.in_flight
            if free <= 0:
                await asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                claimed = await self._reclaimed(free)
                rest = free - len(claimed)
                if rest > 0:  # no waiting for new work while reclaimed steps are ready
                    taken = await self.queue.intake.read(
                        rest, block_ms=None if claimed else 500, turn=self._turn
                    )
                    self._turn += len(taken)
                    claimed += taken
            except connection.UNAVAILABLE as exc:
                log.warning("Redis unavailable (%s); claiming again shortly", exc)
                await asyncio.sleep(0.5)
                continue
            self.readiness.reached_redis()
            for delivery in claimed:
                self._spawn(delivery)

    def _spawn(self, delivery: intake.Delivery) -> None:
        task = asyncio.create_task(self._handle(delivery))
        self._running[task] = delivery
        self.metrics.steps_in_flight.labels(self.cfg.namespace, self.cfg.pool).inc()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        self.metrics.steps_in_flight.labels(self.cfg.namespace, self.cfg.pool).dec()
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "step handler crashed; the step will be redelivered", exc_info=task.exception()
            )

    async def _promote(self) -> None:
        """Move due retries onto the stream; as it reaches Redis every 0.2 s whether or
        not a slot is free, it is also what keeps readiness current."""
        await self.queue.intake.promote_due(now_ms=now_ms())
        self.readiness.reached_redis()

    async def _find_stale(self) -> None:
        """The pending entries idle past the visibility timeout, for the claim loop."""
        ours = {(d.stream, d.msg_id) for d in self._running.values()}
        found = await self.queue.intake.stale(
            min_idle_ms=int(self.visibility_s * 1000), count=max(100, self.concurrency * 4)
        )
        self._stale = [s for s in found if (s.stream, s.msg_id) not in ours]

    async def _reclaimed(self, free: int) -> list[intake.Delivery]:
        """Up to `free` stale entries, taken over (each still idle: no race)."""
        if not self._stale:
            return []
        wanted, self._stale = self._stale[:free], self._stale[free:]
        taken = await self.queue.intake.reclaim(wanted, min_idle_ms=int(self.visibility_s * 1000))
        for delivery in taken:
            log.info(
                "reclaimed %s/%s from an idle consumer", delivery.task.run_id, delivery.task.step
            )
        return taken

    async def _stop_given_up_runs(self) -> None:
        """Stop the steps running here whose run has failed (another branch died) or
        was cancelled meanwhile: their calls would spend tokens on results nobody uses.
        Each is handed back, and start.lua cancels it there."""
        # A compensation belongs to a failed run: it is what runs then.
        running = [(t, d) for t, d in self._running.items() if not d.task.compensation]
        if not running:
            return
        refs = [(d.task.namespace, d.task.run_id) for _, d in running]
        failed = await runs.given_up_among(self.client, refs)
        doomed = [task for (task, _), f in zip(running, failed, strict=True) if f]
        if not doomed:
            return
        # The task's own delivery: after start it carries the fence (see _handle).
        deliveries = [self._running[t] for t in doomed if t in self._running]
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        stopped = await self.queue.intake.release(deliveries)
        log.info(
            "stopped %d step(s) of failed or cancelled runs (%d handed back)",
            len(doomed),
            stopped,
        )

    async def _forget_dead_consumers(self) -> None:
        for name in await self.queue.intake.forget_dead_consumers():
            log.info("removed consumer %s: idle and holding nothing", name)

    async def _heartbeat(self) -> None:
        await self.queue.intake.heartbeat(list(self._running.values()))

    async def _publish_stats(self) -> None:
        cfg = self.cfg
        await tally.publish(
            self.client,
            self._tally.take(),
            namespace=cfg.namespace,
            pool=cfg.pool,
            consumer=cfg.consumer,
        )

    async def _drain(self, grace_seconds: float) -> None:
        if self._running:
            await asyncio.wait(set(self._running), timeout=grace_seconds)
        leftovers = dict(self._running)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        released = await self.queue.intake.release(list(leftovers.values()))
        if released:
            log.info("released %d unfinished steps for redelivery", released)

    async def _workflow(self, delivery: intake.Delivery) -> compile_mod.CompiledWorkflow:
        task = delivery.task
        return await self._workflows.get(task.namespace, task.workflow, task.generation)

    async def _handle(self, delivery: intake.Delivery) -> None:
        task = delivery.task
        wf: compile_mod.CompiledWorkflow | None = None
        try:
            wf = await self._workflow(delivery)
        except workflows.WorkflowNotFoundError as exc:
            unusable = str(exc)
        else:
            unusable = ""
            if task.step not in wf.steps:
                unusable = (
                    f"workflow {wf.name} generation {wf.generation} has no step {task.step!r}"
                )
        if task.compensation:  # its run failed: undo the step; it ends even if unusable
            await self.compensations.run(delivery, wf, unusable)
            return
        if wf is None or unusable:
            await self.queue.dead_letter_unprocessable(delivery, unusable, now_ms=now_ms())
            return
        started = await self.queue.start(
            delivery,
            now_ms=now_ms(),
            max_deliveries=self.cfg.spec.queue.max_deliveries,
            dependencies=wf.steps[task.step].dependencies,
        )
        if started.outcome is wire.Reply.CANCELLED:
            log.info("%s/%s: its run has failed; not started", task.run_id, task.step)
            return
        if started.outcome is wire.Reply.DUPLICATE or started.delivery is None:
            return
        # From here on the worker acts for this delivery by its fence; a drain releases
        # it by the same token.
        delivery = started.delivery
        current = asyncio.current_task()
        if current in self._running:
            self._running[current] = delivery
        if started.outcome is wire.Reply.EXHAUSTED or started.view is None:
            limit = self.cfg.spec.queue.max_deliveries
            why = f"delivered more than {limit} times without completing"
            await self.finisher.apply(delivery, wf, ending.DeadLetter(why))
            return
        waited = max(0.0, (now_ms() - task.enqueued_ms) / 1000)
        if not self.clients.tracing.enabled:
            self.metrics.queue_waited(self.cfg.namespace, self.cfg.pool, seconds=waited)
            await self._execute(delivery, wf, started.view)
            return
        run_trace = ids.run_trace(task.namespace, task.run_id, started.view.traceparent)
        self.metrics.queue_waited(
            self.cfg.namespace,
            self.cfg.pool,
            seconds=waited,
            trace_id=self.clients.tracing.trace_id_of(run_trace),
        )
        await self._traced(delivery, wf, started.view, run_trace)

    async def _traced(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView,
        run_trace: ids.RunTrace,
    ) -> None:
        """The attempt as a span under its run's, from its enqueue (the queue wait its
        first child) to its ending, recorded by whichever worker runs this delivery."""
        task, tracing = delivery.task, self.clients.tracing
        if not tracing.sampled(run_trace):  # no spans to build, only the context to pass
            with tracing.within(tracing.run_parent(run_trace)):
                await self._execute(delivery, wf, run)
            return
        enqueued_ns, started_ns = int(task.enqueued_ms * 1e6), time.time_ns()
        attributes = spans.attempt_attributes(task, self.cfg.pool, self.cfg.consumer)
        with tracing.span(
            spans.attempt_name(task),
            parent=tracing.run_parent(run_trace),
            kind=SpanKind.CONSUMER,
            attributes={**attributes, "trimtab.interrupted": delivery.interrupted},
            start_ns=min(enqueued_ns, started_ns),
        ):
            try:
                await self._execute(delivery, wf, run)
            finally:  # with the attempt: a worker killed mid-step leaves no orphan
                tracing.record(
                    "queue wait", start_ns=min(enqueued_ns, started_ns), end_ns=started_ns
                )

    async def _execute(
        self, delivery: intake.Delivery, wf: compile_mod.CompiledWorkflow, run: runs.RunView
    ) -> None:
        step = wf.steps[delivery.task.step].spec
        context = wf.route_context(step.name, run.inputs, run.outputs())
        if context is None:  # cannot happen for a step enqueued by complete.lua
            raise RuntimeError(f"step {step.name} started before its dependencies finished")
        t0 = time.monotonic()
        end = await self.attempts.run(delivery, wf, run, step, context)
        if isinstance(end, ending.Completed):
            minimum = step.output.min_confidence if step.output else None
            unsure = policy.confidence_shortfall(end.result.output, minimum)
            if unsure is not None:
                end = ending.Review(unsure, end.result.output, end.result)
        seconds = time.monotonic() - t0
        if self.clients.tracing.enabled:
            spans.annotate(trace.get_current_span(), end)
        reply = await self.finisher.apply(delivery, wf, end, run=run, seconds=seconds)
        if isinstance(end, ending.Completed) and reply is wire.Reply.OK:
            await self.attempts.remember(step, end)

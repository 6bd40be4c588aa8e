"""One attempt of one step, with every guard in front of the endpoint: the deadline,
the response cache (a hit needs no call at all), the budgets (a step that could overrun
does not start), the circuit breaker (a failing endpoint is left alone), then the call
itself under the step's timeout. Whatever happens, the attempt returns how it ended
(trimtab.worker.ending) for the finisher to apply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import random
import time
from typing import Any

from trimtab import metrics as metrics_mod
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import (
    breaker,
    budgets,
    cache,
    connection,
    intake,
    messages,
    runs,
    scripts,
    streamed,
    workflows,
)
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import (
    agent_turns,
    ending,
    errors,
    execute,
    finish,
    guard,
    policy,
    settings,
    spending,
    streaming,
    throttle,
    tokens,
    tools,
)
from trimtab.worker import memory as memory_mod

log = logging.getLogger(__name__)


class Attempts:
    def __init__(
        self,
        cfg: settings.WorkerSettings,
        *,
        client: connection.Redis,
        lua: scripts.Scripts,
        clients: execute.Clients,
        metrics: metrics_mod.Metrics,
        rng: random.Random,
        memory: memory_mod.SessionMemory,
    ) -> None:
        self.cfg, self.client, self.clients = cfg, client, clients
        self.metrics, self.rng = metrics, rng
        self.lua, self.memory = lua, memory
        self.guards = guard.Guards(cfg, client=client, lua=lua, metrics=metrics)
        self.throttle = throttle.Throttle(
            lua, namespace=cfg.namespace, pool=cfg.pool, spec=cfg.spec
        )
        self.secrets = SecretNotes(client, cfg.namespace)
        self.spending = spending.Spending(client, lua, namespace=cfg.namespace, pool=cfg.pool)
        self.count_tokens = tokens.counter(cfg.spec.model.tokenizer)

    def cache_digest(self, step: awf.Step, prompt: execute.Prompt | None) -> str | None:
        """What determines the model's answer, hashed; None when the step does not cache
        (or its prompt could not render: the attempt reports that)."""
        if step.cache is None or prompt is None:
            return None
        model = self.cfg.spec.model
        key = {
            "endpoint": model.endpoint,
            "model": model.name,
            "system": prompt.system,
            "history": prompt.history,
            "prompt": prompt.user,
            "max_tokens": step.max_tokens or model.max_tokens,
            "schema": step.output.json_schema if step.output else None,
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    async def run(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        run: runs.RunView,
        step: awf.Step,
        context: dict[str, Any],
    ) -> ending.Ending:
        task = delivery.task
        late = policy.past_deadline(wf.spec.deadline_seconds, run.created_ms, finish.now_ms())
        if late is not None:
            return ending.DeadLetter(late, metrics_mod.ErrorType.DEADLINE_EXCEEDED)
        prompt = _rendered(step, context)
        if prompt is not None:
            prompt = dataclasses.replace(prompt, history=await self.memory.shown(step, run.session))
        digest = self.cache_digest(step, prompt)
        if digest is not None:
            found = await cache.lookup(self.lua, task.namespace, task.run_id, digest)
            hit = found is not cache.MISSING
            self.metrics.cache_looked_up(
                self.cfg.namespace,
                self.cfg.pool,
                result=metrics_mod.CacheResult.HIT if hit else metrics_mod.CacheResult.MISS,
            )
            if hit:
                return ending.Completed(execute.StepResult(output=found), cached=True)
        worst = self._worst_case(step, prompt)
        held = await self.spending.hold(delivery, step, wf, worst)
        if held is not None:
            return held
        due = policy.deadline_ms(wf.spec.deadline_seconds, run.created_ms)
        called = await self._call(delivery, wf, step, context, prompt, worst, deadline_ms=due)
        if isinstance(called, execute.StepResult):
            return ending.Completed(called, digest=digest)
        return ending.within_deadline(called, due, wf.spec.deadline_seconds)

    async def remember(self, step: awf.Step, done: ending.Completed) -> None:
        """Fill the cache with an accepted (completed) result."""
        if done.digest is not None and step.cache is not None:
            await cache.store(
                self.client, self.cfg.namespace, done.digest, done.result.output,
                step.cache.ttl_seconds,
            )  # fmt: skip

    async def _call(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        step: awf.Step,
        context: dict[str, Any],
        prompt: execute.Prompt | None,
        worst: budgets.WorstCase | None,
        *,
        deadline_ms: float | None,
    ) -> execute.StepResult | ending.Ending:
        now = finish.now_ms
        verdict = await self.guards.check(step, now())
        if not verdict.allowed:  # the endpoint is left alone; the step waits or moves
            return ending.breaker_open(
                step, pool=self.cfg.pool, retry_at_ms=verdict.retry_at_ms, now_ms=now()
            )
        if self.throttle.applies(step) and worst is not None:
            wait = await self.throttle.turn(step, worst.tokens, now())
            if wait is not None:
                return ending.rate_limited(pool=self.cfg.pool, due_ms=now() + wait)
        taken_ms = now()  # the call's turn (after the rate limit, if any)
        # The call may take its timeout, but never past the run's deadline.
        left_s = None if deadline_ms is None else max(0.0, (deadline_ms - now()) / 1000)
        limit = step.timeout_seconds if left_s is None else min(step.timeout_seconds, left_s)
        try:
            result = await self._execute(delivery, wf, step, context, prompt, limit)
        except TimeoutError:
            if limit < step.timeout_seconds:
                late = metrics_mod.ErrorType.DEADLINE_EXCEEDED
                why = "the run reached its deadline while this step ran"
                return ending.DeadLetter(metrics_mod.described(late, why), late)
            failure: errors.StepError = errors.StepTimeoutError(
                f"step timed out after {step.timeout_seconds} s"
            )
        except agent_turns.AgentHalted as halt:  # a later turn of an agent may not go ahead
            return halt.ending
        except errors.StepError as exc:
            failure = exc
        except Exception as exc:
            failure = errors.UnexpectedError(exc)
        else:
            self._first_token(result)
            await self._report(step, verdict, None, taken_ms)
            await self.secrets.found(delivery.task.workflow, step.tool)
            return result
        if failure.tokens:  # the model answered: what it used counts, whatever follows
            await budgets.book(self.lua, delivery, tokens=failure.tokens, cost=failure.cost)
        if isinstance(failure, errors.SecretMissingError):
            await self.secrets.missing(delivery.task.workflow, failure.secret)
        await self._report(step, verdict, failure, taken_ms)
        return ending.after_failure(
            failure, delivery.task, step, pool=self.cfg.pool, now_ms=now(), rng=self.rng
        )

    async def _report(
        self,
        step: awf.Step,
        verdict: breaker.Verdict,
        failure: errors.StepError | None,
        taken_ms: float,
    ) -> None:
        """Tell the breaker (an agent's turns tell it of each call themselves) and the
        rate limit how the call went."""
        if step.kind != "agent":
            await self.guards.record(step, verdict, failure, finish.now_ms())
        await self.throttle.report(step, failure, taken_ms=taken_ms, now_ms=finish.now_ms())

    async def _execute(
        self,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        step: awf.Step,
        context: dict[str, Any],
        prompt: execute.Prompt | None,
        limit: float,
    ) -> execute.StepResult:
        """The call under its time limit; a streaming step's text is published as it
        comes, and whatever is left once the call ends, however it ends."""
        text = self._text_publisher(delivery) if step.stream else None
        on_text = None if text is None else text.add
        if step.kind == "agent":
            rendered = prompt or execute.render_prompt(step, context)  # raises what is wrong
            call = agent_turns.run(self, delivery, wf, step, context, rendered, on_text)
        else:
            call = execute.run_step(
                step, context, self.clients, prompt,
                idempotency_key=_key(delivery.task), on_text=on_text,
            )  # fmt: skip
        try:
            return await asyncio.wait_for(call, timeout=limit)
        finally:
            if text is not None:
                await text.close()

    def _text_publisher(self, delivery: intake.Delivery) -> streaming.TextPublisher:
        """Where a streamed reply's text goes: the run's events, best effort (the
        output the step completes with is what counts, and is stored whole)."""

        async def publish(text: str) -> None:
            try:
                await streamed.publish_text(self.lua, delivery, text, int(finish.now_ms()))
            except Exception as exc:  # a lost event must not fail the step
                log.warning("could not publish streamed text of %s: %r", delivery.task.step, exc)

        return streaming.TextPublisher(publish)

    def _first_token(self, result: execute.StepResult) -> None:
        if result.first_token_seconds is not None:
            self.metrics.first_token_seen(
                self.cfg.namespace,
                self.cfg.pool,
                seconds=result.first_token_seconds,
                trace_id=self.clients.tracing.current_trace_id(),
            )

    def _worst_case(
        self, step: awf.Step, prompt: execute.Prompt | None
    ) -> budgets.WorstCase | None:
        """What the call may spend at most, for the budgets and the rate limit; None for
        a tool step (no tokens) or a prompt that did not render (the call reports it)."""
        if prompt is None:
            return None
        schema = step.output.json_schema if step.output else None
        return policy.worst_case(
            prompt_tokens=tokens.prompt_tokens(prompt, self.count_tokens, schema=schema),
            max_tokens=step.max_tokens or self.cfg.spec.model.max_tokens,
            pricing=self.cfg.spec.model.pricing,
        )


def _key(task: messages.Task) -> str:
    return tools.idempotency_key(task.namespace, task.run_id, task.step, task.attempt)


def _rendered(step: awf.Step, context: dict[str, Any]) -> execute.Prompt | None:
    """A model step's prompt, rendered once for the cache, the budget and the call; None
    for a tool step, or when it cannot render (the call then reports the error)."""
    if step.kind == "tool":
        return None
    try:
        return execute.render_prompt(step, context)
    except Exception:
        return None


class SecretNotes:
    """Tells the operator which tool-header Secrets this namespace lacks, so the
    workflow's status can name them (trimtab.queue.workflows.missing_secrets): noted
    on each miss, cleared after a call that had them, at most every CLEAR_EVERY_S per
    Secret and process (another worker may have noted it since)."""

    CLEAR_EVERY_S = 10.0

    def __init__(self, client: connection.Redis, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self._cleared: dict[tuple[str, tuple[str, str]], float] = {}

    async def missing(self, workflow: str, secret: tuple[str, str]) -> None:
        self._cleared.pop((workflow, secret), None)
        await workflows.note_missing_secret(self.client, self.namespace, workflow, secret)

    async def found(self, workflow: str, call: awf.ToolCall | None) -> None:
        """`call` ran with every Secret its headers read."""
        if call is None:
            return
        now = time.monotonic()
        for header in call.headers:
            ref = header.value_from_secret
            if ref is None:
                continue
            key = (workflow, (ref.name, ref.key))
            if now - self._cleared.get(key, -self.CLEAR_EVERY_S) >= self.CLEAR_EVERY_S:
                self._cleared[key] = now
                await workflows.clear_missing_secret(self.client, self.namespace, workflow, key[1])

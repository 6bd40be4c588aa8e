"""An agent step's attempt: its transcript read back, its tools bound to the pool's
HTTP client, and each turn put through the guards a model call has (the breaker, the
budget hold of the turn's worst case, the booking of its spend), so trimtab.worker.agent
only loops. A turn that may not go ahead ends the attempt the way the guard says
(AgentHalted carries the ending), as a single model call would have."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import breaker, budgets, connection, intake, scripts, transcripts
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.worker import (
    agent,
    ending,
    errors,
    execute,
    finish,
    guard,
    policy,
    settings,
    spending,
    tokens,
)
from trimtab.worker.model_client import ModelReply, OnText

SUPERSEDED = "superseded: another delivery of this step started"


class AgentHalted(Exception):  # noqa: N818 - a way out of the loop, not a failure
    """A turn may not go ahead: the attempt ends with `ending` instead."""

    def __init__(self, end: ending.Ending) -> None:
        super().__init__(str(end))
        self.ending = end


class Deps(Protocol):
    """What an attempt has that a turn needs (trimtab.worker.attempt.Attempts)."""

    cfg: settings.WorkerSettings
    client: connection.Redis
    lua: scripts.Scripts
    clients: execute.Clients
    guards: guard.Guards
    spending: spending.Spending
    count_tokens: Callable[[str], int]


class AttemptTurns:
    """agent.Turns for one delivery of one agent step."""

    def __init__(
        self,
        deps: Deps,
        delivery: intake.Delivery,
        wf: compile_mod.CompiledWorkflow,
        step: awf.Step,
        offered_tokens: int,
    ) -> None:
        self.deps, self.delivery, self.wf, self.step = deps, delivery, wf, step
        self._offered_tokens = offered_tokens
        self._verdict: breaker.Verdict | None = None

    async def before_call(self, transcript: transcripts.Transcript) -> None:
        now = finish.now_ms()
        verdict = await self.deps.guards.check(self.step, now)
        if not verdict.allowed:
            raise AgentHalted(
                ending.breaker_open(
                    self.step, pool=self.deps.cfg.pool, retry_at_ms=verdict.retry_at_ms, now_ms=now
                )
            )
        self._verdict = verdict
        held = await self.deps.spending.hold(
            self.delivery, self.step, self.wf, self._worst(transcript)
        )
        if held is not None:
            raise AgentHalted(held)

    async def after_call(self, reply: ModelReply | None, error: errors.StepError | None) -> None:
        if self._verdict is not None:
            await self.deps.guards.record(self.step, self._verdict, error, finish.now_ms())

    async def book(self, reply: ModelReply) -> None:
        spent = reply.prompt_tokens + reply.completion_tokens
        cost = reply.cost(self.deps.cfg.spec.model.pricing)
        if not await budgets.book(self.deps.lua, self.delivery, tokens=spent, cost=cost):
            raise AgentHalted(ending.DeadLetter(SUPERSEDED))

    async def keep(self, transcript: transcripts.Transcript, phase: str, tools: list[str]) -> None:
        kept = await transcripts.keep(
            self.deps.lua, self.delivery, transcript, phase=phase, tools=tools,
            now_ms=int(finish.now_ms()),
        )  # fmt: skip
        if not kept:
            raise AgentHalted(ending.DeadLetter(SUPERSEDED))

    def call_key(self, turn: int, index: int) -> str:
        task = self.delivery.task
        return f"{task.namespace}/{task.run_id}/{task.step}/turn-{turn}/call-{index}"

    def _worst(self, transcript: transcripts.Transcript) -> budgets.WorstCase:
        count = self.deps.count_tokens
        sent = sum(count(_text(m)) + tokens.PER_MESSAGE for m in transcript.messages)
        model = self.deps.cfg.spec.model
        return policy.worst_case(
            prompt_tokens=sent + tokens.REPLY_PRIMING + self._offered_tokens,
            max_tokens=self.step.max_tokens or model.max_tokens,
            pricing=model.pricing,
        )


def _text(message: dict[str, Any]) -> str:
    calls = message.get("tool_calls")
    return str(message.get("content") or "") + (json.dumps(calls) if calls else "")


async def run(
    deps: Deps,
    delivery: intake.Delivery,
    wf: compile_mod.CompiledWorkflow,
    step: awf.Step,
    context: dict[str, Any],
    prompt: execute.Prompt,
    on_text: OnText | None,
) -> execute.StepResult:
    """One attempt of an agent step, from its kept transcript (or the start)."""
    task = delivery.task
    kept = await transcripts.read(deps.client, task.namespace, task.run_id, task.step)
    tools = awf.agent_tools_of(wf.spec, step)
    offered = sum(deps.count_tokens(json.dumps(agent.tool_spec(t))) for t in tools)
    assert step.agent is not None  # an agent step's CEL rule
    toolbox = agent.Toolbox(
        tools={t.name: t for t in tools},
        call=lambda tool, ctx, key: deps.clients.tools.call(
            tool.call, ctx, idempotency_key=key, name=tool.name
        ),
        max_parallel=step.agent.max_parallel_tool_calls,
    )
    turns = AttemptTurns(deps, delivery, wf, step, offered)
    start = kept or agent.opening(step, prompt)
    return await agent.run(step, toolbox, context, deps.clients, start, turns, on_text=on_text)

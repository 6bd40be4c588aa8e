"""Running one step attempt: render its template, call the model or tool, parse and
validate the output, and price it. Everything here is about one attempt; retries,
completion and dependents are the loop's business.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import schemas, templates
from trimtab.telemetry import tracing as traces
from trimtab.worker import errors
from trimtab.worker.model_client import ModelClient, ModelReply, OnText
from trimtab.worker.tools import ToolClient


@dataclasses.dataclass(frozen=True)
class StepResult:
    output: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    first_token_seconds: float | None = None  # a streamed reply's time to first text

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclasses.dataclass(frozen=True)
class Clients:
    model: ModelClient
    tools: ToolClient
    pricing: agentpool.Pricing
    tracing: traces.Tracing = dataclasses.field(default_factory=traces.Tracing)


def _render(
    template: str | None, context: Mapping[str, Any], max_value_tokens: int | None = None
) -> str | None:
    if template is None:
        return None
    try:
        return templates.render(template, context, max_value_tokens=max_value_tokens)
    except templates.TemplateError as exc:
        raise errors.TemplateInputError(str(exc)) from exc


def parse_output(content: str, output: awf.OutputSpec | None) -> Any:
    """The step's output value: JSON checked against the schema when there is one."""
    schema = output.json_schema if output else None
    if schema is None:
        return content
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise errors.InvalidOutputError(f"output is not JSON: {exc}", output=content) from exc
    error = schemas.first_error(schema, value)
    if error is not None:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise errors.InvalidOutputError(
            f"output fails its schema at {path}: {error.message}", output=content
        )
    return value


@dataclasses.dataclass(frozen=True)
class Prompt:
    """A model step's rendered messages, its inserted values pruned to `maxInputTokens`."""

    system: str | None
    user: str
    # The session's earlier turns the step remembers, before the prompt (trimtab.worker.memory).
    history: tuple[dict[str, Any], ...] = ()


def render_prompt(step: awf.Step, context: Mapping[str, Any]) -> Prompt:
    """Render once per attempt: the cache key, the budget check and the call share it."""
    return Prompt(
        system=_render(step.system, context, step.max_input_tokens),
        user=_render(step.prompt, context, step.max_input_tokens) or "",
    )


async def run_model_step(
    step: awf.Step,
    context: Mapping[str, Any],
    clients: Clients,
    prompt: Prompt | None = None,
    *,
    on_text: OnText | None = None,
) -> StepResult:
    """One model call; streamed when `on_text` is given (it gets the text as it comes)."""
    prompt = prompt or render_prompt(step, context)
    schema = step.output.json_schema if step.output else None
    reply = await clients.model.chat(
        system=prompt.system,
        prompt=prompt.user,
        max_tokens=step.max_tokens,
        json_schema=schema,
        on_text=on_text,
        history=prompt.history,
    )
    return reply_result(reply, step.output, clients.pricing)


def reply_result(
    reply: ModelReply, output: awf.OutputSpec | None, pricing: agentpool.Pricing
) -> StepResult:
    """A model's answer as the step's result: its output parsed and checked, priced;
    an InvalidOutputError carries what the refused answer spent."""
    cost = reply.cost(pricing)
    try:
        value = parse_output(reply.content, output)
    except errors.InvalidOutputError as exc:
        exc.tokens, exc.cost = reply.prompt_tokens + reply.completion_tokens, cost
        raise
    return StepResult(
        output=value,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        cost=cost,
        first_token_seconds=reply.first_token_seconds,
    )


async def run_tool_step(
    step: awf.Step, context: Mapping[str, Any], clients: Clients, *, idempotency_key: str | None
) -> StepResult:
    assert step.tool is not None  # guaranteed by the step's CEL rule
    value = await clients.tools.call(
        step.tool, context, idempotency_key=idempotency_key, name=step.name
    )
    if step.output and step.output.json_schema is not None:
        parse_output(json.dumps(value), step.output)
    return StepResult(output=value)


async def run_step(
    step: awf.Step,
    context: Mapping[str, Any],
    clients: Clients,
    prompt: Prompt | None = None,
    *,
    idempotency_key: str | None = None,
    on_text: OnText | None = None,
) -> StepResult:
    """One attempt; a model step's `prompt` is rendered here when not given, and its
    reply streamed to `on_text` when given; a tool call carries `idempotency_key`
    (tools.idempotency_key)."""
    if step.kind == "tool":
        return await run_tool_step(step, context, clients, idempotency_key=idempotency_key)
    return await run_model_step(step, context, clients, prompt, on_text=on_text)

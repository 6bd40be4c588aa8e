"""Agent steps: a model that calls the workflow's tools, turn by turn, until it answers.

Each turn sends the conversation with the step's tools offered; a reply that asks for
tool calls has them made (at once, up to agent.maxParallelToolCalls) and their
results appended as `tool` messages; a reply without calls is the answer, checked
against output.schema. Turns that offer tools ask for the schema in words only (a
server that enforces a schema by grammar would never let the model call a tool); an
answer outside it is sent back with the reason and asked for again on an answer turn,
which withholds the tools and asks for the schema the pool's way. The last turn is an
answer turn, so a step always ends with an answer or an error.

The transcript is kept with the run twice a turn (trimtab.queue.transcripts), after
the reply and after its calls' results, so whoever runs the step next (a retry, or the
worker that took over a dead one's delivery) goes on from the last kept point: a reply
whose calls have no results yet has them made then, with the same Idempotency-Key
(NAMESPACE/RUN/STEP/turn-N/call-I), so a tool can tell a repeat from a new call.

The guards of a model call apply to every turn (`Turns`, from the attempt): the budget
holds the next turn's worst case, the breaker is asked, and each earlier turn's spend
is booked as it happens. A call the model gets wrong (a tool it may not call,
arguments that are not JSON or do not fit) is not made; the model is told why, and
too many fail the step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue.transcripts import Transcript
from trimtab.reconcile.agentworkflow import schemas
from trimtab.worker import chat_request, errors, execute
from trimtab.worker.model_client import ModelReply, OnText, ToolCallRequest

# A tool's result is cut to this many characters in the conversation: the model reads
# it on every later turn, and the transcript is kept with the run.
RESULT_MAX_CHARS = 8000


class Turns(Protocol):
    """What the attempt around the agent does for each turn."""

    async def before_call(self, transcript: Transcript) -> None:
        """Hold the turn's worst case and ask the breaker; raises errors.AgentHalted
        with the attempt's ending when the turn may not go ahead."""

    async def after_call(self, reply: ModelReply | None, error: errors.StepError | None) -> None:
        """Report the call to the breaker."""

    async def book(self, reply: ModelReply) -> None:
        """Book a turn's spend that is not the answer's (the completion books that)."""

    async def keep(self, transcript: Transcript, phase: str, tools: list[str]) -> None:
        """Keep the transcript; raises errors.AgentHalted when another delivery runs
        the step now."""

    def call_key(self, turn: int, index: int) -> str:
        """The Idempotency-Key of a turn's tool call."""


def tool_spec(tool: awf.AgentTool) -> dict[str, Any]:
    """The tool as the model is offered it (OpenAI function tools)."""
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def opening(step: awf.Step, prompt: execute.Prompt) -> Transcript:
    """The conversation before the first turn. The schema is asked for in words: turns
    that offer tools cannot enforce it (see `run`)."""
    schema = step.output.json_schema if step.output else None
    messages = chat_request.messages_for(
        prompt.system, prompt.user, schema, "Prompt", prompt.history
    )
    return Transcript(tuple(messages))


@dataclasses.dataclass(frozen=True)
class Toolbox:
    """The tools one agent step may call, and how to call one."""

    tools: Mapping[str, awf.AgentTool]
    call: Callable[[awf.AgentTool, Mapping[str, Any], str], Awaitable[Any]]
    max_parallel: int


async def run(
    step: awf.Step,
    toolbox: Toolbox,
    context: Mapping[str, Any],
    clients: execute.Clients,
    transcript: Transcript,
    turns: Turns,
    *,
    on_text: OnText | None = None,
) -> execute.StepResult:
    """Turns from `transcript` on until the model answers; the answer's output."""
    assert step.agent is not None  # an agent step's CEL rule
    offered = [tool_spec(t) for t in toolbox.tools.values()]
    schema = step.output.json_schema if step.output else None
    inputs = {"inputs": context.get("inputs", {})}
    t = transcript
    if pending := t.pending_calls():
        t = await _results(t, pending, toolbox, inputs, turns, step.agent)
    # After a turn, a user message last is the nudge below: the last reply answered
    # outside the schema (also after a restart, from the kept transcript).
    reformat = t.turns > 0 and t.messages[-1].get("role") == "user"
    while True:
        # An answer turn withholds the tools and asks for the schema the pool's way:
        # offered together, a server that enforces the schema by grammar (llama.cpp)
        # would never let the model call a tool.
        answering = reformat or t.turns >= step.agent.max_turns - 1
        await turns.before_call(t)
        try:
            reply = await clients.model.converse(
                t.messages,
                tools=() if answering else offered,
                max_tokens=step.max_tokens,
                json_schema=schema if answering else None,
                on_text=on_text,
            )
        except errors.StepError as exc:
            await turns.after_call(None, exc)
            raise
        await turns.after_call(reply, None)
        t = dataclasses.replace(t, messages=(*t.messages, reply.message()), turns=t.turns + 1)
        if reply.tool_calls and not answering:
            await turns.book(reply)
            await turns.keep(t, "reply", [c.name for c in reply.tool_calls])
            calls = [c.message() for c in reply.tool_calls]
            t = await _results(t, calls, toolbox, inputs, turns, step.agent)
            continue
        problem = None if answering else _unfit(reply.content, step.output)
        if problem is None:
            return await _answer(step, t, reply, turns, clients)
        # Asked in words only, the model answered outside the schema: say why, and ask
        # once more with the schema enforced (the next turn is an answer turn).
        await turns.book(reply)
        nudge = {"role": "user", "content": f"{problem}. Answer again, as the JSON asked for."}
        t = dataclasses.replace(t, messages=(*t.messages, nudge))
        await turns.keep(t, "reply", [])
        reformat = True


def _unfit(content: str, output: awf.OutputSpec | None) -> str | None:
    try:
        execute.parse_output(content, output)
    except errors.InvalidOutputError as exc:
        return str(exc)
    return None


async def _answer(
    step: awf.Step, t: Transcript, reply: ModelReply, turns: Turns, clients: execute.Clients
) -> execute.StepResult:
    result = execute.reply_result(reply, step.output, clients.pricing)
    await turns.keep(t, "answer", [])
    return result


async def _results(
    t: Transcript,
    calls: list[dict[str, Any]],
    toolbox: Toolbox,
    inputs: Mapping[str, Any],
    turns: Turns,
    agent: awf.AgentSpec,
) -> Transcript:
    """The transcript with a result for each of `calls` (the last reply's), kept."""
    turn = t.turns
    outcomes = await asyncio.gather(
        *(_one_call(i, call, toolbox, inputs, turns, turn) for i, call in enumerate(calls))
    )
    invalid = t.invalid_calls + sum(1 for _, bad in outcomes if bad)
    messages = [
        {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}
        for call, (content, _) in zip(calls, outcomes, strict=True)
    ]
    t = dataclasses.replace(t, messages=(*t.messages, *messages), invalid_calls=invalid)
    await turns.keep(t, "results", [])  # kept either way: the record shows the refusals
    if invalid > agent.max_invalid_tool_calls:
        reasons = "; ".join(content for content, bad in outcomes if bad)
        raise errors.InvalidToolCallsError(invalid, agent.max_invalid_tool_calls, reasons)
    return t


async def _one_call(
    index: int,
    call: Mapping[str, Any],
    toolbox: Toolbox,
    inputs: Mapping[str, Any],
    turns: Turns,
    turn: int,
) -> tuple[str, bool]:
    """(what the model is told, whether the call was invalid) for one tool call."""
    function = call.get("function") or {}
    request = ToolCallRequest(
        str(call.get("id", "")), str(function.get("name", "")), str(function.get("arguments") or "")
    )
    tool, problem, args = _checked(index, request, toolbox)
    if tool is None:
        return f"error: {problem}", True
    key = turns.call_key(turn, index)
    try:
        value = await asyncio.wait_for(
            toolbox.call(tool, {**inputs, "args": args}, key), timeout=tool.timeout_seconds
        )
    except TimeoutError:
        return f"error: {tool.name} did not answer within {tool.timeout_seconds:g} s", False
    except errors.TemplateInputError as exc:
        return f"error: the arguments cannot make {tool.name}'s request: {exc}", True
    except errors.SecretMissingError:
        raise  # the same for every call until someone creates it: the step fails
    except errors.StepError as exc:
        return f"error: {tool.name} failed: {exc}", False
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return _cut(text), False


def _checked(
    index: int, request: ToolCallRequest, toolbox: Toolbox
) -> tuple[awf.AgentTool | None, str, dict[str, Any]]:
    """The tool a call may make and its arguments, or None and why it may not."""
    if index >= toolbox.max_parallel:
        return None, f"at most {toolbox.max_parallel} tool calls a turn; this one was not made", {}
    tool = toolbox.tools.get(request.name)
    if tool is None:
        offered = ", ".join(toolbox.tools) or "none"
        return None, f"there is no tool {request.name!r} here (tools: {offered})", {}
    problem, args = _arguments(tool, request.arguments)
    return (None, problem, {}) if problem is not None else (tool, "", args)


def _arguments(tool: awf.AgentTool, text: str) -> tuple[str | None, dict[str, Any]]:
    try:
        args = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        return f"the arguments of {tool.name} are not JSON: {exc}", {}
    if not isinstance(args, dict):
        return f"the arguments of {tool.name} must be a JSON object", {}
    found = schemas.first_error(tool.parameters, args)
    if found is not None:
        where = "/".join(str(p) for p in found.absolute_path) or "(root)"
        return f"the arguments do not fit {tool.name}'s parameters at {where}: {found.message}", {}
    return None, args


def _cut(text: str) -> str:
    if len(text) <= RESULT_MAX_CHARS:
        return text
    return text[:RESULT_MAX_CHARS] + f"[... cut to {RESULT_MAX_CHARS} characters]"

"""The pure parts of agent steps: which calls a transcript still owes, how a tool call
is checked before it is made, and the conversation an agent starts from."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue.transcripts import Transcript
from trimtab.worker import agent, execute
from trimtab.worker.model_client import ModelReply, ToolCallRequest

LOOKUP = awf.AgentTool.model_validate(
    {
        "name": "lookup",
        "description": "Look up an order.",
        "parameters": {
            "type": "object",
            "properties": {"id": {"type": "string", "maxLength": 5}},
            "required": ["id"],
        },
        "call": {"url": "http://orders.local/v1/{{ args.id }}", "method": "GET"},
    }
)


async def _never(tool: awf.AgentTool, ctx: Any, key: str) -> Any:
    raise AssertionError("no call should be made")


TOOLBOX = agent.Toolbox(tools={"lookup": LOOKUP}, call=_never, max_parallel=2)


def _call(name: str, arguments: str, id_: str = "c1") -> ToolCallRequest:
    return ToolCallRequest(id_, name, arguments)


@pytest.mark.parametrize(
    ("index", "request_", "says"),
    [
        pytest.param(
            0,
            _call("refund", "{}"),
            "there is no tool 'refund' here (tools: lookup)",
            id="unknown-tool",
        ),
        pytest.param(
            0, _call("lookup", "{id: 7"), "the arguments of lookup are not JSON", id="not-json"
        ),
        pytest.param(0, _call("lookup", "[1]"), "must be a JSON object", id="not-an-object"),
        pytest.param(
            0,
            _call("lookup", '{"id": "toolong"}'),
            "do not fit lookup's parameters at id",
            id="misfit",
        ),
        pytest.param(0, _call("lookup", "{}"), "'id' is a required property", id="missing"),
        pytest.param(
            2, _call("lookup", '{"id": "7"}'), "at most 2 tool calls a turn", id="too-many"
        ),
    ],
)
def test_a_call_that_may_not_be_made_says_why(
    index: int, request_: ToolCallRequest, says: str
) -> None:
    tool, problem, _ = agent._checked(index, request_, TOOLBOX)
    assert tool is None
    assert says in problem


def test_a_fitting_call_gets_its_tool_and_arguments() -> None:
    tool, problem, args = agent._checked(1, _call("lookup", '{"id": "7"}'), TOOLBOX)
    assert (tool, problem, args) == (LOOKUP, "", {"id": "7"})


def test_the_calls_a_transcript_owes_are_the_last_replys_without_results() -> None:
    reply = ModelReply(
        "", 1, 1, "tool_calls", tool_calls=(_call("lookup", "{}", "a"), _call("lookup", "{}", "b"))
    )
    start = ({"role": "user", "content": "hi"}, reply.message())
    assert [c["id"] for c in Transcript(start, turns=1).pending_calls()] == ["a", "b"]
    half = (*start, {"role": "tool", "tool_call_id": "a", "content": "ok"})
    assert [c["id"] for c in Transcript(half, turns=1).pending_calls()] == ["b"]
    done = (*half, {"role": "tool", "tool_call_id": "b", "content": "ok"})
    assert Transcript(done, turns=1).pending_calls() == []
    assert Transcript(({"role": "user", "content": "hi"},)).pending_calls() == []


def test_a_transcript_round_trips_through_its_json() -> None:
    t = Transcript(({"role": "user", "content": "h\u00e9"},), turns=3, invalid_calls=1)
    assert Transcript.from_json(t.to_json()) == t


def test_an_agent_starts_with_its_system_the_schema_in_words_its_history_and_its_prompt() -> None:
    step = awf.Step.model_validate(
        {
            "name": "a",
            "kind": "agent",
            "prompt": "p",
            "agent": {},
            "output": {"schema": {"type": "object"}},
        }
    )
    history = ({"role": "user", "content": "before"}, {"role": "assistant", "content": "ok"})
    t = agent.opening(step, execute.Prompt(system="sys", user="now", history=history))
    roles = [m["role"] for m in t.messages]
    assert roles == ["system", "system", "user", "assistant", "user"]
    assert json.loads(t.messages[1]["content"].split("\n", 1)[1]) == {"type": "object"}
    assert t.messages[-1]["content"] == "now"
    assert t.turns == 0


def test_a_tool_is_offered_as_an_openai_function() -> None:
    assert agent.tool_spec(LOOKUP) == {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up an order.",
            "parameters": LOOKUP.parameters,
        },
    }

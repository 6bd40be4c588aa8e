"""Agent steps on a real redis-server, the real simulator calling tools, and in-process
workers: the loop, its transcript kept turn by turn, resumption without repeated tool
calls, bounded invalid calls, and the last turn's answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import transcripts, wire
from trimtab.sdk import Client

NS = "agents"
ANSWER = {
    "type": "object",
    "required": ["response", "confidence"],
    "properties": {
        "response": {"type": "string", "minLength": 1, "maxLength": 200},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "additionalProperties": False,
}
FAST = {"ttft_seconds": 0.0, "per_token_seconds": 0.0, "output_tokens_mean": 20}
SIM_CONFIG: dict[str, Any] = {
    "seed": 5,
    "tool_delay_seconds": 0.0,
    "default": FAST,
    "models": {
        # Calls tools, then fails once on the turn after: the retry goes on from there.
        "dies-after-tools": {"name": "dies-after-tools", **FAST, "script": ["ok", "500"]},
        # Calls tools, drafts its answer outside the schema, then fails once on the turn
        # that asks for it formatted: the retry asks for it formatted again.
        "dies-after-draft": {"name": "dies-after-draft", **FAST, "script": ["ok", "ok", "500"]},
        # Gets every tool call's arguments wrong.
        "clumsy": {
            "name": "clumsy",
            **FAST,
            "tool_turns": 5,
            "script": ["schema_violation"] * 5,
        },
        # Would call tools forever.
        "eager": {"name": "eager", **FAST, "tool_turns": 32},
    },
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


def _workflow(sim: str, extra: dict[str, Any] | None = None, **agent: Any) -> awf.AgentWorkflowSpec:
    tools = sim.removesuffix("/v1") + "/tools"
    step_extra = (extra or {}).pop("step", {})
    return awf.AgentWorkflowSpec.model_validate(
        {
            **(extra or {}),
            "defaultPool": "p",
            "tools": [
                {
                    "name": "lookup_order",
                    "description": "Look up an order by id.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "order_id": {"type": "string", "minLength": 3, "maxLength": 12}
                        },
                        "required": ["order_id"],
                        "additionalProperties": False,
                    },
                    "call": {
                        "url": tools + "/lookup_order",
                        "body": '{"id": "{{ args.order_id }}", '
                        '"customer": "{{ inputs.customer }}"}',
                    },
                },
                {
                    "name": "search_policy",
                    "description": "Search the refund policy.",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "query": {"type": "string", "minLength": 1, "maxLength": 40}
                        },
                        "required": ["query"],
                    },
                    "call": {"url": tools + "/search_policy", "body": '{"q": "{{ args.query }}"}'},
                },
            ],
            "steps": [
                {
                    "name": "agent",
                    "kind": "agent",
                    "system": "You are a support agent.",
                    "prompt": "Customer {{ inputs.customer }}: where is my refund?",
                    "agent": {"tools": ["lookup_order", "search_policy"], **agent},
                    **step_extra,
                    "output": {"schema": ANSWER},
                    "retry": {
                        "maxAttempts": 3,
                        "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1},
                    },
                }
            ],
        }
    )


def _tool_requests(sim: str) -> int:
    stats = httpx.get(sim.removesuffix("/v1") + "/stats").json()["tools"]
    return sum(
        c["requests"] for name, c in stats.items() if name in {"lookup_order", "search_policy"}
    )


async def _run(
    sdk: Client,
    sim: str,
    redis_url: str,
    model: str,
    name: str,
    extra: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
    **agent: Any,
) -> tuple[str, list[dict[str, str]]]:
    await sdk.publish(NS, name, _workflow(sim, extra, **agent))
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim, model=model), redis_url)
    async with runtime.in_process_worker(cfg):
        run = await sdk.submit(NS, name, inputs or {"customer": "c-42"})
        events = [e async for e in sdk.events(run)]
    return run, events


def _kept(sdk: Client, run: str) -> Any:
    return transcripts.read(sdk.redis, NS, run.rsplit("/", maxsplit=1)[-1], "agent")


async def test_an_agent_calls_tools_reads_their_results_and_answers_to_its_schema(
    sim: str, redis_url: str, sdk: Client
) -> None:
    before = _tool_requests(sim)
    run, events = await _run(sdk, sim, redis_url, "sim-small", "helpdesk")
    result = await sdk.result(run)
    assert result.status == "succeeded"
    assert set(result.outputs["agent"]) == {"response", "confidence"}
    kept = await _kept(sdk, run)
    assert kept is not None
    # The simulator answers turn 2 in plain text (it reads no instructions), so turn 3
    # asks again with the schema enforced and no tools.
    assert kept.turns == 3
    roles = [m["role"] for m in kept.messages]
    assert roles[:3] == ["system", "system", "user"]  # the step's system, the schema
    reply = kept.messages[3]
    calls = reply["tool_calls"]
    tail = ["assistant", "user", "assistant"]  # the draft, why it does not fit, the answer
    assert roles[3:] == ["assistant"] + ["tool"] * len(calls) + tail
    assert "output is not JSON" in kept.messages[-2]["content"]
    results = kept.messages[4 : 4 + len(calls)]
    assert [r["tool_call_id"] for r in results] == [c["id"] for c in calls]
    assert _tool_requests(sim) - before == len(calls)
    assert all('"idempotency_key":"' in r["content"] for r in results)
    keys = sorted(r["content"].split('"idempotency_key":"')[1].split('"')[0] for r in results)
    run_id = run.rsplit("/", maxsplit=1)[-1]
    assert keys == [f"{NS}/{run_id}/agent/turn-1/call-{i}" for i in range(len(calls))]
    phases = [(e["phase"], e["turn"]) for e in events if e["type"] == wire.EventType.AGENT_TURN]
    assert phases == [("reply", "1"), ("results", "1"), ("reply", "2"), ("answer", "3")]


async def test_a_retry_goes_on_from_the_kept_turn_without_calling_its_tools_again(
    sim: str, redis_url: str, sdk: Client
) -> None:
    before = _tool_requests(sim)
    run, events = await _run(sdk, sim, redis_url, "dies-after-tools", "resume")
    result = await sdk.result(run)
    assert result.status == "succeeded"
    kept = await _kept(sdk, run)
    calls = kept.messages[3]["tool_calls"]
    assert _tool_requests(sim) - before == len(calls)  # made once, by the first attempt
    assert kept.turns == 3
    assert [e["type"] for e in events].count(wire.EventType.STEP_RETRY) == 1
    state = await sdk.get(run)
    assert state.steps["agent"].attempt == 2


async def test_invalid_tool_calls_are_refused_to_the_model_and_bounded(
    sim: str, redis_url: str, sdk: Client
) -> None:
    before = _tool_requests(sim)
    run, _ = await _run(sdk, sim, redis_url, "clumsy", "clumsy", maxInvalidToolCalls=1, maxTurns=5)
    result = await sdk.result(run)
    assert result.status == "failed"
    assert "invalid tool calls" in (result.errors.get("agent") or "")
    assert _tool_requests(sim) == before  # no call with bad arguments was made
    kept = await _kept(sdk, run)
    refusals = [m["content"] for m in kept.messages if m["role"] == "tool"]
    assert refusals
    assert all(r.startswith("error: the arguments do not fit") for r in refusals)


async def test_the_last_turn_offers_no_tools_so_the_agent_answers(
    sim: str, redis_url: str, sdk: Client
) -> None:
    run, _ = await _run(sdk, sim, redis_url, "eager", "eager", maxTurns=3)
    result = await sdk.result(run)
    assert result.status == "succeeded"
    kept = await _kept(sdk, run)
    assert kept.turns == 3
    assert "tool_calls" not in kept.messages[-1]


async def test_each_turn_is_held_on_the_runs_budget_and_a_turn_that_would_overrun_it_stops(
    sim: str, redis_url: str, sdk: Client
) -> None:
    # Turn 1 (a ~400-token prompt and 2000 to answer) fits 2700; turn 2 cannot: the
    # tool's result echoes the long input twice, on top of turn 1's booked spend.
    budget = {"budget": {"maxTokensPerRun": 2700}, "step": {"maxTokens": 2000}}
    long_name = "c-" + "x" * 1200
    run, _ = await _run(
        sdk, sim, redis_url, "eager", "budgeted", budget, {"customer": long_name},
        tools=["lookup_order"], maxTurns=4,
    )  # fmt: skip
    result = await sdk.result(run)
    assert result.status == "failed"
    assert "budget" in (result.errors.get("agent") or "")
    kept = await _kept(sdk, run)
    assert kept.turns == 1  # turn 1 ran, its results are in, turn 2 never went out
    assert [m["role"] for m in kept.messages][-1] == "tool"
    assert 0 < result.tokens <= 2700  # turn 1's spend was booked on the run


async def test_runs_get_shows_the_agents_turns(
    sim: str, redis_url: str, sdk: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    from trimtab import cli  # noqa: PLC0415

    run, _ = await _run(sdk, sim, redis_url, "sim-small", "shown")
    await sdk.result(run)
    code = await asyncio.to_thread(cli.main, ["runs", "get", run, "--redis-url", redis_url])
    out = capsys.readouterr().out
    assert code == 0
    assert "agent agent: 3 turn(s), 0 invalid tool call(s)" in out
    assert "    turn 1: called " in out
    assert "      -> " in out
    assert "    turn 3: answered {" in out


async def test_a_retry_after_the_nudge_asks_for_the_formatted_answer_again(
    sim: str, redis_url: str, sdk: Client
) -> None:
    run, _ = await _run(sdk, sim, redis_url, "dies-after-draft", "nudged")
    result = await sdk.result(run)
    assert result.status == "succeeded"
    kept = await _kept(sdk, run)
    nudges = [m for m in kept.messages[3:] if m["role"] == "user"]
    assert len(nudges) == 1  # the retry went straight to the answer turn
    assert kept.turns == 3

"""Wire compatibility with a model server this project did not write: llama.cpp's own
llama-server (built from source by hack/build-llama-server.sh) serving a tiny
random-weight model (trimtab_dev.llama). Its text is noise, but llama.cpp enforces JSON
schemas and tool-call formats by grammar, so what these tests assert is real: request
bodies it accepts, schema-shaped outputs, SSE streams, usage, tool calls and its error
shapes. Model steps, streaming steps and agent steps run through a real worker and a
real redis-server; tools are the project simulator's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import transcripts, wire
from trimtab.sdk import Client
from trimtab.worker import errors
from trimtab.worker.model_client import ModelClient
from trimtab_dev.llama import server as llama

NS = "llama"
API_KEY = "test-key"
# Strict-qualifying: closed, every property required; strings bounded so a reply ends.
ANSWER = {
    "type": "object",
    "properties": {
        "response": {"type": "string", "maxLength": 40},
        "intent": {"type": "string", "enum": ["billing", "refund", "other"]},
        "confidence": {"type": "number"},
    },
    "required": ["response", "intent", "confidence"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    with llama.running_llama_server() as url:
        yield url


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), {"seed": 1}) as url:
        yield url


def _pool(url: str, **model: Any) -> agentpool.AgentPoolSpec:
    return runtime.pool_spec(url, model="tiny", model__maxTokens=200, **model)


def _endpoint(url: str, **fields: Any) -> agentpool.ModelEndpoint:
    return agentpool.ModelEndpoint.model_validate(
        {"endpoint": url, "name": "tiny", "maxTokens": 200, **fields}
    )


async def _run(
    sdk: Client, redis_url: str, pool: agentpool.AgentPoolSpec, name: str, spec: dict[str, Any]
) -> tuple[str, list[dict[str, str]]]:
    await sdk.publish(NS, name, awf.AgentWorkflowSpec.model_validate({"defaultPool": "p", **spec}))
    cfg = runtime.worker_settings(NS, "p", pool, redis_url)
    async with runtime.in_process_worker(cfg):
        run = await sdk.submit(NS, name, {"q": "where is my refund?"})
        events = [e async for e in sdk.events(run, block_ms=5000)]
    return run, events


async def test_a_model_steps_output_fits_its_schema_and_is_priced_by_reported_usage(
    llama_url: str, redis_url: str, sdk: Client
) -> None:
    step = {"name": "answer", "prompt": "Answer: {{ inputs.q }}", "output": {"schema": ANSWER}}
    run, _ = await _run(sdk, redis_url, _pool(llama_url), "schema", {"steps": [step]})
    result = await sdk.result(run)
    assert result.status == "succeeded", result.errors
    jsonschema.validate(result.outputs["answer"], ANSWER)
    assert result.tokens > 0
    assert result.cost > 0


async def test_a_streaming_step_publishes_the_servers_chunks_and_validates_the_whole(
    llama_url: str, redis_url: str, sdk: Client
) -> None:
    step = {
        "name": "answer",
        "prompt": "Answer: {{ inputs.q }}",
        "stream": True,
        "output": {"schema": ANSWER},
    }
    run, events = await _run(sdk, redis_url, _pool(llama_url), "stream", {"steps": [step]})
    result = await sdk.result(run)
    assert result.status == "succeeded", result.errors
    texts = [e["text"] for e in events if e["type"] == wire.EventType.TOKENS]
    assert texts
    assert json.loads("".join(texts)) == result.outputs["answer"]


async def test_an_agent_calls_a_tool_on_the_real_server_and_answers_to_its_schema(
    llama_url: str, sim: str, redis_url: str, sdk: Client
) -> None:
    spec = {
        "tools": [
            {
                "name": "lookup_order",
                "description": "Look up an order by its id.",
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string", "maxLength": 12}},
                    "required": ["order_id"],
                },
                "call": {
                    "url": sim.removesuffix("/v1") + "/tools/lookup_order",
                    "body": '{"order_id": "{{ args.order_id }}"}',
                },
            }
        ],
        "steps": [
            {
                "name": "agent",
                "kind": "agent",
                "prompt": "{{ inputs.q }}",
                "agent": {"tools": ["lookup_order"], "maxTurns": 4, "maxInvalidToolCalls": 3},
                "output": {"schema": ANSWER},
                "retry": {"maxAttempts": 2},
            }
        ],
    }
    run, _ = await _run(sdk, redis_url, _pool(llama_url), "agent", spec)
    result = await sdk.result(run)
    assert result.status == "succeeded", result.errors
    jsonschema.validate(result.outputs["agent"], ANSWER)
    kept = await transcripts.read(sdk.redis, NS, run.rsplit("/", 1)[-1], "agent")
    assert kept is not None
    calls = [c for m in kept.messages for c in m.get("tool_calls") or []]
    assert calls
    assert {c["function"]["name"] for c in calls} == {"lookup_order"}
    results = [m for m in kept.messages if m["role"] == "tool"]
    assert any('"tool":"lookup_order"' in r["content"] for r in results)


async def test_the_completion_limit_is_honoured_in_either_field(llama_url: str) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        client = ModelClient(
            _endpoint(llama_url, maxTokensField=field, maxTokens=3), api_key=None, max_connections=2
        )
        try:
            reply = await client.chat(system=None, prompt="Say a lot.")
        finally:
            await client.aclose()
        assert reply.completion_tokens <= 3
        assert reply.prompt_tokens > 0


async def test_json_object_mode_gives_a_json_object(llama_url: str) -> None:
    client = ModelClient(
        _endpoint(llama_url, structuredOutput="JsonObject"), api_key=None, max_connections=2
    )
    try:
        reply = await client.chat(system=None, prompt="Reply in JSON.", json_schema=ANSWER)
    finally:
        await client.aclose()
    assert reply.finish_reason == "stop"
    assert isinstance(json.loads(reply.content), dict)


async def test_sampling_parameters_are_accepted_and_a_seed_repeats_a_reply(llama_url: str) -> None:
    params = {
        "temperature": 0.7,
        "topP": 0.9,
        "seed": 42,
        "stop": ["\n\n"],
        "extraBody": {"min_p": 0.05},
    }
    client = ModelClient(_endpoint(llama_url, parameters=params), api_key=None, max_connections=2)
    try:
        first = await client.chat(system=None, prompt="Hello", json_schema=ANSWER)
        again = await client.chat(system=None, prompt="Hello", json_schema=ANSWER)
    finally:
        await client.aclose()
    assert first.content == again.content


async def test_a_parameter_the_server_refuses_fails_the_step_once_with_its_message(
    llama_url: str, redis_url: str, sdk: Client
) -> None:
    # llama.cpp's own `grammar` field, sent through extraBody, with a grammar it cannot parse.
    pool = _pool(llama_url, model__parameters={"extraBody": {"grammar": "root ::= ((("}})
    step = {"name": "answer", "prompt": "{{ inputs.q }}", "retry": {"maxAttempts": 3}}
    run, events = await _run(sdk, redis_url, pool, "refused", {"steps": [step]})
    result = await sdk.result(run)
    assert result.status == "failed"
    error = result.errors["answer"]
    assert "HTTP 400: Failed to initialize samplers: failed to parse grammar" in error
    assert wire.EventType.STEP_RETRY not in [e["type"] for e in events]  # a 4xx is final


async def test_the_api_key_is_sent_as_a_bearer_token() -> None:
    with llama.running_llama_server(api_key=API_KEY) as url:
        spec = _endpoint(url)
        good = ModelClient(spec, api_key=API_KEY, max_connections=2)
        bad = ModelClient(spec, api_key="wrong", max_connections=2)
        try:
            assert (await good.chat(system=None, prompt="Hi")).prompt_tokens > 0
            with pytest.raises(errors.ModelError) as refused:
                await bad.chat(system=None, prompt="Hi")
        finally:
            await good.aclose()
            await bad.aclose()
    assert str(refused.value).startswith("HTTP 401")
    assert not refused.value.retryable

"""Streaming model steps: a reply's text reaches the run's events as it is written, on
a real redis-server, the real simulator streaming over SSE, and an in-process worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness import runtime
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import wire
from trimtab.sdk import Client

NS = "stream"
SCHEMA = {
    "type": "object",
    "required": ["response", "confidence"],
    "properties": {
        "response": {"type": "string", "minLength": 1},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
}
SIM_CONFIG: dict[str, Any] = {
    "seed": 11,
    "default": {"ttft_seconds": 0.02, "per_token_seconds": 0.004, "output_tokens_mean": 40},
    "models": {
        # The first reply breaks its schema, the second keeps it.
        "flaky": {
            "name": "flaky",
            "ttft_seconds": 0.02,
            "per_token_seconds": 0.004,
            "script": ["schema_violation", "ok"],
        },
    },
}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with runtime.running_sim(tmp_path_factory.mktemp("sim"), SIM_CONFIG) as url:
        yield url


def _workflow(stream: bool) -> awf.AgentWorkflowSpec:
    step = {
        "name": "reply",
        "prompt": "Answer {{ inputs.q }}",
        "stream": stream,
        "output": {"schema": SCHEMA},
        "retry": {"maxAttempts": 3, "backoff": {"initialSeconds": 0.05, "maxSeconds": 0.1}},
    }
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": "p", "steps": [step]})


async def _events(sdk: Client, run: str) -> list[dict[str, str]]:
    return [event async for event in sdk.events(run)]


def _texts(events: list[dict[str, str]], attempt: str) -> list[str]:
    return [
        e["text"]
        for e in events
        if e["type"] == wire.EventType.TOKENS and e["step"] == "reply" and e["attempt"] == attempt
    ]


async def test_a_streaming_steps_text_arrives_in_pieces_before_its_step_is_done(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "chat", _workflow(stream=True))
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    async with runtime.in_process_worker(cfg) as worker:
        run = await sdk.submit(NS, "chat", {"q": "where is my order?"})
        events = await _events(sdk, run)
        result = await sdk.result(run, timeout=20)
    assert result.status == "succeeded"
    texts = _texts(events, "1")
    assert len(texts) > 1
    assert json.loads("".join(texts)) == result.outputs["reply"]
    types = [e["type"] for e in events]
    assert types.index(wire.EventType.TOKENS) < types.index(wire.EventType.STEP_DONE)
    assert max(i for i, t in enumerate(types) if t == wire.EventType.TOKENS) < types.index(
        wire.EventType.STEP_DONE
    )
    counts = [
        s.value
        for family in worker.metrics.first_token_seconds.collect()
        for s in family.samples
        if s.name.endswith("_count") and s.labels == {"namespace": NS, "pool": "p"}
    ]
    assert counts == [1.0]


async def test_a_step_that_does_not_stream_publishes_no_text(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "quiet", _workflow(stream=False))
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim), redis_url)
    async with runtime.in_process_worker(cfg):
        run = await sdk.submit(NS, "quiet", {"q": "hi"})
        events = await _events(sdk, run)
    assert wire.EventType.STEP_DONE in [e["type"] for e in events]
    assert wire.EventType.TOKENS not in [e["type"] for e in events]


async def test_a_retry_streams_its_text_afresh_under_its_own_attempt(
    sim: str, redis_url: str, sdk: Client
) -> None:
    await sdk.publish(NS, "retry", _workflow(stream=True))
    cfg = runtime.worker_settings(NS, "p", runtime.pool_spec(sim, model="flaky"), redis_url)
    async with runtime.in_process_worker(cfg):
        run = await sdk.submit(NS, "retry", {"q": "hi"})
        events = await _events(sdk, run)
        result = await sdk.result(run, timeout=20)
    assert result.status == "succeeded"
    first, second = "".join(_texts(events, "1")), "".join(_texts(events, "2"))
    assert first  # the refused reply was streamed too, under attempt 1
    assert json.loads(second) == result.outputs["reply"]
    assert first != second

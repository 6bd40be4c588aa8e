"""The inference simulator over real HTTP: OpenAI wire format, faults, load, determinism.

Each test starts the real aiohttp server on a free loopback port in its own event
loop and talks to it with httpx. Latency is asserted through X-Sim-Delay-Seconds,
never by timing, so the tests stay fast and exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jsonschema
import pytest

from trimtab.sim import behaviour, server
from trimtab.sim.profiles import ModelProfile, SimConfig

CAPACITY = 2
LOADED_TTFT = 0.05


def fast(name: str = "default", **rates: float) -> ModelProfile:
    return ModelProfile(
        name=name, ttft_seconds=0.001, per_token_seconds=0.0, timeout_hang_seconds=0.01, **rates
    )


CONFIG = SimConfig(
    seed=7,
    models={
        "fast": fast("fast"),
        "broken": fast("broken", rate_500=1.0),
        "loaded": ModelProfile(
            name="loaded", ttft_seconds=LOADED_TTFT, per_token_seconds=0.0, capacity=CAPACITY
        ),
    },
    default=fast(),
    tool_delay_seconds=0.0,
)
TRIAGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "intent": {"enum": ["billing", "refund", "other"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "summary": {"type": "string", "minLength": 5, "maxLength": 80},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
    },
    "required": ["intent", "confidence", "summary"],
}
NESTED: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "tier": {"const": "gold"}},
            "required": ["id", "tier"],
        },
        "orders": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"qty": {"type": "integer", "minimum": 1, "maximum": 9}},
                "required": ["qty"],
            },
        },
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["customer", "orders"],
}


def chat(model: str = "fast", schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You triage support tickets."},
            {"role": "user", "content": "My refund has not arrived after thirty days."},
        ],
        **extra,
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema},
        }
    return body


def content_of(response: httpx.Response) -> str:
    text = response.json()["choices"][0]["message"]["content"]
    assert isinstance(text, str)
    return text


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    async with server.running(CONFIG) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


async def test_completion_has_the_openai_shape(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/v1/chat/completions", json=chat(temperature=0.2))
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", "fast")
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == behaviour.estimate_tokens(choice["message"]["content"])
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens"] > 5
    assert float(response.headers["X-Sim-Delay-Seconds"]) == pytest.approx(0.001)


@pytest.mark.parametrize("cap", ["max_tokens", "max_completion_tokens"])
async def test_token_cap_cuts_with_finish_reason_length(sim: httpx.AsyncClient, cap: str) -> None:
    response = await sim.post("/v1/chat/completions", json=chat(**{cap: 5}))
    body = response.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 5
    assert len(content_of(response)) <= 20


@pytest.mark.parametrize(
    "schema", [pytest.param(TRIAGE, id="triage"), pytest.param(NESTED, id="nested")]
)
async def test_json_schema_output_validates(sim: httpx.AsyncClient, schema: dict[str, Any]) -> None:
    for _ in range(5):
        response = await sim.post("/v1/chat/completions", json=chat(schema=schema))
        assert response.status_code == 200
        jsonschema.validate(json.loads(content_of(response)), schema)


async def test_json_object_mode_returns_json(sim: httpx.AsyncClient) -> None:
    body = chat(response_format={"type": "json_object"})
    response = await sim.post("/v1/chat/completions", json=body)
    assert isinstance(json.loads(content_of(response)), dict)


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        pytest.param("429", 429, "rate_limit_exceeded", id="rate-limited"),
        pytest.param("500", 500, "internal_error", id="server-error"),
        pytest.param("timeout", 504, "timeout", id="timeout"),
    ],
)
async def test_forced_error_faults(
    sim: httpx.AsyncClient, fault: str, status: int, code: str
) -> None:
    response = await sim.post("/v1/chat/completions", json=chat(), headers={"X-Sim-Fault": fault})
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["type"]
    if status == 429:
        assert response.headers["Retry-After"] == "1"
    if fault == "timeout":
        assert float(response.headers["X-Sim-Delay-Seconds"]) == pytest.approx(0.01)


async def test_forced_malformed_content_is_not_json(sim: httpx.AsyncClient) -> None:
    response = await sim.post(
        "/v1/chat/completions", json=chat(schema=TRIAGE), headers={"X-Sim-Fault": "malformed"}
    )
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(content_of(response))


async def test_forced_schema_violation_fails_the_schema(sim: httpx.AsyncClient) -> None:
    response = await sim.post(
        "/v1/chat/completions",
        json=chat(schema=TRIAGE),
        headers={"X-Sim-Fault": "schema_violation"},
    )
    assert response.status_code == 200
    value = json.loads(content_of(response))
    assert not jsonschema.Draft202012Validator(TRIAGE).is_valid(value)


@pytest.mark.parametrize("fault", ["malformed", "schema_violation"])
async def test_content_faults_on_plain_text_requests_are_ignored(
    sim: httpx.AsyncClient, fault: str
) -> None:
    response = await sim.post("/v1/chat/completions", json=chat(), headers={"X-Sim-Fault": fault})
    assert response.status_code == 200
    assert content_of(response)


async def test_fault_rates_apply_and_the_none_header_overrides_them(
    sim: httpx.AsyncClient,
) -> None:
    broken = await sim.post("/v1/chat/completions", json=chat("broken"))
    assert broken.status_code == 500
    forced_ok = await sim.post(
        "/v1/chat/completions", json=chat("broken"), headers={"X-Sim-Fault": "none"}
    )
    assert forced_ok.status_code == 200
    stats = (await sim.get("/stats")).json()
    broken = stats["models"]["broken"]
    assert {k: broken[k] for k in ("requests", "in_flight", "faults")} == {
        "requests": 2,
        "in_flight": 0,
        "faults": {"500": 1},
    }
    assert "thirty days" in broken["last_prompt"]


@pytest.mark.parametrize(
    ("mean", "low_share"),
    [pytest.param(None, (0.0, 0.3), id="default-mean"), pytest.param("0.4", (0.9, 1.0), id="low")],
)
async def test_confidence_mean_header(
    sim: httpx.AsyncClient, mean: str | None, low_share: tuple[float, float]
) -> None:
    headers = {} if mean is None else {"X-Sim-Confidence-Mean": mean}
    confidences = []
    for _ in range(20):
        response = await sim.post("/v1/chat/completions", json=chat(schema=TRIAGE), headers=headers)
        confidences.append(json.loads(content_of(response))["confidence"])
    share = sum(c < 0.7 for c in confidences) / len(confidences)
    assert low_share[0] <= share <= low_share[1]


async def test_delay_grows_when_in_flight_exceeds_capacity(sim: httpx.AsyncClient) -> None:
    requests = CAPACITY * 3
    responses = await asyncio.gather(
        *(sim.post("/v1/chat/completions", json=chat("loaded")) for _ in range(requests))
    )
    delays = sorted(float(r.headers["X-Sim-Delay-Seconds"]) for r in responses)
    allowed = [LOADED_TTFT * max(1.0, n / CAPACITY) for n in range(1, requests + 1)]
    assert all(any(d == pytest.approx(a) for a in allowed) for d in delays)
    assert delays[0] == pytest.approx(LOADED_TTFT)
    assert delays[-1] >= LOADED_TTFT * 1.5 - 1e-9
    stats = (await sim.get("/stats")).json()["models"]["loaded"]
    assert (stats["requests"], stats["in_flight"]) == (requests, 0)


async def test_models_are_listed(sim: httpx.AsyncClient) -> None:
    body = (await sim.get("/v1/models")).json()
    assert body["object"] == "list"
    assert {m["id"] for m in body["data"]} == {"fast", "broken", "loaded"}
    assert all(m["object"] == "model" for m in body["data"])


@pytest.mark.parametrize(
    ("tool", "key"),
    [
        pytest.param("history", "tickets", id="history"),
        pytest.param("search", "documents", id="search"),
        pytest.param("lookup", "echo", id="echo"),
    ],
)
async def test_tool_endpoint(sim: httpx.AsyncClient, tool: str, key: str) -> None:
    request = {"customer_id": "c-42", "query": "refund"}
    first = await sim.post(f"/tools/{tool}", json=request)
    again = await sim.post(f"/tools/{tool}", json=request)
    assert first.status_code == 200
    body = first.json()
    assert (body["tool"], body["received"]) == (tool, request)
    assert isinstance(body["result"][key], list | dict)
    assert body == again.json()


@pytest.mark.parametrize(("fault", "status"), [("500", 500), ("timeout", 504)])
async def test_tool_faults(sim: httpx.AsyncClient, fault: str, status: int) -> None:
    response = await sim.post("/tools/history", json={}, headers={"X-Sim-Fault": fault})
    assert response.status_code == status
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("body", "headers", "names"),
    [
        pytest.param(b"{not json", {}, "JSON", id="not-json"),
        pytest.param(b"[1, 2]", {}, "body", id="not-an-object"),
        pytest.param({"messages": [{"role": "user", "content": "x"}]}, {}, "model", id="no-model"),
        pytest.param({"model": "fast", "messages": []}, {}, "messages", id="no-messages"),
        pytest.param({"model": "fast", "messages": [{"content": "x"}]}, {}, "role", id="no-role"),
        pytest.param(chat(max_tokens=0), {}, "max_tokens", id="zero-max-tokens"),
        pytest.param(chat(stream=[True]), {}, "stream", id="stream-not-a-boolean"),
        pytest.param(chat(response_format={"type": "xml"}), {}, "response_format", id="bad-format"),
        pytest.param(
            chat(response_format={"type": "json_schema"}), {}, "json_schema", id="no-schema"
        ),
        pytest.param(chat(schema={"type": 5}), {}, "JSON Schema", id="invalid-schema"),
        pytest.param(chat(), {"X-Sim-Fault": "explode"}, "X-Sim-Fault", id="bad-fault-header"),
        pytest.param(
            chat(), {"X-Sim-Confidence-Mean": "high"}, "X-Sim-Confidence-Mean", id="bad-mean"
        ),
    ],
)
async def test_bad_requests_get_400_naming_the_problem(
    sim: httpx.AsyncClient, body: Any, headers: dict[str, str], names: str
) -> None:
    if isinstance(body, bytes):
        response = await sim.post("/v1/chat/completions", content=body, headers=headers)
    else:
        response = await sim.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 400
    error = response.json()["error"]
    assert names in error["message"]
    assert error["type"] == "invalid_request_error"


async def test_health_and_every_response_carries_the_delay_header(
    sim: httpx.AsyncClient,
) -> None:
    health = await sim.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok")
    for response in [health, await sim.get("/stats"), await sim.get("/v1/models")]:
        assert "X-Sim-Delay-Seconds" in response.headers


async def _contents(config: SimConfig, bodies: list[dict[str, Any]]) -> list[str]:
    async with server.running(config) as url, httpx.AsyncClient(base_url=url) as client:
        return [content_of(await client.post("/v1/chat/completions", json=b)) for b in bodies]


SEQUENCE = [chat(), chat(schema=TRIAGE), chat("other"), chat(schema=NESTED), chat()]


async def test_same_seed_same_outputs_across_servers() -> None:
    first = await _contents(CONFIG, SEQUENCE)
    again = await _contents(CONFIG, SEQUENCE)
    reseeded = await _contents(CONFIG.model_copy(update={"seed": 8}), SEQUENCE)
    assert first == again
    assert first != reseeded


async def test_request_seed_pins_the_output_whatever_came_before(
    sim: httpx.AsyncClient,
) -> None:
    seeded = chat(schema=TRIAGE, seed=1234)
    first = content_of(await sim.post("/v1/chat/completions", json=seeded))
    await sim.post("/v1/chat/completions", json=chat(schema=TRIAGE))
    again = content_of(await sim.post("/v1/chat/completions", json=seeded))
    assert first == again


def _stream_events(response: httpx.Response) -> list[str]:
    assert response.headers["content-type"].startswith("text/event-stream")
    blocks = response.text.split("\n\n")
    assert blocks[-1] == ""  # every event ends with its blank line
    assert all(b.startswith("data: ") for b in blocks[:-1])
    return [b.removeprefix("data: ") for b in blocks[:-1]]


async def test_a_streamed_reply_says_what_the_whole_one_does_in_openai_framing() -> None:
    slow = SimConfig(
        seed=3, models={"m": ModelProfile(name="m", ttft_seconds=0.001, per_token_seconds=0.002)}
    )
    body = chat("m", schema=TRIAGE, seed=99)
    async with server.running(slow) as url, httpx.AsyncClient(base_url=url) as client:
        whole = (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post(
            "/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    events = _stream_events(streamed)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    texts = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    assert len([t for t in texts if t]) > 1  # the reply came in pieces
    assert "".join(t or "" for t in texts) == whole["choices"][0]["message"]["content"]
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == whole["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]


async def test_a_stream_without_include_usage_has_no_usage_chunk(sim: httpx.AsyncClient) -> None:
    response = await sim.post("/v1/chat/completions", json=chat(stream=True))
    chunks = [json.loads(e) for e in _stream_events(response)[:-1]]
    assert all("usage" not in c for c in chunks)


async def test_a_fault_on_a_streamed_request_is_an_error_before_any_event(
    sim: httpx.AsyncClient,
) -> None:
    response = await sim.post(
        "/v1/chat/completions", json=chat(stream=True), headers={"X-Sim-Fault": "429"}
    )
    assert response.status_code == 429
    assert "error" in response.json()

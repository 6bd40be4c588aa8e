"""The request body a model step sends, per pool dialect (trimtab.worker.chat_request)."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentpool
from trimtab.worker import chat_request

CLOSED = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}},
                "required": ["sku"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["answer", "items"],
    "additionalProperties": False,
}


def _model(**fields: Any) -> agentpool.ModelEndpoint:
    return agentpool.ModelEndpoint.model_validate(
        {"endpoint": "http://models.local/v1", "name": "m", **fields}
    )


def test_a_closed_schema_with_every_property_required_is_sent_strict() -> None:
    fmt = chat_request.response_format(CLOSED, "JsonSchema")
    assert fmt == {
        "type": "json_schema",
        "json_schema": {"name": chat_request.SCHEMA_NAME, "schema": CLOSED, "strict": True},
    }


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"additionalProperties": True}, id="open-root"),
        pytest.param({"required": ["answer"]}, id="optional-property"),
        pytest.param({"oneOf": [{"required": ["answer"]}]}, id="unsupported-keyword"),
        pytest.param({"type": "array"}, id="root-not-an-object"),
    ],
)
def test_a_schema_strict_mode_would_refuse_is_sent_without_strict(change: dict[str, Any]) -> None:
    schema = {**CLOSED, **change}
    assert not chat_request.qualifies_for_strict(schema)
    fmt = chat_request.response_format(schema, "JsonSchema")
    assert fmt is not None
    assert "strict" not in fmt["json_schema"]


def test_an_open_nested_object_disqualifies_the_schema() -> None:
    nested = {**CLOSED["properties"]["items"]["items"], "additionalProperties": True}  # type: ignore[index]
    schema = {
        **CLOSED,
        "properties": {**CLOSED["properties"], "items": {"type": "array", "items": nested}},
    }  # type: ignore[dict-item]
    assert not chat_request.qualifies_for_strict(schema)


def test_json_object_mode_asks_for_json_and_puts_the_schema_in_a_system_message() -> None:
    model = _model(structuredOutput="JsonObject")
    messages = chat_request.messages_for("Be brief.", "Hi", CLOSED, model.structured_output)
    body = chat_request.body(model, messages, max_tokens=None, json_schema=CLOSED)
    assert body["response_format"] == {"type": "json_object"}
    assert [m["role"] for m in body["messages"]] == ["system", "system", "user"]
    assert '"additionalProperties":false' in body["messages"][1]["content"]


def test_prompt_mode_sends_no_response_format() -> None:
    model = _model(structuredOutput="Prompt")
    messages = chat_request.messages_for(None, "Hi", CLOSED, model.structured_output)
    body = chat_request.body(model, messages, max_tokens=None, json_schema=CLOSED)
    assert "response_format" not in body
    assert body["messages"][0]["content"].startswith("Reply with one JSON value")


def test_json_schema_mode_adds_no_instruction() -> None:
    assert chat_request.messages_for(None, "Hi", CLOSED, "JsonSchema") == [
        {"role": "user", "content": "Hi"}
    ]


def test_the_completion_limit_goes_in_the_pools_field() -> None:
    legacy = chat_request.body(_model(maxTokens=77), [], max_tokens=None, json_schema=None)
    newer = chat_request.body(
        _model(maxTokensField="max_completion_tokens"), [], max_tokens=12, json_schema=None
    )
    assert legacy["max_tokens"] == 77
    assert "max_completion_tokens" not in legacy
    assert newer["max_completion_tokens"] == 12
    assert "max_tokens" not in newer


def test_parameters_are_sent_and_unset_ones_are_not() -> None:
    model = _model(parameters={"temperature": 0, "stop": ["\n\n"], "extraBody": {"top_k": 20}})
    body = chat_request.body(model, [], max_tokens=None, json_schema=None)
    assert body["temperature"] == 0
    assert body["stop"] == ["\n\n"]
    assert body["top_k"] == 20
    assert "top_p" not in body
    assert "seed" not in body


def test_extra_body_cannot_replace_a_field_the_worker_sets() -> None:
    with pytest.raises(ValueError, match="extraBody may not set"):
        _model(parameters={"extraBody": {"messages": []}})


def test_a_streamed_request_asks_for_usage() -> None:
    body = chat_request.body(_model(), [], max_tokens=None, json_schema=None, stream=True)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert "stream" not in chat_request.body(_model(), [], max_tokens=None, json_schema=None)

"""The OpenAI chat-completions request as the simulator reads it, and why it refuses
one: a bad request gets a 400 naming the field, as the real API does."""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from pydantic import BaseModel, Field, field_validator, model_validator


class BadRequestError(ValueError):
    """The request cannot be served as sent; the message names the problem."""


class _Message(BaseModel):
    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None


class _Function(BaseModel):
    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class _Tool(BaseModel):
    type: Literal["function"]
    function: _Function


class _JsonSchema(BaseModel):
    name: str = "response"
    schema_: dict[str, Any] = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _is_a_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            validators.validator_for(schema).check_schema(schema)
        except schema_errors.SchemaError as exc:
            raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return schema


class _ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> _ResponseFormat:
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("type json_schema needs a json_schema object")
        return self


class _StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The parts of an OpenAI chat-completions request the simulator acts on."""

    model: str = Field(min_length=1)
    messages: list[_Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: _ResponseFormat | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: _StreamOptions | None = None
    tools: list[_Tool] | None = None

    @property
    def token_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def tool_rounds(self) -> int:
        """Replies of this conversation that called tools."""
        return sum(1 for m in self.messages if m.role == "assistant" and m.tool_calls)

    @property
    def usage_streamed(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def prompt(self) -> str:
        return "\n".join(_text_of(m.content) for m in self.messages)

    @property
    def json_requested(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"

    @property
    def output_schema(self) -> dict[str, Any] | None:
        fmt = self.response_format
        return None if fmt is None or fmt.json_schema is None else fmt.json_schema.schema_


def parse_chat(body: Any) -> ChatRequest:
    try:
        return ChatRequest.model_validate(body)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequestError(f"{where}: {first['msg']}") from exc


def _text_of(message_content: str | list[dict[str, Any]] | None) -> str:
    # Content parts: only text parts count toward the prompt.
    if isinstance(message_content, list):
        return " ".join(str(part.get("text", "")) for part in message_content)
    return message_content or ""

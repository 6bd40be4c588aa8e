"""The chat-completions request body a model step sends, in its pool's dialect.

Servers that call themselves OpenAI-compatible differ where a step notices: which field
takes the completion limit (OpenAI's newer models refuse `max_tokens`, older servers
know nothing else), whether `response_format` json_schema exists at all, and which
schemas strict mode accepts (OpenAI answers 400 to `strict: true` on a schema with an
open object or an optional property, and a 400 is never retried). The pool's
`model.maxTokensField`, `model.structuredOutput` and `model.parameters` say what its
server takes; this module turns them and one step's messages into the body, and
nothing here sends it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from trimtab.api.v1alpha1 import agentpool

SCHEMA_NAME = "step_output"

# Keywords OpenAI's strict mode refuses; a schema using one is sent without strict.
_STRICT_UNSUPPORTED = frozenset(
    {
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "patternProperties",
        "dependentRequired",
        "dependentSchemas",
        "unevaluatedProperties",
        "propertyNames",
        "minProperties",
        "maxProperties",
    }
)


def qualifies_for_strict(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict structured outputs accept `schema`: an object at the
    root, every object closed (`additionalProperties: false`) with every property
    required, and no keyword strict mode lacks."""
    return schema.get("type") == "object" and _strict_everywhere(schema)


def _strict_everywhere(node: Any) -> bool:
    if isinstance(node, list):
        return all(_strict_everywhere(item) for item in node)
    if not isinstance(node, Mapping):
        return True
    if _STRICT_UNSUPPORTED & node.keys():
        return False
    properties = node.get("properties")
    if node.get("type") == "object" or isinstance(properties, Mapping):
        names = set(properties or {})
        if node.get("additionalProperties") is not False or set(node.get("required", ())) != names:
            return False
    children = [
        *(properties or {}).values(),
        *(node.get(k) for k in ("items", "anyOf", "prefixItems") if k in node),
        *(node.get("$defs") or {}).values(),
        *(node.get("definitions") or {}).values(),
    ]
    return all(_strict_everywhere(child) for child in children)


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The system message that asks for the schema in words, where the server cannot
    be asked by `response_format`."""
    return (
        "Reply with one JSON value and nothing else. It must satisfy this JSON Schema:\n"
        + json.dumps(schema, separators=(",", ":"), sort_keys=True)
    )


def messages_for(
    system: str | None,
    prompt: str,
    json_schema: Mapping[str, Any] | None,
    structured_output: str,
    history: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """A step's conversation: its system message, the schema in words when the pool's
    structured output needs it, the session's earlier turns it remembers, and the
    prompt."""
    messages: list[dict[str, Any]] = []
    if system:
        messages.append({"role": "system", "content": system})
    if json_schema is not None and structured_output != "JsonSchema":
        messages.append({"role": "system", "content": schema_instruction(json_schema)})
    messages.extend(dict(m) for m in history)
    messages.append({"role": "user", "content": prompt})
    return messages


def response_format(
    json_schema: Mapping[str, Any] | None, structured_output: str
) -> dict[str, Any] | None:
    if json_schema is None or structured_output == "Prompt":
        return None
    if structured_output == "JsonObject":
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": SCHEMA_NAME, "schema": json_schema}
    if qualifies_for_strict(json_schema):
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


def parameters(params: agentpool.ModelParameters | None) -> dict[str, Any]:
    """The pool's sampling parameters as request fields; unset ones are not sent."""
    if params is None:
        return {}
    fields: dict[str, Any] = {
        "temperature": params.temperature,
        "top_p": params.top_p,
        "seed": params.seed,
        "stop": list(params.stop) or None,
        "presence_penalty": params.presence_penalty,
        "frequency_penalty": params.frequency_penalty,
    }
    # The API refuses extraBody keys the worker sets; dropped here all the same, so no
    # pool can turn on streaming, tools or a format the worker did not ask for.
    extra = {
        k: v
        for k, v in (params.extra_body or {}).items()
        if k not in agentpool.RESERVED_BODY_FIELDS
    }
    return {**extra, **{k: v for k, v in fields.items() if v is not None}}


def body(
    model: agentpool.ModelEndpoint,
    messages: Sequence[Mapping[str, Any]],
    *,
    max_tokens: int | None,
    json_schema: Mapping[str, Any] | None,
    stream: bool = False,
) -> dict[str, Any]:
    """The whole request body for `messages` on the pool's endpoint."""
    out: dict[str, Any] = {
        **parameters(model.parameters),
        "model": model.name,
        "messages": list(messages),
        model.max_tokens_field: max_tokens or model.max_tokens,
    }
    fmt = response_format(json_schema, model.structured_output)
    if fmt is not None:
        out["response_format"] = fmt
    if stream:
        # Usage arrives in a last chunk only when asked for (OpenAI, vLLM, llama.cpp).
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out

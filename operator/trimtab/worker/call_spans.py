"""What a worker's spans of model and tool calls are named and say, after the
OpenTelemetry GenAI semantic conventions (`chat {model}`, `execute_tool {name}`,
`gen_ai.*`). No prompt, argument or answer is ever an attribute.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.telemetry import tracing

if TYPE_CHECKING:  # the model client records these spans: it imports this module
    from trimtab.worker.model_client import ModelReply

GEN_AI_SYSTEM = "openai"  # the API every pool's endpoint speaks


def model_call_name(model: agentpool.ModelEndpoint) -> str:
    return f"chat {model.name}"


def model_call_attributes(
    model: agentpool.ModelEndpoint, body: dict[str, Any]
) -> tracing.Attributes:
    url = urllib.parse.urlsplit(model.endpoint)
    out: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": GEN_AI_SYSTEM,
        "gen_ai.provider.name": GEN_AI_SYSTEM,
        "gen_ai.request.model": model.name,
        "server.address": url.hostname or "",
        "server.port": url.port or (443 if url.scheme == "https" else 80),
        "trimtab.model.tier": model.tier,
    }
    if body.get("max_tokens") is not None:
        out["gen_ai.request.max_tokens"] = int(body["max_tokens"])
    if body.get("stream"):
        out["trimtab.streamed"] = True
    return out


def model_reply_attributes(reply: ModelReply) -> tracing.Attributes:
    out: dict[str, Any] = {
        "gen_ai.usage.input_tokens": reply.prompt_tokens,
        "gen_ai.usage.output_tokens": reply.completion_tokens,
        "gen_ai.response.finish_reasons": [reply.finish_reason],
    }
    if reply.model:
        out["gen_ai.response.model"] = reply.model
    if reply.first_token_seconds is not None:
        out["trimtab.first_token_seconds"] = reply.first_token_seconds
    if reply.tool_calls:
        out["trimtab.tool_calls"] = len(reply.tool_calls)
    return out


def tool_call_name(name: str) -> str:
    return f"execute_tool {name}"


def tool_call_attributes(name: str, url: str, method: str) -> tracing.Attributes:
    parts = urllib.parse.urlsplit(url)
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "http.request.method": method,
        "server.address": parts.hostname or "",
        "server.port": parts.port or (443 if parts.scheme == "https" else 80),
    }

"""Calls to a pool's OpenAI-compatible chat-completions endpoint."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from trimtab.api.v1alpha1 import agentpool
from trimtab.metrics import ErrorType
from trimtab.worker import errors, http


@dataclasses.dataclass(frozen=True)
class ModelReply:
    content: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    def cost(self, pricing: agentpool.Pricing) -> float:
        return (
            self.prompt_tokens * pricing.input_per_1k
            + self.completion_tokens * pricing.output_per_1k
        ) / 1000


class ModelClient:
    """The pool's model endpoint, over one pooled HTTP client."""

    def __init__(
        self, spec: agentpool.ModelEndpoint, *, api_key: str | None, max_connections: int
    ) -> None:
        self.spec = spec
        self._url = spec.endpoint.rstrip("/") + "/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._clients = http.ClientSet(
            max_connections=max_connections, timeout_seconds=spec.timeout_seconds
        )

    def request_body(
        self,
        *,
        system: str | None,
        prompt: str,
        max_tokens: int | None,
        json_schema: dict[str, Any] | None,
    ) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {
            "model": self.spec.name,
            "messages": messages,
            "max_tokens": max_tokens or self.spec.max_tokens,
        }
        if json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "step_output", "schema": json_schema, "strict": True},
            }
        return body

    async def chat(
        self,
        *,
        system: str | None,
        prompt: str,
        max_tokens: int | None = None,
        json_schema: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> ModelReply:
        body = self.request_body(
            system=system, prompt=prompt, max_tokens=max_tokens, json_schema=json_schema
        )
        response = await http.post(
            self._clients.pick(),
            self._url,
            json_body=body,
            headers={**self._headers, **(headers or {})},
            error=errors.ModelError,
        )
        return _reply(response)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _reply(response: httpx.Response) -> ModelReply:
    try:
        data = response.json()
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        return ModelReply(
            content=choice["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=str(choice.get("finish_reason", "stop")),
        )
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise errors.ModelError(
            f"not a chat completion: {response.text[:300]}", error_type=ErrorType.HTTP_5XX
        ) from exc

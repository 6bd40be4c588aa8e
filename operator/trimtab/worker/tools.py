"""HTTP tool calls of tool steps, with headers from literals or Secrets.

A header's Secret is read from the environment the operator sets on worker pods:
`TRIMTAB_SECRET_<NAME>_<KEY>_<DIGEST>` (trimtab.reconcile.agentworkflow.secrets), so a
secret value never passes through Redis or the workflow definition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.api.v1alpha1 import base
from trimtab.reconcile.agentworkflow import secrets
from trimtab.worker import errors, http


def secret_env_name(ref: base.SecretKeyRef) -> str:
    """Where the operator put this Secret key (trimtab.reconcile.agentworkflow.secrets)."""
    return secrets.secret_env_name(ref.name, ref.key)


def headers_for(tool: awf.ToolCall, env: Mapping[str, str]) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    for header in tool.headers:
        if header.value is not None:
            out[header.name] = header.value
        elif header.value_from_secret is not None:
            name = secret_env_name(header.value_from_secret)
            if name not in env:
                raise errors.TemplateInputError(
                    f"header {header.name}: secret not mounted "
                    f"(expected environment variable {name})"
                )
            out[header.name] = env[name]
    return out


class ToolClient:
    """Calls HTTP tools over one pooled client."""

    def __init__(self, *, max_connections: int, timeout_seconds: float) -> None:
        self._clients = http.ClientSet(
            max_connections=max_connections, timeout_seconds=timeout_seconds
        )

    async def call(
        self, tool: awf.ToolCall, *, body: str | None, env: Mapping[str, str] | None = None
    ) -> Any:
        response = await http.post(
            self._clients.pick(),
            tool.url,
            content=body,
            headers=headers_for(tool, env or os.environ),
            method=tool.method,
            error=errors.ToolError,
        )
        return _decode(response)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _decode(response: httpx.Response) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text

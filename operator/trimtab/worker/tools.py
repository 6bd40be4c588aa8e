"""HTTP tool calls of tool steps: gather the headers' Secrets, render, send.

A header's Secret is a file the operator mounts on worker pods
(trimtab.reconcile.agentworkflow.secrets), read at each call so a rotated Secret is
used as soon as the kubelet brings it in; a secret value never passes through Redis or
the workflow definition. The request itself is rendered by
trimtab.reconcile.agentworkflow.tool_requests, where no value can change its shape.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import SpanKind

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import secrets, tool_requests
from trimtab.reconcile.agentworkflow.templates import TemplateError
from trimtab.telemetry import tracing as traces
from trimtab.worker import call_spans, errors, http


def header_secrets(
    tool: awf.ToolCall, root: pathlib.Path | None = None
) -> dict[secrets.SecretKey, str]:
    """The values of the Secret keys `tool`'s headers read; raises SecretMissingError
    naming the first one that is not mounted (the Secret or its key does not exist)."""
    root = root or pathlib.Path(secrets.MOUNT_DIR)
    out: dict[secrets.SecretKey, str] = {}
    for header in tool.headers:
        ref = header.value_from_secret
        if ref is None:
            continue
        path = (root / secrets.file_name(ref.name, ref.key)).resolve()
        if not path.is_relative_to(root.resolve()):  # the API's patterns already forbid it
            raise errors.SecretMissingError(ref.name, ref.key)
        try:
            out[(ref.name, ref.key)] = path.read_text()
        except (FileNotFoundError, NotADirectoryError):
            raise errors.SecretMissingError(ref.name, ref.key) from None
    return out


def rendered(
    tool: awf.ToolCall, context: Mapping[str, Any], root: pathlib.Path | None = None
) -> tool_requests.Request:
    values = header_secrets(tool, root)
    try:
        return tool_requests.request(tool, context, values)
    except TemplateError as exc:
        raise errors.TemplateInputError(str(exc)) from exc


IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(namespace: str, run_id: str, step: str, attempt: int) -> str:
    """The key a tool can de-duplicate calls by: the same for every delivery of one
    attempt (a worker that died mid-call and the one that took over), new for the next."""
    return f"{namespace}/{run_id}/{step}/{attempt}"


def with_idempotency_key(headers: Mapping[str, str], key: str | None) -> dict[str, str]:
    """`headers` plus the Idempotency-Key, unless the tool's own headers set one."""
    out = dict(headers)
    if key is not None and IDEMPOTENCY_HEADER.lower() not in {h.lower() for h in out}:
        out[IDEMPOTENCY_HEADER] = key
    return out


class ToolClient:
    """Calls HTTP tools over one pooled client."""

    def __init__(
        self,
        *,
        max_connections: int,
        timeout_seconds: float,
        secrets_root: pathlib.Path | None = None,
        tracing: traces.Tracing | None = None,
    ) -> None:
        self._clients = http.ClientSet(
            max_connections=max_connections, timeout_seconds=timeout_seconds
        )
        self._secrets_root = secrets_root
        self._tracing = tracing or traces.Tracing()

    async def call(
        self,
        tool: awf.ToolCall,
        context: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        name: str = "",
    ) -> Any:
        """The tool's answer; `name` (the step's or the agent tool's) names its span."""
        request = rendered(tool, context, self._secrets_root)
        headers = with_idempotency_key(request.headers, idempotency_key)
        if not self._tracing.recording_here():  # off, or an unsampled run's call
            return await self._send(request, self._tracing.headers(headers))
        attributes = call_spans.tool_call_attributes(name, request.url, request.method)
        with self._tracing.span(
            call_spans.tool_call_name(name), kind=SpanKind.CLIENT, attributes=attributes
        ):
            return await self._send(request, self._tracing.headers(headers))

    async def _send(self, request: tool_requests.Request, headers: dict[str, str]) -> Any:
        response = await http.post(
            self._clients.pick(),
            request.url,
            content=request.body,
            headers=headers,
            method=request.method,
            error=errors.ToolError,
        )
        return _decode(response)

    async def aclose(self) -> None:
        await self._clients.aclose()


def _decode(response: http.Reply) -> Any:
    try:
        return response.json()
    except json.JSONDecodeError:
        return response.text

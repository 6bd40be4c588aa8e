"""Blocking wrappers for scripts and the CLI, over either transport (a redis:// or an
http(s):// URL: trimtab.sdk.client.Client chooses)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import runs
from trimtab.sdk.client import DEFAULT_REDIS_URL, Client, RunResult

T = TypeVar("T")


class SyncClient:
    """Blocking wrappers for scripts: each call runs on a fresh event loop and client."""

    def __init__(self, redis_url: str = DEFAULT_REDIS_URL) -> None:
        self.redis_url = redis_url

    def _run(self, call: Callable[[Client], Awaitable[T]]) -> T:
        async def go() -> T:
            client = Client(self.redis_url)
            try:
                return await call(client)
            finally:
                await client.aclose()

        return asyncio.run(go())

    def submit(
        self,
        namespace: str,
        workflow: str,
        inputs: Any,
        *,
        idempotency_key: str | None = None,
        priority: awf.Priority | None = None,
        session: str | None = None,
    ) -> str:
        return self._run(
            lambda c: c.submit(
                namespace, workflow, inputs, idempotency_key=idempotency_key, priority=priority,
                session=session,
            )
        )  # fmt: skip

    def session(self, namespace: str, session: str) -> list[dict[str, Any]]:
        return self._run(lambda c: c.session(namespace, session))

    def delete_session(self, namespace: str, session: str) -> bool:
        return self._run(lambda c: c.delete_session(namespace, session))

    def result(self, run: str, *, timeout: float = 60.0) -> RunResult:
        return self._run(lambda c: c.result(run, timeout=timeout))

    def get(self, run: str) -> runs.RunState:
        return self._run(lambda c: c.get(run))

"""The operator's one way to the apiserver from async code: `AsyncStore` runs the
blocking `ObjectStore` calls (trimtab.kube.objects) on an executor of its own, one
thread per pooled connection, and posts Events the same way.

Why one thread boundary rather than an async client: kopf's own client is internal to
kopf (it watches and writes its annotations), and the two async clients there are
(`kubernetes_asyncio`, `lightkube`) were measured against the official one
(hack/bench/kube_client.py) without a latency gain worth a second client's memory
and a second set of types. Every call from a handler or loop goes through here, so
the thread count is bounded by the connection pool (trimtab.kube.client). The leader
Lease (trimtab.handlers.leadership) is renewed on a thread of its own on purpose: a
renewal must never wait behind a burst of reconcile calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from trimtab.kube import client, events, objects

T = TypeVar("T")
Obj = objects.Obj


class AsyncStore:
    """ObjectStore's calls, awaited; connected on first use."""

    def __init__(self, connect: Callable[[], objects.ObjectStore] | None = None) -> None:
        self._connect = connect or (lambda: objects.ObjectStore(client.connect()))
        self._store: objects.ObjectStore | None = None
        self._threads = concurrent.futures.ThreadPoolExecutor(
            client.POOL_SIZE, thread_name_prefix="kube"
        )

    def _blocking(self) -> objects.ObjectStore:
        if self._store is None:
            self._store = self._connect()
        return self._store

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(call, *args, **kwargs))

    async def apply(self, obj: Obj, *, field_manager: str = objects.FIELD_MANAGER) -> Obj:
        return await self._run(lambda: self._blocking().apply(obj, field_manager=field_manager))

    async def create(self, obj: Obj, *, field_manager: str = objects.FIELD_MANAGER) -> Obj:
        return await self._run(lambda: self._blocking().create(obj, field_manager=field_manager))

    async def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        return await self._run(lambda: self._blocking().get(api_version, kind, name, namespace))

    async def list(self, api_version: str, kind: str, *, namespace: str | None = None) -> list[Obj]:
        return await self._run(
            lambda: self._blocking().list(api_version, kind, namespace=namespace)
        )

    async def patch_status(
        self, api_version: str, kind: str, name: str, status: Obj, *, namespace: str | None
    ) -> Obj:
        """A merge patch of the object's status subresource."""
        return await self._run(
            lambda: self._blocking().patch(
                api_version,
                kind,
                name,
                {"status": status},
                namespace=namespace,
                subresource="status",
            )
        )

    async def post_event(self, about: Obj, *, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `about` (trimtab.kube.events)."""
        await self._run(
            lambda: events.post(
                self._blocking(), about, type_=type_, reason=reason, message=message
            )
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

"""What every handler shares: config, the Redis client, metrics, and the object store."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from trimtab import config, metrics
from trimtab.kube import client, objects
from trimtab.queue import connection

T = TypeVar("T")


@dataclasses.dataclass
class Shared:
    cfg: config.OperatorConfig
    redis: connection.Redis
    metrics: metrics.Metrics
    _store: objects.ObjectStore | None = None
    # Views kept current by watch events (trimtab.handlers.views); keyed (namespace, name).
    pools: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    workflows: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    deployments: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    pods: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    # Namespaces whose workflows were listed once, so the view is complete there before
    # a pool's Deployment is built from it (trimtab.handlers.pool_objects).
    workflows_listed: set[str] = dataclasses.field(default_factory=set)
    # Each workflow's tool Secrets by pool, with the generation they were parsed from.
    tool_secrets: dict[tuple[str, str], tuple[Any, dict[str, set[tuple[str, str]]]]] = (
        dataclasses.field(default_factory=dict)
    )

    @property
    def store(self) -> objects.ObjectStore:
        if self._store is None:
            self._store = objects.ObjectStore(client.connect())
        return self._store

    async def kube(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking trimtab.kube call off the event loop."""
        return await asyncio.to_thread(functools.partial(call, *args, **kwargs))

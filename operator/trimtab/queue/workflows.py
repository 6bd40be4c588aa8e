"""Compiled workflow definitions in Redis, by namespace, name and generation.

Each generation is stored immutably, so runs already under way keep executing the
definition they were submitted with while a new generation is published.
"""

from __future__ import annotations

import json
from typing import Any

from redis import asyncio as aioredis

from trimtab.queue import keys


class WorkflowNotFoundError(LookupError):
    """No published workflow (or generation) by that name."""


async def publish(client: aioredis.Redis, document: dict[str, Any]) -> int:
    """Store `document` (namespace, name, generation, spec) and make it current."""
    ns, name, gen = document["namespace"], document["name"], int(document["generation"])
    async with client.pipeline(transaction=True) as pipe:
        pipe.set(keys.workflow_generation(ns, name, gen), json.dumps(document))
        pipe.set(keys.workflow_current(ns, name), gen)
        await pipe.execute()
    return gen


async def current_generation(client: aioredis.Redis, namespace: str, name: str) -> int:
    gen = await client.get(keys.workflow_current(namespace, name))
    if gen is None:
        raise WorkflowNotFoundError(f"workflow {namespace}/{name} has not been published")
    return int(gen)


async def load(
    client: aioredis.Redis, namespace: str, name: str, generation: int | None = None
) -> dict[str, Any]:
    """The stored document of `generation` (the current one when None)."""
    if generation is None:
        generation = await current_generation(client, namespace, name)
    raw = await client.get(keys.workflow_generation(namespace, name, generation))
    if raw is None:
        raise WorkflowNotFoundError(
            f"workflow {namespace}/{name} generation {generation} is not stored"
        )
    return dict(json.loads(raw))

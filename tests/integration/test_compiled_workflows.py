"""A published generation is validated once, by its publisher, and compiled once per
reading process: readers decode it from Redis (a real redis-server) and share it."""

from __future__ import annotations

import uuid

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import connection, workflows
from trimtab.reconcile.agentworkflow import compile as compile_mod

SPEC = awf.AgentWorkflowSpec.model_validate(
    {
        "defaultPool": "small",
        "steps": [
            {"name": "a", "prompt": "x"},
            {
                "name": "b",
                "prompt": "y",
                "dependsOn": ["a"],
                "routes": [{"when": "a.size() > 3", "pool": "big"}, {"pool": "small"}],
            },
        ],
    }
)


async def _publish(client: connection.Redis, ns: str, generation: int) -> None:
    compiled = compile_mod.compile_workflow(
        namespace=ns, name="wf", generation=generation, spec=SPEC
    )
    await workflows.publish(client, compile_mod.to_document(compiled))


async def test_readers_share_one_compiled_generation(redis_url: str) -> None:
    client = connection.connect(redis_url)
    ns = f"ns-{uuid.uuid4().hex[:8]}"
    try:
        await _publish(client, ns, 1)
        await _publish(client, ns, 2)
        held = workflows.Compiled(client, size=2)
        first = await held.get(ns, "wf", 1)
        assert await held.get(ns, "wf", 1) is first  # decoded and compiled once
        assert first.plan.dependencies["b"] == ("a",)
        assert first.choose_pool("b", {"inputs": {}, "a": "long output"}) == "big"
        second = await held.get(ns, "wf", 2)
        assert second is not first
        assert second.generation == 2
        await _publish(client, ns, 3)
        await held.get(ns, "wf", 3)  # past its size: the least recently used goes
        assert await held.get(ns, "wf", 2) is second
        assert await held.get(ns, "wf", 1) is not first
        with pytest.raises(workflows.WorkflowNotFoundError):
            await held.get(ns, "wf", 9)
    finally:
        await client.aclose()

"""The operator's memory of workflow tool Secrets by pool, kept as workflows change, and
of which specs it has handled: what lets a pool's Deployment be built without walking
every workflow of its namespace, and a status write pass without handling anything."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from tests.unit.test_tool_secrets import _spec, _tool_step
from trimtab import config, metrics
from trimtab.handlers import pool_objects, state
from trimtab.queue import connection

NS = "shop"


def _shared() -> state.Shared:
    # The client connects on first use, and nothing here uses it.
    return state.Shared(
        cfg=config.OperatorConfig(redis_url="redis://127.0.0.1:1/0"),
        redis=connection.connect("redis://127.0.0.1:1/0"),
        metrics=metrics.build(CollectorRegistry()),
    )


def _workflow(name: str, generation: int, spec: dict[str, Any]) -> dict[str, Any]:
    meta = {"namespace": NS, "name": name, "uid": f"u-{name}", "generation": generation}
    return {"kind": "AgentWorkflow", "metadata": meta, "spec": spec}


def _needed(shared: state.Shared, pool: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for secrets in shared.objects.secrets_index.get((NS, pool), {}).values():
        found |= secrets
    return found


def test_the_index_follows_each_workflow_as_it_moves_between_pools_and_goes() -> None:
    shared = _shared()
    crm = _workflow("crm", 1, _spec([_tool_step("lookup", "crm")]))
    chat = _workflow("chat", 1, _spec([_tool_step("notify", "chat")]))
    pool_objects.index_workflow(shared, (NS, "crm"), crm)
    pool_objects.index_workflow(shared, (NS, "chat"), chat)
    assert _needed(shared, "small") == {("crm", "token"), ("chat", "token")}
    moved = _workflow("crm", 2, _spec([_tool_step("lookup", "crm", pool="tools")]))
    pool_objects.index_workflow(shared, (NS, "crm"), moved)
    assert _needed(shared, "small") == {("chat", "token")}
    assert _needed(shared, "tools") == {("crm", "token")}
    pool_objects.index_workflow(shared, (NS, "chat"), None)
    assert _needed(shared, "small") == set()
    assert _needed(shared, "tools") == {("crm", "token")}


def test_a_spec_is_handled_once_per_generation_and_again_when_recreated() -> None:
    shared = _shared()
    first = _workflow("crm", 1, {})
    assert shared.objects.first_sight(first)
    shared.objects.mark_handled(first)
    assert not shared.objects.first_sight(first)  # a status write changes nothing
    assert shared.objects.first_sight(_workflow("crm", 2, {}))
    recreated = {**first, "metadata": {**first["metadata"], "uid": "u-new"}}
    assert shared.objects.first_sight(recreated)
    shared.objects.mark_handled(first, gone=True)
    assert shared.objects.first_sight(first)

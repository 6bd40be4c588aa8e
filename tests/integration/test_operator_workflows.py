"""The AgentWorkflow controller against the real apiserver and Redis: it validates,
publishes the compiled plan, reports conditions, and writes nothing when nothing changed."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest

from tests.harness import operator, samples
from trimtab.api.v1alpha1 import API_VERSION
from trimtab.kube import objects
from trimtab.queue import connection, keys, workflows
from trimtab.reconcile.agentworkflow import secrets

pytestmark = pytest.mark.usefixtures("crds")


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == kind), {})


def _sample(name: str, namespace: str) -> dict[str, Any]:
    doc = copy.deepcopy(dict(samples.valid_docs())[name])
    doc["metadata"]["namespace"] = namespace
    return doc


def _wait_condition(
    kube: objects.ObjectStore,
    namespace: str,
    name: str,
    kind: str,
    status: str,
    *,
    timeout: float = 30,
) -> dict[str, Any]:
    return kube.wait_for(
        API_VERSION,
        "AgentWorkflow",
        name,
        namespace=namespace,
        until=lambda o: _condition(o, kind).get("status") == status,
        timeout=timeout,
    )


def test_cycle_is_reported_and_nothing_is_published(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    bad = next(s for s in samples.invalid_samples() if s.name == "workflow-dependency-cycle")
    doc = {**bad.doc, "metadata": {**bad.doc["metadata"], "namespace": namespace}}
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(doc)
        obj = _wait_condition(kube, namespace, "bad-workflow", "SpecValid", "False")
    spec_valid = _condition(obj, "SpecValid")
    assert spec_valid["reason"] == "DependencyCycle"
    assert "dependency cycle: answer -> classify -> answer" in spec_valid["message"]
    assert _condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["observedGeneration"] == 1

    async def published() -> bool:
        client = connection.connect(redis_url)
        try:
            await workflows.current_generation(client, namespace, "bad-workflow")
            return True
        except workflows.WorkflowNotFoundError:
            return False
        finally:
            await client.aclose()

    assert not asyncio.run(published())


def test_valid_workflow_is_published_and_ready_once_its_pools_are(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    kube.apply(_sample("agentpool-support-small", namespace))
    large = _sample("agentpool-support-large", namespace)
    large["spec"]["scaling"]["minReplicas"] = 1
    large["spec"]["placement"]["nodeSelector"] = {"trimtab.io/no-such-node": "x"}
    kube.apply(large)
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(_sample("agentworkflow-customer-support", namespace))
        obj = _wait_condition(kube, namespace, "customer-support", "SpecValid", "True")
        assert obj["status"]["stepCount"] == 4
        assert obj["status"]["depth"] == 2
        assert obj["status"]["runsStarted"] == 0
        # support-small turns Ready on its own; support-large cannot schedule.
        waiting = kube.wait_for(
            API_VERSION,
            "AgentWorkflow",
            "customer-support",
            namespace=namespace,
            timeout=30,
            until=lambda o: (
                # the pool's own Ready reason follows its name
                str(_condition(o, "PoolsReady").get("message")).startswith(
                    "not Ready yet: support-large ("
                )
            ),
        )
        assert _condition(waiting, "Ready")["status"] == "False"
        del large["spec"]["placement"]["nodeSelector"]
        kube.apply(large)  # now it can schedule: the pool turns Ready, then the workflow
        ready = _wait_condition(kube, namespace, "customer-support", "Ready", "True")
        version = ready["metadata"]["resourceVersion"]
        time.sleep(12)  # a full refresh period: a steady workflow must cost no writes
        again = kube.get(API_VERSION, "AgentWorkflow", "customer-support", namespace)
        assert again is not None
        assert again["metadata"]["resourceVersion"] == version

    async def stored_generation() -> int:
        client = connection.connect(redis_url)
        try:
            return await workflows.current_generation(client, namespace, "customer-support")
        finally:
            await client.aclose()

    assert asyncio.run(stored_generation()) == 1


async def _redis_view(redis_url: str, namespace: str, name: str) -> tuple[bool, int, bool]:
    """(published, TTL of generation 1's plan, listed in the index) for one workflow."""
    client = connection.connect(redis_url)
    try:
        listed = (namespace, name) in await workflows.published(client)
        try:
            await workflows.current_generation(client, namespace, name)
            current = True
        except workflows.WorkflowNotFoundError:
            current = False
        ttl = await client.ttl(keys.workflow_generation(namespace, name, 1))
        return current, int(ttl), listed
    finally:
        await client.aclose()


def _wait_redis(redis_url: str, namespace: str, name: str, want: tuple[bool, bool]) -> int:
    deadline = time.monotonic() + 20
    while True:
        current, ttl, listed = asyncio.run(_redis_view(redis_url, namespace, name))
        if (current, listed) == want:
            return ttl
        assert time.monotonic() < deadline, (current, ttl, listed)
        time.sleep(0.2)


def test_a_deleted_workflow_is_retired_and_its_plan_kept_for_runs_under_way(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    for name in ("agentpool-batch-summarize", "agentworkflow-batch-summarize"):
        kube.apply(_sample(name, namespace))
    with operator.trimtab_operator(namespace, redis_url):
        assert _wait_redis(redis_url, namespace, "batch-summarize", (True, True)) == -1
        kube.delete(API_VERSION, "AgentWorkflow", "batch-summarize", namespace)
        ttl = _wait_redis(redis_url, namespace, "batch-summarize", (False, False))
    # No new run can start; the plan stays for the runs' TTL (the sample's 3600 s).
    assert 3590 <= ttl <= 3600
    again = kube.get(API_VERSION, "AgentWorkflow", "batch-summarize", namespace)
    assert again is None


def test_a_workflow_deleted_while_no_operator_ran_is_retired_at_startup(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    for name in ("agentpool-batch-summarize", "agentworkflow-batch-summarize"):
        kube.apply(_sample(name, namespace))
    with operator.trimtab_operator(namespace, redis_url):
        _wait_redis(redis_url, namespace, "batch-summarize", (True, True))
    kube.delete(API_VERSION, "AgentWorkflow", "batch-summarize", namespace)
    stays = _sample("agentworkflow-batch-summarize", namespace)
    stays["metadata"]["name"] = "stays"
    kube.apply(stays)
    with operator.trimtab_operator(namespace, redis_url):
        ttl = _wait_redis(redis_url, namespace, "batch-summarize", (False, False))
        assert ttl > 0
        _wait_redis(redis_url, namespace, "stays", (True, True))
        time.sleep(1)
    # The sweep retired only the deleted one.
    assert asyncio.run(_redis_view(redis_url, namespace, "stays"))[0] is True


def _tool_workflow(namespace: str) -> dict[str, Any]:
    header = {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}}
    step = {
        "name": "lookup",
        "kind": "tool",
        "tool": {"url": "https://crm.example.com/api", "headers": [header]},
    }
    return {
        "apiVersion": API_VERSION,
        "kind": "AgentWorkflow",
        "metadata": {"name": "lookup", "namespace": namespace},
        "spec": {"defaultPool": "small", "steps": [step]},
    }


def _secret_sources(dep: dict[str, Any]) -> list[dict[str, Any]]:
    volumes = dep["spec"]["template"]["spec"].get("volumes", [])
    return [
        source["secret"]
        for v in volumes
        if v["name"] == secrets.VOLUME
        for source in v["projected"]["sources"]
    ]


def test_tool_header_secrets_reach_the_pools_workers_and_survive_a_restart(
    kube: objects.ObjectStore, namespace: str, redis_url: str
) -> None:
    with operator.trimtab_operator(namespace, redis_url):
        kube.apply(samples.pool_doc(namespace, "small"))
        kube.wait_for(
            "apps/v1", "Deployment", "small-worker", namespace=namespace, until=lambda _: True
        )
        kube.apply(_tool_workflow(namespace))  # after the pool: its Deployment is updated
        dep = kube.wait_for(
            "apps/v1", "Deployment", "small-worker", namespace=namespace,
            until=lambda d: bool(_secret_sources(d)),
        )  # fmt: skip
    assert _secret_sources(dep) == [
        {"name": "crm", "optional": True, "items": [{"key": "token", "path": "crm/token"}]}
    ]
    generation = dep["metadata"]["generation"]
    # A restart sees pool events and workflow events in any order; the Deployment must
    # not lose the Secret (and roll its pods) in between.
    with operator.trimtab_operator(namespace, redis_url):
        kube.wait_for(
            API_VERSION, "AgentWorkflow", "lookup", namespace=namespace,
            until=lambda o: _condition(o, "SpecValid").get("status") == "True",
        )  # fmt: skip
        time.sleep(3)
        after = kube.get("apps/v1", "Deployment", "small-worker", namespace)
    assert after is not None
    assert after["metadata"]["generation"] == generation

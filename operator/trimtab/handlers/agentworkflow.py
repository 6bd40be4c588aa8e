"""AgentWorkflow: validate, publish the compiled plan to Redis, report status.

Level-based: create, resume, spec updates and a periodic timer all run the same
reconcile, so a pool turning Ready (or a restart at any moment) converges without
event plumbing. Status is patched only when it differs, so a steady workflow costs the
apiserver no writes.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from typing import Any

import kopf

from trimtab import metrics
from trimtab.api.v1alpha1 import API_VERSION, GROUP, VERSION
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import pool_objects, state
from trimtab.kube import objects
from trimtab.queue import workflow_readings, workflows
from trimtab.reasons import ConditionType
from trimtab.reconcile import conditions
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.reconcile.agentworkflow import dag, validation
from trimtab.reconcile.agentworkflow import status as status_mod

PLURAL = "agentworkflows"


# Each referenced pool that exists: whether it is Ready; why not; and those the operator
# has not reported on yet (no status), which the workflow's status waits for.
PoolsReady = tuple[dict[str, bool], dict[str, str], frozenset[str]]


def pools_ready(shared: state.Shared, body: Mapping[str, Any]) -> PoolsReady:
    """The pools the workflow's steps reference that exist: each, and whether its Ready
    condition is True; and for those that are not, its reason. Only the referenced pools
    decide its status, so only they are looked up (a namespace may hold thousands)."""
    meta = body["metadata"]
    ns, name = meta.get("namespace") or "default", meta["name"]
    parsed, _ = shared.checks.of(
        (ns, name), int(meta["generation"]), body["spec"], shared.cfg.policy
    )
    ready, why, unreported = {}, {}, set()
    for pool in sorted({pool for _, pool in validation.pool_references(parsed)}):
        held = shared.views.pools.get((ns, pool))
        if held is None:
            continue  # missing: the status names it
        found = (held.get("status") or {}).get("conditions")
        ready[pool] = conditions.is_true(found, ConditionType.READY)
        if not found:
            unreported.add(pool)
        elif not ready[pool]:
            why[pool] = str(conditions.find(found, ConditionType.READY).get("reason") or "")
    return ready, why, frozenset(unreported)


async def _publish(
    shared: state.Shared,
    namespace: str,
    name: str,
    generation: int,
    spec: awf.AgentWorkflowSpec,
    plan: dag.Plan,
    published: int | None,
) -> None:
    if published == generation:
        return  # already published: nothing to write
    compiled = compile_mod.compiled(namespace, name, generation, spec, plan)
    await workflows.publish(shared.redis, compile_mod.to_document(compiled))


async def _status(
    shared: state.Shared,
    body: Mapping[str, Any],
    reading: workflow_readings.WorkflowReading,
    pools: PoolsReady,
) -> tuple[dict[str, Any], list[conditions.Event]]:
    """Validate, publish when valid, and return the status patch and the Events of the
    conditions it moves."""
    t0 = time.perf_counter()
    meta = body["metadata"]
    ns, name, generation = meta.get("namespace") or "default", meta["name"], int(meta["generation"])
    parsed, checked = shared.checks.of((ns, name), generation, body["spec"], shared.cfg.policy)
    ready, why, _ = pools
    verdict = status_mod.decide(
        parsed,
        pools_ready=ready,
        checked=checked,
        missing_secrets=list(reading.missing_secrets),
        pools_why=why,
    )
    if verdict.publish and verdict.plan is not None:
        await _publish(shared, ns, name, generation, parsed, verdict.plan, reading.published)
    shared.metrics.reconciled(
        metrics.ReconciledKind.AGENT_WORKFLOW, seconds=time.perf_counter() - t0
    )
    held = body.get("status") or {}
    current = status_mod.parse(held)
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    want = status_mod.desired(verdict, current, reading.stats, generation=generation, now=now)
    moved = conditions.transitions(current.conditions, want.conditions)
    return status_mod.status_patch(held, want), moved


@kopf.on.event(GROUP, VERSION, PLURAL)
async def reconcile(
    *,
    event: kopf.RawEvent,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    """Once per spec generation (and at start-up): the same pass as the periodic refresh,
    through the same write path, after the pools' Deployments learned the new tool
    Secrets. A watch event rather than kopf's change handlers, which write kopf's
    bookkeeping onto every workflow; the periodic refresh retries a pass that failed.
    A deleted workflow is retired: no new run starts (a deletion handler would need a
    finalizer; one deleted while no operator ran is retired by `sweep_retired`)."""
    shared: state.Shared = memo["shared"]
    if event.get("type") == "DELETED":
        shared.objects.mark_handled(body, gone=True)
        await workflows.retire(shared.redis, namespace or "default", name)
    elif shared.objects.first_sight(body):
        try:
            await _update_pool_secrets(shared, body)
            await refresh(shared, body)
        finally:
            shared.objects.mark_handled(body)  # tried once here; the loops retry


async def _update_pool_secrets(shared: state.Shared, body: Mapping[str, Any]) -> None:
    """Re-level the Deployments of the pools this workflow's steps may run on, so the
    Secrets its tool headers read reach their workers before its first run. Unchanged
    Deployments are skipped by their desired-state hash. The workflow view holds this
    body already: kopf runs the watch handlers in the order they were registered, and
    trimtab.handlers registers the views' first."""
    ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
    # The per-generation parse the pools' Deployments are built from (an invalid spec
    # names no Secret); ensure_objects below reads the same cache.
    for pool in sorted(pool_objects.workflow_tool_secrets(shared, (ns, name), body)):
        pool_body = shared.views.pools.get((ns, pool))
        if pool_body is not None:
            await pool_objects.ensure_objects(shared, pool_body)


async def sweep_retired(shared: state.Shared) -> list[tuple[str, str]]:
    """Retire workflows published in Redis whose AgentWorkflow no longer exists.

    Absence is confirmed with the apiserver, not the watch view (which may lag or cover
    other namespaces); a workflow this operator may not read is left to its owner."""
    retired = []
    for ns, name in sorted(await workflows.published(shared.redis)):
        if (ns, name) in shared.views.workflows:
            continue
        try:
            found = await shared.kube.get(API_VERSION, "AgentWorkflow", name, ns)
        except objects.ApiError:
            continue  # forbidden (another operator's namespace) or unavailable
        if found is None and await workflows.retire(shared.redis, ns, name):
            retired.append((ns, name))
    return retired


async def refresh(
    shared: state.Shared,
    body: Mapping[str, Any],
    reading: workflow_readings.WorkflowReading | None = None,
    pools: PoolsReady | None = None,
) -> None:
    """The periodic pass (pools turning Ready, run statistics): patch only what changed,
    then post an Event for each condition that moved. `reading` and `pools` are what
    the refresh loop read for every workflow at once; alone, this reads its own."""
    meta = body["metadata"]
    ns = meta.get("namespace") or "default"
    if reading is None:
        key = (ns, meta["name"])
        reader = workflow_readings.WorkflowReader(shared.redis)
        reading = (await reader.read_all([key], now=time.time()))[key]
    if pools is None:
        pools = pools_ready(shared, body)
    patch, moved = await _status(shared, body, reading, pools)
    if pools[2]:
        # A pool it runs on has no status yet (created with it, the operator not there
        # yet): published already, but its status waits rather than report the pool not
        # Ready now and Ready a moment later, a write and two Events each time.
        return
    if patch:
        await shared.kube.patch_status(
            API_VERSION, "AgentWorkflow", meta["name"], patch, namespace=meta.get("namespace")
        )
    for event in moved:
        await shared.kube.post_event(
            dict(body), type_=event.type, reason=event.reason, message=event.message
        )

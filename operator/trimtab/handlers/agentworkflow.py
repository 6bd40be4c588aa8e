"""AgentWorkflow: validate, publish the compiled plan to Redis, report status.

Level-based: create, resume, spec updates and a periodic timer all run the same
reconcile, so a pool turning Ready (or a restart at any moment) converges without
event plumbing. Status is patched only when it differs, so a steady workflow costs the
apiserver no writes.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import kopf

from trimtab.api.v1alpha1 import GROUP, VERSION
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import state
from trimtab.queue import workflows
from trimtab.reconcile import conditions
from trimtab.reconcile.agentworkflow import compile as compile_mod
from trimtab.reconcile.agentworkflow import status as status_mod

PLURAL = "agentworkflows"


@kopf.index(GROUP, VERSION, "agentpools")
def pool_ready(
    *, name: str, namespace: str | None, status: kopf.Status, **_: Any
) -> dict[Any, bool]:
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {(namespace, name): bool(ready and ready[0].get("status") == "True")}


def _pools_in(index: kopf.Index[Any, bool], namespace: str) -> dict[str, bool]:
    return {
        name: next(iter(values), False) for (ns, name), values in index.items() if ns == namespace
    }


async def _publish(
    shared: state.Shared, namespace: str, name: str, generation: int, spec: awf.AgentWorkflowSpec
) -> None:
    try:
        if await workflows.current_generation(shared.redis, namespace, name) == generation:
            return  # already published: nothing to write
    except workflows.WorkflowNotFoundError:
        pass
    compiled = compile_mod.compile_workflow(
        namespace=namespace, name=name, generation=generation, spec=spec
    )
    await workflows.publish(shared.redis, compile_mod.to_document(compiled))


def _status_patch(
    current: kopf.Status,
    verdict: status_mod.WorkflowVerdict,
    generation: int,
    stats: workflows.RunStats,
) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.UTC)
    desired: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": conditions.merge(
            current.get("conditions") or [], verdict.conditions, generation=generation, now=now
        ),
        **verdict.summary(),
        "runsStarted": stats.started,
        "runsSucceeded": stats.succeeded,
        "runsFailed": stats.failed,
        "runsDeadLettered": stats.dead_lettered,
        "tokensUsed": stats.tokens,
        "costSpent": round(stats.cost, 6),
        "p95RunSeconds": None if stats.p95_seconds is None else round(stats.p95_seconds, 3),
    }
    return {k: v for k, v in desired.items() if current.get(k) != v}


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.timer(GROUP, VERSION, PLURAL, interval=10, initial_delay=5)
async def reconcile(
    *,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: kopf.Memo,
    **kwargs: Any,
) -> None:
    shared: state.Shared = memo["shared"]
    ns = namespace or "default"
    generation = int(body["metadata"]["generation"])
    parsed = awf.AgentWorkflowSpec.model_validate(dict(body["spec"]))
    verdict = status_mod.decide(parsed, pools_ready=_pools_in(kwargs["pool_ready"], ns))
    if verdict.publish:
        await _publish(shared, ns, name, generation, parsed)
    stats = await workflows.run_stats(shared.redis, ns, name, now=time.time())
    changes = _status_patch(status, verdict, generation, stats)
    for key, value in changes.items():
        patch.status[key] = value
    if "conditions" in changes:
        _emit_transitions(body, status, changes["conditions"])


def _emit_transitions(body: kopf.Body, status: kopf.Status, merged: list[dict[str, Any]]) -> None:
    """One Kubernetes Event per condition whose status or reason changed."""
    for cond in conditions.transitions(status.get("conditions") or [], merged):
        kind = (
            "Normal" if cond["status"] == "True" or cond["type"] == "SpotFallback" else ("Warning")
        )
        kopf.event(
            body,
            type=kind,
            reason=cond["reason"],
            message=f"{cond['type']}={cond['status']}: {cond['message']}",
        )

"""In-memory views of the objects the operator's loops read, kept current by watch
events. Event handlers need no finalizer, unlike kopf daemons and timers, so a pool or
workflow deleted while the operator is down is never left stuck; and one view read by
one loop scales to thousands of pools where a daemon per pool would not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from trimtab.api.v1alpha1 import GROUP, VERSION, kinds
from trimtab.handlers import pool_objects, state
from trimtab.reconcile import conditions, naming
from trimtab.reconcile.agentpool import fallback, status

MANAGED = {"app.kubernetes.io/managed-by": "trimtab-operator"}


def _shared(memo: kopf.Memo) -> state.Shared | None:
    return memo.get("shared")  # events can arrive before start-up finished


# What a view leaves out of an object's metadata: nothing reads them, and at thousands
# of objects they were most of the views' memory (managedFields alone is as large as the
# spec, and kopf's diff base is a copy of it).
UNREAD_METADATA = frozenset({"managedFields"})
UNREAD_ANNOTATIONS = frozenset({state.DIFFBASE_ANNOTATION})


def _metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in meta.items() if k not in UNREAD_METADATA}
    if "annotations" in kept:
        notes = kept["annotations"] or {}
        kept["annotations"] = {k: v for k, v in notes.items() if k not in UNREAD_ANNOTATIONS}
    return kept


def _snapshot(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "metadata": _metadata(body.get("metadata") or {}),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


def _track(view: dict[Any, Any], key: Any, event: Mapping[str, Any], value: Any) -> None:
    if event.get("type") == "DELETED":
        view.pop(key, None)
    else:
        view[key] = value


@kopf.on.event(GROUP, VERSION, "agentpools")
@kopf.on.event(GROUP, VERSION, "agentworkflows")
@kopf.on.event(GROUP, VERSION, "agentbudgets")
async def track_object(
    *,
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    shared = _shared(memo)
    if shared is not None:
        view = {
            kinds.AGENT_POOL.kind: shared.views.pools,
            kinds.AGENT_WORKFLOW.kind: shared.views.workflows,
            kinds.AGENT_BUDGET.kind: shared.views.budgets,
        }[str(body.get("kind"))]
        snapshot = _snapshot(body)
        _track(view, (namespace or "", name), event, snapshot)
        if view is shared.views.workflows:
            gone = event.get("type") == "DELETED"
            pool_objects.index_workflow(shared, (namespace or "", name), None if gone else snapshot)
        if event.get("type") == "DELETED":
            shared.objects.tool_secrets.pop((namespace or "", name), None)
            shared.objects.pool_specs.pop((namespace or "", name), None)
            shared.objects.built.pop((namespace or "", name), None)
            shared.checks.by_key.pop((namespace or "", name), None)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def track_deployment(
    *,
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    shared = _shared(memo)
    if shared is not None:
        key = (namespace or "", labels.get(naming.POOL_LABEL, ""))
        _track(shared.views.deployments, key, event, _deployment_view(body))
        _track_applied(shared, event, body)


@kopf.on.event("", "v1", "services", labels=MANAGED)
@kopf.on.event("policy", "v1", "poddisruptionbudgets", labels=MANAGED)
async def track_pool_object(
    *, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    shared = _shared(memo)
    if shared is not None:
        _track_applied(shared, event, body)


def _track_applied(shared: state.Shared, event: Mapping[str, Any], body: Mapping[str, Any]) -> None:
    """The object's desired-state hash as last applied (trimtab.handlers.pool_objects)."""
    meta = body.get("metadata") or {}
    key = (str(body.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))
    applied = (meta.get("annotations") or {}).get(pool_objects.HASH_ANNOTATION, "")
    _track(shared.views.applied, key, event, applied)


def _deployment_view(body: Mapping[str, Any]) -> state.DeploymentView:
    replicas = (body.get("spec") or {}).get("replicas")
    counts = body.get("status") or {}
    return state.DeploymentView(
        asked=int(replicas) if replicas is not None else 1,  # the API's default
        workload=status.Workload(
            replicas=int(counts.get("replicas") or 0),
            ready=int(counts.get("readyReplicas") or 0),
        ),
    )


def _pod_view(status: Mapping[str, Any], labels: Mapping[str, str]) -> fallback.PodView:
    scheduled = conditions.find(status.get("conditions"), "PodScheduled")
    stuck = (
        status.get("phase") == "Pending"
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
    )
    since = conditions.parse_time(scheduled.get("lastTransitionTime")) if stuck else None
    return fallback.PodView(
        unschedulable_since=since, capacity=labels.get(naming.CAPACITY_LABEL, "")
    )


@kopf.on.event("", "v1", "pods", labels={naming.POOL_LABEL: kopf.PRESENT})
async def track_pod(
    *,
    event: kopf.RawEvent,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    labels: kopf.Labels,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    shared = _shared(memo)
    if shared is not None:
        pods = shared.views.pods.setdefault(
            (namespace or "", labels.get(naming.POOL_LABEL, "")), {}
        )
        _track(pods, name, event, _pod_view(body.get("status") or {}, labels))

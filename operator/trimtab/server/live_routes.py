"""The live figures the operator publishes on its objects' status (pools: replicas,
queue, in flight, p95, breaker; workflows: runs, p95, cost), read from the apiserver
and authorized as reading those objects is (get/list on agentpools, agentworkflows).
Sessions, the conversations runs remember, sit here too: read and forgotten on
`agentworkflows/sessions`."""

from __future__ import annotations

from typing import Annotated, Any

import fastapi
import pydantic

from trimtab.api import rest, v1alpha1
from trimtab.api.v1alpha1 import agentpool, kinds
from trimtab.server import auth, context
from trimtab.server.context import Caller, caller

router = fastapi.APIRouter(
    prefix="/v1/namespaces/{namespace}", tags=["live"], dependencies=context.NAMESPACE_CHECKED
)
CallerDep = Annotated[Caller, fastapi.Depends(caller)]
API_VERSION = f"{v1alpha1.GROUP}/{v1alpha1.VERSION}"


class NoClusterError(LookupError):
    """The server runs without a cluster (development): no pools or workflows to read."""


def _status(kind: kinds.Kind, obj: dict[str, Any]) -> Any:
    try:
        return kind.status.model_validate(obj.get("status") or {})
    except pydantic.ValidationError:
        return None  # written by an older operator: shown without figures


async def _objects(who: Caller, kind: kinds.Kind, namespace: str) -> list[dict[str, Any]]:
    if who.ctx.kube is None:
        raise NoClusterError("this API server runs without a cluster: no live figures")
    await who.require(auth.Need("list", resource=kind.plural), namespace)
    return await who.ctx.kube.list(API_VERSION, kind.kind, namespace=namespace)


async def _object(who: Caller, kind: kinds.Kind, namespace: str, name: str) -> dict[str, Any]:
    if who.ctx.kube is None:
        raise NoClusterError("this API server runs without a cluster: no live figures")
    await who.require(auth.Need("get", resource=kind.plural), namespace, name)
    found = await who.ctx.kube.get(API_VERSION, kind.kind, name, namespace)
    if found is None:
        raise LookupError(f"{kind.kind} {namespace}/{name} not found")
    return found


def _pool(obj: dict[str, Any]) -> rest.PoolFigures:
    try:
        spec = agentpool.AgentPoolSpec.model_validate(obj.get("spec") or {})
        target = spec.scaling.targets.p95_latency_seconds
    except pydantic.ValidationError:
        target = None
    return rest.PoolFigures(
        name=obj["metadata"]["name"],
        p95_target_seconds=target,
        status=_status(kinds.AGENT_POOL, obj),
    )


@router.get("/pools", response_model=rest.PoolList)
async def pools(namespace: str, who: CallerDep) -> rest.PoolList:
    found = await _objects(who, kinds.AGENT_POOL, namespace)
    return rest.PoolList(items=[_pool(o) for o in found])


@router.get("/pools/{name}", response_model=rest.PoolFigures)
async def pool(namespace: str, name: str, who: CallerDep) -> rest.PoolFigures:
    return _pool(await _object(who, kinds.AGENT_POOL, namespace, name))


@router.get("/workflows", response_model=rest.WorkflowList)
async def workflows(namespace: str, who: CallerDep) -> rest.WorkflowList:
    kind = kinds.AGENT_WORKFLOW
    found = await _objects(who, kind, namespace)
    return rest.WorkflowList(
        items=[rest.WorkflowFigures(name=o["metadata"]["name"], status=_status(kind, o))
               for o in found]
    )  # fmt: skip


@router.get("/workflows/{name}", response_model=rest.WorkflowFigures)
async def workflow(namespace: str, name: str, who: CallerDep) -> rest.WorkflowFigures:
    found = await _object(who, kinds.AGENT_WORKFLOW, namespace, name)
    return rest.WorkflowFigures(name=name, status=_status(kinds.AGENT_WORKFLOW, found))


SESSIONS = auth.Sub.SESSIONS


@router.get("/sessions/{session}", tags=["sessions"])
async def session(namespace: str, session: str, who: CallerDep) -> dict[str, Any]:
    """The session's turns as chat messages, oldest first (none: new or expired)."""
    await who.require(auth.Need("get", sub=SESSIONS), namespace)
    return {"session": session, "messages": await who.ctx.sdk.session(namespace, session)}


@router.delete("/sessions/{session}", tags=["sessions"])
async def forget_session(namespace: str, session: str, who: CallerDep) -> dict[str, Any]:
    await who.require(auth.Need("delete", sub=SESSIONS), namespace)
    return {"session": session, "deleted": await who.ctx.sdk.delete_session(namespace, session)}

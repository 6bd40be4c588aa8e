"""A pool's objects: the worker Deployment, its metrics Service and PDB, applied from
their desired state (trimtab.reconcile.agentpool.desired).

Level-based: `ensure_objects` applies the desired objects, skipping any whose
desired-state hash already matches, so a steady pool costs no writes. Its callers are
the AgentPool handler (create, resume, spec updates), the autoscaler when a spot
fallback switches, the workflow handler when a workflow's tool Secrets change, and the
refresh loop once a minute; this module is theirs to share, so no handler module imports
another.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from trimtab import metrics
from trimtab.api.v1alpha1 import API_VERSION, agentpool
from trimtab.handlers import state
from trimtab.kube import objects
from trimtab.reasons import ConditionType
from trimtab.reconcile import conditions
from trimtab.reconcile.agentpool import admission, desired
from trimtab.reconcile.agentworkflow import secrets

PLURAL = "agentpools"
HASH_ANNOTATION = "trimtab.io/desired-hash"
OBJECT_MANAGER = "trimtab-operator"
log = logging.getLogger(__name__)


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    meta = obj["metadata"]
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return obj


def on_fallback(status: Mapping[str, Any]) -> bool:
    """Whether the pool's SpotFallback condition holds it on on-demand capacity."""
    return conditions.is_true(status.get("conditions"), ConditionType.SPOT_FALLBACK)


def _desired_objects(
    body: Mapping[str, Any],
    spec: agentpool.AgentPoolSpec,
    wiring: desired.Wiring,
    fallback: bool,
) -> list[dict[str, Any]]:
    ns, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], body["metadata"]["uid"]
    return [
        _hashed(o)
        for o in (
            desired.build_deployment(ns, name, uid, spec, wiring=wiring, fallback_active=fallback),
            desired.build_service(ns, name, uid),
            desired.build_pdb(ns, name, uid),
        )
    ]


async def _wiring(shared: state.Shared, namespace: str, pool: str) -> desired.Wiring:
    await _list_workflows_once(shared, namespace)
    needed: set[secrets.SecretKey] = set()
    for found in shared.objects.secrets_index.get((namespace, pool), {}).values():
        needed |= found
    return desired.Wiring(
        image=shared.cfg.worker_image,
        redis=shared.cfg.worker_redis,
        tool_secrets=frozenset(needed),
        tracing_env=shared.cfg.worker_tracing_env,
    )


def index_workflow(
    shared: state.Shared, key: tuple[str, str], body: Mapping[str, Any] | None
) -> None:
    """Keep the index of tool Secrets by pool current with one workflow's spec (None:
    the workflow is gone)."""
    index, pools_of = shared.objects.secrets_index, shared.objects.indexed_pools
    wanted = {} if body is None else workflow_tool_secrets(shared, key, body)
    for pool in pools_of.pop(key, set()) - set(wanted):
        index.get((key[0], pool), {}).pop(key[1], None)
    for pool, found in wanted.items():
        index.setdefault((key[0], pool), {})[key[1]] = frozenset(found)
    if wanted:
        pools_of[key] = set(wanted)


def workflow_tool_secrets(
    shared: state.Shared, key: tuple[str, str], body: Mapping[str, Any]
) -> dict[str, set[secrets.SecretKey]]:
    """A workflow's tool Secrets by pool, parsed once per generation: the once-a-minute
    pass over every pool would otherwise parse every workflow once per pool."""
    generation = body["metadata"].get("generation")
    cached = shared.objects.tool_secrets.get(key)
    if cached is None or cached[0] != generation:
        cached = (generation, secrets.raw_tool_secrets_by_pool(body.get("spec") or {}))
        shared.objects.tool_secrets[key] = cached
    return cached[1]


async def _list_workflows_once(shared: state.Shared, namespace: str) -> None:
    """Fill the namespace's workflow view from one list before its first use. At start-up
    pool events may come before workflow events; a Deployment built from a partial view
    would drop tool Secrets and roll every pod, twice, on each operator restart."""
    if namespace in shared.objects.workflows_listed:
        return
    found = await shared.kube.list(API_VERSION, "AgentWorkflow", namespace=namespace)
    for body in found:
        # Watch events are at least as fresh as this list: they win.
        key = (namespace, body["metadata"]["name"])
        if key not in shared.views.workflows:
            shared.views.workflows[key] = body
            index_workflow(shared, key, body)
    shared.objects.workflows_listed.add(namespace)


async def _apply_if_changed(
    shared: state.Shared, obj: dict[str, Any], spec: agentpool.AgentPoolSpec
) -> bool:
    meta = obj["metadata"]
    want = meta["annotations"][HASH_ANNOTATION]
    if shared.views.applied.get((obj["kind"], meta["namespace"], meta["name"])) == want:
        return False  # the watch saw it applied as desired: no read needed
    current = await shared.kube.get(obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"])
    if (
        current is None
        and obj["kind"] == "Deployment"
        and await _create_deployment(shared, obj, spec)
    ):
        return True
    have = ((current or {}).get("metadata") or {}).get("annotations") or {}
    if have.get(HASH_ANNOTATION) == want:
        return False
    await shared.kube.apply(obj, field_manager=OBJECT_MANAGER)
    return True


async def _create_deployment(
    shared: state.Shared, obj: dict[str, Any], spec: agentpool.AgentPoolSpec
) -> bool:
    """Create the Deployment with its initial replicas (a create, not an apply, so the
    count stays out of the object manager's applied fields and the scaler alone owns
    it from its first apply). False when it exists already (another pass was first)."""
    first = {**obj, "spec": {**obj["spec"], "replicas": desired.initial_replicas(spec)}}
    try:
        await shared.kube.create(first, field_manager=OBJECT_MANAGER)
    except objects.ApiError as exc:
        if exc.status != HTTPStatus.CONFLICT:
            raise
        return False
    return True


def parsed(
    shared: state.Shared, body: Mapping[str, Any]
) -> tuple[agentpool.AgentPoolSpec, tuple[str, ...]]:
    """The pool's spec, and why the operator builds nothing from it (trimtab.reconcile.
    agentpool.admission), decided once per generation: the autoscaler asks every pass,
    and the refresh loop every minute."""
    meta = body["metadata"]
    key, generation = (meta["namespace"], meta["name"]), (meta.get("uid", ""), meta["generation"])
    held = shared.objects.pool_specs.get(key)
    if held is None or held[0] != generation:
        spec = agentpool.AgentPoolSpec.model_validate(dict(body["spec"]))
        policy, image = shared.cfg.policy, shared.cfg.worker_image
        found = admission.problems(spec, policy, default_image=image)
        held = (generation, spec, tuple(str(p) for p in found))
        shared.objects.pool_specs[key] = held
    return held[1], held[2]


def _hashes(built: list[dict[str, Any]]) -> tuple[tuple[tuple[str, str, str], str], ...]:
    return tuple(
        ((o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]),
         o["metadata"]["annotations"][HASH_ANNOTATION])
        for o in built
    )  # fmt: skip


def _all_applied(
    shared: state.Shared, hashes: tuple[tuple[tuple[str, str, str], str], ...]
) -> bool:
    return all(shared.views.applied.get(key) == digest for key, digest in hashes)


async def ensure_objects(
    shared: state.Shared, body: Mapping[str, Any], *, fallback_active: bool | None = None
) -> None:
    """Apply whichever of the pool's objects differ from their desired state; placement
    follows `fallback_active`, or the pool's SpotFallback condition when None."""
    t0 = time.perf_counter()
    spec, problems = parsed(shared, body)
    if problems:
        return  # nothing is built from it; the pool's SpecValid condition says why
    on_demand = (
        on_fallback(body.get("status") or {}) if fallback_active is None else fallback_active
    )
    meta = body["metadata"]
    wiring = await _wiring(shared, meta["namespace"], meta["name"])
    made = (meta.get("uid"), meta.get("generation"), wiring, on_demand)
    held = shared.objects.built.get((meta["namespace"], meta["name"]))
    if held is not None and held[0] == made and _all_applied(shared, held[1]):
        return  # built from the same inputs before, and the watch sees each applied
    desired_objects = _desired_objects(body, spec, wiring, on_demand)
    shared.objects.built[(meta["namespace"], meta["name"])] = (made, _hashes(desired_objects))
    for obj in desired_objects:
        if await _apply_if_changed(shared, obj, spec):
            log.info(
                "applied %s %s/%s",
                obj["kind"],
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
            )
    shared.metrics.reconciled(metrics.ReconciledKind.AGENT_POOL, seconds=time.perf_counter() - t0)

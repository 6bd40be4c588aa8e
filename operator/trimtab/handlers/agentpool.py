"""AgentPool: the worker Deployment, its metrics Service and PDB, and the autoscaler.

Two parts, each level-based. `reconcile_objects` (create, resume, spec updates, a
spot fallback switching, and the refresh loop once a minute) applies the desired
objects, skipping any whose desired-state hash already matches, so a steady pool costs
no writes.
`PoolScaler`, ticked every second by trimtab.handlers.loops, reads load from Redis, asks
the pure scaling policy, applies the replica count under its own field manager, and is
the only writer of the pool's status.

A deleted pool's Redis stream is kept on purpose: tasks accepted for it are not dropped,
and a pool created again under the same name serves them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import kopf

from trimtab import metrics
from trimtab.api.v1alpha1 import API_VERSION, GROUP, VERSION, agentpool
from trimtab.handlers import pool_status, state
from trimtab.kube import events, objects
from trimtab.queue import load
from trimtab.reasons import ConditionType
from trimtab.reconcile import conditions
from trimtab.reconcile.agentpool import desired, fallback, scaling
from trimtab.reconcile.agentpool import status as status_mod
from trimtab.reconcile.agentworkflow import secrets

PLURAL = "agentpools"
HASH_ANNOTATION = "trimtab.io/desired-hash"
OBJECT_MANAGER = "trimtab-operator"
SCALER_MANAGER = "trimtab-scaler"
log = logging.getLogger(__name__)


def _switched_at(status: Mapping[str, Any]) -> float | None:
    found = conditions.find(status.get("conditions"), ConditionType.SPOT_FALLBACK)
    return conditions.parse_time(found.get("lastTransitionTime"))


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    meta = obj["metadata"]
    meta["annotations"] = {**meta.get("annotations", {}), HASH_ANNOTATION: digest}
    return obj


def _fallback_active(status: Mapping[str, Any]) -> bool:
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
    for key, body in list(shared.workflows.items()):
        if key[0] == namespace:
            needed |= workflow_tool_secrets(shared, key, body).get(pool, set())
    return desired.Wiring(
        image=shared.cfg.worker_image, redis=shared.cfg.worker_redis, tool_secrets=frozenset(needed)
    )


def workflow_tool_secrets(
    shared: state.Shared, key: tuple[str, str], body: Mapping[str, Any]
) -> dict[str, set[secrets.SecretKey]]:
    """A workflow's tool Secrets by pool, parsed once per generation: the once-a-minute
    pass over every pool would otherwise parse every workflow once per pool."""
    generation = body["metadata"].get("generation")
    cached = shared.tool_secrets.get(key)
    if cached is None or cached[0] != generation:
        cached = (generation, secrets.raw_tool_secrets_by_pool(body.get("spec") or {}))
        shared.tool_secrets[key] = cached
    return cached[1]


async def _list_workflows_once(shared: state.Shared, namespace: str) -> None:
    """Fill the namespace's workflow view from one list before its first use. At start-up
    pool events may come before workflow events; a Deployment built from a partial view
    would drop tool Secrets and roll every pod, twice, on each operator restart."""
    if namespace in shared.workflows_listed:
        return
    found = await shared.kube(shared.store.list, API_VERSION, "AgentWorkflow", namespace=namespace)
    for body in found:
        # Watch events are at least as fresh as this list: they win.
        shared.workflows.setdefault((namespace, body["metadata"]["name"]), body)
    shared.workflows_listed.add(namespace)


async def _apply_if_changed(
    shared: state.Shared, obj: dict[str, Any], spec: agentpool.AgentPoolSpec
) -> bool:
    meta = obj["metadata"]
    current = await shared.kube(
        shared.store.get, obj["apiVersion"], obj["kind"], meta["name"], meta["namespace"]
    )
    if (
        current is None
        and obj["kind"] == "Deployment"
        and await _create_deployment(shared, obj, spec)
    ):
        return True
    have = ((current or {}).get("metadata") or {}).get("annotations") or {}
    if have.get(HASH_ANNOTATION) == meta["annotations"][HASH_ANNOTATION]:
        return False
    await shared.kube(shared.store.apply, obj, field_manager=OBJECT_MANAGER)
    return True


async def _create_deployment(
    shared: state.Shared, obj: dict[str, Any], spec: agentpool.AgentPoolSpec
) -> bool:
    """Create the Deployment with its initial replicas (a create, not an apply, so the
    count stays out of the object manager's applied fields and the scaler alone owns
    it from its first apply). False when it exists already (another pass was first)."""
    first = {**obj, "spec": {**obj["spec"], "replicas": desired.initial_replicas(spec)}}
    try:
        await shared.kube(shared.store.create, first, field_manager=OBJECT_MANAGER)
    except objects.ApiError as exc:
        if exc.status != HTTPStatus.CONFLICT:
            raise
        return False
    return True


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile_objects(*, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await ensure_objects(memo["shared"], body)


async def ensure_objects(
    shared: state.Shared, body: Mapping[str, Any], *, fallback_active: bool | None = None
) -> None:
    """Apply whichever of the pool's objects differ from their desired state; placement
    follows `fallback_active`, or the pool's SpotFallback condition when None."""
    t0 = time.perf_counter()
    spec = agentpool.AgentPoolSpec.model_validate(dict(body["spec"]))
    if fallback_active is None:
        fallback_active = _fallback_active(body.get("status") or {})
    wiring = await _wiring(shared, body["metadata"]["namespace"], body["metadata"]["name"])
    for obj in _desired_objects(body, spec, wiring, fallback_active):
        if await _apply_if_changed(shared, obj, spec):
            log.info(
                "applied %s %s/%s",
                obj["kind"],
                obj["metadata"]["namespace"],
                obj["metadata"]["name"],
            )
    shared.metrics.reconciled(metrics.ReconciledKind.AGENT_POOL, seconds=time.perf_counter() - t0)


def _observe(
    pool_load: load.PoolLoad | None,
    rates: pool_status.ArrivalRate,
    current: int,
    now: float,
) -> scaling.Observed:
    """The policy's view of the pool's load; None (Redis unreadable) holds the size."""
    if pool_load is None:
        return scaling.Observed(
            backlog=0,
            in_flight=0,
            arrival_rate=0.0,
            completion_rate=0.0,
            service_seconds=None,
            p95_seconds=None,
            current_replicas=current,
            metrics_ok=False,
        )
    return scaling.Observed(
        backlog=pool_load.backlog,
        in_flight=pool_load.in_flight,
        arrival_rate=rates.arrival_rate(now, pool_load.added_total),
        completion_rate=pool_load.completion_rate,
        service_seconds=pool_load.service_seconds,
        p95_seconds=pool_load.p95_seconds,
        current_replicas=current,
    )


def _current_replicas(deployment: Mapping[str, Any] | None) -> int | None:
    if deployment is None:
        return None
    replicas = deployment.get("replicas")
    return int(replicas) if replicas is not None else 1  # the API's default


async def _apply_replicas(shared: state.Shared, namespace: str, name: str, replicas: int) -> None:
    doc = desired.build_replicas_patch(namespace, name, replicas)
    await shared.kube(shared.store.apply, doc, field_manager=SCALER_MANAGER)


class PoolScaler:
    """One pool's autoscaling loop state: arrival samples, status writer, history."""

    def __init__(self, shared: state.Shared, ns: str, name: str) -> None:
        self.shared, self.ns, self.name = shared, ns, name
        self.rates = pool_status.ArrivalRate()
        self.writer = pool_status.StatusWriter(shared, ns, name)
        self.history = scaling.History.empty()
        self._spec: tuple[int, agentpool.AgentPoolSpec] | None = None

    def spec(self, body: Mapping[str, Any]) -> agentpool.AgentPoolSpec:
        """The parsed spec, re-validated only when the generation changes (not every tick)."""
        generation = int(body["metadata"]["generation"])
        if self._spec is None or self._spec[0] != generation:
            self._spec = (generation, agentpool.AgentPoolSpec.model_validate(dict(body["spec"])))
        return self._spec[1]

    async def tick(
        self, body: Mapping[str, Any], pool_load: load.PoolLoad | None, now: float
    ) -> None:
        """One scaling pass for this pool over the load read for all pools: decide,
        apply, report."""
        key = (self.ns, self.name)
        deployment = self.shared.deployments.get(key)
        current = _current_replicas(deployment)
        if current is None:
            return  # the Deployment is not there yet: reconcile_objects creates it
        spec = self.spec(body)
        decision, observed = await self._scale(body, spec, current, pool_load, now)
        if pool_load is not None:
            self.shared.metrics.pool_observed(
                self.ns,
                self.name,
                backlog=pool_load.backlog,
                oldest_backlog_seconds=pool_load.oldest_backlog_seconds,
                p95_seconds=pool_load.p95_seconds,
                p95_target_seconds=spec.scaling.targets.p95_latency_seconds,
            )
        status = dict(body.get("status") or {})
        spot = fallback.decide(
            spec,
            active=_fallback_active(status),
            switched_at=_switched_at(status),
            pods=list(self.shared.pods.get(key, {}).values()),
            now=now,
        )
        decided = status_mod.decide(
            spec,
            name=self.name,
            deployment=deployment,
            scaling=pool_status.scaling_view(
                decision, observed, pool_load.breaker if pool_load is not None else None
            ),
            fallback=spot.active,
            fallback_message=spot.message,
        )
        decided["reason"] = f"{decision.reason.value}: {decision.message}"[:1024]
        await self.writer.write(
            status,
            decided,
            generation=int(body["metadata"]["generation"]),
            scaled=decision.replicas != current,
            now=now,
        )
        if spot.active != _fallback_active(status):  # placement moves with the condition
            await ensure_objects(self.shared, body, fallback_active=spot.active)

    async def _scale(
        self,
        body: Mapping[str, Any],
        spec: agentpool.AgentPoolSpec,
        current: int,
        pool_load: load.PoolLoad | None,
        now: float,
    ) -> tuple[scaling.Decision, scaling.Observed]:
        """Decide, and apply a changed replica count; time it."""
        t0 = time.perf_counter()
        observed = _observe(pool_load, self.rates, current, now)
        decision = scaling.scale_decision(observed, spec, self.history, now)
        self.history = decision.history  # kept even if applying below fails
        direction = metrics.ScaleDirection.NONE
        if decision.replicas != current:
            await _apply_replicas(self.shared, self.ns, self.name, decision.replicas)
            direction = (
                metrics.ScaleDirection.UP
                if decision.replicas > current
                else metrics.ScaleDirection.DOWN
            )
            await self.shared.kube(
                events.post,
                self.shared.store,
                body,
                type_="Normal",
                reason=decision.reason.value,
                message=f"{current} -> {decision.replicas}: {decision.message}",
            )
        self.shared.metrics.scale_decided(
            self.ns,
            self.name,
            direction=direction,
            desired=decision.replicas,
            seconds=time.perf_counter() - t0,
        )
        return decision, observed

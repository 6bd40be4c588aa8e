"""The objects the operator applies for an AgentPool, as plain dicts.

Each builder returns what `kubectl get -o json` would show for the fields the operator
owns; server-side apply sends them as they are. Builders take the pool as plain values
(namespace, name, uid, spec) and return fresh objects: same input, equal output.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from trimtab.api.v1alpha1 import agentpool
from trimtab.reconcile import naming
from trimtab.reconcile.agentpool import admission, placement, redis_access
from trimtab.reconcile.agentworkflow import secrets

API_VERSION = "trimtab.io/v1alpha1"
KIND = "AgentPool"
# The worker's contract (trimtab.worker.settings); repeated here because the pure layer
# may not import the worker, and a unit test keeps the two in step.
POOL_SPEC_ENV = "TRIMTAB_POOL_SPEC"
API_KEY_ENV = "TRIMTAB_MODEL_API_KEY"
CAPACITY_ENV = "TRIMTAB_CAPACITY"
SPEC_HASH_ANNOTATION = "trimtab.io/spec-hash"
WORKER_CONTAINER = "worker"
METRICS_PORT_NAME = "metrics"
NONROOT_ID = 65532
TMP_VOLUME = "tmp"
TMP_PATH = "/tmp"  # noqa: S108 - an emptyDir mount point, not a file the operator writes
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}}
RUNTIME_DEFAULT_SECCOMP = admission.RUNTIME_DEFAULT_SECCOMP


@dataclasses.dataclass(frozen=True)
class Wiring:
    """What the operator, not the pool's spec, decides about its workers: the image,
    how they reach Redis, the tool Secrets their workflows' steps read, the metrics port."""

    image: str
    redis: redis_access.RedisAccess
    tool_secrets: frozenset[secrets.SecretKey] = frozenset()
    metrics_port: int = 9090
    tracing_env: tuple[tuple[str, str], ...] = ()  # the admin's OTEL_* settings


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """Makes the AgentPool own the object, so deleting the pool garbage-collects it."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(namespace: str, name: str, uid: str, object_name: str) -> dict[str, Any]:
    return {
        "name": object_name,
        "namespace": namespace,
        "labels": naming.object_labels(name),
        "ownerReferences": [owner_reference(name, uid)],
    }


def worker_spec(spec: agentpool.AgentPoolSpec) -> dict[str, Any]:
    """The spec as workers get it. `replicas` is left out: the scale subresource writes it,
    and a changed worker spec rolls every pod, which scaling must never do."""
    wire = spec.to_wire()
    wire.pop("replicas", None)
    return wire


def _spec_json(spec: agentpool.AgentPoolSpec) -> str:
    return json.dumps(worker_spec(spec), sort_keys=True, separators=(",", ":"))


def spec_hash(spec: agentpool.AgentPoolSpec) -> str:
    """A stable digest of the worker spec; in the pod template, so a change rolls pods."""
    return hashlib.sha256(_spec_json(spec).encode()).hexdigest()[:16]


def build_deployment(
    namespace: str,
    name: str,
    uid: str,
    spec: agentpool.AgentPoolSpec,
    *,
    wiring: Wiring,
    fallback_active: bool,
) -> dict[str, Any]:
    """The worker Deployment, without `spec.replicas`.

    Replicas belong to the scaler, which applies them with `build_replicas_patch` under
    its own field manager. Leaving the field out here means this apply never owns it, so
    a spec change never resets the replica count.
    """
    where = placement.placement_for(spec.placement, fallback_active=fallback_active)
    worker = _worker_container(namespace, name, spec, wiring)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(namespace, name, uid, naming.worker_deployment(name)),
        "spec": {
            "selector": {"matchLabels": naming.selector_labels(name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": _pod_template(name, spec, where, worker, _volumes(wiring)),
        },
    }


def _pod_template(
    name: str,
    spec: agentpool.AgentPoolSpec,
    where: placement.Placement,
    worker: dict[str, Any],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    labels = {**naming.object_labels(name), naming.CAPACITY_LABEL: where.capacity}
    return {
        "metadata": {"labels": labels, "annotations": {SPEC_HASH_ANNOTATION: spec_hash(spec)}},
        "spec": _pod_spec(name, spec, where, worker, volumes),
    }


def _pod_spec(
    name: str,
    spec: agentpool.AgentPoolSpec,
    where: placement.Placement,
    worker: dict[str, Any],
    volumes: list[dict[str, Any]],
) -> dict[str, Any]:
    # Whatever the spec says, an extra container runs under the restricted profile.
    extras = [admission.restricted(c) for c in spec.worker.extra_containers]
    pod: dict[str, Any] = {
        # Workers talk to Redis and the model endpoint, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": spec.worker.termination_grace_period_seconds,
        "securityContext": _pod_security_context(),
        "containers": [worker, *extras],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}, *volumes],
    }
    pod.update(_scheduling(name, spec.placement, where))
    return pod


def _scheduling(
    name: str, spec: agentpool.PlacementSpec, where: placement.Placement
) -> dict[str, Any]:
    """Only non-empty fields: an applied empty list or map would still be owned."""
    out: dict[str, Any] = {}
    if where.node_selector:
        out["nodeSelector"] = dict(where.node_selector)
    if where.tolerations:
        out["tolerations"] = [dict(t) for t in where.tolerations]
    affinity = placement.merge_affinity(spec.affinity, where.node_affinity)
    if affinity:
        out["affinity"] = affinity
    if spec.spread_across_zones:
        out["topologySpreadConstraints"] = _spread(name)
    return out


def _spread(name: str) -> list[dict[str, Any]]:
    # ScheduleAnyway: spreading is best effort; a zone without capacity must not
    # leave pods pending.
    return [
        {
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": naming.selector_labels(name)},
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def _pod_security_context() -> dict[str, Any]:
    """Pod-level fields of the Pod Security "restricted" profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": NONROOT_ID,
        "runAsGroup": NONROOT_ID,
        "fsGroup": NONROOT_ID,
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }


def _container_security_context() -> dict[str, Any]:
    return {"readOnlyRootFilesystem": True, **copy.deepcopy(dict(admission.RESTRICTED))}


def _worker_container(
    namespace: str,
    name: str,
    spec: agentpool.AgentPoolSpec,
    wiring: Wiring,
) -> dict[str, Any]:
    args = ["worker", "run", "--pool", f"{namespace}/{name}", "--redis-url", wiring.redis.url]
    metrics_port = wiring.metrics_port
    resources = spec.worker.resources
    return {
        "name": WORKER_CONTAINER,
        "image": spec.worker.image or wiring.image,
        "command": ["trimtab"],
        "args": [*args, "--metrics-port", str(metrics_port)],
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": metrics_port, "protocol": "TCP"}],
        "resources": resources.to_wire() if resources else copy.deepcopy(DEFAULT_RESOURCES),
        "securityContext": _container_security_context(),
        # Ready while it reaches Redis and is not draining (trimtab.worker.serving);
        # probed often, since the autoscaler measures start-up to Ready.
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": METRICS_PORT_NAME},
            "periodSeconds": 2,
            "failureThreshold": 2,
        },
        # The root filesystem is read-only; libraries that need scratch space get /tmp.
        "env": _env(spec, wiring),
        "volumeMounts": [
            {"name": TMP_VOLUME, "mountPath": TMP_PATH},
            *wiring.redis.volume_mounts(),
            *secrets.volume_mounts(wiring.tool_secrets),
        ],
    }


def _volumes(wiring: Wiring) -> list[dict[str, Any]]:
    return [*wiring.redis.volumes(), *secrets.volumes(wiring.tool_secrets)]


_CAPACITY_FIELD = f"metadata.labels['{naming.CAPACITY_LABEL}']"


def _env(spec: agentpool.AgentPoolSpec, wiring: Wiring) -> list[dict[str, Any]]:
    """The operator's variables (the spec, the Secrets of model key and Redis), then
    the user's. Names the operator sets are reserved
    (the worker depends on them) and a repeated user name keeps its last value, since
    server-side apply rejects duplicate names in the list."""
    ours: list[dict[str, Any]] = [
        {"name": POOL_SPEC_ENV, "value": _spec_json(spec)},
        # The pod's own capacity label, so each attempt's history row says where it ran.
        {"name": CAPACITY_ENV, "valueFrom": {"fieldRef": {"fieldPath": _CAPACITY_FIELD}}},
    ]
    ref = spec.model.api_key_secret_ref
    if ref is not None:
        # Only a reference: the key's value never enters any object the operator writes.
        source = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        ours.append({"name": API_KEY_ENV, "valueFrom": source})
    ours.extend(wiring.redis.env())
    ours.extend({"name": name, "value": value} for name, value in wiring.tracing_env)
    reserved = {e["name"] for e in ours}
    user = {e.name: e.to_wire() for e in spec.worker.env if e.name not in reserved}
    return [*ours, *user.values()]


def build_service(
    namespace: str, name: str, uid: str, *, metrics_port: int = 9090
) -> dict[str, Any]:
    """A ClusterIP Service in front of the workers' metrics port, for scraping."""
    port = {
        "name": METRICS_PORT_NAME,
        "port": metrics_port,
        "targetPort": METRICS_PORT_NAME,
        "protocol": "TCP",
    }
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(namespace, name, uid, naming.metrics_service(name)),
        "spec": {"type": "ClusterIP", "selector": naming.selector_labels(name), "ports": [port]},
    }


def build_pdb(namespace: str, name: str, uid: str) -> dict[str, Any]:
    """A PodDisruptionBudget letting voluntary disruptions take one worker at a time.

    maxUnavailable 1 rather than minAvailable: minAvailable N blocks every drain (and
    spot consolidation) whenever the pool runs N replicas or fewer, and the scaler moves
    the count anywhere from 0 up. maxUnavailable 1 holds at any count, 0 included, and
    always lets a drain proceed one pod at a time; a stopped pod's steps are redelivered.
    AlwaysAllow lets unhealthy pods be evicted, so a crash-looping worker never wedges
    a drain.
    """
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(namespace, name, uid, naming.disruption_budget(name)),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": naming.selector_labels(name)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def initial_replicas(spec: agentpool.AgentPoolSpec) -> int:
    """Replicas a new worker Deployment starts with: what the scaler would ask for an
    idle pool, so a pool that scales from zero never starts a pod before work arrives
    (the API's default of 1 would)."""
    if spec.scaling.mode != "Auto" and spec.replicas is not None:
        return spec.replicas
    return spec.scaling.min_replicas


def build_replicas_patch(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    """The scaler's apply document: only spec.replicas, under its own field manager.

    It is applied to an existing Deployment (after `build_deployment`'s apply), so the
    fields it leaves out stay with their own manager.
    """
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": naming.worker_deployment(name), "namespace": namespace},
        "spec": {"replicas": replicas},
    }

"""What a worker process needs to know: its pool, the pool's spec, Redis, identity.

The operator passes the pool spec to worker pods as JSON in TRIMTAB_POOL_SPEC; without
Kubernetes, `trimtab worker run -f pool.yaml` reads it from an AgentPool manifest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import socket
import uuid
from collections.abc import Mapping

import yaml

from trimtab.api.v1alpha1 import agentpool, manifests
from trimtab.reconcile.agentworkflow import secrets

POOL_SPEC_ENV = "TRIMTAB_POOL_SPEC"
API_KEY_ENV = "TRIMTAB_MODEL_API_KEY"
# Where tool headers' Secrets are mounted; a worker run outside Kubernetes points it at
# a folder of <secret>/<key> files.
TOOL_SECRETS_DIR_ENV = "TRIMTAB_TOOL_SECRETS_DIR"
# The capacity type of the worker's pod (Spot, OnDemand, or Mixed for a pool that
# prefers spot), from its trimtab.io/capacity label through the downward API; the
# history records it with each attempt.
CAPACITY_ENV = "TRIMTAB_CAPACITY"


class SettingsError(ValueError):
    """The worker cannot tell which pool it serves or how."""


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    namespace: str
    pool: str
    spec: agentpool.AgentPoolSpec
    redis_url: str
    consumer: str
    api_key: str | None = None
    metrics_port: int | None = None
    tool_secrets_dir: pathlib.Path = pathlib.Path(secrets.MOUNT_DIR)
    capacity: str = ""  # unknown outside Kubernetes


def consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS: the pod name (Kubernetes sets
    HOSTNAME to it) and a suffix."""
    host = os.environ.get("HOSTNAME") or socket.gethostname()
    return f"{host}-{uuid.uuid4().hex[:6]}"


def spec_from_manifest(path: pathlib.Path) -> tuple[str | None, str, agentpool.AgentPoolSpec]:
    doc = yaml.safe_load(path.read_text())
    parsed = manifests.parse(doc)
    if not isinstance(parsed, manifests.AgentPool):
        raise SettingsError(f"{path} holds a {parsed.kind}, not an AgentPool")
    return parsed.metadata.namespace, parsed.metadata.name, parsed.spec


def spec_from_env(env: Mapping[str, str]) -> agentpool.AgentPoolSpec:
    raw = env.get(POOL_SPEC_ENV)
    if not raw:
        raise SettingsError(f"no pool spec: pass -f POOL.yaml or set {POOL_SPEC_ENV}")
    return agentpool.AgentPoolSpec.model_validate(json.loads(raw))


def resolve(
    *,
    pool_ref: str | None,
    manifest: pathlib.Path | None,
    redis_url: str,
    metrics_port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> WorkerSettings:
    """Settings from `--pool NAMESPACE/NAME` and/or `-f pool.yaml`, and the environment."""
    env = os.environ if env is None else env
    namespace, name, spec = None, None, None
    if manifest is not None:
        namespace, name, spec = spec_from_manifest(manifest)
    if pool_ref:
        if "/" not in pool_ref:
            raise SettingsError(f"--pool takes NAMESPACE/NAME, got {pool_ref!r}")
        namespace, name = pool_ref.split("/", 1)
    if spec is None:
        spec = spec_from_env(env)
    if not name:
        raise SettingsError("which pool? pass --pool NAMESPACE/NAME")
    return WorkerSettings(
        namespace=namespace or "default",
        pool=name,
        spec=spec,
        redis_url=redis_url,
        consumer=consumer_name(),
        api_key=env.get(API_KEY_ENV),
        metrics_port=metrics_port,
        tool_secrets_dir=pathlib.Path(env.get(TOOL_SECRETS_DIR_ENV) or secrets.MOUNT_DIR),
        capacity=env.get(CAPACITY_ENV, ""),
    )

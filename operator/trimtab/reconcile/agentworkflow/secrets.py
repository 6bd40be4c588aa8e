"""The Secrets tool steps read their headers from, and the pools whose workers need them.

Workers have no access to the Kubernetes API, so a header's Secret reaches them as a
file in a projected volume the operator puts on the pool's Deployment: a reference,
resolved by the kubelet, never the value. Each source is optional, so a Secret that
does not exist (yet) fails only the steps that read it, never the pool's pods, and the
kubelet brings a created or rotated Secret into running pods without a restart. A pool
gets the Secrets of every tool step that may run on it: its own pool or the default,
its routes, its fallback and the workflow's degrade pool.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from trimtab.api.v1alpha1 import agentworkflow as awf

SecretKey = tuple[str, str]  # (Secret name, key)
VOLUME = "tool-secrets"
MOUNT_DIR = "/var/run/trimtab/tool-secrets"


def file_name(name: str, key: str) -> str:
    """The file a header's Secret key is in, relative to MOUNT_DIR: `<name>/<key>`.
    A Secret's name is a DNS subdomain and a key is `[-._a-zA-Z0-9]+`, so the pair is
    one safe path and no two pairs share one."""
    return f"{name}/{key}"


def _step_pools(spec: awf.AgentWorkflowSpec, step: awf.Step) -> set[str]:
    pools = {p for p in (step.pool or spec.default_pool,) if p}
    pools |= {route.pool for route in step.routes or []}
    if step.fallback and step.fallback.pool:
        pools.add(step.fallback.pool)
    if spec.budget and spec.budget.degrade_pool:
        pools.add(spec.budget.degrade_pool)
    return pools


def tool_secrets_by_pool(spec: awf.AgentWorkflowSpec) -> dict[str, set[SecretKey]]:
    out: dict[str, set[SecretKey]] = {}
    for _, call, steps in awf.http_calls(spec):
        refs = {
            (h.value_from_secret.name, h.value_from_secret.key)
            for h in call.headers
            if h.value_from_secret is not None
        }
        for step in steps if refs else ():
            for pool in _step_pools(spec, step):
                out.setdefault(pool, set()).update(refs)
    return out


def raw_tool_secrets_by_pool(raw_spec: Mapping[str, Any]) -> dict[str, set[SecretKey]]:
    """`tool_secrets_by_pool` of a raw spec; one that does not parse names nothing (it
    is reported invalid on its own status and runs nothing)."""
    try:
        spec = awf.AgentWorkflowSpec.model_validate(dict(raw_spec))
    except pydantic.ValidationError:
        return {}
    return tool_secrets_by_pool(spec)


def volumes(needed: Iterable[SecretKey]) -> list[dict[str, Any]]:
    """The pod's projected volume for `needed` (none when empty), in a stable order (a
    reordering would roll every pod); every source optional."""
    by_secret: dict[str, set[str]] = {}
    for name, key in needed:
        by_secret.setdefault(name, set()).add(key)
    if not by_secret:
        return []
    sources = [
        {
            "secret": {
                "name": name,
                "optional": True,
                "items": [{"key": k, "path": file_name(name, k)} for k in sorted(keys)],
            }
        }
        for name, keys in sorted(by_secret.items())
    ]
    return [{"name": VOLUME, "projected": {"sources": sources}}]


def volume_mounts(needed: Iterable[SecretKey]) -> list[dict[str, Any]]:
    if not set(needed):
        return []
    return [{"name": VOLUME, "mountPath": MOUNT_DIR, "readOnly": True}]

"""The Secrets tool steps read their headers from, and the pools whose workers need them.

Workers have no access to the Kubernetes API, so a header's Secret reaches them as an
environment variable the operator puts on the pool's Deployment: a reference, resolved
by the kubelet, never the value. A pool gets the Secrets of every tool step that may
run on it: its own pool or the default, its routes, its fallback and the workflow's
degrade pool.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pydantic

from trimtab.api.v1alpha1 import agentworkflow as awf

SecretKey = tuple[str, str]  # (Secret name, key)
ENV_PREFIX = "TRIMTAB_SECRET_"


def secret_env_name(name: str, key: str) -> str:
    """The variable a header's Secret key is in: TRIMTAB_SECRET_<NAME>_<KEY>_<DIGEST>.

    Name and key are upper-cased with every other character an underscore, for people
    reading the pod spec. That alone can make two keys one name (`a-b`/`c` and `a`/`b-c`,
    or keys differing in case), and a repeated name fails the Deployment's apply, so a
    digest of the exact name and key follows.
    """
    readable = re.sub(r"[^A-Z0-9]", "_", f"{name}_{key}".upper())
    digest = hashlib.sha256(f"{name}/{key}".encode()).hexdigest()[:8].upper()
    return f"{ENV_PREFIX}{readable}_{digest}"


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
    for step in spec.steps:
        refs = {
            (h.value_from_secret.name, h.value_from_secret.key)
            for h in (step.tool.headers if step.tool else [])
            if h.value_from_secret is not None
        }
        if refs:
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


def env(needed: Iterable[SecretKey]) -> list[dict[str, Any]]:
    """The Deployment's variables for `needed`, in a stable order (a reordering would
    roll every pod)."""
    return [
        {
            "name": secret_env_name(name, key),
            "valueFrom": {"secretKeyRef": {"name": name, "key": key}},
        }
        for name, key in sorted(set(needed))
    ]

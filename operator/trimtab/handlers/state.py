"""What every handler shares: config, the Redis client, metrics, the apiserver, and the
views the watches keep."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from trimtab import config, metrics
from trimtab.api.v1alpha1 import agentpool
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.history import archive
from trimtab.kube import aio
from trimtab.queue import connection
from trimtab.reconcile.agentpool import fallback, status
from trimtab.reconcile.agentworkflow import validation
from trimtab.reconcile.policy import Policy
from trimtab.telemetry import tracing as traces

Key = tuple[str, str]  # (namespace, name)

# Where kopf keeps its bookkeeping on our objects (trimtab.handlers.lifecycle): our
# status schema has no room for its fields, so they are annotations under our prefix.
KOPF_PREFIX = "trimtab.io"
DIFFBASE_KEY = "last-handled-configuration"
DIFFBASE_ANNOTATION = f"{KOPF_PREFIX}/{DIFFBASE_KEY}"


@dataclasses.dataclass(frozen=True)
class DeploymentView:
    """A pool's worker Deployment as the scaler reads it."""

    asked: int  # spec.replicas
    workload: status.Workload


@dataclasses.dataclass
class Views:
    """The objects the loops read, as the watches last saw them. Written only by the
    watch handlers (trimtab.handlers.views); read by everything else."""

    pools: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    workflows: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    budgets: dict[Key, dict[str, Any]] = dataclasses.field(default_factory=dict)
    deployments: dict[Key, DeploymentView] = dataclasses.field(default_factory=dict)
    pods: dict[Key, dict[str, fallback.PodView]] = dataclasses.field(default_factory=dict)
    # Each pool object's desired-state hash as last applied: (kind, namespace, name) ->
    # its trimtab.io/desired-hash annotation, for Deployments, Services and PDBs.
    applied: dict[tuple[str, str, str], str] = dataclasses.field(default_factory=dict)

    def namespaces(self) -> set[str]:
        """The namespaces this operator watches objects of Trimtab's kinds in."""
        return {ns for ns, _ in [*self.workflows, *self.pools, *self.budgets]}


@dataclasses.dataclass
class ObjectsCache:
    """What trimtab.handlers.pool_objects remembers between passes."""

    # Namespaces whose workflows were listed once, so the view is complete there before
    # a pool's Deployment is built from it.
    workflows_listed: set[str] = dataclasses.field(default_factory=set)
    # Each pool's parsed spec and why the operator refuses it, with the (uid, generation)
    # they were parsed from.
    pool_specs: dict[Key, tuple[tuple[str, int], agentpool.AgentPoolSpec, tuple[str, ...]]] = (
        dataclasses.field(default_factory=dict)
    )
    # By namespace and pool: the tool Secrets each workflow's steps on that pool read, kept
    # as workflows come and go, so building one pool's Deployment does not walk every
    # workflow of its namespace.
    secrets_index: dict[Key, dict[str, frozenset[tuple[str, str]]]] = dataclasses.field(
        default_factory=dict
    )
    # Each pool's objects as last built: what they were built from (uid, generation,
    # wiring, placement) and each one's desired-state hash, so a pass over an unchanged
    # pool builds and hashes nothing.
    built: dict[Key, tuple[Any, tuple[tuple[tuple[str, str, str], str], ...]]] = dataclasses.field(
        default_factory=dict
    )
    # Each workflow's pools in that index.
    indexed_pools: dict[Key, set[str]] = dataclasses.field(default_factory=dict)
    # Each AgentPool and AgentWorkflow as (uid, generation) when its spec was last
    # handled: a watch event for anything else (a status write) handles nothing again.
    handled: dict[tuple[str, str, str], tuple[str, int]] = dataclasses.field(default_factory=dict)
    # Each workflow's tool Secrets by pool, with the generation they were parsed from.
    tool_secrets: dict[Key, tuple[Any, dict[str, set[tuple[str, str]]]]] = dataclasses.field(
        default_factory=dict
    )

    def first_sight(self, body: Mapping[str, Any]) -> bool:
        """Whether this object's spec (its uid and generation) was not handled yet."""
        key, spec = _handled_key(body)
        return self.handled.get(key) != spec

    def mark_handled(self, body: Mapping[str, Any], *, gone: bool = False) -> None:
        """Remember the object's spec as handled (or, `gone`, forget the object)."""
        key, spec = _handled_key(body)
        if gone:
            self.handled.pop(key, None)
        else:
            self.handled[key] = spec


def _handled_key(body: Mapping[str, Any]) -> tuple[tuple[str, str, str], tuple[str, int]]:
    meta = body["metadata"]
    key = (str(body.get("kind")), meta.get("namespace") or "", meta["name"])
    return key, (meta.get("uid", ""), meta.get("generation"))


@dataclasses.dataclass
class WorkflowChecks:
    """Each workflow's parsed spec and its own check, for the generation they came
    from: a workflow is validated and compiled once per generation, not every pass."""

    by_key: dict[Key, tuple[int, awf.AgentWorkflowSpec, validation.Checked]] = dataclasses.field(
        default_factory=dict
    )

    def of(
        self, key: Key, generation: int, raw_spec: Any, policy: Policy
    ) -> tuple[awf.AgentWorkflowSpec, validation.Checked]:
        held = self.by_key.get(key)
        if held is None or held[0] != generation:
            spec = awf.AgentWorkflowSpec.model_validate(dict(raw_spec))
            held = (generation, spec, validation.check(spec, policy))
            self.by_key[key] = held
        return held[1], held[2]


@dataclasses.dataclass
class BudgetPasses:
    """One pass at a time per AgentBudget, and the windows whose warning it counted: a
    spec change and the periodic refresh, each reading a status the other has not yet
    seen written, would otherwise both count one crossing of warnAt."""

    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    warned: set[tuple[str, int]] = dataclasses.field(default_factory=set)  # (period, start)


@dataclasses.dataclass
class Shared:
    cfg: config.OperatorConfig
    redis: connection.Redis
    metrics: metrics.Metrics
    # The apiserver, through the operator's one thread boundary (trimtab.kube.aio).
    kube: aio.AsyncStore = dataclasses.field(default_factory=aio.AsyncStore)
    views: Views = dataclasses.field(default_factory=Views)
    objects: ObjectsCache = dataclasses.field(default_factory=ObjectsCache)
    checks: WorkflowChecks = dataclasses.field(default_factory=WorkflowChecks)
    budget_passes: dict[Key, BudgetPasses] = dataclasses.field(default_factory=dict)
    # Each run once it has ended (trimtab.handlers.ended_runs): its span recorded, and
    # archived when a history database is configured.
    tracing: traces.Tracing = dataclasses.field(default_factory=traces.Tracing)
    history: archive.Archive | None = None

"""Whole AgentPool, AgentWorkflow and AgentBudget objects, parsed from manifests without a cluster.

`trimtab workflow publish -f` and `trimtab worker run -f` read manifests directly, so
they must reject what the apiserver would reject, with the same messages for the
cross-field rules (see base.CelRule).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from trimtab.api.v1alpha1 import agentbudget, agentpool, agentworkflow, base, kinds


class ObjectMeta(pydantic.BaseModel):
    """The metadata fields Trimtab reads; the rest (uid, managedFields, ...) is kept."""

    model_config = pydantic.ConfigDict(extra="allow", frozen=True)

    name: str = pydantic.Field(min_length=1, max_length=kinds.NAME_MAX, pattern=base.NAME_PATTERN)
    namespace: str | None = None
    generation: int | None = None
    labels: dict[str, str] = pydantic.Field(default_factory=dict)
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)


class _Object(base.Model):
    model_config = pydantic.ConfigDict(extra="forbid")

    api_version: Literal["trimtab.io/v1alpha1"] = "trimtab.io/v1alpha1"
    metadata: ObjectMeta


class AgentPool(_Object):
    kind: Literal["AgentPool"] = "AgentPool"
    spec: agentpool.AgentPoolSpec
    status: agentpool.AgentPoolStatus | None = None


class AgentWorkflow(_Object):
    kind: Literal["AgentWorkflow"] = "AgentWorkflow"
    spec: agentworkflow.AgentWorkflowSpec
    status: agentworkflow.AgentWorkflowStatus | None = None


class AgentBudget(_Object):
    kind: Literal["AgentBudget"] = "AgentBudget"
    spec: agentbudget.AgentBudgetSpec
    status: agentbudget.AgentBudgetStatus | None = None


Manifest = AgentPool | AgentWorkflow | AgentBudget


def parse(doc: dict[str, Any]) -> Manifest:
    """The typed object for one manifest; raises pydantic.ValidationError when invalid."""
    kind = doc.get("kind")
    if kind == "AgentPool":
        return AgentPool.model_validate(doc)
    if kind == "AgentWorkflow":
        return AgentWorkflow.model_validate(doc)
    if kind == "AgentBudget":
        return AgentBudget.model_validate(doc)
    raise ValueError(
        f"not a Trimtab manifest: kind {kind!r} (expected AgentPool, AgentWorkflow or AgentBudget)"
    )

"""The kinds as Kubernetes sees them: names, printer columns, subresources.

Everything a CRD says besides the schema lives here as data, next to the models, so
the CRD generator has one place to read and the operator one place to name things.
"""

from __future__ import annotations

import dataclasses

import pydantic

from trimtab.api.v1alpha1 import GROUP, VERSION, agentbudget, agentpool, agentworkflow

READY = '.status.conditions[?(@.type=="Ready")].status'
NAME_MAX = 50


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class ScalePaths:
    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str = ".status.selector"


@dataclasses.dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel]
    columns: tuple[PrinterColumn, ...]
    scale: ScalePaths | None = None
    categories: tuple[str, ...] = ("trimtab", "agents")
    group: str = GROUP
    version: str = VERSION

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def name_rule(self) -> dict[str, str]:
        """Names become Deployment, Service and label values with suffixes: keep room."""
        return {
            "rule": f"size(self.metadata.name) <= {NAME_MAX}",
            "message": f"{self.kind} names are at most {NAME_MAX} characters",
        }


AGENT_POOL = Kind(
    kind="AgentPool",
    plural="agentpools",
    singular="agentpool",
    short_names=("apool",),
    spec=agentpool.AgentPoolSpec,
    status=agentpool.AgentPoolStatus,
    columns=(
        PrinterColumn("Ready", "string", READY, "Whether the pool serves its queue"),
        PrinterColumn("Tier", "string", ".spec.model.tier", "The model's size label"),
        PrinterColumn("Replicas", "string", ".status.replicaSummary", "Ready/desired replicas"),
        PrinterColumn("Queue", "integer", ".status.queueDepth", "Steps waiting"),
        PrinterColumn("P95", "number", ".status.p95LatencySeconds", "End-to-end p95 latency (s)"),
        PrinterColumn("Capacity", "string", ".status.capacity", "Spot or OnDemand in use"),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    ),
    scale=ScalePaths(),
)

AGENT_WORKFLOW = Kind(
    kind="AgentWorkflow",
    plural="agentworkflows",
    singular="agentworkflow",
    short_names=("awf",),
    spec=agentworkflow.AgentWorkflowSpec,
    status=agentworkflow.AgentWorkflowStatus,
    columns=(
        PrinterColumn("Ready", "string", READY, "Spec valid and pools ready"),
        PrinterColumn("Steps", "integer", ".status.stepCount", "Steps in the DAG"),
        PrinterColumn("Runs", "integer", ".status.runsStarted", "Runs started"),
        PrinterColumn("P95", "number", ".status.p95RunSeconds", "Run p95 latency (s)"),
        PrinterColumn("Cost", "number", ".status.costSpent", "Cost of all runs"),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    ),
)

AGENT_BUDGET = Kind(
    kind="AgentBudget",
    plural="agentbudgets",
    singular="agentbudget",
    short_names=("abudget",),
    spec=agentbudget.AgentBudgetSpec,
    status=agentbudget.AgentBudgetStatus,
    columns=(
        PrinterColumn("Ready", "string", READY, "Enforced by the workers"),
        PrinterColumn(
            "Exhausted",
            "string",
            '.status.conditions[?(@.type=="Exhausted")].status',
            "A limit is spent: new runs are refused",
        ),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    ),
)

KINDS = (AGENT_POOL, AGENT_WORKFLOW, AGENT_BUDGET)

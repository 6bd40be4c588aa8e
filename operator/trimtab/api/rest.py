"""The HTTP API's request and response bodies (`trimtab api`, /v1): one type per value
that crosses HTTP, shared by the server (trimtab.server), which encodes them from the
runtime's own records, and the SDK's HTTP transport, which decodes them. The OpenAPI
document (docs/openapi.json) is generated from these models with the routes.

Times are milliseconds since the epoch, as the runtime keeps them; names are camelCase
like the CRDs'.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import Field

from trimtab.api.v1alpha1 import agentpool, agentworkflow

# trimtab.queue.wire's RunStatus and StepState, spelled for the OpenAPI document (this
# layer is below the runtime's); tests/unit/test_rest_models.py keeps them equal.
RunStatus = Literal["waiting", "running", "succeeded", "failed", "review", "cancelled"]
StepState = Literal[
    "pending", "queued", "running", "retrying", "review", "done", "dead", "cancelled"
]
AttemptOutcome = Literal["done", "retry", "escalated", "dead", "review", "interrupted"]


class Body(pydantic.BaseModel):
    """camelCase on the wire, unknown fields refused (a typo is an error, not ignored)."""

    model_config = pydantic.ConfigDict(
        alias_generator=pydantic.alias_generators.to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class Problem(Body):
    """Every error: the HTTP status and one line saying what was wrong."""

    status: int
    error: str


class SubmitRequest(Body):
    inputs: dict[str, Any] = Field(default_factory=dict)
    session: str | None = Field(default=None, description="the conversation the run continues")
    priority: agentworkflow.Priority | None = Field(
        default=None, description="overrides the workflow's spec.priority for this run"
    )
    deadline_seconds: int | None = Field(
        default=None, ge=1, description="overrides the workflow's spec.deadlineSeconds"
    )


class Links(Body):
    self_: str = Field(alias="self")
    events: str
    cancel: str


class Submitted(Body):
    run: str = Field(description="NAMESPACE/ID, as the SDK and CLI name runs")
    id: str
    created: bool = Field(description="false when the idempotency key named an earlier run")
    links: Links


class AttemptBody(Body):
    """One ended attempt of a step: where it ran, when, what it spent, how it ended."""

    attempt: int
    outcome: AttemptOutcome
    pool: str | None = None
    worker: str | None = None
    capacity: str | None = Field(default=None, description="Spot, OnDemand or Mixed")
    started_ms: float | None = None
    ended_ms: float
    tokens: int = 0
    cost: float = 0.0
    error: str | None = None


class StepBody(Body):
    state: StepState
    attempt: int
    pool: str | None
    output: Any = None
    error: str | None = None
    tokens: int = 0
    cost: float = 0.0
    queued_ms: float | None = None
    started_ms: float | None = None
    ended_ms: float | None = None
    compensation: str | None = None
    compensation_error: str | None = None
    transcript: Any = Field(default=None, description="an agent step's turns")
    review: str | None = Field(default=None, description="its review entry, while it waits")
    worker: str | None = Field(default=None, description="the worker of its latest delivery")
    capacity: str | None = Field(default=None, description="the capacity that worker ran on")
    attempts: list[AttemptBody] = Field(
        default_factory=list, description="its ended attempts, oldest first"
    )


class RunBody(Body):
    id: str
    namespace: str
    workflow: str
    generation: int
    status: RunStatus
    priority: str
    session: str | None = None
    inputs: Any = None
    created_ms: float
    ended_ms: float | None = None
    tokens: int = 0
    cost: float = 0.0
    error: str | None = None
    outputs: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepBody] = Field(default_factory=dict)
    reviews: list[str] = Field(default_factory=list, description="its entries in review")
    dead_letters: list[str] = Field(default_factory=list, description="its dead-letter entries")


class RunSummaryBody(Body):
    id: str
    workflow: str
    status: RunStatus
    created_ms: float
    ended_ms: float | None = None
    tokens: int = 0
    cost: float = 0.0
    error: str | None = None


class RunList(Body):
    items: list[RunSummaryBody]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class Cancelled(Body):
    run: str
    status: RunStatus


class ReviewBody(Body):
    id: str
    run: str
    step: str
    attempt: int
    workflow: str
    generation: int
    pool: str
    reason: str
    output: Any = None
    tokens: int = 0
    cost: float = 0.0
    at_ms: float
    inputs: Any = None
    output_schema: dict[str, Any] | None = Field(
        default=None, description="what an edited output must satisfy"
    )


class ReviewList(Body):
    items: list[ReviewBody]


class EditRequest(Body):
    output: Any


REJECTED = "rejected by a reviewer"  # why a step was rejected, when the reviewer says not


class RejectRequest(Body):
    reason: str = Field(default=REJECTED, max_length=2000)


class Decision(Body):
    """What approving, editing or rejecting did (the runtime's reply, e.g. ok, stale)."""

    review: str
    outcome: str


class DeadLetterBody(Body):
    id: str
    run: str | None
    step: str | None
    attempt: int
    workflow: str | None
    pool: str
    reason: str
    at_ms: float | None = None


class DeadLetterList(Body):
    items: list[DeadLetterBody]


class Retried(Body):
    entry: str
    outcome: str
    steps: list[str] = Field(default_factory=list)


class PurgeRequest(Body):
    ids: list[str] | None = Field(default=None, description="none: every entry")


class Purged(Body):
    purged: int


class PoolFigures(Body):
    """A pool as the operator publishes it on its status."""

    name: str
    p95_target_seconds: float | None = Field(
        default=None, description="the pool's spec.scaling.targets.p95LatencySeconds"
    )
    status: agentpool.AgentPoolStatus | None = None


class PoolList(Body):
    items: list[PoolFigures]


class WorkflowFigures(Body):
    name: str
    status: agentworkflow.AgentWorkflowStatus | None = None


class WorkflowList(Body):
    items: list[WorkflowFigures]


class ArchivedRunBody(Body):
    """An ended run as the history database keeps it."""

    id: str
    namespace: str
    workflow: str
    generation: int
    status: RunStatus
    priority: str
    created_ms: float
    ended_ms: float
    duration_seconds: float
    tokens: int
    cost: float
    error: str | None = None
    session: str | None = None
    idempotency_key: str | None = None
    trace_id: str = Field(description="its trace, in the tracing backend")


class ArchivedRuns(Body):
    runs: list[ArchivedRunBody]


class CostRowBody(Body):
    key: str = Field(description="the workflow, pool, model, tier or day")
    runs: int
    tokens: int
    cost: float


class CostReport(Body):
    by: str
    since_ms: float
    until_ms: float
    rows: list[CostRowBody]
    total_cost: float

"""AgentPool: a pool of inference workers bound to one OpenAI-compatible model endpoint.

The operator runs the pool as a Deployment, scales it on its own queue's depth,
in-flight work and p95 latency, and places it on spot or on-demand nodes.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from trimtab.api.v1alpha1 import base

Field = pydantic.Field


class Pricing(base.Model):
    """What the endpoint charges, used for run budgets and cost reports."""

    input_per_1k: float = Field(
        default=0.0, alias="inputPer1k", ge=0, le=1000, description="Cost per 1,000 prompt tokens."
    )
    output_per_1k: float = Field(
        default=0.0,
        alias="outputPer1k",
        ge=0,
        le=1000,
        description="Cost per 1,000 completion tokens.",
    )


class ModelEndpoint(base.Model):
    """The OpenAI-compatible endpoint every worker of the pool calls."""

    endpoint: base.Url = Field(
        description="Base URL of the OpenAI-compatible API, e.g. http://vllm.models:8000/v1."
    )
    name: str = Field(min_length=1, max_length=253, description="Model name sent in each request.")
    api_key_secret_ref: base.SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the API key, passed to workers as an "
        "environment variable; never copied into status, events or logs.",
    )
    tier: base.Name = Field(
        default="standard",
        description="A label such as small or large, used by fallbacks, routes and cost reports.",
    )
    pricing: Pricing = Field(default_factory=Pricing, description="Token prices.")
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Timeout of one model request."
    )
    max_tokens: int = Field(
        default=1024, ge=1, le=1_000_000, description="Default completion token limit per request."
    )


class WorkerSpec(base.Model):
    """The worker pods: image, per-replica concurrency, resources and extras."""

    image: str | None = Field(
        default=None,
        max_length=1024,
        description="Worker image; defaults to the operator's worker image of the same version.",
    )
    concurrency: int = Field(
        default=8, ge=1, le=1024, description="Steps one replica runs at once."
    )
    resources: base.ResourceRequirements | None = Field(
        default=None, description="Resources of the worker container."
    )
    env: list[base.EnvVar] = Field(
        default_factory=list, max_length=64, description="Extra environment variables."
    )
    extra_containers: list[base.FreeForm] = Field(
        default_factory=list,
        max_length=8,
        description="Additional containers (core/v1 Container), e.g. a model server sidecar.",
    )
    termination_grace_period_seconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="Time a stopping worker gets to finish its "
        "in-flight steps before it is killed; unfinished steps are redelivered.",
    )


class ScalingTargets(base.Model):
    """What the autoscaler aims for; the largest replica count any target asks for wins."""

    backlog_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Drain the queued backlog within this many seconds.",
    )
    messages_per_replica: int | None = Field(
        default=None, ge=1, le=100_000, description="Alternatively, queued messages per replica."
    )
    in_flight_utilization: float = Field(
        default=0.8, gt=0, le=1, description="Target share of each replica's concurrency in use."
    )
    p95_latency_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Add replicas while step p95 latency is above this.",
    )


class Stabilization(base.Model):
    """How long a lower (or higher) recommendation must persist before it is applied."""

    scale_up_seconds: int = Field(default=0, ge=0, le=3600)
    scale_down_seconds: int = Field(default=60, ge=0, le=3600)


class ScalingSpec(base.Model):
    """Who sets the replica count, its bounds and its targets."""

    CEL = (
        base.CelRule(
            rule="self.minReplicas <= self.maxReplicas",
            message="scaling.minReplicas must not exceed scaling.maxReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
        ),
    )

    mode: Literal["Auto", "Manual", "External"] = Field(
        default="Auto",
        description="Auto: the operator scales on queue depth, in-flight work "
        "and latency. Manual/External: replicas come from spec.replicas, which the scale "
        "subresource sets (kubectl scale, an HPA or KEDA).",
    )
    min_replicas: int = Field(
        default=0, ge=0, le=1000, description="Lower bound; 0 allows scale to zero when idle."
    )
    max_replicas: int = Field(default=10, ge=1, le=1000, description="Upper bound.")
    targets: ScalingTargets = Field(default_factory=ScalingTargets)
    stabilization: Stabilization = Field(default_factory=Stabilization)
    idle_seconds_to_zero: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="With minReplicas 0: idle time before scaling to zero.",
    )


class CustomCapacity(base.Model):
    """Node labels and tolerations for provider custom."""

    spot_node_selector: base.Labels = Field(default_factory=dict, max_length=8)
    on_demand_node_selector: base.Labels = Field(default_factory=dict, max_length=8)
    spot_tolerations: list[base.Toleration] = Field(default_factory=list, max_length=8)


class PlacementSpec(base.Model):
    """Where the pool's pods run: spot or on-demand capacity, and how to find it."""

    CEL = (
        base.CelRule(
            rule="self.provider != 'custom' || has(self.custom)",
            message="placement.custom is required when placement.provider is custom",
            check=lambda s: s.provider != "custom" or s.custom is not None,
        ),
    )

    capacity: Literal["OnDemand", "Spot", "SpotPreferred"] = Field(
        default="OnDemand",
        description="Spot: only spot nodes, falling back to on-demand "
        "after fallbackAfterSeconds unschedulable. SpotPreferred: prefer spot, allow on-demand.",
    )
    provider: Literal["auto", "karpenter", "eks", "gke", "aks", "custom"] = Field(
        default="auto", description="Which node labels and taints mark spot capacity."
    )
    custom: CustomCapacity | None = Field(
        default=None, description="Labels and tolerations for provider custom."
    )
    fallback_after_seconds: int = Field(
        default=120,
        ge=0,
        le=86400,
        description="Spot pods "
        "unschedulable this long switch the pool to on-demand; "
        "0 disables fallback.",
    )
    spread_across_zones: bool = Field(
        default=True, description="Spread replicas across zones and nodes (ScheduleAnyway)."
    )
    node_selector: base.Labels = Field(default_factory=dict, max_length=16)
    tolerations: list[base.Toleration] = Field(default_factory=list, max_length=16)
    affinity: base.FreeForm | None = Field(
        default=None, description="core/v1 Affinity, merged with the capacity's node affinity."
    )


class QueueSpec(base.Model):
    """The pool's Redis stream and its delivery guarantees."""

    stream: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[A-Za-z0-9:._-]+$",
        description="Stream name override.",
    )
    visibility_timeout_seconds: int = Field(
        default=300, ge=1, le=86400, description="Unacknowledged steps are redelivered after this."
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Deliveries before a step goes to the dead-letter stream.",
    )


class BreakerSpec(base.Model):
    """The circuit breaker on the pool's model and tool endpoints, shared by all its
    workers through Redis: open after `failureThreshold` failures (5xx, timeouts,
    connection errors) within `windowSeconds` that are also at least `failureRate` of
    the window's calls (so a busy pool with a few stray errors stays closed); after
    `openSeconds`, let `halfOpenProbes` requests through; close on a probe's success."""

    failure_threshold: int = Field(
        default=5, ge=1, le=10000, description="Failures within the window that open it."
    )
    failure_rate: float = Field(
        default=0.5, ge=0, le=1, description="Share of the window's calls that must fail too."
    )
    window_seconds: int = Field(default=30, ge=1, le=3600, description="Failure-counting window.")
    open_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="Cool-down before half-open probes."
    )
    half_open_probes: int = Field(
        default=1, ge=1, le=100, description="Requests let through while half-open."
    )


class AgentPoolSpec(base.Model):
    """Desired state of an AgentPool."""

    replicas: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Replicas in Manual/External mode; set by the scale subresource.",
    )
    model: ModelEndpoint
    worker: WorkerSpec = Field(default_factory=WorkerSpec)
    scaling: ScalingSpec = Field(default_factory=ScalingSpec)
    placement: PlacementSpec = Field(default_factory=PlacementSpec)
    queue: QueueSpec = Field(default_factory=QueueSpec)
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)


class AgentPoolStatus(base.Model):
    """Observed state of an AgentPool, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: base.Conditions = Field(default_factory=list)
    replicas: int = Field(default=0, ge=0)
    ready_replicas: int = Field(default=0, ge=0)
    desired_replicas: int = Field(default=0, ge=0)
    replica_summary: str = Field(default="", max_length=32, description="ready/desired.")
    selector: str = Field(
        default="", max_length=1024, description="Pod label selector, for the scale subresource."
    )
    queue_depth: int = Field(default=0, ge=0)
    in_flight: int = Field(default=0, ge=0)
    p95_latency_seconds: float | None = None
    last_scale_time: datetime.datetime | None = None
    last_scale_reason: str | None = Field(default=None, max_length=1024)
    capacity: Literal["Spot", "OnDemand"] | None = None
    breaker: Literal["Closed", "Open", "HalfOpen"] | None = None

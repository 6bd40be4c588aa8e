"""AgentPool: a pool of inference workers bound to one OpenAI-compatible model endpoint.

The operator runs the pool as a Deployment, scales it on its own queue's depth,
in-flight work and p95 latency, and places it on spot or on-demand nodes.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic

from trimtab.api.v1alpha1 import base

Field = pydantic.Field


def _cron_field(number: str) -> str:
    """One cron field: lists of `*` or a value or range, each with an optional step."""
    item = rf"(\*|{number}(-{number})?)(/[0-9]{{1,2}})?"
    return rf"{item}(,{item})*"


_MONTH = r"([1-9]|1[0-2]|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_WEEKDAY = r"([0-7]|sun|mon|tue|wed|thu|fri|sat)"
# The five fields with their value ranges, so the apiserver refuses `0 25 * * *`;
# trimtab.reconcile.cron also checks that each range runs upward.
_CRON_PATTERN = (
    "^"
    + " +".join(
        _cron_field(n)
        for n in (
            r"[0-5]?[0-9]",
            r"([01]?[0-9]|2[0-3])",
            r"(0?[1-9]|[12][0-9]|3[01])",
            _MONTH,
            _WEEKDAY,
        )
    )
    + "$"
)


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


class RateLimit(base.Model):
    """The endpoint's rate limit, shared by all the pool's workers through Redis: calls
    wait their turn rather than meet the provider's 429s, a 429 halves the rate until
    calls succeed again, and the autoscaler adds no replica the limit could not use."""

    CEL = (
        base.CelRule(
            rule="has(self.requestsPerMinute) || has(self.tokensPerMinute)",
            message="rateLimit needs requestsPerMinute or tokensPerMinute",
            check=lambda r: r.requests_per_minute is not None or r.tokens_per_minute is not None,
        ),
    )

    requests_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="Model requests per minute, all workers together.",
    )
    tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000_000,
        description="Tokens per minute, all workers together: each call takes its worst "
        "case (prompt estimate plus its completion allowance).",
    )


# Request fields the worker sets itself; extraBody may not replace them.
RESERVED_BODY_FIELDS = (
    "model",
    "messages",
    "stream",
    "stream_options",
    "tools",
    "tool_choice",
    "response_format",
    "max_tokens",
    "max_completion_tokens",
    "n",
)


class ModelParameters(base.Model):
    """Sampling parameters sent with every request of the pool; an unset one is left to
    the server's default."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(
        default=None,
        ge=-(2**53),
        le=2**53,
        description="Asks the server for repeatable sampling (servers that support it).",
    )
    stop: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=4, description="Sequences that end the reply."
    )
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    extra_body: base.FreeForm | None = Field(
        default=None,
        description="Further request fields sent as given, for a server's own "
        "parameters (vLLM's top_k, llama.cpp's min_p); a server that refuses one "
        "answers 400, which fails the step without retries and with the server's "
        "message. It may not set a field the worker sets itself: "
        + ", ".join(RESERVED_BODY_FIELDS)
        + ".",
    )

    # Not a CEL rule: the apiserver types a free-form object's keys as unknown, so
    # only the operator's own parse refuses it (and the worker drops such keys anyway).
    @pydantic.field_validator("extra_body")
    @classmethod
    def _no_reserved_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        taken = sorted(set(value or {}) & set(RESERVED_BODY_FIELDS))
        if taken:
            raise ValueError(
                "parameters.extraBody may not set a field the worker sets itself: "
                + ", ".join(taken)
            )
        return value


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
        description="A label such as small or large for the model's size, shown by "
        "`kubectl get agentpools`; nothing else reads it.",
    )
    tokenizer: Literal["Estimate", "Cl100kBase"] = Field(
        default="Estimate",
        description="How a prompt's tokens are counted before the call, for the worst case "
        "each call holds on its budgets and the rate limit: Estimate (four characters a "
        "token; text that tokenizes denser, such as Chinese or code, can overrun a budget "
        "by the difference) or Cl100kBase (the BPE of OpenAI's GPT-4 and GPT-3.5 models, "
        "bundled, exact for them and close for most others). Spend is always settled to "
        "the usage the endpoint reports.",
    )
    pricing: Pricing = Field(default_factory=Pricing, description="Token prices.")
    timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, description="Timeout of one model request."
    )
    max_tokens: int = Field(
        default=1024, ge=1, le=1_000_000, description="Default completion token limit per request."
    )
    rate_limit: RateLimit | None = None
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens",
        description="The request field the completion limit is sent in: max_tokens "
        "(vLLM, llama.cpp, TGI, Ollama and most others) or max_completion_tokens "
        "(OpenAI's newer models refuse max_tokens).",
    )
    structured_output: Literal["JsonSchema", "JsonObject", "Prompt"] = Field(
        default="JsonSchema",
        description="How a step's output.schema is asked of the model; the worker "
        "validates the output against it in every case. JsonSchema: response_format "
        "json_schema, with strict: true only when the schema qualifies for OpenAI's "
        "strict mode (an object whose objects all list every property in required and "
        "set additionalProperties: false). JsonObject: response_format json_object, and "
        "the schema in a system message, for servers without json_schema. Prompt: the "
        "schema in a system message only.",
    )
    parameters: ModelParameters | None = None


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
    headroom: float = Field(
        default=1.5,
        ge=0,
        le=10,
        description="Spare capacity above the offered load, in standard deviations of "
        "its Poisson noise (square-root staffing: slots = load + headroom x sqrt(load)), "
        "where load is arrivals/s x seconds per step. 0 runs replicas full; raise it for "
        "fewer queued steps at a higher cost.",
    )
    p95_latency_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="End-to-end target: add replicas while the p95 of queue wait plus "
        "execution is above this and steps are waiting. Unset: no latency signal.",
    )


class Stabilization(base.Model):
    """How long a lower (or higher) recommendation must persist before it is applied."""

    scale_up_seconds: int = Field(default=0, ge=0, le=3600)
    scale_down_seconds: int = Field(default=60, ge=0, le=3600)


class Predictive(base.Model):
    """A floor learned from the pool's own arrivals: the rate the same moment of the last
    cycles saw, looked up one start-up time ahead, so replicas are ready when recurring
    load arrives. It only ever raises the reactive decision."""

    CEL = (
        base.CelRule(
            rule="self.periodSeconds % self.bucketSeconds == 0",
            message="predictive.periodSeconds must be a multiple of predictive.bucketSeconds",
            check=lambda p: p.period_seconds % p.bucket_seconds == 0,
        ),
        base.CelRule(
            rule="self.periodSeconds * self.lookbackPeriods <= 604800",
            message="predictive.periodSeconds x lookbackPeriods must not exceed 7 days",
            check=lambda p: p.period_seconds * p.lookback_periods <= 604800,
        ),
    )

    mode: Literal["Disabled", "Preview", "Enabled"] = Field(
        default="Disabled",
        description="Enabled: the prediction is a floor. Preview: it is computed and "
        "reported in status.predictedReplicas and metrics but does not act. Disabled: "
        "nothing is learned.",
    )
    period_seconds: int = Field(
        default=86400,
        ge=60,
        le=604800,
        description="The cycle the load repeats on: 86400 for a daily shape, 600 for a "
        "batch every ten minutes.",
    )
    bucket_seconds: int = Field(
        default=60, ge=1, le=3600, description="Resolution of the learned shape."
    )
    lookback_periods: int = Field(
        default=7, ge=1, le=28, description="Past cycles averaged into the prediction."
    )


class ScheduledFloor(base.Model):
    """Replicas to hold from each `start` until the next `end`, as KEDA's cron scaler:
    for load known in advance (office hours, a nightly batch)."""

    name: base.Name
    start: str = Field(
        min_length=9,
        max_length=100,
        pattern=_CRON_PATTERN,
        description="Cron expression (minute hour day month weekday) that starts the floor.",
    )
    end: str = Field(
        min_length=9,
        max_length=100,
        pattern=_CRON_PATTERN,
        description="Cron expression that ends it.",
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$",
        description="IANA time zone the expressions are read in, e.g. Europe/Berlin.",
    )
    min_replicas: int = Field(ge=1, le=1000, description="Replicas held while the floor is on.")


class ScalingSpec(base.Model):
    """Who sets the replica count, its bounds and its targets."""

    CEL = (
        base.CelRule(
            rule="self.minReplicas <= self.maxReplicas",
            message="scaling.minReplicas must not exceed scaling.maxReplicas",
            check=lambda s: s.min_replicas <= s.max_replicas,
        ),
        base.CelRule(
            rule="!has(self.schedules) || "
            "self.schedules.all(a, self.schedules.exists_one(b, b.name == a.name))",
            message="scaling.schedules names must be unique",
            check=lambda s: len({f.name for f in s.schedules}) == len(s.schedules),
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
    standby: int = Field(
        default=0,
        ge=0,
        le=100,
        description="Warm buffer: replicas kept ready beyond what the load needs, also "
        "while idle, so a burst or a cold start does not wait for pods to start. A pool "
        "with standby replicas never scales to zero.",
    )
    startup_seconds: float | None = Field(
        default=None,
        gt=0,
        le=3600,
        description="Time from asking for a replica until it serves, used for headroom "
        "and look-ahead. Unset: measured from the pool's own scale-ups (ask to Ready), "
        "15 s until the first is measured.",
    )
    predictive: Predictive = Field(default_factory=Predictive)
    schedules: list[ScheduledFloor] = Field(
        default_factory=list,
        max_length=16,
        description="Scheduled floors; the highest active one applies.",
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
    """The delivery guarantees of the pool's Redis stream."""

    visibility_timeout_seconds: int = Field(
        default=300, ge=1, le=86400, description="Unacknowledged steps are redelivered after this."
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Deliveries before a step goes to the dead-letter stream. A delivery "
        "cut off with its dead worker's other steps counts against four times this.",
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


BreakerStatus = Literal["Closed", "Open", "HalfOpen"]


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
    p95_latency_seconds: float | None = Field(
        default=None, description="End-to-end p95 (queue wait plus execution) of recent steps."
    )
    predicted_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas the predictive floor asks for (predictive Preview or Enabled).",
    )
    startup_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Measured time from a scale-up to its replicas Ready (p90 of recent ones).",
    )
    last_scale_time: datetime.datetime | None = None
    last_scale_reason: str | None = Field(default=None, max_length=1024)
    capacity: Literal["Spot", "OnDemand"] | None = None
    breaker: BreakerStatus | None = None

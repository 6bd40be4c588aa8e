"""Every Prometheus metric of Trimtab, declared once, with units in names and bounded labels.

Dashboards and alerts depend on these names, so they are defined here and nowhere
else. Labels are bounded: namespaces, pools, workflows and step names are few, and
outcomes, error types and the like are Enums, so callers cannot invent label values;
a run id or a step id never becomes a label, since each would make a new time series.
`build` takes a registry so tests get fresh metrics; `default()` is the process's own.
"""

from __future__ import annotations

import contextlib
import enum
import functools
from dataclasses import dataclass

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

NAMESPACE = "trimtab"

# From a cache hit or a cheap tool call (milliseconds) up to a long model generation.
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
RECONCILE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# An interactive caller waits on the first token: tens of milliseconds to seconds.
FIRST_TOKEN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
# A run: a cached answer (tens of ms) to an agent's long conversation or a human review.
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600)
RUN_TOKEN_BUCKETS = (10, 100, 500, 1000, 2500, 5000, 10000, 25000, 100000, 1000000)


class StepOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    DEAD_LETTERED = "dead_lettered"
    REVIEW = "review"
    CACHED = "cached"
    BUDGET_EXCEEDED = "budget_exceeded"


class RunOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # failed with nothing kept to retry (deadLetter.enabled: false)
    DEAD_LETTERED = "dead_lettered"  # failed, its dead step kept for `dlq retry`
    CANCELLED = "cancelled"  # cancelled on request (counted by the process that cancelled it)


class TokenKind(enum.StrEnum):
    PROMPT = "prompt"
    COMPLETION = "completion"


class ErrorType(enum.StrEnum):
    """Why a step attempt did not complete: trimtab.worker.errors' types, and the
    guards that stop a step before it calls anything."""

    HTTP_429 = "http_429"
    HTTP_4XX = "http_4xx"
    HTTP_5XX = "http_5xx"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    INVALID_OUTPUT = "invalid_output"
    TEMPLATE = "template"
    TOO_LARGE = "too_large"
    SECRET_MISSING = "secret_missing"  # noqa: S105 - a label, not a secret
    BUDGET_EXHAUSTED = "budget_exhausted"
    DEADLINE_EXCEEDED = "deadline_exceeded"
    BREAKER_OPEN = "breaker_open"
    RATE_LIMITED = "rate_limited"  # waited for the pool's own rate limit (no call made)
    BUDGET_HELD = "budget_held"  # waited for steps under way to settle the run's budget
    OTHER = "error"


def described(error: ErrorType, message: str) -> str:
    """A step's error as it is stored and shown: its type first, "http_5xx: ...". The
    history reads the type back from it (error_type_of)."""
    return f"{error.value}: {message}"


def error_type_of(text: str | None) -> ErrorType | None:
    """The type a `described` error starts with; None for any other text (a
    reviewer's rejection, a compensation's)."""
    prefix = (text or "").partition(":")[0]
    try:
        return ErrorType(prefix)
    except ValueError:
        return None


class CacheResult(enum.StrEnum):
    HIT = "hit"
    MISS = "miss"


class EndpointKind(enum.StrEnum):
    MODEL = "model"
    TOOL = "tool"


class BreakerState(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class ScaleDirection(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    NONE = "none"


class BudgetPeriod(enum.StrEnum):
    """An AgentBudget limit's window (agentbudget.Period)."""

    HOUR = "Hour"
    DAY = "Day"
    MONTH = "Month"


class ReconciledKind(enum.StrEnum):
    AGENT_POOL = "AgentPool"
    AGENT_WORKFLOW = "AgentWorkflow"
    AGENT_BUDGET = "AgentBudget"


@dataclass(frozen=True)
class Metrics:
    """The metric objects of one registry, and typed ways to record them."""

    step_duration_seconds: Histogram
    queue_wait_seconds: Histogram
    first_token_seconds: Histogram
    model_call_seconds: Histogram
    steps_total: Counter
    tokens_total: Counter
    cost_total: Counter
    errors_total: Counter
    steps_in_flight: Gauge
    runs_total: Counter
    breaker_state: Gauge
    reconcile_duration_seconds: Histogram
    scale_decision_seconds: Histogram
    scale_decisions_total: Counter
    desired_replicas: Gauge
    cache_lookups_total: Counter
    queue_backlog: Gauge
    queue_oldest_backlog_seconds: Gauge
    pool_p95_seconds: Gauge
    pool_p95_target_seconds: Gauge
    pool_predicted_replicas: Gauge
    pool_startup_seconds: Gauge
    autoscaler_last_pass_timestamp_seconds: Gauge
    budget_used_ratio: Gauge
    budget_warnings_total: Counter
    run_duration_seconds: Histogram
    run_tokens: Histogram
    runs_archived_total: Counter
    history_lag_seconds: Gauge
    review_oldest_seconds: Gauge

    def pool_observed(
        self,
        namespace: str,
        pool: str,
        *,
        backlog: int,
        oldest_backlog_seconds: float | None,
        p95_seconds: float | None,
        p95_target_seconds: float | None,
        predicted_replicas: int | None = None,
        startup_seconds: float | None = None,
    ) -> None:
        """Publish the load the autoscaler read for one pool. An unknown value (no
        backlog, no recent steps, no target, no prediction, no measured start-up) is
        published as 0 for ages and removed otherwise, so an alert comparing p95 with
        its target only sees real pairs."""
        self.queue_backlog.labels(namespace, pool).set(backlog)
        self.queue_oldest_backlog_seconds.labels(namespace, pool).set(oldest_backlog_seconds or 0)
        for gauge, value in (
            (self.pool_p95_seconds, p95_seconds),
            (self.pool_p95_target_seconds, p95_target_seconds),
            (self.pool_predicted_replicas, predicted_replicas),
            (self.pool_startup_seconds, startup_seconds),
        ):
            if value is None:
                _remove(gauge, namespace, pool)
            else:
                gauge.labels(namespace, pool).set(value)

    def pool_forgotten(self, namespace: str, pool: str) -> None:
        """Drop a deleted pool's operator-side series, so they do not linger at their
        last value."""
        for gauge in (
            self.queue_backlog,
            self.queue_oldest_backlog_seconds,
            self.pool_p95_seconds,
            self.pool_p95_target_seconds,
            self.pool_predicted_replicas,
            self.pool_startup_seconds,
            self.desired_replicas,
        ):
            _remove(gauge, namespace, pool)

    def autoscaler_passed(self, timestamp: float) -> None:
        self.autoscaler_last_pass_timestamp_seconds.set(timestamp)

    def step_finished(
        self,
        namespace: str,
        pool: str,
        *,
        workflow: str,
        step: str,
        outcome: StepOutcome,
        seconds: float,
        trace_id: str | None = None,
    ) -> None:
        """Count one step attempt and observe how long it ran; `trace_id` (a sampled
        trace's) is the exemplar, here and below."""
        labels = (namespace, pool, workflow, step, StepOutcome(outcome).value)
        self.steps_total.labels(*labels).inc()
        self.step_duration_seconds.labels(*labels).observe(seconds, _exemplar(trace_id))

    def queue_waited(
        self, namespace: str, pool: str, *, seconds: float, trace_id: str | None = None
    ) -> None:
        self.queue_wait_seconds.labels(namespace, pool).observe(seconds, _exemplar(trace_id))

    def first_token_seen(
        self, namespace: str, pool: str, *, seconds: float, trace_id: str | None = None
    ) -> None:
        self.first_token_seconds.labels(namespace, pool).observe(seconds, _exemplar(trace_id))

    def model_called(
        self, namespace: str, pool: str, *, seconds: float, trace_id: str | None = None
    ) -> None:
        """Observe one model call, request to whole reply, whether it succeeded or not."""
        self.model_call_seconds.labels(namespace, pool).observe(seconds, _exemplar(trace_id))

    def tokens_used(self, namespace: str, pool: str, *, kind: TokenKind, tokens: int) -> None:
        self.tokens_total.labels(namespace, pool, TokenKind(kind).value).inc(tokens)

    def step_error(self, namespace: str, pool: str, *, error: ErrorType) -> None:
        self.errors_total.labels(namespace, pool, ErrorType(error).value).inc()

    def cache_looked_up(self, namespace: str, pool: str, *, result: CacheResult) -> None:
        self.cache_lookups_total.labels(namespace, pool, CacheResult(result).value).inc()

    def run_finished(self, namespace: str, workflow: str, *, outcome: RunOutcome) -> None:
        self.runs_total.labels(namespace, workflow, RunOutcome(outcome).value).inc()

    def run_ended(
        self,
        namespace: str,
        workflow: str,
        *,
        outcome: RunOutcome,
        seconds: float,
        tokens: int,
        trace_id: str | None = None,
    ) -> None:
        """A run's whole time, submit to end, and the tokens it used (the operator, for
        every run); `trace_id` is the exemplar that links a bucket to a trace."""
        exemplar = _exemplar(trace_id)
        labels = (namespace, workflow, RunOutcome(outcome).value)
        self.run_duration_seconds.labels(*labels).observe(seconds, exemplar)
        self.run_tokens.labels(namespace, workflow).observe(tokens, exemplar)

    def history_observed(self, namespace: str, *, lag_seconds: float, archived: int) -> None:
        """The age of the namespace's oldest ended run not yet handled (0: none), and
        how many were archived since."""
        self.history_lag_seconds.labels(namespace).set(lag_seconds)
        if archived:
            self.runs_archived_total.labels(namespace).inc(archived)

    def reviews_observed(self, namespace: str, *, oldest_seconds: float) -> None:
        """How long the namespace's oldest step waiting for a reviewer has waited (0: none)."""
        self.review_oldest_seconds.labels(namespace).set(oldest_seconds)

    def breaker_changed(
        self, namespace: str, pool: str, *, endpoint_kind: EndpointKind, state: BreakerState
    ) -> None:
        # Both checked before labels(), which would otherwise leave a child reading "closed".
        kind, value = EndpointKind(endpoint_kind).value, BreakerState(state).value
        self.breaker_state.labels(namespace, pool, kind).set(value)

    def budget_observed(
        self, namespace: str, budget: str, *, period: BudgetPeriod, used: float
    ) -> None:
        """The share of one AgentBudget limit its current window has spent."""
        self.budget_used_ratio.labels(namespace, budget, BudgetPeriod(period).value).set(used)

    def budget_warned(self, namespace: str, budget: str, *, period: BudgetPeriod) -> None:
        """One AgentBudget window crossed its warnAt share."""
        self.budget_warnings_total.labels(namespace, budget, BudgetPeriod(period).value).inc()

    def budget_forgotten(self, namespace: str, budget: str) -> None:
        """A deleted budget's gauges go with it."""
        for period in BudgetPeriod:
            with contextlib.suppress(KeyError):  # never set for this period
                self.budget_used_ratio.remove(namespace, budget, period.value)

    def reconciled(self, kind: ReconciledKind, *, seconds: float) -> None:
        self.reconcile_duration_seconds.labels(ReconciledKind(kind).value).observe(seconds)

    def scale_decided(
        self,
        namespace: str,
        pool: str,
        *,
        direction: ScaleDirection,
        desired: int,
        seconds: float | None = None,
    ) -> None:
        """Count one scaling decision, publish the replicas it asked for and how long
        reading, deciding and applying took."""
        label = ScaleDirection(direction).value
        self.scale_decisions_total.labels(namespace, pool, label).inc()
        self.desired_replicas.labels(namespace, pool).set(desired)
        if seconds is not None:
            self.scale_decision_seconds.observe(seconds)


def _exemplar(trace_id: str | None) -> dict[str, str] | None:
    """The exemplar linking an observation to its trace; none without a sampled one."""
    return {"trace_id": trace_id} if trace_id else None


def build(registry: CollectorRegistry) -> Metrics:
    """Declare every metric on `registry`; call it once per registry."""
    pool = ("namespace", "pool")
    step = (*pool, "workflow", "step", "outcome")
    histogram = functools.partial(Histogram, namespace=NAMESPACE, registry=registry)
    counter = functools.partial(Counter, namespace=NAMESPACE, registry=registry)
    gauge = functools.partial(Gauge, namespace=NAMESPACE, registry=registry)
    return Metrics(
        step_duration_seconds=histogram(
            "step_duration_seconds",
            "Time one step attempt ran, from claim to completion (exemplars: trace ids).",
            step,
            buckets=STEP_BUCKETS,
        ),
        queue_wait_seconds=histogram(
            "queue_wait_seconds",
            "Time a step waited in its pool's stream before a worker claimed it"
            " (exemplars: trace ids).",
            pool,
            buckets=QUEUE_WAIT_BUCKETS,
        ),
        first_token_seconds=histogram(
            "first_token_seconds",
            "Time from a streamed model request to its first text (streaming steps;"
            " exemplars: trace ids).",
            pool,
            buckets=FIRST_TOKEN_BUCKETS,
        ),
        model_call_seconds=histogram(
            "model_call_seconds",
            "Time one model call took, request to whole reply (streamed or not), by pool;"
            " failed calls too. Exemplars: trace ids.",
            pool,
            buckets=STEP_BUCKETS,
        ),
        steps_total=counter("steps", "Step attempts, by outcome.", step),
        tokens_total=counter("tokens", "Model tokens used, by kind.", (*pool, "kind")),
        cost_total=counter(
            "cost", "Model spend; the unit is the pool's pricing currency, not a fixed one.", pool
        ),
        errors_total=counter(
            "errors", "Step attempts that did not complete, by error type.", (*pool, "type")
        ),
        steps_in_flight=gauge("steps_in_flight", "Steps claimed and not yet completed.", pool),
        runs_total=counter(
            "runs", "Finished workflow runs, by outcome.", ("namespace", "workflow", "outcome")
        ),
        breaker_state=gauge(
            "breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            (*pool, "endpoint_kind"),
        ),
        reconcile_duration_seconds=histogram(
            "reconcile_duration_seconds",
            "Time one reconcile of a resource took.",
            ("kind",),
            buckets=RECONCILE_BUCKETS,
        ),
        scale_decision_seconds=histogram(
            "scale_decision_seconds",
            "Time from reading a pool's load to its replicas applied.",
            (),
            buckets=RECONCILE_BUCKETS,
        ),
        scale_decisions_total=counter(
            "scale_decisions", "Autoscaler decisions, by direction.", (*pool, "direction")
        ),
        desired_replicas=gauge("desired_replicas", "Replicas the autoscaler last asked for.", pool),
        cache_lookups_total=counter(
            "cache_lookups", "Response-cache lookups of cached steps, by result.", (*pool, "result")
        ),
        queue_backlog=gauge("queue_backlog", "Steps in a pool's stream not yet delivered.", pool),
        queue_oldest_backlog_seconds=gauge(
            "queue_oldest_backlog_seconds",
            "Age of the oldest step in a pool's stream not yet delivered (0: none).",
            pool,
        ),
        pool_p95_seconds=gauge(
            "pool_p95_seconds",
            "End-to-end step p95 (queue wait plus execution) over the autoscaler's window.",
            pool,
        ),
        pool_p95_target_seconds=gauge(
            "pool_p95_target_seconds", "The pool's p95 latency target, when it has one.", pool
        ),
        pool_predicted_replicas=gauge(
            "pool_predicted_replicas",
            "Replicas the predictive floor asks for (predictive mode Preview or Enabled).",
            pool,
        ),
        pool_startup_seconds=gauge(
            "pool_startup_seconds",
            "Measured time from a scale-up to its replicas Ready (p90 of recent ones).",
            pool,
        ),
        autoscaler_last_pass_timestamp_seconds=gauge(
            "autoscaler_last_pass_timestamp_seconds",
            "When the operator's autoscaler last finished a pass over every pool.",
            (),
        ),
        budget_used_ratio=gauge(
            "budget_used_ratio",
            "Share of an AgentBudget limit its current window has spent (the higher of "
            "tokens and cost; 1 is exhausted).",
            ("namespace", "budget", "period"),
        ),
        budget_warnings_total=counter(
            "budget_warnings",
            "AgentBudget windows that crossed their warnAt share.",
            ("namespace", "budget", "period"),
        ),
        run_duration_seconds=histogram(
            "run_duration_seconds",
            "Time a run took from submit to its end, by outcome (exemplars: trace ids).",
            ("namespace", "workflow", "outcome"),
            buckets=RUN_BUCKETS,
        ),
        run_tokens=histogram(
            "run_tokens",
            "Model tokens one run used, all its steps and attempts (exemplars: trace ids).",
            ("namespace", "workflow"),
            buckets=RUN_TOKEN_BUCKETS,
        ),
        runs_archived_total=counter(
            "runs_archived", "Ended runs written to the history database.", ("namespace",)
        ),
        history_lag_seconds=gauge(
            "history_lag_seconds",
            "Age of the oldest ended run the operator has not yet archived and traced "
            "(0: none waiting).",
            ("namespace",),
        ),
        review_oldest_seconds=gauge(
            "review_oldest_seconds",
            "How long the oldest step waiting for a reviewer has waited (0: none).",
            ("namespace",),
        ),
    )


def _remove(gauge: Gauge, namespace: str, pool: str) -> None:
    try:
        gauge.remove(namespace, pool)
    except KeyError:  # never set for this pool
        return


@functools.cache
def default() -> Metrics:
    """The metrics of the process-wide registry, declared on first use."""
    return build(prometheus_client.REGISTRY)

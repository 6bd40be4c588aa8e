"""Metric names, units and bounded labels, checked on a fresh registry per test."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from trimtab import metrics
from trimtab.metrics import (
    BreakerState,
    EndpointKind,
    ErrorType,
    Metrics,
    ReconciledKind,
    RunOutcome,
    ScaleDirection,
    StepOutcome,
    TokenKind,
)

POOL = {"namespace": "shop", "pool": "gpt"}

# Exposed name (family name for histograms and counters) -> exact label names.
EXPECTED = {
    "trimtab_step_duration_seconds": {"namespace", "pool", "workflow", "step", "outcome"},
    "trimtab_queue_wait_seconds": {"namespace", "pool"},
    "trimtab_first_token_seconds": {"namespace", "pool"},
    "trimtab_model_call_seconds": {"namespace", "pool"},
    "trimtab_steps_total": {"namespace", "pool", "workflow", "step", "outcome"},
    "trimtab_tokens_total": {"namespace", "pool", "kind"},
    "trimtab_cost_total": {"namespace", "pool"},
    "trimtab_errors_total": {"namespace", "pool", "type"},
    "trimtab_steps_in_flight": {"namespace", "pool"},
    "trimtab_runs_total": {"namespace", "workflow", "outcome"},
    "trimtab_breaker_state": {"namespace", "pool", "endpoint_kind"},
    "trimtab_reconcile_duration_seconds": {"kind"},
    "trimtab_scale_decisions_total": {"namespace", "pool", "direction"},
    "trimtab_cache_lookups_total": {"namespace", "pool", "result"},
    "trimtab_desired_replicas": {"namespace", "pool"},
    "trimtab_scale_decision_seconds": set(),
    "trimtab_queue_backlog": {"namespace", "pool"},
    "trimtab_queue_oldest_backlog_seconds": {"namespace", "pool"},
    "trimtab_pool_p95_seconds": {"namespace", "pool"},
    "trimtab_pool_p95_target_seconds": {"namespace", "pool"},
    "trimtab_pool_predicted_replicas": {"namespace", "pool"},
    "trimtab_pool_startup_seconds": {"namespace", "pool"},
    "trimtab_autoscaler_last_pass_timestamp_seconds": set(),
    "trimtab_budget_used_ratio": {"namespace", "budget", "period"},
    "trimtab_budget_warnings_total": {"namespace", "budget", "period"},
    "trimtab_run_duration_seconds": {"namespace", "workflow", "outcome"},
    "trimtab_run_tokens": {"namespace", "workflow"},
    "trimtab_runs_archived_total": {"namespace"},
    "trimtab_history_lag_seconds": {"namespace"},
    "trimtab_review_oldest_seconds": {"namespace"},
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def m(registry: CollectorRegistry) -> Metrics:
    return metrics.build(registry)


def record_everything(m: Metrics) -> None:
    m.step_finished(
        "shop",
        "gpt",
        workflow="support",
        step="intent",
        outcome=StepOutcome.SUCCEEDED,
        seconds=1.5,
    )
    m.queue_waited("shop", "gpt", seconds=0.2, trace_id="0af7651916cd43dd8448eb211c80319c")
    m.first_token_seen("shop", "gpt", seconds=0.04)
    m.model_called("shop", "gpt", seconds=0.8, trace_id="0af7651916cd43dd8448eb211c80319c")
    m.tokens_used("shop", "gpt", kind=TokenKind.PROMPT, tokens=120)
    m.cost_total.labels("shop", "gpt").inc(0.03)
    m.step_error("shop", "gpt", error=ErrorType.HTTP_429)
    m.steps_in_flight.labels("shop", "gpt").inc()
    m.run_finished("shop", "support", outcome=RunOutcome.DEAD_LETTERED)
    m.breaker_changed("shop", "gpt", endpoint_kind=EndpointKind.MODEL, state=BreakerState.OPEN)
    m.reconciled(ReconciledKind.AGENT_POOL, seconds=0.01)
    m.scale_decided("shop", "gpt", direction=ScaleDirection.UP, desired=4)
    m.cache_looked_up("shop", "gpt", result=metrics.CacheResult.HIT)
    m.pool_observed(
        "shop",
        "gpt",
        backlog=3,
        oldest_backlog_seconds=4.0,
        p95_seconds=2.0,
        p95_target_seconds=1,
        predicted_replicas=5,
        startup_seconds=12.5,
    )
    m.autoscaler_passed(1_700_000_000.0)
    m.budget_observed("shop", "support", period=metrics.BudgetPeriod.DAY, used=0.85)
    m.budget_warned("shop", "support", period=metrics.BudgetPeriod.DAY)
    m.run_ended(
        "shop", "support", outcome=RunOutcome.SUCCEEDED, seconds=3.5, tokens=800,
        trace_id="0af7651916cd43dd8448eb211c80319c",
    )  # fmt: skip
    m.history_observed("shop", lag_seconds=1.5, archived=7)
    m.reviews_observed("shop", oldest_seconds=90.0)


def exposed(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Family name -> (type, label names of its samples, without histogram `le`)."""
    return {
        family.name + ("_total" if family.type == "counter" else ""): (
            family.type,
            {label for sample in family.samples for label in sample.labels} - {"le"},
        )
        for family in registry.collect()
    }


def test_build_declares_exactly_the_expected_metrics_and_labels(
    registry: CollectorRegistry, m: Metrics
) -> None:
    record_everything(m)
    assert {name: labels for name, (_, labels) in exposed(registry).items()} == EXPECTED


def test_names_carry_namespace_and_units(registry: CollectorRegistry, m: Metrics) -> None:
    record_everything(m)
    for name, (kind, _) in exposed(registry).items():
        assert name.startswith("trimtab_")
        if kind == "histogram":
            assert name.endswith(("_seconds", "_tokens")), name
        if kind == "counter":
            assert name.endswith("_total"), name


@pytest.mark.parametrize(
    ("sample", "labels", "value"),
    [
        pytest.param(
            "trimtab_steps_total",
            {**POOL, "workflow": "support", "step": "intent", "outcome": "succeeded"},
            1.0,
            id="steps",
        ),
        pytest.param(
            "trimtab_step_duration_seconds_sum",
            {**POOL, "workflow": "support", "step": "intent", "outcome": "succeeded"},
            1.5,
            id="step-duration",
        ),
        pytest.param("trimtab_queue_wait_seconds_count", POOL, 1.0, id="queue-wait"),
        pytest.param("trimtab_model_call_seconds_sum", POOL, 0.8, id="model-call"),
        pytest.param("trimtab_first_token_seconds_count", POOL, 1.0, id="first-token"),
        pytest.param("trimtab_tokens_total", {**POOL, "kind": "prompt"}, 120.0, id="tokens"),
        pytest.param("trimtab_cost_total", POOL, 0.03, id="cost"),
        pytest.param(
            "trimtab_errors_total",
            {**POOL, "type": "http_429"},
            1.0,
            id="errors",
        ),
        pytest.param("trimtab_steps_in_flight", POOL, 1.0, id="in-flight"),
        pytest.param(
            "trimtab_runs_total",
            {"namespace": "shop", "workflow": "support", "outcome": "dead_lettered"},
            1.0,
            id="runs",
        ),
        pytest.param(
            "trimtab_breaker_state", {**POOL, "endpoint_kind": "model"}, 2.0, id="breaker-open"
        ),
        pytest.param(
            "trimtab_reconcile_duration_seconds_count", {"kind": "AgentPool"}, 1.0, id="reconcile"
        ),
        pytest.param("trimtab_scale_decisions_total", {**POOL, "direction": "up"}, 1.0, id="scale"),
        pytest.param("trimtab_desired_replicas", POOL, 4.0, id="desired-replicas"),
        pytest.param(
            "trimtab_run_duration_seconds_sum",
            {"namespace": "shop", "workflow": "support", "outcome": "succeeded"},
            3.5,
            id="run-duration",
        ),
        pytest.param(
            "trimtab_run_tokens_sum",
            {"namespace": "shop", "workflow": "support"},
            800.0,
            id="run-tokens",
        ),
        pytest.param("trimtab_runs_archived_total", {"namespace": "shop"}, 7.0, id="archived"),
        pytest.param("trimtab_history_lag_seconds", {"namespace": "shop"}, 1.5, id="history-lag"),
        pytest.param("trimtab_review_oldest_seconds", {"namespace": "shop"}, 90.0, id="review-age"),
    ],
)
def test_recorded_values(
    registry: CollectorRegistry, m: Metrics, sample: str, labels: dict[str, str], value: float
) -> None:
    record_everything(m)
    assert registry.get_sample_value(sample, labels) == pytest.approx(value)


def test_step_duration_buckets_suit_model_calls(registry: CollectorRegistry, m: Metrics) -> None:
    record_everything(m)
    family = next(f for f in registry.collect() if f.name == "trimtab_step_duration_seconds")
    bounds = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
    assert bounds[0] == 0.005
    assert bounds[-2] == 120.0
    assert bounds[-1] == float("inf")


def test_build_twice_on_one_registry_is_refused(registry: CollectorRegistry) -> None:
    metrics.build(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.build(registry)


def test_default_is_built_once() -> None:
    assert metrics.default() is metrics.default()


@pytest.mark.parametrize(
    ("enum", "values"),
    [
        pytest.param(
            StepOutcome,
            {
                "succeeded",
                "failed",
                "retried",
                "dead_lettered",
                "review",
                "cached",
                "budget_exceeded",
            },
            id="step-outcome",
        ),
        pytest.param(RunOutcome, {"succeeded", "failed", "dead_lettered", "cancelled"}, id="run"),
        pytest.param(TokenKind, {"prompt", "completion"}, id="token-kind"),
        pytest.param(
            ErrorType,
            {
                "http_429",
                "http_4xx",
                "http_5xx",
                "timeout",
                "connect",
                "invalid_output",
                "template",
                "too_large",
                "secret_missing",
                "budget_exhausted",
                "deadline_exceeded",
                "breaker_open",
                "rate_limited",
                "budget_held",
                "error",
            },
            id="error-type",
        ),
        pytest.param(EndpointKind, {"model", "tool"}, id="endpoint-kind"),
        pytest.param(ScaleDirection, {"up", "down", "none"}, id="scale-direction"),
    ],
)
def test_label_enums_are_the_declared_bounded_sets(enum: type, values: set[str]) -> None:
    assert {member.value for member in enum} == values


def test_breaker_states_are_numbered_by_severity() -> None:
    assert [int(s) for s in BreakerState] == [0, 1, 2]
    assert [s.name for s in BreakerState] == ["CLOSED", "HALF_OPEN", "OPEN"]


# The arguments are deliberately untyped strings: mypy would refuse them; the runtime must too.
@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            lambda m: m.step_finished(
                "ns", "p", workflow="w", step="s", outcome="exploded", seconds=1.0
            ),
            id="step-outcome",
        ),
        pytest.param(lambda m: m.tokens_used("ns", "p", kind="cached", tokens=1), id="token"),
        pytest.param(lambda m: m.step_error("ns", "p", error="http_418"), id="error"),
        pytest.param(lambda m: m.run_finished("ns", "w", outcome="abandoned"), id="run"),
        pytest.param(
            lambda m: m.breaker_changed("ns", "p", endpoint_kind="db", state=BreakerState.OPEN),
            id="endpoint-kind",
        ),
        pytest.param(
            lambda m: m.breaker_changed("ns", "p", endpoint_kind="model", state=3),
            id="breaker-state",
        ),
        pytest.param(lambda m: m.reconciled("Pod", seconds=0.1), id="reconciled-kind"),
        pytest.param(
            lambda m: m.scale_decided("ns", "p", direction="sideways", desired=1), id="direction"
        ),
    ],
)
def test_helpers_reject_invented_label_values(
    registry: CollectorRegistry, m: Metrics, record: Callable[[Metrics], None]
) -> None:
    with pytest.raises(ValueError, match="is not a valid"):
        record(m)
    # Unlabelled metrics expose zero-valued samples from the start; nothing may be recorded.
    assert all(
        s.value == 0
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    )


def test_string_values_of_the_enums_are_accepted(registry: CollectorRegistry, m: Metrics) -> None:
    m.run_finished("ns", "w", outcome="succeeded")  # type: ignore[arg-type]
    labels = {"namespace": "ns", "workflow": "w", "outcome": "succeeded"}
    assert registry.get_sample_value("trimtab_runs_total", labels) == 1.0


def test_pool_observed_publishes_known_values_and_drops_unknown_latencies(
    registry: CollectorRegistry, m: Metrics
) -> None:
    def value(name: str) -> float | None:
        return registry.get_sample_value(name, POOL)

    m.pool_observed(
        "shop",
        "gpt",
        backlog=7,
        oldest_backlog_seconds=12.5,
        p95_seconds=3.0,
        p95_target_seconds=2,
        predicted_replicas=4,
        startup_seconds=9.5,
    )
    assert (value("trimtab_pool_predicted_replicas"), value("trimtab_pool_startup_seconds")) == (
        4,
        9.5,
    )
    assert value("trimtab_queue_backlog") == 7
    assert value("trimtab_queue_oldest_backlog_seconds") == 12.5
    assert (value("trimtab_pool_p95_seconds"), value("trimtab_pool_p95_target_seconds")) == (3, 2)
    m.pool_observed(
        "shop",
        "gpt",
        backlog=0,
        oldest_backlog_seconds=None,
        p95_seconds=None,
        p95_target_seconds=2,
    )
    assert value("trimtab_queue_oldest_backlog_seconds") == 0
    assert value("trimtab_pool_p95_seconds") is None  # no recent steps: no latency to compare
    assert value("trimtab_pool_predicted_replicas") is None  # no prediction: no series
    m.scale_decided("shop", "gpt", direction=ScaleDirection.UP, desired=2)
    m.pool_forgotten("shop", "gpt")
    m.pool_forgotten("shop", "gpt")  # a second time is harmless
    for name in (
        "trimtab_queue_backlog",
        "trimtab_desired_replicas",
        "trimtab_pool_p95_target_seconds",
    ):
        assert value(name) is None


def test_a_runs_duration_carries_its_trace_as_an_exemplar(
    registry: CollectorRegistry, m: Metrics
) -> None:
    from prometheus_client.openmetrics.exposition import generate_latest  # noqa: PLC0415

    record_everything(m)
    text = generate_latest(registry).decode()
    line = next(
        row for row in text.splitlines()
        if row.startswith("trimtab_run_duration_seconds_bucket") and 'le="5.0"' in row
    )  # fmt: skip
    assert '# {trace_id="0af7651916cd43dd8448eb211c80319c"} 3.5' in line
    for family, le, value in (
        ("trimtab_queue_wait_seconds", "0.5", "0.2"),
        ("trimtab_model_call_seconds", "1.0", "0.8"),
    ):
        bucket = next(
            row for row in text.splitlines()
            if row.startswith(f"{family}_bucket") and f'le="{le}"' in row
        )  # fmt: skip
        assert f'# {{trace_id="0af7651916cd43dd8448eb211c80319c"}} {value}' in bucket, family

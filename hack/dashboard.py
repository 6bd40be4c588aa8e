"""The Grafana dashboard the chart ships (charts/trimtab/dashboards/trimtab.json), built
from a list of panels so every query is written once, in PromQL over trimtab's metrics.

Per pool: queue depth and oldest backlog age, replicas the autoscaler asks for, p95
against its target, tokens, cost, and errors by type. Template variables select the
Prometheus data source, namespaces and pools.
"""

from __future__ import annotations

import json
from typing import Any

SEL = 'namespace=~"$namespace", pool=~"$pool"'
BY_POOL = "{{namespace}}/{{pool}}"

# The panel whose points carry exemplars (the runs' trace ids) and links to the traces.
RUN_DURATION = "Run duration p95 by workflow (exemplars: the runs' traces)"
# (title, unit, [(PromQL, legend)]); one time-series panel each, two per row.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "Queue depth (steps not yet delivered)",
        "short",
        [(f"max by (namespace, pool) (trimtab_queue_backlog{{{SEL}}})", BY_POOL)],
    ),
    (
        "Oldest queued step",
        "s",
        [(f"max by (namespace, pool) (trimtab_queue_oldest_backlog_seconds{{{SEL}}})", BY_POOL)],
    ),
    (
        "Replicas the autoscaler asks for",
        "short",
        [(f"max by (namespace, pool) (trimtab_desired_replicas{{{SEL}}})", BY_POOL)],
    ),
    (
        "Steps in flight",
        "short",
        [(f"sum by (namespace, pool) (trimtab_steps_in_flight{{{SEL}}})", BY_POOL)],
    ),
    (
        "Step p95 latency and target",
        "s",
        [
            (f"max by (namespace, pool) (trimtab_pool_p95_seconds{{{SEL}}})", BY_POOL),
            (
                f"max by (namespace, pool) (trimtab_pool_p95_target_seconds{{{SEL}}})",
                BY_POOL + " target",
            ),
        ],
    ),
    (
        "Queue wait p95",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (namespace, pool, le) "
                f"(rate(trimtab_queue_wait_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                BY_POOL,
            )
        ],
    ),
    (
        "Model call and time to first token p95",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (namespace, pool, le) "
                f"(rate(trimtab_{name}_bucket{{{SEL}}}[$__rate_interval])))",
                f"{BY_POOL} {label}",
            )
            for name, label in (("model_call_seconds", "call"), ("first_token_seconds", "ttft"))
        ],
    ),
    (
        "Tokens per second",
        "short",
        [
            (
                "sum by (namespace, pool, kind) "
                f"(rate(trimtab_tokens_total{{{SEL}}}[$__rate_interval]))",
                BY_POOL + " {{kind}}",
            )
        ],
    ),
    (
        "Cost per hour (pricing currency)",
        "short",
        [
            (
                "3600 * sum by (namespace, pool) "
                f"(rate(trimtab_cost_total{{{SEL}}}[$__rate_interval]))",
                BY_POOL,
            )
        ],
    ),
    (
        "Errors per second by type",
        "short",
        [
            (
                "sum by (namespace, pool, type) "
                f"(rate(trimtab_errors_total{{{SEL}}}[$__rate_interval]))",
                BY_POOL + " {{type}}",
            )
        ],
    ),
    (
        "Step attempts per second by outcome",
        "short",
        [
            (
                "sum by (namespace, pool, outcome) "
                f"(rate(trimtab_steps_total{{{SEL}}}[$__rate_interval]))",
                BY_POOL + " {{outcome}}",
            )
        ],
    ),
    (
        "Circuit breakers (0 closed, 1 half-open, 2 open)",
        "short",
        [
            (
                f"max by (namespace, pool, endpoint_kind) (trimtab_breaker_state{{{SEL}}})",
                BY_POOL + " {{endpoint_kind}}",
            )
        ],
    ),
    (
        "Runs finished per second by outcome",
        "short",
        [
            (
                "sum by (namespace, workflow, outcome) "
                '(rate(trimtab_runs_total{namespace=~"$namespace"}[$__rate_interval]))',
                "{{namespace}}/{{workflow}} {{outcome}}",
            )
        ],
    ),
    (
        RUN_DURATION,
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (namespace, workflow, le) "
                '(rate(trimtab_run_duration_seconds_bucket{namespace=~"$namespace"}'
                "[$__rate_interval])))",
                "{{namespace}}/{{workflow}}",
            )
        ],
    ),
    (
        "Tokens per run p50 and p95",
        "short",
        [
            (
                f"histogram_quantile({q}, sum by (namespace, workflow, le) "
                '(rate(trimtab_run_tokens_bucket{namespace=~"$namespace"}[$__rate_interval])))',
                f"{{{{namespace}}}}/{{{{workflow}}}} p{int(q * 100)}",
            )
            for q in (0.5, 0.95)
        ],
    ),
    (
        "Waiting: ended runs to archive, steps for a reviewer (oldest)",
        "s",
        [
            (
                'max by (namespace) (trimtab_history_lag_seconds{namespace=~"$namespace"})',
                "{{namespace}} archive",
            ),
            (
                'max by (namespace) (trimtab_review_oldest_seconds{namespace=~"$namespace"})',
                "{{namespace}} review",
            ),
        ],
    ),
]

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(index: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    panel = _plain_panel(index, title, unit, queries)
    if title == RUN_DURATION:
        for target in panel["targets"]:
            target["exemplar"] = True  # each a trace id, linked by the datasource's settings
        panel["links"] = [
            {
                "title": "The runs' traces (the $traces variable: your Jaeger's URL)",
                "url": "${traces}/search?service=trimtab-operator&limit=50",
                "targetBlank": True,
            }
        ]
    return panel


def _plain_panel(
    index: int, title: str, unit: str, queries: list[tuple[str, str]]
) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": e, "legendFormat": leg}
            for i, (e, leg) in enumerate(queries)
        ],
    }


def _variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": query, "refId": name},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard() -> dict[str, Any]:
    source = {"name": "datasource", "type": "datasource", "query": "prometheus"}
    return {
        "uid": "trimtab-pools",
        "title": "Trimtab: agent pools",
        "tags": ["trimtab"],
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {
            "list": [
                source,
                _variable("namespace", "label_values(trimtab_queue_backlog, namespace)"),
                _variable(
                    "pool", 'label_values(trimtab_queue_backlog{namespace=~"$namespace"}, pool)'
                ),
                {"name": "traces", "type": "textbox", "label": "Jaeger URL", "query": ""},
            ]
        },
        "panels": [_panel(i, *p) for i, p in enumerate(PANELS)],
    }


def expressions() -> list[str]:
    return [expr for _, _, queries in PANELS for expr, _ in queries]


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"

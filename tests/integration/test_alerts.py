"""The chart's alert rules and Grafana dashboard, checked by the real (pinned) promtool:
the rules parse, each alert fires on the series that should fire it and stays quiet on
the ones that should not, and every query names only metrics trimtab declares."""

from __future__ import annotations

import pathlib
import re
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.harness import chart
from trimtab import metrics

ON = "monitoring.prometheusRule.enabled=true"
POOL = 'namespace="shop", pool="gpt"'


@pytest.fixture(scope="module")
def promtool() -> str:
    return chart.hack_output("build-promtool.sh")


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    found = chart.objects(chart.helm_binary(), ON, "monitoring.grafanaDashboard.enabled=true")
    rule = chart.find(found, "PrometheusRule")
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return path


def _promtool(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], check=False, capture_output=True, text=True)


def test_rules_are_valid(promtool: str, rules: pathlib.Path) -> None:
    done = _promtool(promtool, "check", "rules", str(rules))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 10 rules found" in done.stdout


def _alert(name: str, at: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """`labels` None: the alert must not fire at `at`; else it fires with these labels."""
    expected = [] if labels is None else [{"exp_labels": {**labels, "severity": _SEVERITY[name]}}]
    return {"alertname": name, "eval_time": at, "exp_alerts": expected}


_SEVERITY = {
    "TrimtabQueueBacklogStale": "warning",
    "TrimtabP95AboveTarget": "warning",
    "TrimtabDeadLetterGrowth": "warning",
    "TrimtabBreakerOpen": "critical",
    "TrimtabOperatorNotReconciling": "critical",
    "TrimtabOperatorAbsent": "critical",
    "TrimtabErrorRatioAboveBaseline": "warning",
    "TrimtabBudgetBurning": "warning",
    "TrimtabReviewBacklogOld": "warning",
    "TrimtabHistoryLagging": "warning",
}
STEPS = f'trimtab_steps_total{{{POOL}, workflow="w", step="s", outcome="succeeded"}}'
ERRORS = f'trimtab_errors_total{{{POOL}, type="http_5xx"}}'
DAILY = 'trimtab_budget_used_ratio{namespace="shop", budget="team", period="Day"}'

SHOP = {"namespace": "shop", "pool": "gpt"}

# (series, alerts expected or not at given times); one promtool test each, 1m steps.
CASES: dict[str, tuple[list[tuple[str, str]], list[dict[str, Any]]]] = {
    "backlog": (
        [
            (f"trimtab_queue_oldest_backlog_seconds{{{POOL}}}", "0+60x30"),
            ('trimtab_queue_oldest_backlog_seconds{namespace="shop", pool="idle"}', "0x30"),
        ],
        [
            _alert("TrimtabQueueBacklogStale", "6m"),  # 360 s old, but not for 5m yet
            _alert("TrimtabQueueBacklogStale", "11m", SHOP),
        ],
    ),
    "p95": (
        [
            (f"trimtab_pool_p95_seconds{{{POOL}}}", "1x10 3x30"),
            (f"trimtab_pool_p95_target_seconds{{{POOL}}}", "2x40"),
            ('trimtab_pool_p95_seconds{namespace="shop", pool="fast"}', "9x40"),
        ],
        [
            _alert("TrimtabP95AboveTarget", "20m"),  # above for 10m of the 15m
            _alert("TrimtabP95AboveTarget", "26m", SHOP),  # "fast" has no target: no alert
        ],
    ),
    "dead-letter": (
        [
            (
                f'trimtab_steps_total{{{POOL}, workflow="w", step="s", outcome="dead_lettered"}}',
                "0x10 1x20",
            ),
            (
                f'trimtab_steps_total{{{POOL}, workflow="w", step="s", outcome="succeeded"}}',
                "0+100x30",
            ),
        ],
        [_alert("TrimtabDeadLetterGrowth", "9m"), _alert("TrimtabDeadLetterGrowth", "12m", SHOP)],
    ),
    "breaker": (
        [(f'trimtab_breaker_state{{{POOL}, endpoint_kind="model"}}', "0x5 2x3 0x5 2x20")],
        [
            _alert("TrimtabBreakerOpen", "8m"),  # open 3 minutes, then closed again
            _alert("TrimtabBreakerOpen", "23m", {**SHOP, "endpoint_kind": "model"}),
        ],
    ),
    "operator": (
        [
            # The operator's pass time follows the clock for 10 minutes, then stops.
            ("trimtab_autoscaler_last_pass_timestamp_seconds{instance='op'}", "0+60x10 600x20"),
            ("trimtab_autoscaler_last_pass_timestamp_seconds{instance='worker'}", "0x30"),
        ],
        [
            _alert("TrimtabOperatorNotReconciling", "10m"),
            _alert("TrimtabOperatorNotReconciling", "16m", {}),
            _alert("TrimtabOperatorAbsent", "16m"),
        ],
    ),
    # A day at 2 % failed attempts (100 attempts a minute), then 10 % from minute 1450.
    "error-ratio": (
        [(STEPS, "0+100x1500"), (ERRORS, "0+2x1449 2898+10x50")],
        [
            _alert("TrimtabErrorRatioAboveBaseline", "1440m"),  # 2 %: its own normal
            _alert("TrimtabErrorRatioAboveBaseline", "1455m"),  # above, but not for 10m yet
            _alert("TrimtabErrorRatioAboveBaseline", "1475m", SHOP),
        ],
    ),
    # A daily budget spent at its sustainable pace (1/1440 a minute), then at 12 times
    # that from minute 120 for an hour.
    "budget-burn": (
        [(DAILY, "0+0.000694x120 0.0833+0.00833x60")],
        [
            _alert("TrimtabBudgetBurning", "110m"),  # on pace
            _alert("TrimtabBudgetBurning", "130m"),  # fast for 10m: the hour says not yet
            _alert(
                "TrimtabBudgetBurning",
                "175m",
                {"namespace": "shop", "budget": "team", "period": "Day"},
            ),
        ],
    ),
    "review": (
        [('trimtab_review_oldest_seconds{namespace="shop"}', "0x10 0+300x30")],
        [
            _alert("TrimtabReviewBacklogOld", "24m"),  # 4200 s old, but not for 5m yet
            _alert("TrimtabReviewBacklogOld", "30m", {"namespace": "shop"}),
        ],
    ),
    "history-lag": (
        [('trimtab_history_lag_seconds{namespace="shop"}', "1x10 0+60x20")],
        [
            _alert("TrimtabHistoryLagging", "17m"),  # 360 s, not for 5m yet
            _alert("TrimtabHistoryLagging", "25m", {"namespace": "shop"}),
        ],
    ),
    "absent": (
        [("trimtab_autoscaler_last_pass_timestamp_seconds{instance='worker'}", "0x30")],
        [_alert("TrimtabOperatorAbsent", "5m"), _alert("TrimtabOperatorAbsent", "12m", {})],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_alert_fires_only_on_its_condition(
    promtool: str, rules: pathlib.Path, tmp_path: pathlib.Path, case: str
) -> None:
    series, alerts = CASES[case]
    # promtool compares annotations too; they are prose (checked to parse above), so the
    # firing tests run the same rules without them.
    groups = yaml.safe_load(rules.read_text())["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    bare = tmp_path / "rules.yaml"
    bare.write_text(yaml.safe_dump({"groups": groups}))
    test = {
        "rule_files": [str(bare)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": alerts,
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    done = _promtool(promtool, "test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


def _declared_series() -> set[str]:
    registry = CollectorRegistry()
    metrics.build(registry)
    names = set()
    for family in registry.collect():
        base = family.name + ("_total" if family.type == "counter" else "")
        names.add(base)
        if family.type == "histogram":
            names |= {f"{family.name}_{s}" for s in ("bucket", "sum", "count")}
    return names


def _queries(rules: pathlib.Path) -> list[str]:
    found = chart.objects(chart.helm_binary(), "monitoring.grafanaDashboard.enabled=true")
    board = yaml.safe_load(chart.find(found, "ConfigMap")["data"]["trimtab.json"])
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    exprs += [
        v["query"]["query"]
        for v in board["templating"]["list"]
        if "query" in v and isinstance(v["query"], dict)
    ]
    groups = yaml.safe_load(rules.read_text())["groups"]
    return exprs + [r["expr"] for g in groups for r in g["rules"]]


def test_queries_name_only_declared_metrics(rules: pathlib.Path) -> None:
    declared = _declared_series()
    used = {m for q in _queries(rules) for m in re.findall(r"\btrimtab_[a-z0-9_]+", q)}
    assert used, "no trimtab metric in any query"
    assert used <= declared, used - declared


def test_dashboard_queries_parse(promtool: str, rules: pathlib.Path) -> None:
    for query in _queries(rules):
        inner = query
        if query.startswith("label_values("):  # a Grafana function, not PromQL
            inner = query[len("label_values(") : query.rindex(",")]
        concrete = inner.replace("$__rate_interval", "5m").replace("$namespace", ".*")
        concrete = concrete.replace("$pool", ".*")
        done = _promtool(promtool, "promql", "format", "--experimental", concrete)
        assert done.returncode == 0, f"{query}: {done.stderr}"

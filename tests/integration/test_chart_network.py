"""The chart's NetworkPolicies: every pod of the release and every watched namespace's
workers are denied by default and allowed exactly what they need."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import chart

ON = ("networkPolicy.enabled=true", "watchNamespaces={team-a,team-b}")


@pytest.fixture(scope="module")
def helm() -> str:
    return chart.helm_binary()


def _selects(policy: dict[str, Any], labels: dict[str, str], namespace: str) -> bool:
    wanted = policy["spec"]["podSelector"].get("matchLabels", {})
    same_ns = policy["metadata"]["namespace"] == namespace
    return same_ns and all(labels.get(k) == v for k, v in wanted.items())


def _policies(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in found if o["kind"] == "NetworkPolicy"]


def _egress_ports(policy: dict[str, Any]) -> set[int]:
    return {p["port"] for rule in policy["spec"].get("egress", []) for p in rule.get("ports", [])}


def test_off_by_default(helm: str) -> None:
    assert _policies(chart.objects(helm)) == []


@pytest.mark.parametrize("bundled", [False, True], ids=["external-redis", "bundled-redis"])
def test_every_chart_pod_is_covered_in_both_directions(helm: str, bundled: bool) -> None:
    found = chart.objects(helm, *ON, f"redis.bundled.enabled={str(bundled).lower()}")
    policies = _policies(found)
    workloads = [o for o in found if o["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == (3 if bundled else 2)  # the operator, the API server, Redis
    for workload in workloads:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies if _selects(p, labels, workload["metadata"]["namespace"])]
        types = {t for p in covering for t in p["spec"]["policyTypes"]}
        assert types == {"Ingress", "Egress"}, workload["metadata"]["name"]


def test_operator_may_reach_dns_the_api_server_and_redis_only(helm: str) -> None:
    found = chart.objects(helm, *ON, "networkPolicy.apiServerCIDRs={10.96.0.1/32}")
    operator = chart.find(found, "NetworkPolicy", "trimtab-operator")
    assert _egress_ports(operator) == {53, 443, 6443, 6379}
    api_rule = next(
        r
        for r in operator["spec"]["egress"]
        if {"ipBlock": {"cidr": "10.96.0.1/32"}} in r.get("to", [])
    )
    assert {p["port"] for p in api_rule["ports"]} == {443, 6443}
    assert [p["port"] for r in operator["spec"]["ingress"] for p in r["ports"]] == ["metrics"]


def test_workers_of_each_watched_namespace_get_their_endpoints(helm: str) -> None:
    found = chart.objects(helm, *ON)
    workers = [p for p in _policies(found) if p["metadata"]["name"] == "trimtab-workers"]
    assert sorted(p["metadata"]["namespace"] for p in workers) == ["team-a", "team-b"]
    worker_labels = {
        "app.kubernetes.io/name": "trimtab-worker",
        "app.kubernetes.io/managed-by": "trimtab-operator",
        "trimtab.io/pool": "any",
    }
    for policy in workers:
        assert _selects(policy, worker_labels, policy["metadata"]["namespace"])
        assert _egress_ports(policy) == {53, 6379, 443, 80}


def test_bundled_redis_admits_the_operator_and_workers_anywhere(helm: str) -> None:
    found = chart.objects(helm, *ON, "redis.bundled.enabled=true")
    redis = chart.find(found, "NetworkPolicy", "trimtab-redis")
    [rule] = redis["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [6379]
    peers = rule["from"]
    assert any(p.get("namespaceSelector") == {} for p in peers)  # workers, any namespace
    operator = chart.find(found, "NetworkPolicy", "trimtab-operator")
    to_redis = [
        r for r in operator["spec"]["egress"] if any("podSelector" in t for t in r.get("to", []))
    ]
    [rule_out] = to_redis
    assert rule_out["ports"] == [{"port": 6379, "protocol": "TCP"}]

"""The AgentWorkflow verdict: conditions, messages and plan summary."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.handlers import state
from trimtab.queue import workflows
from trimtab.reconcile.agentworkflow import status
from trimtab.reconcile.policy import Policy


def _spec(*steps: dict[str, Any]) -> awf.AgentWorkflowSpec:
    return awf.AgentWorkflowSpec.model_validate({"defaultPool": "small", "steps": list(steps)})


FAN_IN = _spec(
    {"name": "a", "prompt": "x"},
    {"name": "b", "prompt": "x"},
    {"name": "c", "prompt": "y", "dependsOn": ["a", "b"], "fallback": {"pool": "big"}},
)
CYCLE = _spec(
    {"name": "a", "prompt": "x", "dependsOn": ["b"]},
    {"name": "b", "prompt": "x", "dependsOn": ["a"]},
)


def _conditions(verdict: status.WorkflowVerdict) -> dict[str, tuple[Any, str, str]]:
    return {c.type.value: (c.status, c.reason.value, c.message) for c in verdict.conditions}


@pytest.mark.parametrize(
    ("spec", "pools", "ready", "spec_valid", "pools_ready", "publish"),
    [
        pytest.param(
            FAN_IN,
            {"small": True, "big": True},
            (True, "Published"),
            (True, "Valid"),
            (True, "AllPoolsReady"),
            True,
            id="ready",
        ),
        pytest.param(
            FAN_IN,
            {"small": True, "big": False},
            (False, "PoolsNotReady"),
            (True, "Valid"),
            (False, "PoolsNotReady"),
            True,
            id="pool-not-ready",
        ),
        pytest.param(
            FAN_IN,
            {"small": True},
            (False, "InvalidSpec"),
            (False, "MissingPool"),
            (False, "PoolsNotReady"),
            False,
            id="missing-pool",
        ),
        pytest.param(
            CYCLE,
            {"small": True},
            (False, "InvalidSpec"),
            (False, "DependencyCycle"),
            (True, "AllPoolsReady"),
            False,
            id="cycle",
        ),
    ],
)
def test_decide(
    spec: awf.AgentWorkflowSpec,
    pools: dict[str, bool],
    ready: tuple[bool, str],
    spec_valid: tuple[bool, str],
    pools_ready: tuple[bool, str],
    publish: bool,
) -> None:
    verdict = status.decide(spec, pools_ready=pools)
    got = _conditions(verdict)
    assert got["Ready"][:2] == ready
    assert got["SpecValid"][:2] == spec_valid
    assert got["PoolsReady"][:2] == pools_ready
    assert verdict.publish is publish


def test_messages_name_the_cycle_and_the_missing_pool() -> None:
    cycle = _conditions(status.decide(CYCLE, pools_ready={"small": True}))["SpecValid"][2]
    assert "dependency cycle: a -> b -> a" in cycle
    missing = _conditions(status.decide(FAN_IN, pools_ready={"small": True}))["SpecValid"][2]
    assert 'spec.steps[2].fallback.pool: AgentPool "big" does not exist' in missing
    waiting = _conditions(status.decide(FAN_IN, pools_ready={"small": False, "big": True}))
    assert waiting["PoolsReady"][2] == "not Ready yet: small"
    # With the pool's own reason, the workflow says why it waits on it.
    unserved = status.decide(
        FAN_IN, pools_ready={"small": False, "big": True}, pools_why={"small": "Unserved"}
    )
    assert _conditions(unserved)["PoolsReady"][2] == "not Ready yet: small (Unserved)"


RUNS = workflows.RunStats(
    started=5,
    succeeded=3,
    failed=1,
    dead_lettered=0,
    in_review=1,
    tokens=1234,
    cost=0.1234567,
    p95_seconds=2.34567,
)


NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


def _status(verdict: status.WorkflowVerdict, held: dict[str, Any]) -> dict[str, Any]:
    want = status.desired(verdict, status.parse(held), RUNS, generation=3, now=NOW)
    return status.status_patch(held, want)


def test_status_of_a_valid_plan_is_the_api_model_by_alias() -> None:
    verdict = status.decide(FAN_IN, pools_ready={"small": True, "big": True})
    patch = _status(verdict, {})
    assert patch["stepCount"] == 3
    assert patch["depth"] == 2
    assert patch["criticalPath"] == ["a", "c"]
    assert patch["observedGeneration"] == 3
    assert (patch["runsStarted"], patch["runsInReview"], patch["tokensUsed"]) == (5, 1, 1234)
    assert patch["costSpent"] == 0.123457
    assert patch["p95RunSeconds"] == 2.346
    assert [c["type"] for c in patch["conditions"]] == ["Ready", "SpecValid", "PoolsReady"]
    assert patch["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    # Written back as the apiserver would hold it, the same status patches nothing.
    assert _status(verdict, patch) == {}


def test_an_invalid_plan_reports_no_steps() -> None:
    bad = status.decide(CYCLE, pools_ready={"small": True})
    patch = _status(bad, {"stepCount": 2, "depth": 2, "criticalPath": ["a", "b"]})
    assert (patch["stepCount"], patch["depth"], patch["criticalPath"]) == (0, 0, [])


def test_a_status_from_another_version_is_rewritten_whole() -> None:
    verdict = status.decide(FAN_IN, pools_ready={"small": True, "big": True})
    held = {"stepCount": -1, "oldField": "x"}
    assert status.parse(held) == status.parse({})
    assert _status(verdict, held)["stepCount"] == 3


def test_the_reason_is_the_problems_kind_whatever_the_message() -> None:
    both = _spec(
        {"name": "a", "prompt": "x", "dependsOn": ["b"], "pool": "nowhere"},
        {"name": "b", "prompt": "x", "dependsOn": ["a"]},
    )
    got = _conditions(status.decide(both, pools_ready={"small": True}))
    assert got["SpecValid"][1] == "DependencyCycle"  # the cycle outranks the missing pool
    missing = _conditions(status.decide(FAN_IN, pools_ready={"small": True}))
    assert missing["SpecValid"][1] == "MissingPool"


def test_the_operator_checks_a_workflow_once_per_generation() -> None:
    checks = state.WorkflowChecks()
    raw = FAN_IN.to_wire()
    spec, checked = checks.of(("ns", "wf"), 1, raw, Policy())
    assert checks.of(("ns", "wf"), 1, raw, Policy())[1] is checked  # the same generation: kept
    assert checked.plan is not None
    assert checked.plan.order == ("a", "b", "c")
    assert status.decide(spec, pools_ready={"small": True, "big": True}, checked=checked).publish
    _, cyclic = checks.of(("ns", "wf"), 2, CYCLE.to_wire(), Policy())
    assert cyclic.plan is None
    assert [p.reason.value for p in cyclic.problems] == ["DependencyCycle"]


def test_a_secret_workers_found_missing_is_named_but_the_workflow_stays_published() -> None:
    header = {"name": "Authorization", "valueFromSecret": {"name": "crm", "key": "token"}}
    spec = _spec(
        {"name": "ask", "prompt": "x"},
        {"name": "lookup", "kind": "tool", "tool": {"url": "https://crm/x", "headers": [header]}},
    )
    verdict = status.decide(
        spec, pools_ready={"small": True}, missing_secrets=[("crm", "token"), ("other", "k")]
    )
    found = _conditions(verdict)
    assert found["SpecValid"] == (
        False,
        "SecretMissing",
        "spec.steps[1].tool.headers[0].valueFromSecret: Secret crm has no key token in this "
        "namespace (or does not exist): step lookup fails until it is created",
    )
    assert found["Ready"][:2] == (False, "SecretMissing")
    assert verdict.publish is True  # runs work as soon as the Secret exists
    assert status.decide(spec, pools_ready={"small": True}).publish is True
    assert _conditions(status.decide(spec, pools_ready={"small": True}))["SpecValid"][0] is True

"""The AgentWorkflow verdict: conditions, messages and plan summary."""

from __future__ import annotations

from typing import Any

import pytest

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reconcile.agentworkflow import status


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


def test_summary_of_a_valid_plan_and_of_none() -> None:
    verdict = status.decide(FAN_IN, pools_ready={"small": True, "big": True})
    assert verdict.summary() == {"stepCount": 3, "depth": 2, "criticalPath": ["a", "c"]}
    bad = status.decide(CYCLE, pools_ready={"small": True})
    assert bad.summary() == {"stepCount": 0, "depth": 0, "criticalPath": []}

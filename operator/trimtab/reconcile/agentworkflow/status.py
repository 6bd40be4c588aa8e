"""An AgentWorkflow's status, decided from its spec, the pools that exist, and its plan.

SpecValid names every problem (the cycle, the missing pool); PoolsReady says which
referenced pools are not Ready yet; Ready is both. The plan summary (steps, depth,
critical path) is what `kubectl get awf` and dashboards show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions
from trimtab.reconcile.agentworkflow import dag, validation

MAX_MESSAGE = 1024


@dataclasses.dataclass(frozen=True)
class WorkflowVerdict:
    """What the controller concluded: conditions, plan summary, and whether to publish."""

    conditions: tuple[conditions.Desired, ...]
    plan: dag.Plan | None
    publish: bool

    def summary(self) -> dict[str, object]:
        if self.plan is None:
            return {"stepCount": 0, "depth": 0, "criticalPath": []}
        return {
            "stepCount": len(self.plan.order),
            "depth": self.plan.depth,
            "criticalPath": list(self.plan.critical_path),
        }


def _problem_reason(problems: Sequence[dag.Problem]) -> Reason:
    if any(p.message.startswith("dependency cycle") for p in problems):
        return Reason.DEPENDENCY_CYCLE
    if any("does not exist in this namespace" in p.message for p in problems):
        return Reason.MISSING_POOL
    return Reason.INVALID_SPEC


def _join(problems: Sequence[dag.Problem]) -> str:
    text = "; ".join(f"{p.path}: {p.message}" for p in problems)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _pools_ready(spec: awf.AgentWorkflowSpec, ready: Mapping[str, bool]) -> conditions.Desired:
    referenced = sorted({name for _, name in validation.pool_references(spec)})
    waiting = [name for name in referenced if not ready.get(name, False)]
    if waiting:
        return conditions.Desired(
            ConditionType.POOLS_READY,
            False,
            Reason.POOLS_NOT_READY,
            "not Ready yet: " + ", ".join(waiting),
        )
    return conditions.Desired(
        ConditionType.POOLS_READY, True, Reason.ALL_POOLS_READY, f"{len(referenced)} pool(s) Ready"
    )


def decide(spec: awf.AgentWorkflowSpec, *, pools_ready: Mapping[str, bool]) -> WorkflowVerdict:
    """Conditions and plan for `spec`, given each existing pool's readiness."""
    problems = validation.find_problems(spec, pools=set(pools_ready))
    pools = _pools_ready(spec, pools_ready)
    if problems:
        spec_valid = conditions.Desired(
            ConditionType.SPEC_VALID, False, _problem_reason(problems), _join(problems)
        )
        ready = conditions.Desired(
            ConditionType.READY, False, Reason.INVALID_SPEC, spec_valid.message
        )
        return WorkflowVerdict((ready, spec_valid, pools), None, publish=False)
    plan = validation.compile_plan(spec)
    spec_valid = conditions.Desired(
        ConditionType.SPEC_VALID, True, Reason.VALID, f"{len(plan.order)} steps, depth {plan.depth}"
    )
    ready = conditions.Desired(
        ConditionType.READY,
        pools.status is True,
        Reason.PUBLISHED if pools.status else Reason.POOLS_NOT_READY,
        "published; " + pools.message,
    )
    return WorkflowVerdict((ready, spec_valid, pools), plan, publish=True)

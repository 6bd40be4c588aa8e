"""An AgentWorkflow's status, decided from its spec, the pools that exist, and its plan,
as the API's own `AgentWorkflowStatus` model.

SpecValid names every problem (the cycle, the missing pool, a Secret the workers found
missing) and takes its reason from the problems' own kinds; PoolsReady says which
referenced pools are not Ready yet; Ready is both. The plan summary (steps, depth,
critical path) and the run figures are what `kubectl get awf` and dashboards show.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.reasons import ConditionType, Reason
from trimtab.reconcile import conditions, statuses
from trimtab.reconcile.agentworkflow import dag, validation


@dataclasses.dataclass(frozen=True)
class WorkflowVerdict:
    """What the controller concluded: conditions, plan summary, and whether to publish."""

    conditions: tuple[conditions.Desired, ...]
    plan: dag.Plan | None
    publish: bool


# When problems of several kinds are found, the condition's reason names the first
# kind here: a cycle makes the whole graph meaningless, a missing pool is one edit away.
_REASON_ORDER = (Reason.DEPENDENCY_CYCLE, Reason.MISSING_POOL)


def _problem_reason(problems: Sequence[dag.Problem]) -> Reason:
    kinds = {p.reason for p in problems}
    return next((r for r in _REASON_ORDER if r in kinds), Reason.INVALID_SPEC)


def _join(problems: Sequence[dag.Problem]) -> str:
    return conditions.joined(f"{p.path}: {p.message}" for p in problems)


def _pools_ready(
    spec: awf.AgentWorkflowSpec, ready: Mapping[str, bool], why: Mapping[str, str]
) -> conditions.Desired:
    referenced = sorted({name for _, name in validation.pool_references(spec)})
    waiting = [name for name in referenced if not ready.get(name, False)]
    if waiting:
        named = (f"{name} ({why[name]})" if why.get(name) else name for name in waiting)
        return conditions.Desired(
            ConditionType.POOLS_READY,
            False,
            Reason.POOLS_NOT_READY,
            "not Ready yet: " + ", ".join(named),
        )
    return conditions.Desired(
        ConditionType.POOLS_READY, True, Reason.ALL_POOLS_READY, f"{len(referenced)} pool(s) Ready"
    )


def _caller(path: str, steps: Sequence[awf.Step]) -> str:
    """Who makes the call at `path` (below spec), in words."""
    names = ", ".join(s.name for s in steps)
    if path.startswith("tools["):
        return f"every call of it (by agent step {names})" if names else "every call of it"
    field = path.rsplit(".", 1)[-1]
    return f"step {names}" if field == "tool" else f"the {field} call of step {names}"


def _missing_secret_problems(
    spec: awf.AgentWorkflowSpec, missing: Sequence[tuple[str, str]]
) -> list[dag.Problem]:
    gone = set(missing)
    found: list[dag.Problem] = []
    for path, call, steps in awf.http_calls(spec):
        for k, header in enumerate(call.headers):
            ref = header.value_from_secret
            if ref is None or (ref.name, ref.key) not in gone:
                continue
            found.append(
                dag.Problem(
                    f"spec.{path}.headers[{k}].valueFromSecret",
                    f"Secret {ref.name} has no key {ref.key} in this namespace (or does "
                    f"not exist): {_caller(path, steps)} fails until it is created",
                    Reason.SECRET_MISSING,
                )
            )
    return found


def _secrets_missing(
    plan: dag.Plan, problems: Sequence[dag.Problem], pools: conditions.Desired
) -> WorkflowVerdict:
    """The spec is sound, but workers found Secrets it names missing: the workflow is
    still published (runs start working once the Secret exists), and it says why its
    tool steps fail."""
    spec_valid = conditions.Desired(
        ConditionType.SPEC_VALID, False, Reason.SECRET_MISSING, _join(problems)
    )
    ready = conditions.Desired(
        ConditionType.READY, False, Reason.SECRET_MISSING, spec_valid.message
    )
    return WorkflowVerdict((ready, spec_valid, pools), plan, publish=True)


def decide(
    spec: awf.AgentWorkflowSpec,
    *,
    pools_ready: Mapping[str, bool],
    checked: validation.Checked | None = None,
    missing_secrets: Sequence[tuple[str, str]] = (),
    pools_why: Mapping[str, str] | None = None,
) -> WorkflowVerdict:
    """Conditions and plan for `spec`, given each existing pool's readiness (and, for one
    not Ready, its Ready reason, e.g. Unserved) and the Secrets workers lately found
    missing; `checked` is the spec's own check when the caller keeps it per generation."""
    checked = checked or validation.check(spec)
    problems = [*checked.problems, *validation.missing_pools(spec, set(pools_ready))]
    pools = _pools_ready(spec, pools_ready, pools_why or {})
    if problems or checked.plan is None:
        spec_valid = conditions.Desired(
            ConditionType.SPEC_VALID, False, _problem_reason(problems), _join(problems)
        )
        ready = conditions.Desired(
            ConditionType.READY, False, Reason.INVALID_SPEC, spec_valid.message
        )
        return WorkflowVerdict((ready, spec_valid, pools), None, publish=False)
    plan = checked.plan
    secret_problems = _missing_secret_problems(spec, missing_secrets)
    if secret_problems:
        return _secrets_missing(plan, secret_problems, pools)
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


class RunFigures(Protocol):
    """A workflow's run counters as status reports them (trimtab.queue.workflows reads
    them from Redis)."""

    @property
    def started(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> int: ...
    @property
    def cancelled(self) -> int: ...
    @property
    def dead_lettered(self) -> int: ...
    @property
    def in_review(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    @property
    def cost(self) -> float: ...
    @property
    def p95_seconds(self) -> float | None: ...


def parse(raw: Mapping[str, Any]) -> awf.AgentWorkflowStatus:
    """The status the apiserver holds (statuses.parse)."""
    return statuses.parse(awf.AgentWorkflowStatus, raw)


def desired(
    verdict: WorkflowVerdict,
    current: awf.AgentWorkflowStatus,
    runs: RunFigures,
    *,
    generation: int,
    now: datetime.datetime,
) -> awf.AgentWorkflowStatus:
    """The whole status to hold: conditions merged with `current`, plan and run figures."""
    plan = verdict.plan
    return awf.AgentWorkflowStatus(
        observed_generation=generation,
        conditions=conditions.merge(
            current.conditions, verdict.conditions, generation=generation, now=now
        ),
        step_count=0 if plan is None else len(plan.order),
        depth=0 if plan is None else plan.depth,
        critical_path=[] if plan is None else list(plan.critical_path),
        runs_started=runs.started,
        runs_succeeded=runs.succeeded,
        runs_failed=runs.failed,
        runs_cancelled=runs.cancelled,
        runs_dead_lettered=runs.dead_lettered,
        runs_in_review=runs.in_review,
        tokens_used=runs.tokens,
        cost_spent=round(runs.cost, 6),
        p95_run_seconds=None if runs.p95_seconds is None else round(runs.p95_seconds, 3),
    )


def status_patch(held: Mapping[str, Any], want: awf.AgentWorkflowStatus) -> dict[str, Any]:
    """The merge patch from the status the apiserver holds to `want` ({} when equal)."""
    return statuses.changes(held, want)

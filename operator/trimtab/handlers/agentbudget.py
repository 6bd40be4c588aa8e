"""AgentBudget: publish what the workers enforce, report each window's spend.

Level-based like the workflows: create, resume, spec updates and the periodic refresh
run the same pass, which resolves the workflows covered (a selector follows labels as
they change), publishes the definition to Redis, and writes status from the windows'
figures. A deleted budget is withdrawn by its watch event, or by the sweep when it was
deleted while no operator ran.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf
import pydantic

from trimtab import metrics
from trimtab.api.v1alpha1 import API_VERSION, GROUP, VERSION, kinds
from trimtab.api.v1alpha1 import agentbudget as ab
from trimtab.handlers import state
from trimtab.kube import objects
from trimtab.queue import agentbudgets
from trimtab.reconcile.agentbudget import plan as plan_mod
from trimtab.reconcile.agentbudget import windows as windows_mod

KIND, PLURAL = kinds.AGENT_BUDGET.kind, kinds.AGENT_BUDGET.plural
log = logging.getLogger(__name__)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def reconcile(*, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await refresh(memo["shared"], body)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def withdraw_when_deleted(
    *, event: kopf.RawEvent, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Stop enforcing a deleted budget (a watch event: a deletion handler needs a
    finalizer, and a budget must never be kept from deletion by a missing operator)."""
    if event.get("type") == "DELETED":
        shared: state.Shared = memo["shared"]
        await agentbudgets.withdraw(shared.redis, namespace or "default", name)
        shared.metrics.budget_forgotten(namespace or "default", name)
        shared.budget_passes.pop((namespace or "default", name), None)


def _workflow_labels(shared: state.Shared, namespace: str) -> dict[str, dict[str, str]]:
    return {
        name: dict((body.get("metadata") or {}).get("labels") or {})
        for (ns, name), body in list(shared.views.workflows.items())
        if ns == namespace
    }


async def refresh(shared: state.Shared, body: Mapping[str, Any]) -> None:
    """One pass: publish, read the windows, patch what changed, post the Events."""
    meta = body["metadata"]
    key = (meta.get("namespace") or "default", meta["name"])
    passes = shared.budget_passes.setdefault(key, state.BudgetPasses())
    async with passes.lock:
        await _pass(shared, body, passes)


async def _pass(shared: state.Shared, body: Mapping[str, Any], passes: state.BudgetPasses) -> None:
    t0 = time.perf_counter()
    meta = body["metadata"]
    ns, name, generation = meta.get("namespace") or "default", meta["name"], int(meta["generation"])
    try:
        spec = ab.AgentBudgetSpec.model_validate(dict(body["spec"]))
    except pydantic.ValidationError as exc:  # the apiserver checks the same schema
        log.warning("AgentBudget %s/%s: %s", ns, name, exc)
        return
    covered = plan_mod.covered(spec, _workflow_labels(shared, ns))
    definition = plan_mod.definition(spec, covered)
    # Every pass, not only on change: a Redis that lost its data (no persistence, a
    # failover to an empty replica) has the budget back within a status interval.
    await agentbudgets.publish(shared.redis, ns, name, definition)
    now = time.time()
    found = windows_mod.windows(ns, name, definition, now)
    planned = plan_mod.plan(
        spec,
        generation=generation,
        workflows=covered,
        spend=await agentbudgets.spend(shared.redis, found),
        held=body.get("status") or {},
        now=datetime.datetime.fromtimestamp(int(now), datetime.UTC),
    )
    if planned.patch:
        await shared.kube.patch_status(API_VERSION, KIND, name, planned.patch, namespace=ns)
    for event in planned.events:
        await shared.kube.post_event(
            dict(body), type_=event.type, reason=event.reason, message=event.message
        )
    for period, used in planned.used:
        shared.metrics.budget_observed(ns, name, period=metrics.BudgetPeriod(period), used=used)
    starts = {w.period: w.start for w in found}
    passes.warned &= set(starts.items())  # past windows are done with
    for period in planned.warned:
        if (period, starts[period]) not in passes.warned:
            passes.warned.add((period, starts[period]))
            shared.metrics.budget_warned(ns, name, period=metrics.BudgetPeriod(period))
    shared.metrics.reconciled(metrics.ReconciledKind.AGENT_BUDGET, seconds=time.perf_counter() - t0)


async def sweep_withdrawn(shared: state.Shared) -> list[tuple[str, str]]:
    """Withdraw budgets published in Redis whose AgentBudget no longer exists, in the
    namespaces this operator watches objects in; absence is confirmed with the
    apiserver, and a budget this operator may not read is left to its owner."""
    withdrawn = []
    for ns in sorted(shared.views.namespaces()):
        for name in sorted(await agentbudgets.definitions(shared.redis, ns)):
            if (ns, name) in shared.views.budgets:
                continue
            try:
                found = await shared.kube.get(API_VERSION, KIND, name, ns)
            except objects.ApiError:
                continue
            if found is None:
                await agentbudgets.withdraw(shared.redis, ns, name)
                withdrawn.append((ns, name))
    return withdrawn

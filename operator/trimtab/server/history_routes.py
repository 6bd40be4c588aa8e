"""The run history over HTTP: archived runs and what they spent, from the history
database the operator archives to (when this server is given one: --history-url).
Authorized as listing the namespace's runs is (list on agentworkflows/runs)."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import fastapi

from trimtab.api import rest
from trimtab.history import records
from trimtab.sdk import history as sdk_history
from trimtab.server import auth, context
from trimtab.server.context import Caller, caller

router = fastapi.APIRouter(
    prefix="/v1/namespaces/{namespace}", tags=["history"], dependencies=context.NAMESPACE_CHECKED
)
CallerDep = Annotated[Caller, fastapi.Depends(caller)]
LIST = auth.Need("list", sub=auth.Sub.RUNS)
DAY = datetime.timedelta(days=1)
# Within one namespace: its workflows, pools, models, tiers, capacity types or days.
CostBy = Literal["workflow", "pool", "model", "tier", "capacity", "day"]


class NoHistoryError(LookupError):
    """This server was started without a history database."""


def _history(who: Caller) -> sdk_history.History:
    if who.ctx.history is None:
        raise NoHistoryError("this API server has no history database (--history-url)")
    return who.ctx.history


def _ms(moment: datetime.datetime) -> float:
    return moment.timestamp() * 1000


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=datetime.UTC)


def _body(run: records.ArchivedRun) -> rest.ArchivedRunBody:
    return rest.ArchivedRunBody(
        id=run.run_id, namespace=run.namespace, workflow=run.workflow,
        generation=run.generation, status=run.status,  # type: ignore[arg-type]
        priority=run.priority, created_ms=_ms(run.created_at), ended_ms=_ms(run.ended_at),
        duration_seconds=run.duration_seconds, tokens=run.tokens, cost=run.cost,
        error=run.error, session=run.session, idempotency_key=run.idempotency_key,
        trace_id=run.trace_id,
    )  # fmt: skip


@router.get("/history/runs", response_model=rest.ArchivedRuns)
async def archived_runs(
    namespace: str,
    who: CallerDep,
    workflow: str | None = None,
    status: rest.RunStatus | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 50,
) -> rest.ArchivedRuns:
    """Ended runs of the namespace, newest first, from the history (ISO 8601 times)."""
    await who.require(LIST, namespace, workflow or "")
    found = await _history(who).runs(
        namespace, workflow=workflow, status=status, since=_utc(since), until=_utc(until),
        limit=limit,
    )  # fmt: skip
    return rest.ArchivedRuns(runs=[_body(r) for r in found])


@router.get("/cost", response_model=rest.CostReport)
async def cost_report(
    namespace: str,
    who: CallerDep,
    by: CostBy = "workflow",
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> rest.CostReport:
    """What the namespace's runs that ended in [since, until) spent (default: the past
    day), grouped by workflow, pool, model, tier or day."""
    await who.require(LIST, namespace)
    end = _utc(until) or datetime.datetime.now(datetime.UTC)
    start = _utc(since) or end - DAY
    rows = await _history(who).cost(
        sdk_history.CostBy(by), since=start, until=end, namespace=namespace
    )
    return rest.CostReport(
        by=by, since_ms=_ms(start), until_ms=_ms(end),
        rows=[rest.CostRowBody(key=r.key, runs=r.runs, tokens=r.tokens, cost=r.cost) for r in rows],
        total_cost=sum(r.cost for r in rows),
    )  # fmt: skip

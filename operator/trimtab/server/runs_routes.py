"""Runs over HTTP: submit, get, list, cancel, and follow their events as Server-Sent
Events (resumable with Last-Event-ID). Each call is authorized on
`agentworkflows/runs`, named by the run's workflow, so a Role may be limited to some
workflows with resourceNames."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

import fastapi
from fastapi import responses

from trimtab import metrics
from trimtab.api import rest
from trimtab.queue import deadletter, runindex, runs, wire
from trimtab.sdk import client as sdk_client
from trimtab.sdk import operations
from trimtab.server import auth, context, encode
from trimtab.server.context import Caller, caller

router = fastapi.APIRouter(
    prefix="/v1/namespaces/{namespace}", tags=["runs"], dependencies=context.NAMESPACE_CHECKED
)
CallerDep = Annotated[Caller, fastapi.Depends(caller)]
SUBMIT = auth.Need("create", sub=auth.Sub.RUNS)
READ = auth.Need("get", sub=auth.Sub.RUNS)
LIST = auth.Need("list", sub=auth.Sub.RUNS)
CANCEL = auth.Need("update", sub=auth.Sub.RUNS)
KEEPALIVE_SECONDS = 15.0
HISTORY_BATCH = 500


@router.post("/workflows/{workflow}/runs", status_code=201, response_model=rest.Submitted)
async def submit(
    namespace: str,
    workflow: str,
    body: rest.SubmitRequest,
    who: CallerDep,
    response: fastapi.Response,
    idempotency_key: Annotated[str | None, fastapi.Header(max_length=200)] = None,
    traceparent: Annotated[str | None, fastapi.Header(max_length=100)] = None,
) -> rest.Submitted:
    """Start a run of the workflow; the same Idempotency-Key returns the same run (200).
    A W3C `traceparent` makes the run's trace continue the caller's."""
    await who.require(SUBMIT, namespace, workflow)
    sdk_client.split_ref(f"{namespace}/{workflow}", what="a workflow")
    known = None
    if idempotency_key is not None:
        known = await runs.submitted_as(who.ctx.sdk.redis, namespace, workflow, idempotency_key)
    ref = await who.ctx.sdk.submit(
        namespace,
        workflow,
        body.inputs,
        idempotency_key=idempotency_key,
        priority=body.priority,
        session=body.session,
        deadline_seconds=body.deadline_seconds,
        traceparent=traceparent or "",
    )
    run_id = ref.partition("/")[2]
    if known is not None:
        response.status_code = 200
    return rest.Submitted(
        run=ref, id=run_id, created=known is None, links=encode.links(namespace, run_id)
    )


async def _readable(who: Caller, namespace: str, run_id: str) -> runs.RunState:
    """The run, when the caller may read it; 404 only to callers who may read the
    namespace's runs, so a name cannot be probed from outside."""
    state = await runs.read(who.ctx.sdk.redis, namespace, run_id)
    if state is None:
        await who.require(READ, namespace)
        raise sdk_client.RunNotFoundError(f"run {namespace}/{run_id} not found (or expired)")
    await who.require(READ, namespace, state.workflow)
    return state


@router.get("/runs/{run_id}", response_model=rest.RunBody)
async def get_run(namespace: str, run_id: str, who: CallerDep) -> rest.RunBody:
    """Status, per-step state, timings, attempts, tokens, cost, outputs; its review and
    dead-letter entries."""
    sdk_client.split_ref(f"{namespace}/{run_id}")
    state = await _readable(who, namespace, run_id)
    in_review = [s.review for s in state.steps.values() if s.review]
    dead: list[str] = []
    if any(s.state is wire.StepState.DEAD for s in state.steps.values()):
        # Dead-letter entries are not kept on the run: read its namespace's stream.
        entries = await deadletter.list_entries(who.ctx.sdk.redis, namespace, 1000)
        dead = [e.id for e in entries if e.run_id == run_id]
    return encode.run(state, reviews=in_review, dead_letters=dead)


@router.get("/runs", response_model=rest.RunList)
async def list_runs(
    namespace: str,
    who: CallerDep,
    workflow: str | None = None,
    status: Annotated[list[wire.RunStatus] | None, fastapi.Query()] = None,
    since_ms: Annotated[float | None, fastapi.Query(alias="sinceMs")] = None,
    until_ms: Annotated[float | None, fastapi.Query(alias="untilMs")] = None,
    cursor: str | None = None,
    limit: Annotated[int, fastapi.Query(ge=1, le=1000)] = 50,
) -> rest.RunList:
    """Newest first; follow nextCursor. A page may be short while more remain."""
    await who.require(LIST, namespace, workflow or "")
    where = runindex.RunFilter(
        workflow=workflow, statuses=frozenset(status or ()), since_ms=since_ms, until_ms=until_ms
    )
    page = await who.ctx.sdk.list_runs(namespace, where=where, cursor=cursor, limit=limit)
    return rest.RunList(items=[encode.summary(r) for r in page.runs], next_cursor=page.next_cursor)


@router.post("/runs/{run_id}/cancel", response_model=rest.Cancelled)
async def cancel(namespace: str, run_id: str, who: CallerDep) -> rest.Cancelled:
    """End the run `cancelled`: no further step starts, what is under way is discarded
    and its calls abandoned. 409 when it has ended already."""
    sdk_client.split_ref(f"{namespace}/{run_id}")
    state = await _readable(who, namespace, run_id)
    await who.require(CANCEL, namespace, state.workflow)
    await operations.cancel(who.ctx.sdk, f"{namespace}/{run_id}")
    who.ctx.metrics.run_finished(namespace, state.workflow, outcome=metrics.RunOutcome.CANCELLED)
    return rest.Cancelled(run=f"{namespace}/{run_id}", status="cancelled")


@router.get("/runs/{run_id}/events", response_class=responses.StreamingResponse)
async def events(
    namespace: str,
    run_id: str,
    who: CallerDep,
    last_event_id: Annotated[str | None, fastapi.Header()] = None,
    after: str | None = None,
) -> responses.StreamingResponse:
    """The run's events as Server-Sent Events (each `id` is the event's, `event` its
    type, `data` its fields as JSON), from the first or after Last-Event-ID (or
    ?after=), until the run is done; model steps' text arrives as `tokens` events."""
    sdk_client.split_ref(f"{namespace}/{run_id}")
    start = last_event_id or after or "0"
    if not sdk_client.ENTRY_ID.match(start) and start != "0":
        raise ValueError(f"Last-Event-ID is an event id like 1700000000000-0, got {start!r}")
    await _readable(who, namespace, run_id)
    return responses.StreamingResponse(
        _stream(who, namespace, run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _frame(event_id: str, fields: dict[str, str]) -> bytes:
    kind = fields.get("type", "message")
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(fields)}\n\n".encode()


async def _stream(who: Caller, namespace: str, run_id: str, after: str) -> AsyncIterator[bytes]:
    redis = who.ctx.sdk.redis
    last = after
    while True:  # what happened before the stream opened, read directly
        history = await runs.events(redis, namespace, run_id, after=last, count=HISTORY_BATCH)
        for event_id, fields in history:
            last = event_id
            yield _frame(event_id, fields)
            if fields.get("type") == wire.EventType.RUN_DONE:
                return
        if len(history) < HISTORY_BATCH:
            break
    async with who.ctx.hub.subscribe(namespace, run_id, after=last) as queue:
        while True:
            try:
                entry = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if entry is None:  # fell behind: the client resumes with Last-Event-ID
                yield b"event: lagging\ndata: {}\n\n"
                return
            yield _frame(*entry)
            if entry[1].get("type") == wire.EventType.RUN_DONE:
                return

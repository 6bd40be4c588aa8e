"""The SDK over HTTP: `Client("https://trimtab.example")` talks to `trimtab api` with a
bearer token instead of to Redis, with the Redis client's calls and return types (the
API's bodies, trimtab.api.rest, decoded back into the runtime's records). Errors come
back as the exceptions the Redis client raises, with the server's one-line message.

What needs Redis itself (publishing workflows, reading compiled generations and
arrivals) is the operator's and raises HttpTransportError here.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import httpx

from trimtab.api import rest
from trimtab.api.v1alpha1 import agentworkflow as awf
from trimtab.queue import attempts, deadletter, review, runindex, runs, wire
from trimtab.sdk import client as client_mod
from trimtab.sdk import operations
from trimtab.telemetry import tracing

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class HttpTransportError(RuntimeError):
    """A call the HTTP transport does not offer, or an answer it cannot read."""


class ForbiddenError(PermissionError):
    """The server refused the call: 401 (the token) or 403 (RBAC)."""


# The server's statuses as the Redis client's exceptions (the message is the server's).
ERRORS: dict[int, type[Exception]] = {
    400: ValueError,
    401: ForbiddenError,
    403: ForbiddenError,
    404: LookupError,
    409: operations.RunEndedError,
    413: client_mod.InputsTooLargeError,
    422: ValueError,  # an edit or inputs outside their schema, a malformed body
    429: client_mod.BudgetExhaustedError,
    503: ConnectionError,
}


def _raise(response: httpx.Response) -> NoReturn:
    try:
        message = rest.Problem.model_validate(response.json()).error
    except (ValueError, TypeError):
        message = response.text[:200] or response.reason_phrase
    if response.status_code == 404 and "/runs/" in response.url.path:
        raise client_mod.RunNotFoundError(message)
    raise ERRORS.get(response.status_code, HttpTransportError)(message)


class HttpClient(client_mod.Client):
    """The Client's calls over HTTP; safe to share across tasks."""

    def __init__(
        self, redis_url: str = client_mod.DEFAULT_REDIS_URL, *, token: str | None = None
    ) -> None:
        token = token if token is not None else os.environ.get("TRIMTAB_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=redis_url.rstrip("/"), headers=headers,
                                       timeout=TIMEOUT)  # fmt: skip

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            _raise(response)
        return response.json()

    async def submit(
        self,
        namespace: str,
        workflow: str,
        inputs: Any,
        *,
        idempotency_key: str | None = None,
        priority: awf.Priority | None = None,
        session: str | None = None,
        deadline_seconds: int | None = None,
        traceparent: str | None = None,
    ) -> str:
        body = rest.SubmitRequest(inputs=inputs, session=session, priority=priority,
                                  deadline_seconds=deadline_seconds)  # fmt: skip
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        # The run's trace continues the caller's span (or the one given).
        parent = tracing.caller_traceparent() if traceparent is None else traceparent
        if parent:
            headers["traceparent"] = parent
        found = await self._call("POST", f"/v1/namespaces/{namespace}/workflows/{workflow}/runs",
                                 json=body.model_dump(by_alias=True, exclude_none=True),
                                 headers=headers)  # fmt: skip
        return rest.Submitted.model_validate(found).run

    async def get(self, run: str) -> runs.RunState:
        namespace, run_id = client_mod.split_ref(run)
        found = await self._call("GET", f"/v1/namespaces/{namespace}/runs/{run_id}")
        return _run_state(rest.RunBody.model_validate(found))

    async def events(self, run: str, *, block_ms: int = 1000) -> AsyncIterator[dict[str, str]]:
        """Events as they happen, from the first, until the run is done (SSE)."""
        namespace, run_id = client_mod.split_ref(run)
        path = f"/v1/namespaces/{namespace}/runs/{run_id}/events"
        last = ""
        while True:  # a stream the server ends early (a lagging client) is resumed
            headers = {"Last-Event-ID": last} if last else {}
            async with self._http.stream("GET", path, headers=headers, timeout=None) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise(response)
                async for event_id, fields in _frames(response):
                    last = event_id
                    yield fields
                    if fields.get("type") == wire.EventType.RUN_DONE:
                        return

    async def cancel(self, run: str) -> None:
        namespace, run_id = client_mod.split_ref(run)
        await self._call("POST", f"/v1/namespaces/{namespace}/runs/{run_id}/cancel")

    async def list_runs(
        self,
        namespace: str,
        *,
        where: runindex.RunFilter | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> runindex.RunPage:
        where = where or runindex.RunFilter()
        params: dict[str, Any] = {"limit": limit, "status": sorted(where.statuses)}
        for key, value in (("workflow", where.workflow), ("sinceMs", where.since_ms),
                           ("untilMs", where.until_ms), ("cursor", cursor)):  # fmt: skip
            if value is not None:
                params[key] = value
        found = rest.RunList.model_validate(
            await self._call("GET", f"/v1/namespaces/{namespace}/runs", params=params)
        )
        return runindex.RunPage([_summary(r) for r in found.items], found.next_cursor)

    async def history_runs(
        self,
        namespace: str,
        *,
        workflow: str | None = None,
        status: str | None = None,
        since: datetime.datetime | None = None,
        limit: int = 50,
    ) -> list[rest.ArchivedRunBody]:
        """Ended runs from the server's history database, newest first."""
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("workflow", workflow), ("status", status),
                           ("since", since.isoformat() if since else None)):  # fmt: skip
            if value is not None:
                params[key] = value
        path = f"/v1/namespaces/{namespace}/history/runs"
        return rest.ArchivedRuns.model_validate(await self._call("GET", path, params=params)).runs

    async def cost_report(
        self,
        namespace: str,
        *,
        by: str = "workflow",
        since: datetime.datetime | None = None,
        until: datetime.datetime | None = None,
    ) -> rest.CostReport:
        """What the namespace's runs spent, from the server's history database."""
        params = {"by": by}
        for key, value in (("since", since), ("until", until)):
            if value is not None:
                params[key] = value.isoformat()
        found = await self._call("GET", f"/v1/namespaces/{namespace}/cost", params=params)
        return rest.CostReport.model_validate(found)

    async def session(self, namespace: str, session: str) -> list[dict[str, Any]]:
        found = await self._call("GET", f"/v1/namespaces/{namespace}/sessions/{session}")
        return list(found["messages"])

    async def delete_session(self, namespace: str, session: str) -> bool:
        found = await self._call("DELETE", f"/v1/namespaces/{namespace}/sessions/{session}")
        return bool(found["deleted"])

    async def reviews(self, namespace: str, count: int = 100) -> list[review.ReviewItem]:
        found = await self._call("GET", f"/v1/namespaces/{namespace}/reviews",
                                 params={"count": count})  # fmt: skip
        return [_review(namespace, rest.ReviewBody.model_validate(i)) for i in found["items"]]

    async def review_details(self, ref: str) -> dict[str, Any]:
        namespace, entry = client_mod.split_entry(ref)
        body = rest.ReviewBody.model_validate(
            await self._call("GET", f"/v1/namespaces/{namespace}/reviews/{entry}")
        )
        return {**_review(namespace, body).__dict__, "inputs": body.inputs}

    async def _decide(self, ref: str, action: str, body: Any = None) -> wire.Reply:
        namespace, entry = client_mod.split_entry(ref)
        path = f"/v1/namespaces/{namespace}/reviews/{entry}/{action}"
        found = await self._call("POST", path, json=body)
        return wire.Reply(rest.Decision.model_validate(found).outcome)

    async def approve(self, ref: str) -> wire.Reply:
        return await self._decide(ref, "approve")

    async def edit(self, ref: str, output: Any) -> wire.Reply:
        return await self._decide(ref, "edit", {"output": output})

    async def reject(self, ref: str, reason: str | None = None) -> wire.Reply:
        return await self._decide(ref, "reject", {"reason": reason or operations.REJECTED})

    async def dead_letters(self, namespace: str, count: int = 100) -> list[deadletter.DeadLetter]:
        found = await self._call("GET", f"/v1/namespaces/{namespace}/deadletters",
                                 params={"count": count})  # fmt: skip
        return [_dead(namespace, rest.DeadLetterBody.model_validate(e)) for e in found["items"]]

    async def dead_letter(self, ref: str) -> deadletter.DeadLetter:
        namespace, entry = client_mod.split_entry(ref)
        found = await self._call("GET", f"/v1/namespaces/{namespace}/deadletters/{entry}")
        return _dead(namespace, rest.DeadLetterBody.model_validate(found))

    async def retry_dead_letter(self, ref: str) -> deadletter.Resumed:
        namespace, entry = client_mod.split_entry(ref)
        found = rest.Retried.model_validate(
            await self._call("POST", f"/v1/namespaces/{namespace}/deadletters/{entry}/retry")
        )
        return deadletter.Resumed(wire.Reply(found.outcome), tuple(found.steps))

    async def purge_dead_letters(self, namespace: str, ids: list[str] | None) -> int:
        found = await self._call("POST", f"/v1/namespaces/{namespace}/deadletters/purge",
                                 json={"ids": ids})  # fmt: skip
        return int(found["purged"])

    async def publish(self, *_: Any, **__: Any) -> NoReturn:
        raise HttpTransportError("publishing a workflow needs Redis: apply the AgentWorkflow")

    # The operator's reads of compiled workflows and arrivals: Redis only.
    async def workflow(self, *_: Any, **__: Any) -> NoReturn:
        raise HttpTransportError("reading compiled workflows needs Redis (the operator's)")

    async def generation(self, *_: Any, **__: Any) -> NoReturn:
        raise HttpTransportError("reading compiled workflows needs Redis (the operator's)")

    async def recorded_arrivals(self, *_: Any, **__: Any) -> NoReturn:
        raise HttpTransportError("reading a pool's arrivals needs Redis (the operator's)")

    async def aclose(self) -> None:
        await self._http.aclose()


async def _frames(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """(id, fields) of each Server-Sent Event; comments (keep-alives) are skipped."""
    frame: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line:
            key, _, value = line.partition(":")
            frame[key] = value.removeprefix(" ")
            continue
        if "data" in frame and frame.get("event") != "lagging":
            yield frame.get("id", ""), json.loads(frame["data"])
        frame = {}


def _step(s: rest.StepBody) -> runs.StepView:
    return runs.StepView(
        state=wire.StepState(s.state),
        attempt=s.attempt,
        pool=s.pool,
        output=s.output,
        error=s.error,
        tokens=s.tokens,
        cost=s.cost,
        queued_ms=s.queued_ms,
        started_ms=s.started_ms,
        ended_ms=s.ended_ms,
        compensation=wire.Compensation(s.compensation) if s.compensation else None,
        compensation_error=s.compensation_error,
        transcript=json.dumps(s.transcript) if s.transcript is not None else None,
        review=s.review,
        attempt_log=tuple(_attempt(a) for a in s.attempts),
        worker=s.worker,
        capacity=s.capacity,
    )


def _attempt(a: rest.AttemptBody) -> attempts.AttemptView:
    return attempts.AttemptView(
        attempt=a.attempt,
        outcome=wire.AttemptOutcome(a.outcome),
        pool=a.pool,
        worker=a.worker,
        capacity=a.capacity,
        started_ms=a.started_ms,
        ended_ms=a.ended_ms,
        tokens=a.tokens,
        cost=a.cost,
        error=a.error,
    )


def _run_state(body: rest.RunBody) -> runs.RunState:
    return runs.RunState(
        run_id=body.id,
        namespace=body.namespace,
        workflow=body.workflow,
        generation=body.generation,
        status=wire.RunStatus(body.status),
        inputs=body.inputs,
        created_ms=body.created_ms,
        ended_ms=body.ended_ms,
        tokens=body.tokens,
        cost=body.cost,
        version=0,  # the runtime's fence of step outputs: not the API's to show
        steps={name: _step(s) for name, s in body.steps.items()},
        error=body.error,
        priority=wire.Priority(body.priority),
        session=body.session,
    )


def _summary(r: rest.RunSummaryBody) -> runs.RunSummary:
    return runs.RunSummary(
        run_id=r.id, workflow=r.workflow, status=wire.RunStatus(r.status),
        created_ms=r.created_ms, ended_ms=r.ended_ms, tokens=r.tokens, cost=r.cost,
        error=r.error,
    )  # fmt: skip


def _review(namespace: str, b: rest.ReviewBody) -> review.ReviewItem:
    return review.ReviewItem(
        id=b.id, namespace=namespace, run_id=b.run.partition("/")[2], step=b.step,
        attempt=b.attempt, workflow=b.workflow, generation=b.generation, pool=b.pool,
        reason=b.reason, output=b.output, tokens=b.tokens, cost=b.cost, at_ms=b.at_ms,
    )  # fmt: skip


def _dead(namespace: str, b: rest.DeadLetterBody) -> deadletter.DeadLetter:
    return deadletter.DeadLetter(
        id=b.id, namespace=namespace, run_id=b.run.partition("/")[2] if b.run else None,
        step=b.step, attempt=b.attempt, workflow=b.workflow, pool=b.pool, reason=b.reason,
        at_ms=b.at_ms, raw=None,
    )  # fmt: skip

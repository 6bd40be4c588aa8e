"""The console's pages. Each page asks the API's own route functions for its data, so a
page shows exactly what the API answers and is authorized exactly as the API is; forms
post back and redirect (they work without JavaScript), and htmx refreshes the live
parts by polling a page's fragment.

In a browser the token travels in a cookie set by the login page (HttpOnly,
SameSite=Strict, so no other site's page can send it); every form post must also come
from this origin (its Origin header is checked).
"""

from __future__ import annotations

import importlib.resources
import json
import urllib.parse
from typing import Annotated, Any

import fastapi
from fastapi import responses, templating

from trimtab.api import rest
from trimtab.api.v1alpha1 import base
from trimtab.queue import wire
from trimtab.server import auth, context, live_routes, review_routes, runs_routes
from trimtab.server.console import dag
from trimtab.server.context import Caller, caller

COOKIE = context.COOKIE
router = fastapi.APIRouter(prefix="/console", include_in_schema=False)
templates = templating.Jinja2Templates(
    directory=str(importlib.resources.files("trimtab.server.console") / "templates")
)
CallerDep = Annotated[Caller, fastapi.Depends(caller)]
Page = responses.Response
NAMESPACE = fastapi.Path(pattern=base.NAME_PATTERN, max_length=63)
Ns = Annotated[str, NAMESPACE]


# The navigation entry each page belongs to.
SECTIONS = {"run": "runs", "review": "reviews"}


def _render(
    request: fastapi.Request, name: str, code: int = 200, **values: Any
) -> responses.Response:
    stem = name.split(".", maxsplit=1)[0].split("_", maxsplit=1)[0]
    values.setdefault("section", SECTIONS.get(stem, stem))
    page: responses.Response = templates.TemplateResponse(request, name, values, status_code=code)
    return page


def _back(path: str) -> responses.RedirectResponse:
    return responses.RedirectResponse(path, status_code=303)


def _same_origin(request: fastapi.Request) -> None:
    """Form posts only from this console's own pages."""
    origin = request.headers.get("origin")
    if origin is not None and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise auth.Forbidden("a form posted from another site")


@router.get("/")
async def home(namespace: str = "default") -> Page:
    return _back(f"/console/{namespace}/runs")


@router.get("/login")
async def login_page(request: fastapi.Request) -> Page:
    return _render(request, "login.html", namespace="default")


@router.post("/login")
async def login(request: fastapi.Request) -> Page:
    _same_origin(request)
    form = await request.form()
    token, namespace = str(form.get("token") or "").strip(), str(form.get("namespace") or "")
    target = _back(f"/console/{namespace or 'default'}/runs")
    target.set_cookie(COOKIE, token, httponly=True, samesite="strict",
                      secure=request.url.scheme == "https")  # fmt: skip
    return target


@router.get("/{namespace}/runs")
async def runs_page(
    request: fastapi.Request,
    namespace: Ns,
    who: CallerDep,
    workflow: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    fragment: bool = False,
) -> Page:
    statuses = [wire.RunStatus(status)] if status else None
    found = await runs_routes.list_runs(namespace, who, workflow=workflow or None,
                                        status=statuses, cursor=cursor, limit=50)  # fmt: skip
    page = "runs_rows.html" if fragment else "runs.html"
    return _render(request, page, namespace=namespace, runs=found, workflow=workflow or "",
                   status=status or "", statuses=[s.value for s in wire.RunStatus])  # fmt: skip


@router.post("/{namespace}/submit")
async def submit(request: fastapi.Request, namespace: Ns, who: CallerDep) -> Page:
    _same_origin(request)
    form = await request.form()
    workflow = str(form.get("workflow") or "").strip()
    try:
        inputs = json.loads(str(form.get("inputs") or "{}"))
        body = rest.SubmitRequest(inputs=inputs)
    except ValueError as exc:
        raise ValueError(f"inputs must be a JSON object: {exc}") from None
    made = await runs_routes.submit(namespace, workflow, body, who, fastapi.Response())
    return _back(f"/console/{namespace}/runs/{made.id}")


async def _graph(who: Caller, run: rest.RunBody) -> dag.Layout | None:
    try:
        wf = await who.ctx.sdk.generation(run.namespace, run.workflow, run.generation)
    except LookupError:
        return None  # the generation expired before the run: no drawing, the table stays
    plan = wf.plan
    states = {name: s.state for name, s in run.steps.items()}
    return dag.layout(plan.order, plan.level, plan.dependencies, states)


@router.get("/{namespace}/runs/{run_id}")
async def run_page(
    request: fastapi.Request, namespace: Ns, run_id: str, who: CallerDep, fragment: bool = False
) -> Page:
    run = await runs_routes.get_run(namespace, run_id, who)
    ended = wire.RunStatus(run.status).ended
    graph = await _graph(who, run)
    # Steps in the order the graph draws them (by level), else by name.
    order = [b.step for b in graph.boxes if b.step in run.steps] if graph else list(run.steps)
    page = "run_live.html" if fragment else "run.html"
    return _render(request, page, namespace=namespace, run=run, graph=graph, order=order,
                   ended=ended, box_w=dag.BOX_W, box_h=dag.BOX_H,
                   event_kinds=[k.value for k in wire.EventType],
                   tokens_kind=wire.EventType.TOKENS.value,
                   done_kind=wire.EventType.RUN_DONE.value)  # fmt: skip


@router.post("/{namespace}/runs/{run_id}/cancel")
async def cancel(request: fastapi.Request, namespace: Ns, run_id: str, who: CallerDep) -> Page:
    _same_origin(request)
    await runs_routes.cancel(namespace, run_id, who)
    return _back(f"/console/{namespace}/runs/{run_id}")


@router.get("/{namespace}/reviews")
async def reviews_page(
    request: fastapi.Request, namespace: Ns, who: CallerDep, done: str = ""
) -> Page:
    found = await review_routes.list_reviews(namespace, who, count=200)
    return _render(request, "reviews.html", namespace=namespace, items=found.items, done=done)


def _review_form(
    request: fastapi.Request,
    item: rest.ReviewBody,
    *,
    output: str,
    error: str = "",
    code: int = 200,
) -> Page:
    schema = json.dumps(item.output_schema, indent=2) if item.output_schema else ""
    return _render(request, "review.html", code=code, namespace=item.run.split("/")[0],
                   item=item, error=error, output=output, schema=schema,
                   default_reason=rest.REJECTED)  # fmt: skip


def _done(namespace: str, entry: str, outcome: str) -> Page:
    """Back to the queue, saying what became of the entry."""
    said = urllib.parse.quote(f"{entry} {outcome}")
    return _back(f"/console/{namespace}/reviews?done={said}")


@router.get("/{namespace}/reviews/{entry}")
async def review_page(request: fastapi.Request, namespace: Ns, entry: str, who: CallerDep) -> Page:
    item = await review_routes.get_review(namespace, entry, who)
    return _review_form(request, item, output=json.dumps(item.output, indent=2))


@router.post("/{namespace}/reviews/{entry}/approve")
async def approve(request: fastapi.Request, namespace: Ns, entry: str, who: CallerDep) -> Page:
    _same_origin(request)
    decision = await review_routes.approve(namespace, entry, who)
    return _done(namespace, entry, decision.outcome)


@router.post("/{namespace}/reviews/{entry}/edit")
async def edit(request: fastapi.Request, namespace: Ns, entry: str, who: CallerDep) -> Page:
    """Approve with the edited output; one outside the schema (or not JSON) shows the
    form again with the reviewer's text and why (422)."""
    _same_origin(request)
    text = str((await request.form()).get("output") or "null")
    try:
        try:
            output = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the edited output is not JSON: {exc}") from None
        decision = await review_routes.edit(namespace, entry, rest.EditRequest(output=output), who)
    except ValueError as exc:
        item = await review_routes.get_review(namespace, entry, who)
        return _review_form(request, item, output=text, error=str(exc), code=422)
    return _done(namespace, entry, decision.outcome)


@router.post("/{namespace}/reviews/{entry}/reject")
async def reject(request: fastapi.Request, namespace: Ns, entry: str, who: CallerDep) -> Page:
    _same_origin(request)
    reason = str((await request.form()).get("reason") or "")
    body = rest.RejectRequest(reason=reason) if reason else rest.RejectRequest()
    decision = await review_routes.reject(namespace, entry, who, body)
    return _done(namespace, entry, decision.outcome)


@router.get("/{namespace}/deadletters")
async def dead_letters_page(
    request: fastapi.Request, namespace: Ns, who: CallerDep, done: str = ""
) -> Page:
    found = await review_routes.list_dead_letters(namespace, who, count=200)
    return _render(request, "deadletters.html", namespace=namespace, items=found.items, done=done)


@router.post("/{namespace}/deadletters/{entry}/retry")
async def retry(request: fastapi.Request, namespace: Ns, entry: str, who: CallerDep) -> Page:
    _same_origin(request)
    retried = await review_routes.retry(namespace, entry, who)
    said = urllib.parse.quote(f"{entry} {retried.outcome}")
    return _back(f"/console/{namespace}/deadletters?done={said}")


@router.get("/{namespace}/pools")
async def pools_page(
    request: fastapi.Request, namespace: Ns, who: CallerDep, fragment: bool = False
) -> Page:
    found = await live_routes.pools(namespace, who)
    page = "pools_rows.html" if fragment else "pools.html"
    return _render(request, page, namespace=namespace, items=found.items)


@router.get("/{namespace}/workflows")
async def workflows_page(request: fastapi.Request, namespace: Ns, who: CallerDep) -> Page:
    found = await live_routes.workflows(namespace, who)
    return _render(request, "workflows.html", namespace=namespace, items=found.items)


TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Already ended"}


def problem_page(request: fastapi.Request, status: int, exc: Exception) -> responses.Response:
    """An error on a console page, as a page (a missing token: the sign-in page)."""
    if status == 401:
        return _back("/console/login")
    parts = request.url.path.split("/")
    namespace = parts[2] if len(parts) > 2 and parts[2] else "default"
    return _render(request, "error.html", code=status, status=status, namespace=namespace,
                   section="",
                   title=TITLES.get(status, "Something went wrong"), message=str(exc))  # fmt: skip

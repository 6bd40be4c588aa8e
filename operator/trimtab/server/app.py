"""The API server's application: its routes, one error shape for every failure (a
status and one line; never a 500 for bad input), the body limit, health and metrics.

Errors are mapped here from the runtime's own exception types, so routes raise what
the SDK raises and the HTTP status is decided in one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.resources
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import fastapi
import prometheus_client
from fastapi import exceptions as fastapi_exceptions
from fastapi import responses, staticfiles

from trimtab import metrics as metrics_mod
from trimtab.api import rest
from trimtab.history import store as history_store
from trimtab.kube import access, aio, objects
from trimtab.kube import client as kube_client
from trimtab.queue import connection, eventhub, runindex, runs
from trimtab.sdk import client as sdk_client
from trimtab.sdk import history as sdk_history
from trimtab.sdk import operations
from trimtab.server import (
    auth,
    context,
    history_routes,
    limits,
    live_routes,
    review_routes,
    runs_routes,
)
from trimtab.server.console import routes as console_routes

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    redis_url: str
    auth: bool = True  # False only when explicitly asked (--no-auth)
    kubeconfig: str | None = None
    max_body_bytes: int = 2 * sdk_client.MAX_INPUT_BYTES
    requests_per_second: float = 50.0
    burst: int = 200
    history_url: str | None = None  # the history database, for /history and /cost
    history_password: str | None = None


# The runtime's exceptions, most specific first, and the status each answers with.
STATUSES: tuple[tuple[type[Exception], int], ...] = (
    (auth.Unauthenticated, 401),
    (auth.Forbidden, 403),
    (sdk_client.InputsTooLargeError, 413),
    (operations.InvalidEditError, 422),
    (sdk_client.InvalidInputsError, 422),
    (operations.RunEndedError, 409),
    (sdk_client.BudgetExhaustedError, 429),
    (context.RateLimited, 429),
    (runs.RedisFullError, 503),
    (live_routes.NoClusterError, 501),
    (history_routes.NoHistoryError, 501),
    (history_store.HistoryUnavailableError, 503),
    (runindex.BadCursorError, 400),
    (LookupError, 404),
    (ValueError, 400),
    (TypeError, 400),
)


def _problem(status: int, message: str, headers: dict[str, str] | None = None) -> Any:
    body = rest.Problem(status=status, error=message).model_dump(by_alias=True)
    return responses.JSONResponse(body, status_code=status, headers=headers)


def _known(request: fastapi.Request, exc: Exception) -> Any:
    status = next(code for kind, code in STATUSES if isinstance(exc, kind))
    if request.url.path.startswith("/console/"):
        return console_routes.problem_page(request, status, exc)
    headers = (
        {"Retry-After": str(exc.retry_after)} if isinstance(exc, context.RateLimited) else None
    )
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return _problem(status, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, headers)


def _invalid(_: fastapi.Request, exc: Exception) -> Any:
    assert isinstance(exc, fastapi_exceptions.RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _problem(422, f"{where or 'request'}: {first.get('msg', 'invalid')}")


def _unavailable(_: fastapi.Request, exc: Exception) -> Any:
    log.warning("Redis unavailable: %s", exc)
    return _problem(503, "the runtime's Redis is unavailable; retry shortly")


def _internal(_: fastapi.Request, exc: Exception) -> Any:
    log.exception("unhandled error", exc_info=exc)
    return _problem(500, "internal error (the server's log has the details)")


def build_app(make_context: Callable[[], context.Context]) -> fastapi.FastAPI:
    """The ASGI app; `make_context` is called at start-up (its clients then close at
    shutdown)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: fastapi.FastAPI) -> AsyncIterator[None]:
        ctx = app.state.trimtab = make_context()
        try:
            yield
        finally:
            await ctx.hub.aclose()
            await ctx.sdk.aclose()
            if ctx.history is not None:
                await ctx.history.aclose()

    app = fastapi.FastAPI(
        title="Trimtab API",
        version="v1",
        description="Submit, follow, cancel and list runs; review and dead letters.",
        lifespan=lifespan,
    )
    routers = (runs_routes.router, review_routes.router, live_routes.router, history_routes.router)
    for router in routers:
        app.include_router(router)
    app.include_router(console_routes.router)
    static = importlib.resources.files("trimtab.server.console") / "static"
    app.mount("/console/static", staticfiles.StaticFiles(directory=str(static)), name="static")

    @app.get("/", include_in_schema=False)
    async def root() -> Any:
        return responses.RedirectResponse("/console/", status_code=307)

    for kind, _ in STATUSES:
        app.add_exception_handler(kind, _known)
    app.add_exception_handler(fastapi_exceptions.RequestValidationError, _invalid)
    for kind in connection.UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)
    app.add_exception_handler(Exception, _internal)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: fastapi.Request) -> dict[str, str]:
        await context.context(request).sdk.redis.ping()
        return {"status": "ready"}

    return app


def asgi(settings: ServerSettings, registry: prometheus_client.CollectorRegistry) -> Any:
    """The app with its body limit and /metrics, ready for uvicorn."""

    def make_context() -> context.Context:
        sdk = sdk_client.Client(settings.redis_url)
        hub_reader = connection.connect(settings.redis_url, max_connections=1)
        reviewer, kube = None, None
        if settings.auth or settings.kubeconfig:  # a cluster: for reviews, live figures or both

            def connect() -> Any:
                return kube_client.connect(settings.kubeconfig)

            reviewer = access.AccessReviewer(connect) if settings.auth else None
            kube = aio.AsyncStore(lambda: objects.ObjectStore(connect()))
        return context.Context(
            sdk=sdk,
            guard=auth.Guard(reviewer),
            hub=eventhub.EventHub(sdk.redis, hub_reader),
            kube=kube,
            limiter=limits.RateLimiter(settings.requests_per_second, settings.burst),
            metrics=metrics_mod.build(registry),
            history=sdk_history.History(settings.history_url, settings.history_password)
            if settings.history_url
            else None,
        )

    app = build_app(make_context)
    app.mount("/metrics", prometheus_client.make_asgi_app(registry))
    return limits.BodyLimit(app, settings.max_body_bytes)

"""What every route is handed: the runtime's client, the guard, the event hub, the
apiserver store, and the caller (authenticated and within its rate limit)."""

from __future__ import annotations

import dataclasses
import math

import fastapi

from trimtab import metrics as metrics_mod
from trimtab.kube import access, aio
from trimtab.queue import eventhub
from trimtab.sdk import client as sdk_client
from trimtab.sdk import history as sdk_history
from trimtab.server import auth, limits

COOKIE = "trimtab_token"


class RateLimited(Exception):  # noqa: N818
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests from this caller; retry in {retry_after} s")
        self.retry_after = retry_after  # whole seconds, as Retry-After takes them


@dataclasses.dataclass
class Context:
    sdk: sdk_client.Client
    guard: auth.Guard
    hub: eventhub.EventHub
    kube: aio.AsyncStore | None  # None: no cluster (development without auth)
    limiter: limits.RateLimiter
    metrics: metrics_mod.Metrics
    history: sdk_history.History | None = None  # None: started without --history-url


@dataclasses.dataclass(frozen=True)
class Caller:
    ctx: Context
    who: access.Identity

    async def require(self, need: auth.Need, namespace: str, name: str = "") -> None:
        await self.ctx.guard.require(self.who, need, namespace, name)

    async def may(self, need: auth.Need, namespace: str, name: str = "") -> bool:
        return await self.ctx.guard.allowed(self.who, need, namespace, name)


def checked_namespace(namespace: str) -> str:
    """Every route's `{namespace}`: a Kubernetes namespace name, or 400 (it becomes part
    of Redis key names and of every access review)."""
    if len(namespace) > 63 or not sdk_client.NAMESPACE.match(namespace):
        raise ValueError(f"a namespace is a DNS label of at most 63 characters, got {namespace!r}")
    return namespace


# The API's routers take it as a dependency, so no route can miss it.
NAMESPACE_CHECKED = [fastapi.Depends(checked_namespace)]


def context(request: fastapi.Request) -> Context:
    found: Context = request.app.state.trimtab
    return found


async def caller(request: fastapi.Request) -> Caller:
    """The authenticated caller; raises for a missing or refused token, or a caller
    past its rate limit."""
    ctx = context(request)
    # A browser on the console sends its token in the cookie the sign-in page set.
    cookie = request.cookies.get(COOKIE)
    header = request.headers.get("authorization") or (f"Bearer {cookie}" if cookie else None)
    who = await ctx.guard.identify(header)
    # Without auth every caller is `anonymous`: they are told apart by address instead.
    address = request.client.host if request.client else ""
    wait = ctx.limiter.take(who.user if ctx.guard.enabled else f"address:{address}")
    if wait > 0:
        raise RateLimited(max(1, math.ceil(wait)))
    return Caller(ctx, who)

"""Who a caller is and what RBAC lets them do, asked of the apiserver: TokenReview for a
bearer token, SubjectAccessReview for one verb on one resource. The HTTP API
(trimtab.server.auth) decides and caches; this module only asks, so Kubernetes stays
behind trimtab.kube like every other call.

Both calls are blocking (the official client) and run on a small thread pool of their
own, as trimtab.kube.aio does for object calls; each has the client's deadline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
from collections.abc import Callable
from typing import TypeVar

from kubernetes import client as k8s_client

from trimtab.kube import client

THREADS = 8
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Identity:
    """An authenticated user or ServiceAccount, as the apiserver named it."""

    user: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclasses.dataclass(frozen=True)
class Attributes:
    """One request to authorize, in RBAC's terms."""

    verb: str
    group: str
    resource: str
    namespace: str
    subresource: str = ""
    name: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


class AccessReviewer:
    """TokenReview and SubjectAccessReview calls, awaited."""

    def __init__(self, connect: Callable[[], k8s_client.ApiClient] | None = None) -> None:
        self._connect = connect or client.connect
        self._api: k8s_client.ApiClient | None = None
        self._threads = concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="authz")

    def _client(self) -> k8s_client.ApiClient:
        if self._api is None:
            self._api = self._connect()
        return self._api

    async def _run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, functools.partial(call))

    async def review_token(self, token: str) -> Identity | None:
        """The token's identity, or None when the apiserver does not accept it."""
        return await self._run(lambda: _review_token(self._client(), token))

    async def review_access(self, who: Identity, what: Attributes) -> Verdict:
        return await self._run(lambda: _review_access(self._client(), who, what))

    def close(self) -> None:
        self._threads.shutdown(wait=False)


def _review_token(api: k8s_client.ApiClient, token: str) -> Identity | None:
    review = k8s_client.V1TokenReview(spec=k8s_client.V1TokenReviewSpec(token=token))
    status = k8s_client.AuthenticationV1Api(api).create_token_review(review).status
    if status is None or not status.authenticated or status.user is None:
        return None
    user = status.user
    extra = tuple(sorted((k, tuple(v)) for k, v in (user.extra or {}).items()))
    return Identity(
        user=user.username or "", uid=user.uid or "", groups=tuple(user.groups or ()), extra=extra
    )


def _review_access(api: k8s_client.ApiClient, who: Identity, what: Attributes) -> Verdict:
    attributes = k8s_client.V1ResourceAttributes(
        verb=what.verb,
        group=what.group,
        resource=what.resource,
        subresource=what.subresource or None,
        namespace=what.namespace,
        name=what.name or None,
    )
    spec = k8s_client.V1SubjectAccessReviewSpec(
        user=who.user,
        uid=who.uid or None,
        groups=list(who.groups),
        extra={k: list(v) for k, v in who.extra} or None,
        resource_attributes=attributes,
    )
    review = k8s_client.V1SubjectAccessReview(spec=spec)
    status = k8s_client.AuthorizationV1Api(api).create_subject_access_review(review).status
    return Verdict(allowed=bool(status and status.allowed), reason=(status and status.reason) or "")

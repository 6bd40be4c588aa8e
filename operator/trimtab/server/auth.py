"""Who may do what through the HTTP API, the Kubernetes way: a bearer token is checked
with TokenReview, and each call with a SubjectAccessReview of one verb on a
subresource of `agentworkflows` (or on pools and workflows themselves), so cluster
admins grant access with ordinary Roles (the chart's viewer, submitter and reviewer
ClusterRoles). Both answers are cached briefly (TTL_SECONDS), bounded in size.

What each call needs is `Need`, named once here; the routes ask for one.
Without auth (`--no-auth`, for development only) every caller is `anonymous` and
everything is allowed.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import hashlib
import time
from typing import Generic, TypeVar

from trimtab.kube import access

GROUP = "trimtab.io"
TTL_SECONDS = 10.0
CACHE_MOST = 10_000
ANONYMOUS = access.Identity(user="anonymous", uid="", groups=())

K = TypeVar("K")
V = TypeVar("V")


class Unauthenticated(Exception):  # noqa: N818 - read as an HTTP answer
    """No bearer token, or one the apiserver does not accept (401)."""


class Forbidden(Exception):  # noqa: N818
    """RBAC does not allow the call (403)."""


class Sub(enum.StrEnum):
    """The subresources of agentworkflows the API's calls are authorized on."""

    RUNS = "runs"
    REVIEWS = "reviews"
    DEAD_LETTERS = "deadletters"
    SESSIONS = "sessions"


@dataclasses.dataclass(frozen=True)
class Need:
    """A verb on a resource (and subresource) of trimtab.io."""

    verb: str
    resource: str = "agentworkflows"
    sub: Sub | None = None

    def describe(self, namespace: str, name: str) -> str:
        what = self.resource + (f"/{self.sub}" if self.sub else "")
        named = f" {name!r}" if name else ""
        return f"{self.verb} {what}{named} in namespace {namespace!r}"


class TtlCache(Generic[K, V]):
    """A bounded map whose entries expire TTL seconds after they were set."""

    def __init__(self, ttl: float = TTL_SECONDS, most: int = CACHE_MOST) -> None:
        self._ttl, self._most = ttl, most
        self._items: collections.OrderedDict[K, tuple[float, V]] = collections.OrderedDict()

    def get(self, key: K, now: float) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None or found[0] <= now:
            return False, None
        return True, found[1]

    def put(self, key: K, value: V, now: float) -> None:
        self._items[key] = (now + self._ttl, value)
        self._items.move_to_end(key)
        while len(self._items) > self._most:
            self._items.popitem(last=False)


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer ...` header; Unauthenticated otherwise."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send a Kubernetes token: `Authorization: Bearer TOKEN`")
    return token.strip()


class Guard:
    """Authenticates tokens and authorizes calls, through the apiserver, cached."""

    def __init__(self, reviewer: access.AccessReviewer | None) -> None:
        self._reviewer = reviewer  # None: no auth (development)
        self._tokens: TtlCache[str, access.Identity | None] = TtlCache()
        self._verdicts: TtlCache[tuple[access.Identity, access.Attributes], bool] = TtlCache()

    @property
    def enabled(self) -> bool:
        return self._reviewer is not None

    async def identify(self, authorization: str | None) -> access.Identity:
        if self._reviewer is None:
            return ANONYMOUS
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).hexdigest()  # tokens are not kept as such
        now = time.monotonic()
        hit, who = self._tokens.get(digest, now)
        if not hit:
            who = await self._reviewer.review_token(token)
            self._tokens.put(digest, who, now)
        if who is None:
            raise Unauthenticated("the token was not accepted by the cluster (TokenReview)")
        return who

    async def allowed(
        self, who: access.Identity, need: Need, namespace: str, name: str = ""
    ) -> bool:
        if self._reviewer is None:
            return True
        attrs = access.Attributes(
            verb=need.verb,
            group=GROUP,
            resource=need.resource,
            subresource=need.sub.value if need.sub else "",
            namespace=namespace,
            name=name,
        )
        now = time.monotonic()
        hit, verdict = self._verdicts.get((who, attrs), now)
        if not hit:
            verdict = (await self._reviewer.review_access(who, attrs)).allowed
            self._verdicts.put((who, attrs), verdict, now)
        return bool(verdict)

    async def require(
        self, who: access.Identity, need: Need, namespace: str, name: str = ""
    ) -> None:
        if not await self.allowed(who, need, namespace, name):
            raise Forbidden(f"{who.user} may not {need.describe(namespace, name)}")

"""How worker pods reach Redis: the URL, and the Secrets that hold the user, the password
and the TLS CA bundle.

A pod can only read Secrets of its own namespace, so the Secrets are named here and
must exist in every namespace that runs pools; the operator writes references to them,
never their contents. The variable names are the queue client's contract
(trimtab.queue.connection); they are repeated here because the pure layer may not
import the queue, and a unit test keeps the two in step.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

USERNAME_ENV = "TRIMTAB_REDIS_USERNAME"
PASSWORD_ENV = "TRIMTAB_REDIS_PASSWORD"  # noqa: S105 - a variable name
# The optional key of the password Secret naming the Redis user: the chart writes it for
# the namespace users of its bundled Redis (trimtab.queue.acl); absent, `default` applies.
USERNAME_KEY = "username"
CA_FILE_ENV = "TRIMTAB_REDIS_CA_FILE"
# Sentinels that require a password of their own (trimtab.queue.topology) read it from
# the same Secret, under this key, when it has one.
SENTINEL_PASSWORD_ENV = "TRIMTAB_REDIS_SENTINEL_PASSWORD"  # noqa: S105 - a variable name
SENTINEL_PASSWORD_KEY = "sentinel-password"  # noqa: S105 - a key name in the Secret
CA_VOLUME = "redis-ca"
CA_DIR = "/etc/trimtab/redis-ca"
CA_KEY = "ca.crt"


def redacted(url: str) -> str:
    """`url` with any password replaced by `***`, for logs and messages."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@dataclasses.dataclass(frozen=True)
class RedisAccess:
    url: str
    password_secret: str | None = None  # Secret name in the pool's namespace
    password_key: str = "password"  # noqa: S105 - a key name in the Secret
    ca_secret: str | None = None  # Secret name in the pool's namespace, with key ca.crt

    def problem(self) -> str | None:
        """Why workers cannot be given this access as it is, or None. A password in the
        URL would be copied into every worker Deployment's arguments, readable by anyone
        who may read Deployments: it must come from a Secret instead."""
        if urllib.parse.urlsplit(self.url).password is not None:
            return (
                f"the workers' Redis URL {redacted(self.url)} carries a password, which "
                "would be copied into every worker Deployment: pass the URL without it and "
                "the password as a Secret (chart: redis.auth.existingSecret; env: "
                "TRIMTAB_WORKER_REDIS_PASSWORD_SECRET), or give workers their own URL "
                "(TRIMTAB_WORKER_REDIS_URL)"
            )
        return None

    def env(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.password_secret:
            user = {"name": self.password_secret, "key": USERNAME_KEY, "optional": True}
            out.append({"name": USERNAME_ENV, "valueFrom": {"secretKeyRef": user}})
            ref = {"name": self.password_secret, "key": self.password_key}
            out.append({"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": ref}})
            sentinel = {"name": self.password_secret, "key": SENTINEL_PASSWORD_KEY}
            out.append(
                {
                    "name": SENTINEL_PASSWORD_ENV,
                    "valueFrom": {"secretKeyRef": {**sentinel, "optional": True}},
                }
            )
        if self.ca_secret:
            out.append({"name": CA_FILE_ENV, "value": f"{CA_DIR}/{CA_KEY}"})
        return out

    def volumes(self) -> list[dict[str, Any]]:
        if not self.ca_secret:
            return []
        items = [{"key": CA_KEY, "path": CA_KEY}]
        return [{"name": CA_VOLUME, "secret": {"secretName": self.ca_secret, "items": items}}]

    def volume_mounts(self) -> list[dict[str, Any]]:
        if not self.ca_secret:
            return []
        return [{"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True}]

"""The cluster admin's allow-lists, which the operator enforces on every spec.

Authors of AgentPools and AgentWorkflows are not trusted; the admin, who installs the
chart, says (`security.*` values) which images pools may run, which model endpoints a
pool's API key may be sent to, and which URLs tool steps may call with their headers'
Secrets. Both kinds' admission reads the same `Policy`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse


@dataclasses.dataclass(frozen=True)
class Policy:
    """The cluster admin's allow-lists; an empty list allows anything."""

    images: tuple[str, ...] = ()  # repositories or registries, e.g. "registry.corp/agents"
    endpoints: tuple[str, ...] = ()  # base URLs, e.g. "https://llm.corp/v1"
    tool_urls: tuple[str, ...] = ()  # base URLs tool steps may call, e.g. "https://crm.corp/"

    def allows_image(self, image: str) -> bool:
        return not self.images or any(_image_under(image, e) for e in self.images)

    def allows_endpoint(self, url: str) -> bool:
        return not self.endpoints or any(_url_under(url, e) for e in self.endpoints)

    def allows_tool_url(self, url: str) -> bool:
        """A tool URL template is allowed when its literal part is under an entry: its
        placeholders come after the origin and each value is percent-encoded, so no
        rendering leaves the entry (trimtab.reconcile.agentworkflow.tool_requests)."""
        return not self.tool_urls or any(_url_under(url, e) for e in self.tool_urls)


def _image_under(image: str, entry: str) -> bool:
    """`image` is `entry` itself, one of its tags or digests, or inside it: whole path
    segments only, so "registry.corp" does not admit "registry.corp.evil/x"."""
    base = entry.rstrip("/")
    return image == base or image.startswith((f"{base}:", f"{base}@", f"{base}/"))


def _url_under(url: str, entry: str) -> bool:
    """`url` has `entry`'s scheme, host and port, and a path at or below its path."""
    got, allowed = urllib.parse.urlsplit(url), urllib.parse.urlsplit(entry)
    if (got.scheme, got.hostname, got.port) != (allowed.scheme, allowed.hostname, allowed.port):
        return False
    if got.username is not None or got.password is not None:
        return False  # credentials in the URL are never the admin's endpoint
    base = allowed.path.rstrip("/")
    return got.path == base or got.path.startswith(f"{base}/") or not base

"""The leader-election Lease in the API server: read it, and write what
trimtab.reconcile.leader decided, conditionally on the version it was decided on."""

from __future__ import annotations

from typing import Any

from kubernetes.client import exceptions as k8s_exceptions

from trimtab.kube import objects
from trimtab.reconcile import leader

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"
CONFLICT = 409
NOT_FOUND = 404
# A call that hangs fails well inside the renew deadline, so the next try still counts.
REQUEST_SECONDS = leader.RENEW_SECONDS / 2


class LeaseLock:
    """One Lease, `namespace/name`, contended by operator replicas named `me`."""

    def __init__(self, store: objects.ObjectStore, namespace: str, name: str, me: str) -> None:
        self.store, self.namespace, self.name, self.me = store, namespace, name, me
        self._seen: tuple[str, float] | None = None  # (resourceVersion, first seen at)

    def _unchanged_since(self, view: leader.LeaseView | None, now: float) -> float:
        if view is not None and (self._seen is None or self._seen[0] != view.resource_version):
            self._seen = (view.resource_version, now)
        return now if self._seen is None else self._seen[1]

    def _read(self) -> leader.LeaseView | None:
        found = self.store.get(API_VERSION, KIND, self.name, self.namespace)
        return None if found is None else leader.view_of(found)

    def try_acquire(self, now: float) -> bool:
        """Create, renew or take over the Lease when the decision says so; True while I
        hold it. Losing a race (another replica wrote first) is False, not an error.
        `now` is this replica's clock: expiry is measured on it alone."""
        view = self._read()
        since = self._unchanged_since(view, now)
        action = leader.decide(view, self.me, now, unchanged_since=since)
        if action is leader.Action.WAIT:
            return False
        spec = leader.lease_spec(view, self.me, now)
        try:
            if view is None:
                self.store.create(self._lease(spec))
            else:
                self._write(spec, view.resource_version)
        except k8s_exceptions.ApiException as exc:
            if exc.status in (CONFLICT, NOT_FOUND):
                return False
            raise
        return True

    def release(self) -> None:
        """Give the Lease up if I hold it, so a standby takes over at once."""
        view = self._read()
        if view is None or view.holder != self.me:
            return
        try:
            self._write(leader.released_spec(), view.resource_version)
        except k8s_exceptions.ApiException as exc:
            if exc.status not in (CONFLICT, NOT_FOUND):
                raise

    def _lease(self, spec: dict[str, Any]) -> dict[str, Any]:
        meta = {"name": self.name, "namespace": self.namespace}
        return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}

    def _write(self, spec: dict[str, Any], resource_version: str) -> None:
        # A merge patch that names the resourceVersion is refused (409) if the Lease
        # changed since it was read: the compare-and-swap the election relies on.
        patch = {"metadata": {"resourceVersion": resource_version}, "spec": spec}
        self.store.patch(API_VERSION, KIND, self.name, patch, namespace=self.namespace)

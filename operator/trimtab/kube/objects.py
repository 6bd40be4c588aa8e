"""Reading and writing arbitrary objects by apiVersion and kind.

Writes are server-side apply with one field manager, so repeated applies of the same
desired object are no-ops and fields owned by others (the scaler's `replicas`) stay
theirs. Field validation is Strict, as with kubectl: an unknown or duplicated field is
an error, never silently dropped. The dynamic client resolves kinds through discovery,
refreshed on a miss, so a kind whose CRD was installed a moment ago is found.
"""

from __future__ import annotations

import json
import time
from typing import Any

from kubernetes import client as k8s_client
from kubernetes import dynamic
from kubernetes.client import exceptions as k8s_exceptions
from kubernetes.dynamic import exceptions as dyn_exceptions

Obj = dict[str, Any]
FIELD_MANAGER = "trimtab"
ApiError = k8s_exceptions.ApiException  # what callers outside trimtab.kube catch


class ObjectStore:
    """Get, apply, patch and delete objects of any kind through one API client."""

    def __init__(self, api: k8s_client.ApiClient) -> None:
        self._api = api
        self._dyn = dynamic.DynamicClient(api)

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self._dyn.resources.get(api_version=api_version, kind=kind)
        except dyn_exceptions.ResourceNotFoundError:
            self._dyn.resources.invalidate_cache()
            return self._dyn.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: Obj, *, field_manager: str = FIELD_MANAGER, force: bool = True) -> Obj:
        """Server-side apply `obj` with strict field validation; returns it as stored."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        meta = obj["metadata"]
        path = res.path(name=meta["name"], namespace=meta.get("namespace"))
        query = [("fieldManager", field_manager), ("force", force), ("fieldValidation", "Strict")]
        return self._send("PATCH", path, query, "application/apply-patch+yaml", obj)

    def create(self, obj: Obj, *, field_manager: str = FIELD_MANAGER) -> Obj:
        """Create `obj` (409 Conflict when it exists), with strict field validation."""
        res = self._resource(obj["apiVersion"], obj["kind"])
        path = res.path(namespace=obj["metadata"].get("namespace"))
        query = [("fieldManager", field_manager), ("fieldValidation", "Strict")]
        return self._send("POST", path, query, "application/json", obj)

    def _send(
        self, method: str, path: str, query: list[tuple[str, Any]], content_type: str, body: Obj
    ) -> Obj:
        # The dynamic client cannot pass fieldValidation, so writes go one level down.
        request = self._api.param_serialize(
            method,
            path,
            query_params=query,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            self._api.response_deserialize(response, {})  # raises ApiException with the body
        return dict(json.loads(response.data or b"{}"))

    def raw(self, path: str) -> str:
        """GET a non-resource path such as /metrics or /readyz, as text."""
        request = self._api.param_serialize(
            "GET", path, header_params={"Accept": "text/plain"}, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(*request)
        response.read()
        if not 200 <= response.status <= 299:
            self._api.response_deserialize(response, {})
        return bytes(response.data or b"").decode()

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        """The object, or None when it does not exist."""
        res = self._resource(api_version, kind)
        try:
            return dict(res.get(name=name, namespace=namespace).to_dict())
        except dyn_exceptions.NotFoundError:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[Obj]:
        res = self._resource(api_version, kind)
        found = res.get(namespace=namespace, label_selector=label_selector)
        return [dict(item) for item in found.to_dict()["items"]]

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Obj,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        """A JSON merge patch of the object or of one of its subresources (`status`)."""
        res = self._resource(api_version, kind)
        if subresource is not None:
            res = res.subresources[subresource]
        result = res.patch(
            body=patch, name=name, namespace=namespace, content_type="application/merge-patch+json"
        )
        return dict(result.to_dict())

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete the object (background propagation); False if it was already gone."""
        res = self._resource(api_version, kind)
        try:
            res.delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"})
        except dyn_exceptions.NotFoundError:
            return False
        return True

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        *,
        namespace: str | None = None,
        until: Any,
        timeout: float = 30.0,
        interval: float = 0.2,
    ) -> Obj:
        """Poll until `until(obj)` is true; raises TimeoutError with the last state seen."""
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while time.monotonic() < deadline:
            last = self.get(api_version, kind, name, namespace)
            if last is not None and until(last):
                return last
            time.sleep(interval)
        raise TimeoutError(f"{kind} {namespace}/{name} not as expected after {timeout} s: {last}")

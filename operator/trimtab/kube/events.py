"""Kubernetes Events about Trimtab's objects, posted through the API like any object.

kopf can post events only from inside its own handlers; the operator's loops run
beside them, so events go through here (core/v1 Events, which `kubectl describe`
and `kubectl events` show).
"""

from __future__ import annotations

import datetime
import socket
import uuid
from collections.abc import Mapping
from typing import Any

from trimtab.kube import objects
from trimtab.reconcile import conditions

COMPONENT = "trimtab-operator"


def event_for(obj: Mapping[str, Any], *, type_: str, reason: str, message: str) -> dict[str, Any]:
    """The Event document about `obj` (pure, for tests)."""
    meta = obj["metadata"]
    now = conditions.format_time(datetime.datetime.now(datetime.UTC))
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
            "namespace": meta.get("namespace") or "default",
        },
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": socket.gethostname(),
        "count": 1,
        "firstTimestamp": now,
        "lastTimestamp": now,
    }


def post(
    store: objects.ObjectStore, obj: Mapping[str, Any], *, type_: str, reason: str, message: str
) -> None:
    store.apply(
        event_for(obj, type_=type_, reason=reason, message=message), field_manager=COMPONENT
    )

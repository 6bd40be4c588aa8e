"""AgentPool: its objects follow its spec (trimtab.handlers.pool_objects). The
autoscaler, which owns the replica count and the status, is trimtab.handlers.pool_scaler.

A deleted pool's Redis stream is kept on purpose: tasks accepted for it are not dropped,
and a pool created again under the same name serves them.
"""

from __future__ import annotations

from typing import Any

import kopf

from trimtab.api.v1alpha1 import GROUP, VERSION
from trimtab.handlers import pool_objects


@kopf.on.event(GROUP, VERSION, pool_objects.PLURAL)
async def reconcile_objects(
    *, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    """The pool's objects, once per spec generation (at start-up, once per pool). A watch
    event rather than kopf's create, update and resume handlers: those keep kopf's
    bookkeeping in annotations, a write per pool at every start and change, and the
    once-a-minute pass (trimtab.handlers.loops) retries a pass that failed."""
    shared = memo["shared"]
    if event.get("type") == "DELETED":
        shared.objects.mark_handled(body, gone=True)
    elif shared.objects.first_sight(body):
        shared.objects.mark_handled(body)  # tried once here; the loops retry
        await pool_objects.ensure_objects(shared, body)

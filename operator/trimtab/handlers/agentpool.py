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


@kopf.on.resume(GROUP, VERSION, pool_objects.PLURAL)
@kopf.on.create(GROUP, VERSION, pool_objects.PLURAL)
@kopf.on.update(GROUP, VERSION, pool_objects.PLURAL, field="spec")
async def reconcile_objects(*, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await pool_objects.ensure_objects(memo["shared"], body)
